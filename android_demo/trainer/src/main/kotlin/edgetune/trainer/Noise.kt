package edgetune.trainer

import kotlin.math.exp
import kotlin.math.ln
import kotlin.math.round
import kotlin.math.sqrt

/**
 * The noise of forward-only steps, bit for bit as numpy draws it (docs/artifact-contract.md,
 * section 6): `numpy.random.default_rng([seed, t]).standard_normal(shape, dtype=float32)`,
 * i.e. PCG64 seeded through SeedSequence, and numpy's float32 ziggurat.
 */
class NumpyNormal(entropy: LongArray) {
    private val pcg = Pcg64(SeedSequence(entropy).generateState64(4))

    /** The next standard normal float32. */
    fun next(): Float = Ziggurat.normal(pcg)

    fun fill(n: Int): FloatArray = FloatArray(n) { next() }
}

/** numpy's SeedSequence (pool of 4 uint32 words), enough for `generate_state(n, uint64)`. */
class SeedSequence(entropy: LongArray) {
    private val pool = IntArray(4)

    init {
        val words = ArrayList<Int>()
        for (e in entropy) {  // each whole number -> its little-endian uint32 words (0 -> one 0 word)
            require(e >= 0) { "seed values must be >= 0" }
            if (e == 0L) words.add(0)
            var n = e
            while (n > 0) { words.add((n and 0xffffffffL).toInt()); n = n ushr 32 }
        }
        var hashConst = INIT_A
        fun hashmix(v: Int): Int {
            var value = v xor hashConst
            hashConst *= MULT_A
            value *= hashConst
            return value xor (value ushr XSHIFT)
        }
        fun mix(x: Int, y: Int): Int {
            val r = MIX_MULT_L * x - MIX_MULT_R * y
            return r xor (r ushr XSHIFT)
        }
        for (i in pool.indices) pool[i] = hashmix(if (i < words.size) words[i] else 0)
        for (src in pool.indices) for (dst in pool.indices) if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src]))
        for (src in pool.size until words.size) for (dst in pool.indices) pool[dst] = mix(pool[dst], hashmix(words[src]))
    }

    /** `generate_state(n, uint64)`: 2n uint32 words, paired little-endian. */
    fun generateState64(n: Int): LongArray {
        var hashConst = INIT_B
        val words = IntArray(2 * n) { i ->
            var v = pool[i % pool.size] xor hashConst
            hashConst *= MULT_B
            v *= hashConst
            v xor (v ushr XSHIFT)
        }
        return LongArray(n) { (words[2 * it].toLong() and 0xffffffffL) or (words[2 * it + 1].toLong() shl 32) }
    }

    private companion object {
        const val INIT_A = 0x43b0d7e5
        const val MULT_A = 0x931e8875.toInt()
        const val INIT_B = 0x8b51f9dd.toInt()
        const val MULT_B = 0x58f38ded
        const val MIX_MULT_L = 0xca01f9dd.toInt()
        const val MIX_MULT_R = 0x4973f715
        const val XSHIFT = 16
    }
}

/** numpy's PCG64 (XSL-RR 128/64) from `generate_state(4, uint64)`, with its buffered 32-bit draws. */
class Pcg64(seed: LongArray) {
    private var hi = 0L
    private var lo = 0L
    private val incHi: Long
    private val incLo: Long
    private var buffered = false
    private var upper = 0

    init {
        // state = 0; inc = (initseq << 1) | 1; step; state += initstate; step
        incHi = (seed[2] shl 1) or (seed[3] ushr 63)
        incLo = (seed[3] shl 1) or 1L
        step()
        val sLo = lo + seed[1]
        hi += seed[0] + if (java.lang.Long.compareUnsigned(sLo, lo) < 0) 1 else 0
        lo = sLo
        step()
    }

    private fun step() {
        // state = state * MULT + inc (mod 2^128)
        val pLo = lo * MULT_LO
        val pHi = unsignedMultiplyHigh(lo, MULT_LO) + lo * MULT_HI + hi * MULT_LO
        val nLo = pLo + incLo
        hi = pHi + incHi + if (java.lang.Long.compareUnsigned(nLo, pLo) < 0) 1 else 0
        lo = nLo
    }

    fun nextLong(): Long {
        step()
        return java.lang.Long.rotateRight(hi xor lo, (hi ushr 58).toInt())
    }

    /** numpy hands out the low half of a 64-bit draw, then the high half. */
    fun nextInt(): Int {
        if (buffered) { buffered = false; return upper }
        val n = nextLong()
        buffered = true
        upper = (n ushr 32).toInt()
        return n.toInt()
    }

    /** A float in [0, 1) from 24 random bits, as numpy's next_float. */
    fun nextFloat(): Float = (nextInt() ushr 8) * (1.0f / 16777216.0f)

    private companion object {
        const val MULT_HI = 2549297995355413924L
        const val MULT_LO = 4865540595714422341L

        /** High 64 bits of the unsigned 128-bit product (portable: no Math.unsignedMultiplyHigh on older Android). */
        fun unsignedMultiplyHigh(a: Long, b: Long): Long {
            val aLo = a and 0xffffffffL; val aHi = a ushr 32
            val bLo = b and 0xffffffffL; val bHi = b ushr 32
            val ll = aLo * bLo
            val lh = aLo * bHi
            val hl = aHi * bLo
            val hh = aHi * bHi
            val mid = (ll ushr 32) + (lh and 0xffffffffL) + (hl and 0xffffffffL)
            return hh + (lh ushr 32) + (hl ushr 32) + (mid ushr 32)
        }
    }
}

/** numpy's float32 ziggurat for the standard normal (256 layers, Marsaglia and Tsang as laid out by numpy). */
internal object Ziggurat {
    private const val R = 3.6541528853610087963519472518
    private const val V = 0.0049286732339746519
    private const val SCALE = 8388608.0  // 2^23
    private const val R_F = 3.6541528853610088f
    private const val INV_R_F = 0.27366123732975828f
    val ki = IntArray(256)
    val wi = FloatArray(256)
    val fi = FloatArray(256)

    init {
        // Layer edges: x_0 = R, x_i = f^-1(f(x_{i-1}) + V / x_{i-1}), x_255 = 0; then reversed.
        val x = DoubleArray(256)
        x[0] = R
        for (i in 1 until 255) x[i] = sqrt(-2.0 * ln(pdf(x[i - 1]) + V / x[i - 1]))
        x.reverse()
        ki[0] = round(R * pdf(R) / V * SCALE).toLong().toInt()
        for (i in 1 until 256) ki[i] = round(x[i - 1] / x[i] * SCALE).toLong().toInt()
        wi[0] = (V / pdf(R) / SCALE).toFloat()
        for (i in 1 until 256) wi[i] = (x[i] / SCALE).toFloat()
        for (i in 0 until 256) fi[i] = pdf(x[i]).toFloat()
    }

    private fun pdf(x: Double) = exp(-0.5 * x * x)

    fun normal(g: Pcg64): Float {
        while (true) {
            val r = g.nextInt()
            val idx = r and 0xff
            val sign = (r ushr 8) and 1
            val rabs = (r ushr 9) and 0x7fffff
            var x = rabs.toFloat() * wi[idx]
            if (sign == 1) x = -x
            if (rabs < ki[idx]) return x
            if (idx == 0) {
                while (true) {  // the tail beyond R
                    val xx = -INV_R_F * log1pf(-g.nextFloat())
                    val yy = -log1pf(-g.nextFloat())
                    if (yy + yy > xx * xx) return if ((rabs ushr 8) and 1 == 1) -(R_F + xx) else R_F + xx
                }
            } else if ((fi[idx - 1] - fi[idx]) * g.nextFloat() + fi[idx] < exp(-0.5 * x * x)) {
                return x
            }
        }
    }
}

/**
 * log(1 + x) in float32 arithmetic, by the classic fdlibm algorithm that glibc's log1pf uses,
 * so the ziggurat's tail gives numpy's bits: a correctly rounded log1p differs from it in the
 * last bit for about one input in 200. Only x in (-1, 0] reaches it here (-u, u uniform in [0, 1)).
 */
fun log1pf(x: Float): Float {
    val hx = x.toRawBits()
    val ax = hx and 0x7fffffff
    var k = 1
    var f = 0f
    var hu = 0
    var c = 0f
    if (hx < 0x3ed413d7) {  // x < 0.41422
        if (ax >= 0x3f800000) return if (x == -1f) Float.NEGATIVE_INFINITY else Float.NaN
        if (ax < 0x31000000) return if (ax < 0x24800000) x else x - x * x * 0.5f  // |x| < 2^-29
        if (hx > 0 || hx <= 0xbe95f61f.toInt()) { k = 0; f = x; hu = 1 }  // -0.2929 < x < 0.41422
    }
    if (hx >= 0x7f800000) return x + x
    if (k != 0) {
        var u: Float
        if (hx < 0x5a000000) {
            u = 1f + x
            hu = u.toRawBits()
            k = (hu shr 23) - 127
            c = if (k > 0) 1f - (u - x) else x - (u - 1f)  // the rounding error of 1 + x
            c /= u
        } else {
            u = x
            hu = u.toRawBits()
            k = (hu shr 23) - 127
            c = 0f
        }
        hu = hu and 0x007fffff
        if (hu < 0x3504f7) {
            u = Float.fromBits(hu or 0x3f800000)  // u in [1, sqrt 2)
        } else {
            k += 1
            u = Float.fromBits(hu or 0x3f000000)  // u / 2
            hu = (0x00800000 - hu) shr 2
        }
        f = u - 1f
    }
    val hfsq = 0.5f * f * f
    if (hu == 0) {  // |f| < 2^-20
        if (f == 0f) return if (k == 0) 0f else { c += k * LN2_LO; k * LN2_HI + c }
        val r = hfsq * (1f - 0.6666667f * f)
        return if (k == 0) f - r else k * LN2_HI - ((r - (k * LN2_LO + c)) - f)
    }
    val s = f / (2f + f)
    val z = s * s
    val r = z * (LP1 + z * (LP2 + z * (LP3 + z * (LP4 + z * (LP5 + z * (LP6 + z * LP7))))))
    return if (k == 0) f - (hfsq - s * (hfsq + r)) else k * LN2_HI - ((hfsq - (s * (hfsq + r) + (k * LN2_LO + c))) - f)
}

private val LN2_HI = Float.fromBits(0x3f317180)
private val LN2_LO = Float.fromBits(0x3717f7d1)
private val LP1 = Float.fromBits(0x3f2aaaab)
private val LP2 = Float.fromBits(0x3ecccccd)
private val LP3 = Float.fromBits(0x3e924925)
private val LP4 = Float.fromBits(0x3e638e29)
private val LP5 = Float.fromBits(0x3e3a3325)
private val LP6 = Float.fromBits(0x3e1cd04f)
private val LP7 = Float.fromBits(0x3e178897)
