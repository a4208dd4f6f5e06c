import Foundation

/// The noise of forward-only steps, bit for bit as numpy draws it (docs/artifact-contract.md,
/// section 6; Noise.kt): `numpy.random.default_rng([seed, t]).standard_normal(shape, dtype=float32)`.
public struct NumpyNormal {
    var pcg: Pcg64

    public init(_ entropy: [UInt64]) { pcg = Pcg64(SeedSequence(entropy).generateState64(4)) }

    public mutating func next() -> Float { Ziggurat.normal(&pcg) }

    public mutating func fill(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

/// numpy's SeedSequence (pool of 4 uint32 words), enough for `generate_state(n, uint64)`.
struct SeedSequence {
    var pool = [UInt32](repeating: 0, count: 4)
    static let initA: UInt32 = 0x43b0d7e5, multA: UInt32 = 0x931e8875, initB: UInt32 = 0x8b51f9dd, multB: UInt32 = 0x58f38ded
    static let mixL: UInt32 = 0xca01f9dd, mixR: UInt32 = 0x4973f715

    init(_ entropy: [UInt64]) {
        var words: [UInt32] = []
        for e in entropy {  // each whole number -> its little-endian uint32 words (0 -> one 0 word)
            if e == 0 { words.append(0) }
            var n = e
            while n > 0 { words.append(UInt32(truncatingIfNeeded: n)); n >>= 32 }
        }
        var hashConst = SeedSequence.initA
        func hashmix(_ v: UInt32) -> UInt32 {
            var value = v ^ hashConst
            hashConst = hashConst &* SeedSequence.multA
            value = value &* hashConst
            return value ^ (value >> 16)
        }
        func mix(_ x: UInt32, _ y: UInt32) -> UInt32 {
            let r = SeedSequence.mixL &* x &- SeedSequence.mixR &* y
            return r ^ (r >> 16)
        }
        for i in 0..<4 { pool[i] = hashmix(i < words.count ? words[i] : 0) }
        for src in 0..<4 { for dst in 0..<4 where src != dst { pool[dst] = mix(pool[dst], hashmix(pool[src])) } }
        if words.count > 4 { for src in 4..<words.count { for dst in 0..<4 { pool[dst] = mix(pool[dst], hashmix(words[src])) } } }
    }

    /// `generate_state(n, uint64)`: 2n uint32 words, paired little-endian.
    func generateState64(_ n: Int) -> [UInt64] {
        var hashConst = SeedSequence.initB
        let words: [UInt32] = (0..<(2 * n)).map { i in
            var v = pool[i % 4] ^ hashConst
            hashConst = hashConst &* SeedSequence.multB
            v = v &* hashConst
            return v ^ (v >> 16)
        }
        return (0..<n).map { UInt64(words[2 * $0]) | (UInt64(words[2 * $0 + 1]) << 32) }
    }
}

/// numpy's PCG64 (XSL-RR 128/64), with its buffered 32-bit draws.
struct Pcg64 {
    var hi: UInt64 = 0, lo: UInt64 = 0
    let incHi: UInt64, incLo: UInt64
    var buffered = false
    var upper: UInt32 = 0
    static let multHi: UInt64 = 2549297995355413924, multLo: UInt64 = 4865540595714422341

    init(_ seed: [UInt64]) {
        incHi = (seed[2] << 1) | (seed[3] >> 63)
        incLo = (seed[3] << 1) | 1
        step()
        let (sLo, carry) = lo.addingReportingOverflow(seed[1])
        hi = hi &+ seed[0] &+ (carry ? 1 : 0)
        lo = sLo
        step()
    }

    mutating func step() {  // state = state * MULT + inc (mod 2^128)
        let (pHi0, pLo) = lo.multipliedFullWidth(by: Pcg64.multLo)
        let pHi = pHi0 &+ lo &* Pcg64.multHi &+ hi &* Pcg64.multLo
        let (nLo, carry) = pLo.addingReportingOverflow(incLo)
        hi = pHi &+ incHi &+ (carry ? 1 : 0)
        lo = nLo
    }

    mutating func nextUInt64() -> UInt64 {
        step()
        let x = hi ^ lo, r = hi >> 58
        return (x >> r) | (x << ((64 - r) & 63))
    }

    /// numpy hands out the low half of a 64-bit draw, then the high half.
    mutating func nextUInt32() -> UInt32 {
        if buffered { buffered = false; return upper }
        let n = nextUInt64()
        buffered = true
        upper = UInt32(n >> 32)
        return UInt32(truncatingIfNeeded: n)
    }

    mutating func nextFloat() -> Float { Float(nextUInt32() >> 8) * (1.0 / 16777216.0) }
}

/// numpy's float32 ziggurat for the standard normal.
enum Ziggurat {
    static let r = 3.6541528853610087963519472518, v = 0.0049286732339746519, scale = 8388608.0
    static let rF: Float = 3.6541528853610088, invRF: Float = 0.27366123732975828
    static let tables: ([UInt32], [Float], [Float]) = {
        var x = [Double](repeating: 0, count: 256)
        x[0] = r
        for i in 1..<255 { x[i] = (-2.0 * Foundation.log(pdf(x[i - 1]) + v / x[i - 1])).squareRoot() }
        x.reverse()
        var ki = [UInt32](repeating: 0, count: 256), wi = [Float](repeating: 0, count: 256), fi = [Float](repeating: 0, count: 256)
        ki[0] = UInt32((r * pdf(r) / v * scale).rounded())
        for i in 1..<256 { ki[i] = UInt32((x[i - 1] / x[i] * scale).rounded()) }
        wi[0] = Float(v / pdf(r) / scale)
        for i in 1..<256 { wi[i] = Float(x[i] / scale) }
        for i in 0..<256 { fi[i] = Float(pdf(x[i])) }
        return (ki, wi, fi)
    }()

    static func pdf(_ x: Double) -> Double { Foundation.exp(-0.5 * x * x) }

    static func normal(_ g: inout Pcg64) -> Float {
        let (ki, wi, fi) = tables
        while true {
            let rr = g.nextUInt32()
            let idx = Int(rr & 0xff), sign = (rr >> 8) & 1, rabs = (rr >> 9) & 0x7fffff
            var x = Float(rabs) * wi[idx]
            if sign == 1 { x = -x }
            if rabs < ki[idx] { return x }
            if idx == 0 {
                while true {  // the tail beyond R
                    let xx = -invRF * log1pf(-g.nextFloat())
                    let yy = -log1pf(-g.nextFloat())
                    if yy + yy > xx * xx { return ((rabs >> 8) & 1) == 1 ? -(rF + xx) : rF + xx }
                }
            } else if Double((fi[idx - 1] - fi[idx]) * g.nextFloat() + fi[idx]) < Foundation.exp(-0.5 * Double(x) * Double(x)) {
                return x
            }
        }
    }
}

/// log(1 + x) in float32 arithmetic by the classic fdlibm algorithm glibc's log1pf uses, so the
/// tail gives numpy-on-Linux's bits (Noise.kt's `log1pf`, tested there against the C library).
public func log1pf(_ x: Float) -> Float {
    let hx = Int32(bitPattern: x.bitPattern), ax = hx & 0x7fffffff
    var k: Int32 = 1, f: Float = 0, hu: Int32 = 0, c: Float = 0
    if hx < 0x3ed413d7 {
        if ax >= 0x3f800000 { return x == -1 ? -.infinity : .nan }
        if ax < 0x31000000 { return ax < 0x24800000 ? x : x - x * x * 0.5 }
        if hx > 0 || hx <= Int32(bitPattern: 0xbe95f61f) { k = 0; f = x; hu = 1 }
    }
    if hx >= 0x7f800000 { return x + x }
    if k != 0 {
        var u: Float
        if hx < 0x5a000000 {
            u = 1 + x
            hu = Int32(bitPattern: u.bitPattern)
            k = (hu >> 23) - 127
            c = k > 0 ? 1 - (u - x) : x - (u - 1)
            c /= u
        } else {
            u = x
            hu = Int32(bitPattern: u.bitPattern)
            k = (hu >> 23) - 127
            c = 0
        }
        hu &= 0x007fffff
        if hu < 0x3504f7 {
            u = Float(bitPattern: UInt32(hu | 0x3f800000))
        } else {
            k += 1
            u = Float(bitPattern: UInt32(hu | 0x3f000000))
            hu = (0x00800000 - hu) >> 2
        }
        f = u - 1
    }
    let hfsq = 0.5 * f * f
    let kf = Float(k)
    if hu == 0 {
        if f == 0 { if k == 0 { return 0 }; c += kf * ln2Lo; return kf * ln2Hi + c }
        let r = hfsq * (1 - 0.6666667 * f)
        return k == 0 ? f - r : kf * ln2Hi - ((r - (kf * ln2Lo + c)) - f)
    }
    let s = f / (2 + f), z = s * s
    let r = z * (lp1 + z * (lp2 + z * (lp3 + z * (lp4 + z * (lp5 + z * (lp6 + z * lp7))))))
    return k == 0 ? f - (hfsq - s * (hfsq + r)) : kf * ln2Hi - ((hfsq - (s * (hfsq + r) + (kf * ln2Lo + c))) - f)
}

private let ln2Hi = Float(bitPattern: 0x3f317180), ln2Lo = Float(bitPattern: 0x3717f7d1)
private let lp1 = Float(bitPattern: 0x3f2aaaab), lp2 = Float(bitPattern: 0x3ecccccd), lp3 = Float(bitPattern: 0x3e924925)
private let lp4 = Float(bitPattern: 0x3e638e29), lp5 = Float(bitPattern: 0x3e3a3325), lp6 = Float(bitPattern: 0x3e1cd04f)
private let lp7 = Float(bitPattern: 0x3e178897)
