package edgetune.trainer

import java.io.File

/**
 * The artifact's `tokenizer.json` (a Hugging Face `tokenizers` file), for the two families the
 * contract names: WordPiece with BERT's normalizer (MiniLM) and byte-level BPE (Llama, SmolLM2).
 * [encode] gives the ids `tokenizers` gives for `encode(text)` with special tokens, truncated and
 * padded to [seqLen] (docs/artifact-contract.md, section 7); the suite checks it against
 * `tokenizers` itself.
 */
class Tokenizer private constructor(
    val seqLen: Int,
    private val model: Model,
    private val added: List<Pair<String, Int>>,  // added tokens (content, id), matched in the raw text first
    private val prefix: List<Int>,               // the template's special tokens around the text
    private val suffix: List<Int>,
    val padId: Int,
) {
    /** A tokenizer model: the ids of a text segment that holds no added token. */
    internal interface Model {
        fun ids(segment: String, out: MutableList<Int>)
    }

    private val maxChars = CHARS_PER_TOKEN * seqLen

    /** First characters of the added tokens: only there can one start (the scan stays linear in the text). */
    private val addedStarts = added.map { it.first[0] }.toSet()

    /** [text] cut to 64 x seq_len code points, before its last space in the second half when there is one. */
    fun cut(text: String): String {
        if (text.codePointCount(0, text.length) <= maxChars) return text
        val end = text.offsetByCodePoints(0, maxChars)
        val half = text.offsetByCodePoints(0, maxChars / 2)
        val space = text.lastIndexOf(' ', end - 1)
        return text.substring(0, if (space >= half && space > 0) space else end)
    }

    /** Every id of [text]: no special tokens, truncation or padding (running text of a language model). */
    fun tokens(text: String): List<Int> {
        val out = ArrayList<Int>()
        var start = 0
        var i = 0
        while (i < text.length) {  // added tokens split the text; leftmost, then longest
            val hit = if (text[i] in addedStarts) added.filter { text.startsWith(it.first, i) }.maxByOrNull { it.first.length } else null
            if (hit == null) { i++; continue }
            if (i > start) model.ids(text.substring(start, i), out)
            out.add(hit.second)
            i += hit.first.length
            start = i
        }
        if (start < text.length) model.ids(text.substring(start), out)
        return out
    }

    /** One text -> (ids, mask) of exactly [seqLen] entries. */
    fun encodeOne(text: String): Pair<LongArray, LongArray> {
        val body = tokens(cut(text))
        val keep = maxOf(0, seqLen - prefix.size - suffix.size)
        val ids = prefix + body.take(keep) + suffix
        val outIds = LongArray(seqLen) { padId.toLong() }
        val mask = LongArray(seqLen)
        for (k in 0 until minOf(seqLen, ids.size)) { outIds[k] = ids[k].toLong(); mask[k] = 1 }
        return outIds to mask
    }

    /** Texts -> (input_ids int64 [n, seqLen], attention_mask int64 [n, seqLen]). */
    fun encode(texts: List<String>): Pair<Tensor, Tensor> {
        val rows = texts.map { encodeOne(it) }
        val shape = longArrayOf(texts.size.toLong(), seqLen.toLong())
        return Tensor.ofLongs(shape, rows.flatMap { it.first.asList() }.toLongArray()) to
            Tensor.ofLongs(shape, rows.flatMap { it.second.asList() }.toLongArray())
    }

    companion object {
        /** A text is cut to this many characters per token of the sequence before tokenizing. */
        const val CHARS_PER_TOKEN = 64

        fun load(file: File, seqLen: Int): Tokenizer {
            val root = try {
                Json.parse(file.readText(Charsets.UTF_8)) as? Map<*, *>
            } catch (e: IllegalArgumentException) {
                null
            } ?: throw DataException("cannot read tokenizer $file: it is not a tokenizers JSON file")
            try {
                return build(root, seqLen)
            } catch (e: RuntimeException) {  // ClassCastException, NullPointerException of a malformed file
                throw DataException("cannot read tokenizer $file: ${e.message ?: e::class.simpleName}")
            }
        }

        private fun build(root: Map<*, *>, seqLen: Int): Tokenizer {
            val m = root["model"] as Map<*, *>
            val vocab = (m["vocab"] as Map<*, *>).entries.associate { (k, v) -> k as String to (v as Long).toInt() }
            val added = (root["added_tokens"] as? List<*> ?: emptyList<Any>()).map { t ->
                val a = t as Map<*, *>
                a["content"] as String to (a["id"] as Long).toInt()
            }.filter { it.first.isNotEmpty() }  // an empty one would match everywhere
            val model: Model = when (m["type"]) {
                "WordPiece" -> {
                    val norm = root["normalizer"] as? Map<*, *>
                    if (norm != null && norm["type"] != "BertNormalizer") throw DataException("normalizer ${norm["type"]} is not supported with WordPiece (BertNormalizer is)")
                    val pre = (root["pre_tokenizer"] as? Map<*, *>)?.get("type")
                    if (pre != "BertPreTokenizer") throw DataException("pre-tokenizer $pre is not supported with WordPiece (BertPreTokenizer is)")
                    WordPiece(vocab, m["unk_token"] as String, m["continuing_subword_prefix"] as? String ?: "##",
                        (m["max_input_chars_per_word"] as? Long)?.toInt() ?: 100, norm?.let { BertNormalizer.of(it) })
                }
                "BPE" -> {
                    val pre = root["pre_tokenizer"] as? Map<*, *>
                    if (root["normalizer"] != null) throw DataException("a normalizer before byte-level BPE is not supported")
                    if (pre?.get("type") != "ByteLevel" || pre["add_prefix_space"] == true || pre["use_regex"] == false) {
                        throw DataException("pre-tokenizer ${pre?.get("type")} is not supported with BPE (ByteLevel without a prefix space is)")
                    }
                    val merges = (m["merges"] as List<*>).map { x ->
                        when (x) {
                            is String -> x.split(' ', limit = 2).let { it[0] to it[1] }
                            is List<*> -> x[0] as String to x[1] as String
                            else -> throw IllegalArgumentException("a merge is ${shorten(x)}")
                        }
                    }
                    ByteLevelBpe(vocab, merges)
                }
                else -> throw DataException("tokenizer model ${m["type"]} is not supported (WordPiece and BPE are)")
            }
            val (prefix, suffix) = template(root["post_processor"] as? Map<*, *>)
            val byContent = added.toMap()
            val pad = byContent["[PAD]"] ?: vocab["[PAD]"] ?: byContent["<pad>"] ?: vocab["<pad>"] ?: 0
            return Tokenizer(seqLen, model, added, prefix, suffix, pad)
        }

        /** The ids a TemplateProcessing post-processor puts before and after a single sequence. */
        private fun template(post: Map<*, *>?): Pair<List<Int>, List<Int>> {
            if (post == null || post["type"] == "ByteLevel") return emptyList<Int>() to emptyList()
            if (post["type"] != "TemplateProcessing") throw DataException("post-processor ${post["type"]} is not supported (TemplateProcessing is)")
            val specials = post["special_tokens"] as Map<*, *>
            val before = ArrayList<Int>()
            val after = ArrayList<Int>()
            var seen = false
            for (piece in post["single"] as List<*>) {
                val p = piece as Map<*, *>
                if ("Sequence" in p) { seen = true; continue }
                val id = (p["SpecialToken"] as Map<*, *>)["id"] as String
                val ids = ((specials[id] as Map<*, *>)["ids"] as List<*>).map { (it as Long).toInt() }
                (if (seen) after else before).addAll(ids)
            }
            return before to after
        }
    }
}
