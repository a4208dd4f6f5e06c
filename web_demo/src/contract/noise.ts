/**
 * The noise of forward-only steps, bit for bit as numpy draws it (docs/artifact-contract.md,
 * section 6): `numpy.random.default_rng([seed, t]).standard_normal(shape, dtype=float32)`, i.e.
 * PCG64 seeded through SeedSequence, and numpy's float32 ziggurat. (Noise.kt is the Kotlin twin.)
 * Float32 arithmetic is spelled with Math.fround: each float operation rounds as numpy's does.
 */
const f = Math.fround;
const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);
const bitsOf = (x: number): number => ((f32[0] = x), i32[0]);
const fromBits = (b: number): number => ((i32[0] = b), f32[0]);

/** Round half to even (Kotlin's round, numpy's rint). */
function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const INIT_A = 0x43b0d7e5, MULT_A = 0x931e8875 | 0, INIT_B = 0x8b51f9dd | 0, MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd | 0, MIX_MULT_R = 0x4973f715, XSHIFT = 16;

/** numpy's SeedSequence (pool of 4 uint32 words), enough for `generate_state(n, uint64)`. */
export class SeedSequence {
  private readonly pool = new Int32Array(4);

  constructor(entropy: number[]) {
    const words: number[] = [];
    for (const e of entropy) { // each whole number -> its little-endian uint32 words (0 -> one 0 word)
      if (!Number.isSafeInteger(e) || e < 0) throw new Error("seed values must be whole numbers >= 0");
      if (e === 0) words.push(0);
      for (let n = e; n > 0; n = Math.floor(n / 2 ** 32)) words.push((n % 2 ** 32) | 0);
    }
    let hashConst = INIT_A;
    const hashmix = (v: number) => {
      let value = v ^ hashConst;
      hashConst = Math.imul(hashConst, MULT_A);
      value = Math.imul(value, hashConst);
      return value ^ (value >>> XSHIFT);
    };
    const mix = (x: number, y: number) => {
      const r = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) | 0;
      return r ^ (r >>> XSHIFT);
    };
    const p = this.pool;
    for (let i = 0; i < 4; i++) p[i] = hashmix(i < words.length ? words[i] : 0);
    for (let src = 0; src < 4; src++) for (let dst = 0; dst < 4; dst++) if (src !== dst) p[dst] = mix(p[dst], hashmix(p[src]));
    for (let src = 4; src < words.length; src++) for (let dst = 0; dst < 4; dst++) p[dst] = mix(p[dst], hashmix(words[src]));
  }

  /** `generate_state(n, uint64)`: 2n uint32 words, paired little-endian. */
  generateState64(n: number): bigint[] {
    let hashConst = INIT_B;
    const words = Array.from({ length: 2 * n }, (_, i) => {
      let v = this.pool[i % 4] ^ hashConst;
      hashConst = Math.imul(hashConst, MULT_B);
      v = Math.imul(v, hashConst);
      return (v ^ (v >>> XSHIFT)) >>> 0;
    });
    return Array.from({ length: n }, (_, i) => BigInt(words[2 * i]) | (BigInt(words[2 * i + 1]) << 32n));
  }
}

const M64 = (1n << 64n) - 1n, M128 = (1n << 128n) - 1n;
const MULT = (2549297995355413924n << 64n) | 4865540595714422341n;

/** numpy's PCG64 (XSL-RR 128/64) from `generate_state(4, uint64)`, with its buffered 32-bit draws. */
export class Pcg64 {
  private state = 0n;
  private readonly inc: bigint;
  private upper: number | null = null;

  constructor(seed: bigint[]) {
    this.inc = ((((seed[2] << 64n) | seed[3]) << 1n) | 1n) & M128;
    this.step();
    this.state = (this.state + ((seed[0] << 64n) | seed[1])) & M128;
    this.step();
  }

  private step() {
    this.state = (this.state * MULT + this.inc) & M128;
  }

  nextLong(): bigint {
    this.step();
    const hi = this.state >> 64n, x = (hi ^ this.state) & M64, rot = hi >> 58n;
    return ((x >> rot) | (x << ((64n - rot) & 63n))) & M64;
  }

  /** numpy hands out the low half of a 64-bit draw, then the high half (uint32). */
  nextInt(): number {
    if (this.upper !== null) {
      const u = this.upper;
      this.upper = null;
      return u;
    }
    const n = this.nextLong();
    this.upper = Number(n >> 32n);
    return Number(n & 0xffffffffn);
  }

  /** A float in [0, 1) from 24 random bits, as numpy's next_float. */
  nextFloat(): number {
    return (this.nextInt() >>> 8) * (1 / 16777216);
  }
}

// numpy's float32 ziggurat for the standard normal (256 layers)
const R = 3.6541528853610087963519472518, V = 0.0049286732339746519, SCALE = 8388608;
const R_F = f(3.6541528853610088), INV_R_F = f(0.27366123732975828);
const pdf = (x: number) => Math.exp(-0.5 * x * x);
const KI = new Int32Array(256), WI = new Float32Array(256), FI = new Float32Array(256);
{
  // layer edges: x_0 = R, x_i = f^-1(f(x_{i-1}) + V / x_{i-1}), x_255 = 0; then reversed
  const x = new Float64Array(256);
  x[0] = R;
  for (let i = 1; i < 255; i++) x[i] = Math.sqrt(-2 * Math.log(pdf(x[i - 1]) + V / x[i - 1]));
  x.reverse();
  KI[0] = rint((R * pdf(R) / V) * SCALE);
  for (let i = 1; i < 256; i++) KI[i] = rint((x[i - 1] / x[i]) * SCALE);
  WI[0] = V / pdf(R) / SCALE;
  for (let i = 1; i < 256; i++) WI[i] = x[i] / SCALE;
  for (let i = 0; i < 256; i++) FI[i] = pdf(x[i]);
}

function normal(g: Pcg64): number {
  for (;;) {
    const r = g.nextInt();
    const idx = r & 0xff, sign = (r >>> 8) & 1, rabs = (r >>> 9) & 0x7fffff;
    let x = f(rabs * WI[idx]);
    if (sign === 1) x = -x;
    if (rabs < KI[idx]) return x;
    if (idx === 0) {
      for (;;) { // the tail beyond R
        const xx = f(-INV_R_F * log1pf(f(-g.nextFloat())));
        const yy = f(-log1pf(f(-g.nextFloat())));
        if (f(yy + yy) > f(xx * xx)) return ((rabs >>> 8) & 1) === 1 ? -f(R_F + xx) : f(R_F + xx);
      }
    } else if (f(f(f(FI[idx - 1] - FI[idx]) * g.nextFloat()) + FI[idx]) < Math.exp(-0.5 * x * x)) {
      return x;
    }
  }
}

/** Standard normal float32 draws of `default_rng(entropy)`. */
export class NumpyNormal {
  private readonly pcg: Pcg64;
  constructor(entropy: number[]) {
    this.pcg = new Pcg64(new SeedSequence(entropy).generateState64(4));
  }
  fill(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = normal(this.pcg);
    return out;
  }
}

const LN2_HI = fromBits(0x3f317180), LN2_LO = fromBits(0x3717f7d1);
const LP = [0x3f2aaaab, 0x3ecccccd, 0x3e924925, 0x3e638e29, 0x3e3a3325, 0x3e1cd04f, 0x3e178897].map(fromBits);

/**
 * log(1 + x) in float32 arithmetic, by the fdlibm algorithm glibc's log1pf uses, so the
 * ziggurat's tail gives numpy's bits. Only x in (-1, 0] reaches it here.
 */
export function log1pf(x: number): number {
  const hx = bitsOf(x), ax = hx & 0x7fffffff;
  let k = 1, fv = 0, hu = 0, c = 0;
  if (hx < 0x3ed413d7) { // x < 0.41422
    if (ax >= 0x3f800000) return x === -1 ? -Infinity : NaN;
    if (ax < 0x31000000) return ax < 0x24800000 ? x : f(x - f(f(x * x) * 0.5));
    if (hx > 0 || hx <= (0xbe95f61f | 0)) { k = 0; fv = x; hu = 1; } // -0.2929 < x < 0.41422
  }
  if (hx >= 0x7f800000) return f(x + x);
  if (k !== 0) {
    let u: number;
    if (hx < 0x5a000000) {
      u = f(1 + x);
      hu = bitsOf(u);
      k = (hu >> 23) - 127;
      c = k > 0 ? f(1 - f(u - x)) : f(x - f(u - 1)); // the rounding error of 1 + x
      c = f(c / u);
    } else {
      u = x;
      hu = bitsOf(u);
      k = (hu >> 23) - 127;
      c = 0;
    }
    hu &= 0x007fffff;
    if (hu < 0x3504f7) u = fromBits(hu | 0x3f800000); // u in [1, sqrt 2)
    else {
      k += 1;
      u = fromBits(hu | 0x3f000000); // u / 2
      hu = (0x00800000 - hu) >> 2;
    }
    fv = f(u - 1);
  }
  const kf = f(k);
  const hfsq = f(f(0.5 * fv) * fv);
  if (hu === 0) { // |f| < 2^-20
    if (fv === 0) {
      if (k === 0) return 0;
      c = f(c + f(kf * LN2_LO));
      return f(f(kf * LN2_HI) + c);
    }
    const r = f(hfsq * f(1 - f(f(0.6666667) * fv)));
    return k === 0 ? f(fv - r) : f(f(kf * LN2_HI) - f(f(r - f(f(kf * LN2_LO) + c)) - fv));
  }
  const s = f(fv / f(2 + fv));
  const z = f(s * s);
  let poly = LP[6];
  for (let i = 5; i >= 0; i--) poly = f(LP[i] + f(z * poly));
  const r = f(z * poly);
  return k === 0 ? f(fv - f(hfsq - f(s * f(hfsq + r))))
    : f(f(kf * LN2_HI) - f(f(hfsq - f(f(s * f(hfsq + r)) + f(f(kf * LN2_LO) + c))) - fv));
}
