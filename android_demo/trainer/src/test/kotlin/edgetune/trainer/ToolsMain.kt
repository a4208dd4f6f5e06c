package edgetune.trainer

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * Pieces of the trainer for the suite to compare with their references:
 *
 *     tokenize TOKENIZER_JSON SEQ_LEN TEXTS_JSON OUT_JSON   -> {"input_ids", "attention_mask", "tokens"}
 *     normal SEED STEP N OUT_F32                           -> N float32 draws of default_rng([SEED, STEP])
 *     windows ARTIFACT TXT OUT_JSON                        -> {"input_ids", "attention_mask"}: the text's windows
 *     evaluate LIBONNXRUNTIME ARTIFACT DATA STATE          -> {"accuracy", "loss", "examples"} of STATE on DATA
 *     manifests OUT_JSON FILE...                           -> [{"accepted", "problem"}] per manifest.json (no file hashes)
 *     log1pf OUT_F32                                       -> log1pf(-k / 2^24), k = 0 .. 2^24 - 1
 */
fun main(args: Array<String>) {
    when (args.firstOrNull()) {
        "tokenize" -> {
            val tok = Tokenizer.load(File(args[1]), args[2].toInt())
            @Suppress("UNCHECKED_CAST")
            val texts = Json.parse(File(args[3]).readText()) as List<String>
            val rows = texts.map { tok.encodeOne(it) }
            File(args[4]).writeText(Json.write(mapOf(
                "input_ids" to rows.map { it.first.asList() },
                "attention_mask" to rows.map { it.second.asList() },
                "tokens" to texts.map { tok.tokens(it) },
            )))
        }
        "normal" -> {
            val n = args[3].toInt()
            val draws = NumpyNormal(longArrayOf(args[1].toLong(), args[2].toLong())).fill(n)
            val b = ByteBuffer.allocate(4 * n).order(ByteOrder.LITTLE_ENDIAN)
            b.asFloatBuffer().put(draws)
            File(args[4]).writeBytes(b.array())
        }
        "windows" -> {  // ARTIFACT TXT OUT_JSON -> {"input_ids", "attention_mask"}: every window of the running text
            val m = Manifest.load(File(args[1]), "onnx")
            val rows = Batches.windows(RunningText.read(File(args[2])), Tokenizer.load(File(args[1], m.tokenizer!!), m.seqLen), m)
            val b = rows.batch(IntArray(rows.rows) { it })
            val s = m.seqLen
            File(args[3]).writeText(Json.write(mapOf(
                "input_ids" to b.getValue(Names.INPUT_IDS).longs().asList().chunked(s),
                "attention_mask" to b.getValue(Names.ATTENTION_MASK).longs().asList().chunked(s))))
        }
        "evaluate" -> {  // LIBONNXRUNTIME ARTIFACT DATA STATE -> {"accuracy", "loss", "examples"}
            Trainer(File(args[2]), OrtFfmRuntime(File(args[1])), File(args[4])).use { tr ->
                val tok = Tokenizer.load(File(args[2], tr.manifest.tokenizer!!), tr.manifest.seqLen)
                val e = tr.evaluate(Batches.of(Examples.read(File(args[3])), tok, tr.manifest))
                println(Json.write(mapOf("accuracy" to e.accuracy, "loss" to e.loss, "examples" to e.examples)))
            }
        }
        "manifests" -> {  // OUT_JSON FILE... -> [{"accepted", "problem"}]: schema, rules and digest (no file hashes)
            val verdicts = args.drop(2).map { path ->
                val raw = File(path).readBytes()
                try {
                    val text = Charsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(raw)).toString()
                    val m = Manifest.parse(text, path)
                    val problems = Manifest.problems(m)
                    val digestOk = Manifest.digest(raw, m.artifactId) == m.artifactId
                    mapOf("accepted" to (problems.isEmpty() && digestOk),
                        "problem" to (problems.firstOrNull() ?: if (digestOk) null else "digest"))
                } catch (e: ArtifactException) {
                    mapOf("accepted" to false, "problem" to e.message)
                } catch (e: java.nio.charset.CharacterCodingException) {
                    mapOf("accepted" to false, "problem" to "not UTF-8")
                }
            }
            File(args[1]).writeText(Json.write(verdicts))
        }
        "log1pf" -> {  // log1pf(-k / 2^24) for every k in [0, 2^24): the inputs the ziggurat's tail can meet
            val n = 1 shl 24
            val b = ByteBuffer.allocate(4 * n).order(ByteOrder.LITTLE_ENDIAN)
            for (k in 0 until n) b.putFloat(log1pf(-(k * (1.0f / 16777216.0f))))
            File(args[1]).writeBytes(b.array())
        }
        else -> {
            System.err.println("usage: ToolsMainKt tokenize|normal ...")
            kotlin.system.exitProcess(2)
        }
    }
}
