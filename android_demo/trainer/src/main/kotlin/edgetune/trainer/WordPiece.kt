package edgetune.trainer

import java.text.Normalizer

/** Unicode's White_Space property (what `char::is_whitespace` tests in the tokenizers library). */
internal fun isUnicodeWhitespace(c: Int) = c in 0x09..0x0d || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
    c in 0x2000..0x200a || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000

/** BERT's normalizer: drop control characters, space out CJK ideographs, strip accents, lowercase. */
internal class BertNormalizer(private val cleanText: Boolean, private val chinese: Boolean,
                              private val stripAccents: Boolean, private val lowercase: Boolean) {
    fun normalize(s: String): String {
        var text = s
        if (cleanText || chinese) {
            val b = StringBuilder(text.length)
            text.codePoints().forEach { c ->
                when {
                    cleanText && (c == 0 || c == 0xfffd || isControl(c)) -> {}
                    cleanText && (c == '\t'.code || c == '\n'.code || c == '\r'.code || isUnicodeWhitespace(c)) -> b.append(' ')
                    chinese && isChinese(c) -> b.append(' ').appendCodePoint(c).append(' ')
                    else -> b.appendCodePoint(c)
                }
            }
            text = b.toString()
        }
        if (stripAccents) {
            val b = StringBuilder(text.length)
            Normalizer.normalize(text, Normalizer.Form.NFD).codePoints().forEach { c ->
                if (Character.getType(c) != Character.NON_SPACING_MARK.toInt()) b.appendCodePoint(c)
            }
            text = b.toString()
        }
        if (lowercase) {  // per character, as the library does (no context rule for a final sigma)
            val b = StringBuilder(text.length)
            text.codePoints().forEach { c -> b.append(String(Character.toChars(c)).lowercase(java.util.Locale.ROOT)) }
            text = b.toString()
        }
        return text
    }

    private fun isControl(c: Int): Boolean {
        if (c == '\t'.code || c == '\n'.code || c == '\r'.code) return false
        return when (Character.getType(c).toByte()) {
            // the library's "other" categories, except unassigned code points, which it keeps (and maps to [UNK])
            Character.CONTROL, Character.FORMAT, Character.PRIVATE_USE, Character.SURROGATE -> true
            else -> false
        }
    }

    private fun isChinese(c: Int) = c in 0x4E00..0x9FFF || c in 0x3400..0x4DBF || c in 0x20000..0x2A6DF ||
        c in 0x2A700..0x2B73F || c in 0x2B740..0x2B81F || c in 0x2B920..0x2CEAF || c in 0xF900..0xFAFF || c in 0x2F800..0x2FA1F

    companion object {
        fun of(cfg: Map<*, *>): BertNormalizer {
            val lower = cfg["lowercase"] != false
            return BertNormalizer(cfg["clean_text"] != false, cfg["handle_chinese_chars"] != false,
                (cfg["strip_accents"] as? Boolean) ?: lower, lower)
        }
    }
}

/** BERT's pre-tokenizer (split on whitespace, punctuation alone) and the WordPiece model. */
internal class WordPiece(private val vocab: Map<String, Int>, unk: String, private val continuing: String,
                         private val maxChars: Int, private val normalizer: BertNormalizer?) : Tokenizer.Model {
    private val unkId = vocab[unk] ?: throw DataException("the WordPiece vocabulary lacks its unknown token ${shorten(unk)}")

    override fun ids(segment: String, out: MutableList<Int>) {
        val text = normalizer?.normalize(segment) ?: segment
        val word = StringBuilder()
        fun flush() {
            if (word.isNotEmpty()) { piece(word.toString(), out); word.setLength(0) }
        }
        text.codePoints().forEach { c ->
            when {
                isUnicodeWhitespace(c) -> flush()
                isPunctuation(c) -> { flush(); piece(String(Character.toChars(c)), out) }
                else -> word.appendCodePoint(c)
            }
        }
        flush()
    }

    /** Greedy longest-match-first; a word with a part not in the vocabulary is one unknown token. */
    private fun piece(word: String, out: MutableList<Int>) {
        val cps = word.codePoints().toArray()
        if (cps.size > maxChars) { out.add(unkId); return }
        val found = ArrayList<Int>()
        var start = 0
        while (start < cps.size) {
            var end = cps.size
            var id: Int? = null
            while (start < end) {
                val sub = (if (start > 0) continuing else "") + String(cps, start, end - start)
                id = vocab[sub]
                if (id != null) break
                end--
            }
            if (id == null) { out.add(unkId); return }
            found.add(id)
            start = end
        }
        out.addAll(found)
    }

    private fun isPunctuation(c: Int): Boolean {
        if (c in 33..47 || c in 58..64 || c in 91..96 || c in 123..126) return true  // ASCII punctuation
        return when (Character.getType(c).toByte()) {
            Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.END_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
            Character.INITIAL_QUOTE_PUNCTUATION, Character.OTHER_PUNCTUATION, Character.START_PUNCTUATION -> true
            else -> false
        }
    }
}
