package edgetune.trainer

import java.io.BufferedInputStream
import java.io.ByteArrayOutputStream
import java.io.File
import java.io.InputStream
import java.nio.ByteBuffer
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction

/** One labelled text. */
data class Example(val text: String, val label: String)

/**
 * Labelled examples from a data file, read one record at a time (docs/artifact-contract.md,
 * 4.3): CSV or TSV with a header naming `text` and `label`, or JSON Lines of objects with a
 * string `text` and a string or integer `label`. A record over 1 MiB, a NUL, bytes that are not
 * UTF-8, a row with the wrong number of fields or a file with no example is refused with one
 * [DataException] naming the file and line.
 */
object Examples {
    const val MAX_RECORD_BYTES = 1 shl 20

    fun read(file: File): List<Example> {
        val suffix = file.name.substringAfterLast('.', "").lowercase()
        if (suffix !in listOf("csv", "tsv", "jsonl", "json")) throw DataException("data file $file has suffix '.$suffix'; use .csv (text,label header) or .jsonl")
        if (!file.isFile) throw DataException("data file $file does not exist")
        val out = ArrayList<Example>()
        BufferedInputStream(file.inputStream()).use { s ->
            val lines = lines(s, file)
            if (suffix == "jsonl" || suffix == "json") jsonl(lines, file, out) else csv(lines, file, if (suffix == "tsv") '\t' else ',', out)
        }
        if (out.isEmpty()) throw DataException("data file $file holds no examples")
        return out
    }

    /** (line number, decoded line without its line break), each at most MAX_RECORD_BYTES. */
    private fun lines(s: InputStream, file: File): Sequence<Pair<Int, String>> = sequence {
        var n = 0
        val buf = ByteArrayOutputStream()
        val decoder = Charsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT)
        while (true) {
            buf.reset()
            var c = s.read()
            if (c < 0) break
            while (c >= 0) {
                buf.write(c)
                if (c == '\n'.code) break
                if (buf.size() > MAX_RECORD_BYTES) throw DataException("$file:${n + 1} is longer than $MAX_RECORD_BYTES bytes; one example must be shorter: split or shorten that line")
                c = s.read()
            }
            n++
            var line = try {
                decoder.decode(ByteBuffer.wrap(buf.toByteArray())).toString()
            } catch (e: CharacterCodingException) {
                throw DataException("$file:$n is not UTF-8 text; save the file as UTF-8")
            }
            if (n == 1) line = line.removePrefix("\uFEFF")
            if ('\u0000' in line) throw DataException("$file:$n holds a NUL character; it is not a text file (or it is damaged)")
            yield(n to line.trimEnd('\r', '\n'))
        }
    }

    private fun example(file: File, n: Int, text: Any?, label: Any?): Example {
        if (text !is String || text.isBlank()) throw DataException("$file:$n has no text (found ${shorten(text, 40)}); every example needs a non-empty 'text'")
        val l = when (label) {
            is String -> label
            is Long -> label.toString()
            else -> throw DataException("$file:$n has label ${shorten(label, 40)}; a label is a string or a whole number")
        }
        if (l.isEmpty()) throw DataException("$file:$n has no 'label'; a classification artifact needs text,label rows")
        if (hasLoneSurrogate(text) || hasLoneSurrogate(l)) {
            throw DataException("$file:$n holds a lone surrogate, which is not text; fix the escape sequence in that line")
        }
        return Example(text, l)
    }

    private fun hasLoneSurrogate(s: String): Boolean {
        var i = 0
        while (i < s.length) {
            val c = s[i]
            if (c.isHighSurrogate() && i + 1 < s.length && s[i + 1].isLowSurrogate()) i += 2
            else if (c.isSurrogate()) return true
            else i++
        }
        return false
    }

    private fun jsonl(lines: Sequence<Pair<Int, String>>, file: File, out: MutableList<Example>) {
        for ((n, line) in lines) {
            if (line.isBlank()) continue
            val obj = try { Json.parse(line) } catch (e: IllegalArgumentException) {
                throw DataException("$file:$n is not valid JSON (${e.message}); each line must be an object {\"text\": ..., \"label\": ...}")
            }
            if (obj !is Map<*, *>) throw DataException("$file:$n is not an object with 'text'")
            out.add(example(file, n, obj["text"], obj["label"]))
        }
    }

    private fun csv(lines: Sequence<Pair<Int, String>>, file: File, delimiter: Char, out: MutableList<Example>) {
        var header: List<String>? = null
        val it = lines.iterator()
        while (it.hasNext()) {
            val (n, first) = it.next()
            val record = StringBuilder(first)
            while (record.count { c -> c == '"' } % 2 == 1) {  // inside a quoted field: the record goes on
                if (!it.hasNext() ) throw DataException("$file:$n opens a quoted field that does not close; check the quotes of that row")
                val next = it.next().second
                if (record.length + next.length > MAX_RECORD_BYTES) throw DataException("$file:$n opens a quoted field that does not close within $MAX_RECORD_BYTES bytes; check the quotes of that row")
                record.append('\n').append(next)
            }
            if (record.isBlank()) continue
            val fields = fields(record.toString(), delimiter) ?: throw DataException("$file:$n is not a valid CSV row; check its quotes")
            if (header == null) {
                header = fields.map { f -> f.trim() }
                val dup = header.groupingBy { h -> h }.eachCount().filter { e -> e.value > 1 }.keys
                if (dup.isNotEmpty()) throw DataException("$file: the header repeats column(s) ${shorten(dup.sorted())}; each column name must be unique")
                if ("text" !in header || "label" !in header) throw DataException("$file: the header ${shorten(header)} needs a 'text' and a 'label' column")
                continue
            }
            if (fields.size != header.size) throw DataException("$file:$n has ${fields.size} fields, the header has ${header.size}; quote texts that hold the delimiter")
            val row = header.zip(fields).toMap()
            out.add(example(file, n, row["text"], row["label"]))
        }
    }

    /** One RFC 4180 record -> its fields; null when its quotes are malformed. */
    private fun fields(record: String, delimiter: Char): List<String>? {
        val out = ArrayList<String>()
        val f = StringBuilder()
        var i = 0
        var quoted = false
        var wasQuoted = false
        while (i < record.length) {
            val c = record[i]
            if (quoted) {
                if (c == '"') {
                    if (i + 1 < record.length && record[i + 1] == '"') { f.append('"'); i++ } else quoted = false
                } else f.append(c)
            } else when {
                c == delimiter -> { out.add(f.toString()); f.setLength(0); wasQuoted = false }
                c == '"' && f.isEmpty() && !wasQuoted -> { quoted = true; wasQuoted = true }
                c == '"' -> return null
                wasQuoted -> return null  // text after a closing quote
                else -> f.append(c)
            }
            i++
        }
        if (quoted) return null
        out.add(f.toString())
        return out
    }
}

/**
 * Running text for a language model (docs/artifact-contract.md, 4.3): a UTF-8 .txt file, read
 * whole (up to [MAX_BYTES]: a phone's own writing) and tokenized whole, so its ids are exactly
 * those of the whole text.
 */
object RunningText {
    const val MAX_BYTES = 64L shl 20

    fun read(file: File): String {
        if (!file.isFile) throw DataException("text file $file does not exist")
        if (file.length() > MAX_BYTES) throw DataException("text file $file is ${file.length()} bytes; the trainer reads at most $MAX_BYTES: split it")
        val text = try {
            Charsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT)
                .decode(ByteBuffer.wrap(file.readBytes())).toString()
        } catch (e: CharacterCodingException) {
            throw DataException("text file $file is not UTF-8 text; save it as UTF-8")
        }
        if ('\u0000' in text) throw DataException("text file $file holds a NUL character; it is not a text file")
        if (text.isBlank()) throw DataException("text file $file is empty")
        return text
    }
}

/**
 * Examples as token rows of the artifact's fixed shape, and endless batches over them in a
 * deterministic order: each epoch is a Fisher-Yates shuffle driven by PCG64 seeded with
 * SeedSequence([seed, epoch]), the last batch of an epoch filled by wrapping round, and batch k
 * of the run is a function of (data, seed, k) only, so a resumed run continues with the batch it
 * would have seen next. (The order differs from the Python runner's; the contract leaves it to
 * each implementation.)
 */
class Batches(private val ids: List<LongArray>, private val masks: List<LongArray>, private val labels: IntArray?,
              private val batchSize: Int, private val seqLen: Int) {
    val rows: Int get() = ids.size
    val perEpoch: Int get() = (rows + batchSize - 1) / batchSize

    /** Batches from step [start] on (the number of steps the state has taken). */
    fun from(start: Long, seed: Long): Iterator<Map<String, Tensor>> = iterator {
        var k = start
        var epoch = -1L
        var order = IntArray(0)
        while (true) {
            val e = k / perEpoch
            if (e != epoch) { epoch = e; order = shuffled(seed, e) }
            val pos = (k % perEpoch).toInt()
            yield(batch(IntArray(batchSize) { order[(pos * batchSize + it) % rows] }))
            k++
        }
    }

    private fun shuffled(seed: Long, epoch: Long): IntArray {
        val g = Pcg64(SeedSequence(longArrayOf(seed, epoch)).generateState64(4))
        val p = IntArray(rows) { it }
        for (i in rows - 1 downTo 1) {
            val j = java.lang.Long.remainderUnsigned(g.nextLong(), (i + 1).toLong()).toInt()
            val t = p[i]; p[i] = p[j]; p[j] = t
        }
        return p
    }

    fun batch(index: IntArray): Map<String, Tensor> {
        val shape = longArrayOf(index.size.toLong(), seqLen.toLong())
        val out = linkedMapOf(
            Names.INPUT_IDS to Tensor.ofLongs(shape, LongArray(index.size * seqLen) { ids[index[it / seqLen]][it % seqLen] }),
            Names.ATTENTION_MASK to Tensor.ofLongs(shape, LongArray(index.size * seqLen) { masks[index[it / seqLen]][it % seqLen] }),
        )
        labels?.let { l -> out[Names.LABELS] = Tensor.ofLongs(longArrayOf(index.size.toLong()), LongArray(index.size) { l[index[it]].toLong() }) }
        return out
    }

    companion object {
        /**
         * Running text's ids as consecutive windows of seq_len (mask all ones; the ragged tail is
         * dropped); a text shorter than one window is one window padded with the tokenizer's pad id.
         */
        fun windows(text: String, tokenizer: Tokenizer, manifest: Manifest): Batches {
            val ids = tokenizer.tokens(text)
            val s = manifest.seqLen
            if (ids.size < s) {
                val row = LongArray(s) { if (it < ids.size) ids[it].toLong() else tokenizer.padId.toLong() }
                return Batches(listOf(row), listOf(LongArray(s) { if (it < ids.size) 1L else 0L }), null, manifest.batchSize, s)
            }
            val rows = (0 until ids.size / s).map { w -> LongArray(s) { ids[w * s + it].toLong() } }
            return Batches(rows, rows.map { LongArray(s) { 1L } }, null, manifest.batchSize, s)
        }

        /** Labelled examples -> rows, with each label's index in the manifest's labels. */
        fun of(examples: List<Example>, tokenizer: Tokenizer, manifest: Manifest): Batches {
            val labels = manifest.labels ?: throw ArtifactException("the artifact lists no labels; export it with labelled data")
            val index = labels.withIndex().associate { (i, l) -> l to i }
            val enc = examples.map { tokenizer.encodeOne(it.text) }
            val y = IntArray(examples.size) { i ->
                index[examples[i].label] ?: throw DataException("label ${shorten(examples[i].label)} is not one of the artifact's labels ${shorten(labels)}")
            }
            return Batches(enc.map { it.first }, enc.map { it.second }, y, manifest.batchSize, manifest.seqLen)
        }
    }
}
