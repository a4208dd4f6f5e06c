package edgetune.trainer

/**
 * A strict JSON reader and a small writer, with no dependency (Android's org.json and iOS's
 * JSONSerialization do not tell 4 from 4.0, which the contract does).
 *
 * Values: [Map] (insertion-ordered, keys unique), [List], [String], [Long] for an integer
 * literal that fits, [Double] for any other number, [Boolean], null.
 */
object Json {
    private const val MAX_DEPTH = 64

    fun parse(text: String): Any? {
        val p = Parser(text)
        p.skipSpace()
        val v = p.value(0)
        p.skipSpace()
        if (p.i != text.length) p.fail("unexpected text after the JSON value")
        return v
    }

    private class Parser(val s: String) {
        var i = 0

        fun fail(what: String): Nothing = throw IllegalArgumentException("$what at character $i")

        fun skipSpace() {
            while (i < s.length && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++
        }

        fun value(depth: Int): Any? {
            if (depth > MAX_DEPTH) fail("nesting deeper than $MAX_DEPTH")
            if (i >= s.length) fail("unexpected end")
            return when (s[i]) {
                '{' -> obj(depth)
                '[' -> arr(depth)
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> number()
            }
        }

        fun literal(word: String, v: Any?): Any? {
            if (!s.startsWith(word, i)) fail("unknown literal")
            i += word.length
            return v
        }

        fun obj(depth: Int): Map<String, Any?> {
            val out = LinkedHashMap<String, Any?>()
            i++
            skipSpace()
            if (i < s.length && s[i] == '}') { i++; return out }
            while (true) {
                skipSpace()
                if (i >= s.length || s[i] != '"') fail("expected a key")
                val k = string()
                skipSpace()
                if (i >= s.length || s[i] != ':') fail("expected ':'")
                i++
                skipSpace()
                if (out.containsKey(k)) fail("key ${shorten(k)} repeats")
                out[k] = value(depth + 1)
                skipSpace()
                if (i < s.length && s[i] == ',') { i++; continue }
                if (i < s.length && s[i] == '}') { i++; return out }
                fail("expected ',' or '}'")
            }
        }

        fun arr(depth: Int): List<Any?> {
            val out = ArrayList<Any?>()
            i++
            skipSpace()
            if (i < s.length && s[i] == ']') { i++; return out }
            while (true) {
                skipSpace()
                out.add(value(depth + 1))
                skipSpace()
                if (i < s.length && s[i] == ',') { i++; continue }
                if (i < s.length && s[i] == ']') { i++; return out }
                fail("expected ',' or ']'")
            }
        }

        fun string(): String {
            val b = StringBuilder()
            i++
            while (true) {
                if (i >= s.length) fail("unterminated string")
                val c = s[i++]
                when {
                    c == '"' -> return b.toString()
                    c == '\\' -> {
                        if (i >= s.length) fail("unterminated escape")
                        when (val e = s[i++]) {
                            '"', '\\', '/' -> b.append(e)
                            'b' -> b.append('\b')
                            'f' -> b.append('\u000c')
                            'n' -> b.append('\n')
                            'r' -> b.append('\r')
                            't' -> b.append('\t')
                            'u' -> {
                                if (i + 4 > s.length) fail("short \\u escape")
                                val code = s.substring(i, i + 4).toIntOrNull(16) ?: fail("bad \\u escape")
                                b.append(code.toChar())
                                i += 4
                            }
                            else -> fail("bad escape")
                        }
                    }
                    c < ' ' -> fail("control character in a string")
                    else -> b.append(c)
                }
            }
        }

        fun number(): Any {
            val start = i
            if (i < s.length && s[i] == '-') i++
            val intStart = i
            while (i < s.length && s[i].isAsciiDigit()) i++
            if (i == intStart) fail("expected a value")
            if (s[intStart] == '0' && i - intStart > 1) fail("leading zero")
            var integral = true
            if (i < s.length && s[i] == '.') {
                integral = false
                i++
                val f = i
                while (i < s.length && s[i].isAsciiDigit()) i++
                if (i == f) fail("digits expected after '.'")
            }
            if (i < s.length && (s[i] == 'e' || s[i] == 'E')) {
                integral = false
                i++
                if (i < s.length && (s[i] == '+' || s[i] == '-')) i++
                val e = i
                while (i < s.length && s[i].isAsciiDigit()) i++
                if (i == e) fail("digits expected in the exponent")
            }
            val text = s.substring(start, i)
            if (integral) text.toLongOrNull()?.let { return it }
            if (text.length > 400) fail("number of ${text.length} characters")
            return text.toDouble()
        }

        private fun Char.isAsciiDigit() = this in '0'..'9'
    }

    /** [v] as compact JSON: maps, lists, strings, numbers, booleans and null. */
    fun write(v: Any?): String = StringBuilder().also { write(v, it) }.toString()

    private fun write(v: Any?, b: StringBuilder) {
        when (v) {
            null -> b.append("null")
            is String -> quote(v, b)
            is Boolean, is Int, is Long -> b.append(v.toString())
            is Float -> number(v.toDouble(), b)
            is Double -> number(v, b)
            is Map<*, *> -> {
                b.append('{')
                var first = true
                for ((k, x) in v) {
                    if (!first) b.append(", ")
                    first = false
                    quote(k.toString(), b)
                    b.append(": ")
                    write(x, b)
                }
                b.append('}')
            }
            is Iterable<*> -> {
                b.append('[')
                var first = true
                for (x in v) {
                    if (!first) b.append(", ")
                    first = false
                    write(x, b)
                }
                b.append(']')
            }
            else -> throw IllegalArgumentException("cannot write a ${v::class.simpleName} as JSON")
        }
    }

    /** Like Python's json: NaN and Infinity are written as those words. */
    private fun number(d: Double, b: StringBuilder) {
        b.append(if (d.isNaN()) "NaN" else if (d.isInfinite()) (if (d > 0) "Infinity" else "-Infinity") else d.toString())
    }

    private fun quote(s: String, b: StringBuilder) {
        b.append('"')
        for (c in s) {
            when {
                c == '"' -> b.append("\\\"")
                c == '\\' -> b.append("\\\\")
                c == '\n' -> b.append("\\n")
                c == '\r' -> b.append("\\r")
                c == '\t' -> b.append("\\t")
                c < ' ' -> b.append(String.format("\\u%04x", c.code))
                else -> b.append(c)
            }
        }
        b.append('"')
    }
}
