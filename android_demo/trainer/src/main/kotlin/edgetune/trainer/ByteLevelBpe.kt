package edgetune.trainer

import java.util.regex.Pattern

/**
 * GPT-2's byte-level pre-tokenizer (its regex, then every UTF-8 byte as one printable
 * character) and a BPE model whose merges apply lowest rank first, leftmost among equals.
 */
internal class ByteLevelBpe(private val vocab: Map<String, Int>, merges: List<Pair<String, String>>) : Tokenizer.Model {
    private val ranks = HashMap<String, Int>(merges.size * 2).apply {
        merges.forEachIndexed { i, (a, b) -> putIfAbsent(a + SEP + b, i) }
    }
    private val cache = object : LinkedHashMap<String, IntArray>(1024, 0.75f, true) {
        override fun removeEldestEntry(eldest: MutableMap.MutableEntry<String, IntArray>?) = size > 10_000
    }

    override fun ids(segment: String, out: MutableList<Int>) {
        val m = SPLIT.matcher(segment)
        while (m.find()) {
            val word = m.group()
            val ids = cache.getOrPut(word) { merge(bytesToChars(word)) }
            ids.forEach { out.add(it) }
        }
    }

    private fun bytesToChars(word: String): String {
        val b = StringBuilder()
        for (byte in word.toByteArray(Charsets.UTF_8)) b.append(BYTE_CHARS[byte.toInt() and 0xff])
        return b.toString()
    }

    private fun merge(word: String): IntArray {
        // a character outside the vocabulary is dropped before merging (there is no unknown token),
        // so its neighbours can merge, as in the tokenizers library
        val parts = word.map { it.toString() }.filter { it in vocab }.toMutableList()
        while (parts.size > 1) {
            var best = -1
            var bestRank = Int.MAX_VALUE
            for (i in 0 until parts.size - 1) {
                val r = ranks[parts[i] + SEP + parts[i + 1]] ?: continue
                if (r < bestRank) { bestRank = r; best = i }
            }
            if (best < 0) break
            parts[best] = parts[best] + parts[best + 1]
            parts.removeAt(best + 1)
        }
        return parts.mapNotNull { vocab[it] }.toIntArray()
    }

    private companion object {
        const val SEP = "\u0000"

        // GPT-2's pattern; \s, \p{L} and \p{N} in their Unicode sense, as the tokenizers library's regex engine reads them
        val SPLIT: Pattern = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
            Pattern.UNICODE_CHARACTER_CLASS)

        /** Bytes that are printable stand for themselves; the others map to code points from 256 on, in order. */
        val BYTE_CHARS: CharArray = CharArray(256).also { table ->
            val printable = (33..126) + (161..172) + (174..255)
            var next = 256
            for (b in 0 until 256) table[b] = if (b in printable) b.toChar() else (next++).toChar()
        }
    }
}
