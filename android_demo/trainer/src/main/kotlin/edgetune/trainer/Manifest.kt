package edgetune.trainer

import java.io.File
import java.security.MessageDigest

/** One input or output of a program (docs/artifact-contract.md, section 2). */
data class TensorSpec(val name: String, val shape: List<Long>, val dtype: DType, val role: String, val feeds: String?) {
    val shapeArray: LongArray get() = shape.toLongArray()
}

/** A program (`step`, `step_s<N>`, `infer`) with its file per runtime. */
data class ProgramSpec(val inputs: List<TensorSpec>, val outputs: List<TensorSpec>, val files: Map<String, String>,
                       val lowering: Map<String, Map<String, Any?>>) {
    fun ofRole(role: String, outputs: Boolean = false) = (if (outputs) this.outputs else inputs).filter { it.role == role }

    /** The file of the ONNX program's frozen weights (ONNX external data), or null when they are inside the .onnx file. */
    val onnxWeights: String? get() = if ("onnx" in files) lowering["onnx"]?.get(ONNX_WEIGHTS_KEY) as? String else null

    /** Every file this program reads on [runtime] (all runtimes when null): program files and the ONNX weights file. */
    fun dataFiles(runtime: String? = null): List<String> =
        files.filterKeys { runtime == null || it == runtime }.values.toList() +
            listOfNotNull(onnxWeights.takeIf { runtime == null || runtime == "onnx" })

    companion object {
        const val ONNX_WEIGHTS_KEY = "external_data"
        const val ONNX_WEIGHTS_SUFFIX = ".onnx.data"
    }

    /** ONNX Runtime session config entries the exporter chose for this program. */
    fun onnxSessionConfig(): Map<String, String> {
        val c = lowering["onnx"]?.get("session_config") ?: return emptyMap()
        val m = c as? Map<*, *> ?: throw ArtifactException("the manifest's onnx session_config is not a map of strings; re-export the artifact")
        return m.entries.associate { (k, v) ->
            (k as? String ?: "") to (v as? String ?: throw ArtifactException("the manifest's onnx session_config is not a map of strings; re-export the artifact"))
        }
    }
}

/**
 * An artifact's manifest.json, read and checked by every rule of the contract
 * ([Manifest.load]); the Python reference is `edgetune.contract.manifest`.
 */
class Manifest(
    val artifactId: String, val task: String, val batchSize: Int, val seqLen: Int,
    val programs: Map<String, ProgramSpec>, val optimizer: Map<String, Any?>, val hashes: Map<String, String>,
    val labels: List<String>?, val tokenizer: String?, val seqBuckets: List<Int>,
) {
    val step: ProgramSpec get() = programs["step"] ?: throw ArtifactException("the artifact has no step program: it is inference-only")

    /** The tensors of a state file: the step's state inputs. */
    fun stateSpecs(): List<TensorSpec> = programs["step"]?.ofRole("state") ?: emptyList()

    /** Rows per call of the inference program (its own input_ids batch). */
    val inferBatch: Int get() = programs["infer"]?.inputs?.firstOrNull { it.name == Names.INPUT_IDS }?.shape?.firstOrNull()?.toInt() ?: batchSize

    /** (program name, its sequence length) of the shortest step that holds [length] tokens. */
    fun stepProgramFor(length: Int): Pair<String, Int> {
        val n = seqBuckets.filter { it >= length }.minOrNull() ?: seqLen
        return (if (n != seqLen) "step_s$n" else "step") to n
    }

    val learningRate: Double get() = (optimizer["lr"] as Number).toDouble()

    companion object {
        const val FORMAT = "edgetune.artifact"
        const val VERSION = 2L
        const val STATE_FILE = "state.safetensors"
        const val MAX_MANIFEST_BYTES = 16L * 1024 * 1024
        const val MAX_BATCH = 4096L
        const val MAX_SEQ_LEN = 65536L
        const val MAX_BATCH_TOKENS = 1L shl 20
        const val MAX_ELEMENTS = Int.MAX_VALUE.toLong()
        const val MAX_WHOLE = 1L shl 53
        const val MAX_NAME = 1024
        const val FLOAT32_MAX = 3.4028234663852886e38
        val RUNTIMES = mapOf("onnx" to ".onnx", "executorch" to ".pte", "coreml" to ".mlpackage")
        /** The runtimes an Android app runs (Core ML packages are for the Swift trainer). */
        val RUNNABLE = listOf("onnx", "executorch")
        val TASKS = listOf("sequence_classification", "causal_lm")
        val OPTIMIZERS = listOf("adamw", "sgd", "zo")
        val ROLES = listOf("state", "batch", "hyper", "noise", "metric")
        private val FIELDS = setOf("format", "version", "artifact_id", "task", "batch_size", "seq_len", "programs",
            "seq_buckets", "optimizer", "hashes", "labels", "tokenizer", "model", "adapters")
        private val SHA256 = Regex("[0-9a-f]{64}")
        private const val ID_PLACEHOLDER = "0000000000000000"

        /**
         * Read [dir]/manifest.json and check it: the schema, every rule, its digest (artifact_id),
         * and the sha256 of every file [runtime] will read. Throws [ArtifactException] naming the
         * first problem.
         */
        fun load(dir: File, runtime: String): Manifest {
            val path = File(dir, "manifest.json")
            if (!path.isFile) throw ArtifactException("$dir has no manifest.json: is it an edgetune artifact directory? Create one with `edgetune export`.")
            if (runtime !in RUNNABLE) throw ArtifactException("runtime ${shorten(runtime)} is not one this trainer runs; choose one of $RUNNABLE")
            if (path.length() > MAX_MANIFEST_BYTES) throw ArtifactException("$path is ${path.length()} bytes, more than any manifest ($MAX_MANIFEST_BYTES); re-export the artifact")
            val raw = path.readBytes()
            val text = try {
                Charsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(raw)).toString()
            } catch (e: java.nio.charset.CharacterCodingException) {
                throw ArtifactException("$path is not UTF-8 text; re-export the artifact")
            }
            val m = parse(text, path.toString())
            val problems = problems(m)
            if (problems.isNotEmpty()) {
                val more = if (problems.size > 1) " (and ${problems.size - 1} more)" else ""
                throw ArtifactException("$path: ${problems[0]}$more; re-export the artifact")
            }
            if (digest(raw, m.artifactId) != m.artifactId) {
                throw ArtifactException("$path was changed after export (its content does not match its artifact_id ${m.artifactId}); re-export the artifact instead of editing its manifest")
            }
            if (m.programs.values.none { runtime in it.files }) {
                throw ArtifactException("$dir has no $runtime program (it has ${m.programs.values.flatMap { it.files.keys }.toSortedSet()}); re-export with --format $runtime")
            }
            val needed = LinkedHashSet<String>()
            needed.add(STATE_FILE)
            m.tokenizer?.let { needed.add(it) }
            m.programs.values.forEach { p -> needed.addAll(p.dataFiles(runtime)) }
            for (name in needed) {
                val f = File(dir, name)
                if (!f.isFile) throw ArtifactException("$f is listed in the manifest but missing; copy the whole artifact directory")
                if (sha256(f) != m.hashes[name]) {
                    throw ArtifactException("$f does not match manifest.json (sha256 differs): the manifest belongs to another artifact or the file was changed; re-export or copy the artifact directory as a whole")
                }
            }
            return m
        }

        fun sha256(f: File): String {
            val md = MessageDigest.getInstance("SHA-256")
            f.inputStream().use { s ->
                val buf = ByteArray(1 shl 20)
                while (true) {
                    val n = s.read(buf)
                    if (n < 0) break
                    md.update(buf, 0, n)
                }
            }
            return hex(md.digest())
        }

        fun hex(b: ByteArray) = b.joinToString("") { "%02x".format(it.toInt() and 0xff) }

        private fun idField(id: String) = "\"artifact_id\": \"$id\"".toByteArray(Charsets.UTF_8)

        /** The id manifest bytes [raw] must carry: sha256 of [raw] with its one id field zeroed, first 16 hex digits. */
        fun digest(raw: ByteArray, artifactId: String): String? {
            val key = idField(artifactId)
            val at = indexOf(raw, key, 0)
            if (at < 0 || indexOf(raw, key, at + 1) >= 0) return null
            val zero = idField(ID_PLACEHOLDER)
            val md = MessageDigest.getInstance("SHA-256")
            md.update(raw, 0, at)
            md.update(zero)
            md.update(raw, at + key.size, raw.size - at - key.size)
            return hex(md.digest()).substring(0, 16)
        }

        private fun indexOf(hay: ByteArray, needle: ByteArray, from: Int): Int {
            outer@ for (i in from..hay.size - needle.size) {
                for (j in needle.indices) if (hay[i + j] != needle[j]) continue@outer
                return i
            }
            return -1
        }

        // ---- schema: typed reads of untrusted JSON (IllegalArgumentException names the field) ----

        private fun bad(field: String, what: String, x: Any?): Nothing =
            throw IllegalArgumentException("$field must be $what, not ${shorten(x)}")

        private fun whole(x: Any?, field: String, lo: Long = 0, hi: Long = MAX_WHOLE): Long =
            (x as? Long)?.takeIf { it in lo..hi } ?: bad(field, "a whole number in [$lo, $hi]", x)

        private fun text(x: Any?, field: String, limit: Int = MAX_NAME): String =
            (x as? String)?.takeIf { it.isNotEmpty() && it.codePointCount(0, it.length) <= limit }
                ?: bad(field, "a non-empty string of at most $limit characters", x)

        private fun fileName(x: Any?, field: String): String {
            val n = text(x, field)
            if ('/' in n || '\\' in n || n.startsWith(".") || '\u0000' in n) bad(field, "a plain file name inside the artifact", n)
            return n
        }

        private fun mapping(x: Any?, field: String): Map<*, *> = x as? Map<*, *> ?: bad(field, "a JSON object", x)

        private fun listing(x: Any?, field: String, limit: Int = 1 shl 20): List<*> =
            (x as? List<*>)?.takeIf { it.size <= limit } ?: bad(field, "a JSON list of at most $limit entries", x)

        private fun number(x: Any?, field: String, positive: Boolean = false): Double {
            val d = when (x) { is Long -> x.toDouble(); is Double -> x; else -> Double.NaN }
            if (!d.isFinite() || kotlin.math.abs(d) > FLOAT32_MAX || (positive && d <= 0))
                bad(field, "a ${if (positive) "positive " else ""}finite float32 number", x)
            return d
        }

        private fun tensorSpec(x: Any?, where: String): TensorSpec {
            val d = mapping(x, where)
            val name = text(d["name"], "$where name")
            val w = "tensor ${shorten(name)}"
            val shape = listing(d["shape"], "$w shape", 8).map { whole(it, "$w shape", 0, MAX_ELEMENTS) }
            val n = shape.fold(1.0) { a, b -> a * b }
            if (n > MAX_ELEMENTS) throw IllegalArgumentException("$w has ${n.toLong()} elements, more than $MAX_ELEMENTS")
            val unknown = d.keys.map { it.toString() }.toSet() - setOf("name", "shape", "dtype", "role", "feeds")
            if (unknown.isNotEmpty()) throw IllegalArgumentException("$w has unknown keys ${shorten(unknown.sorted())}")
            val dtypeName = text(d["dtype"], "$w dtype", 16)
            val role = text(d["role"], "$w role", 16)
            val dtype = DType.ofManifest(dtypeName) ?: throw IllegalArgumentException("tensor ${shorten(name)}: dtype ${shorten(dtypeName)} is not one of ${DType.entries.map { it.manifestName }}")
            if (role !in ROLES) throw IllegalArgumentException("tensor ${shorten(name)}: role ${shorten(role)} is not one of $ROLES")
            val feeds = d["feeds"]?.let { text(it, "$w feeds") }
            return TensorSpec(name, shape, dtype, role, feeds)
        }

        /** The manifest's JSON -> [Manifest], with every value's type and bounds checked. */
        fun parse(text: String, where: String = "manifest.json"): Manifest {
            val d = try {
                Json.parse(text)
            } catch (e: IllegalArgumentException) {
                throw ArtifactException("$where is not valid JSON (${e.message}); re-export the artifact")
            }
            if (d !is Map<*, *> || d["format"] != FORMAT) {
                throw ArtifactException("$where is not an edgetune manifest (format=${shorten((d as? Map<*, *>)?.get("format"))})")
            }
            if (d["version"] != VERSION) {
                throw ArtifactException("$where has manifest version ${shorten(d["version"])}; this trainer reads version $VERSION: re-export the artifact")
            }
            try {
                val unknown = d.keys.map { it.toString() }.toSet() - FIELDS
                if (unknown.isNotEmpty()) throw IllegalArgumentException("unknown keys ${shorten(unknown.sorted())}")
                for (k in listOf("artifact_id", "task", "batch_size", "seq_len", "programs", "hashes")) {
                    if (k !in d) throw IllegalArgumentException("'$k' is missing")
                }
                // the task first: a tensors artifact (seq_len 0) trains on the Python runner, not here
                if (TASKS.none { it == d["task"] }) {
                    throw IllegalArgumentException("task ${shorten(d["task"])} is not one of $TASKS, the tasks this trainer implements")
                }
                val programs = LinkedHashMap<String, ProgramSpec>()
                for ((k, v) in mapping(d["programs"], "programs")) {
                    val name = text(k, "program name", 32)
                    val p = mapping(v, "program '$name'")
                    val files = mapping(p["files"] ?: emptyMap<String, Any>(), "program '$name' files").entries.associate { (rt, f) ->
                        text(rt, "program '$name' runtime", 32) to fileName(f, "program '$name' file")
                    }
                    val lowering = mapping(p["lowering"] ?: emptyMap<String, Any>(), "program '$name' lowering").entries.associate { (rt, x) ->
                        @Suppress("UNCHECKED_CAST")
                        (rt as String) to (mapping(x, "program '$name' lowering.$rt") as Map<String, Any?>)
                    }
                    lowering["onnx"]?.get(ProgramSpec.ONNX_WEIGHTS_KEY)?.let { fileName(it, "program '$name' lowering.onnx.${ProgramSpec.ONNX_WEIGHTS_KEY}") }
                    val (ins, outs) = listOf("inputs", "outputs").map { key ->
                        listing(p[key], "program '$name' $key", 1 shl 16).map { tensorSpec(it, "program '$name' $key") }
                    }
                    programs[name] = ProgramSpec(ins, outs, files, lowering)
                }
                val labels = d["labels"]?.let { l -> listing(l, "labels", 1 shl 16).map { text(it, "label") } }
                @Suppress("UNCHECKED_CAST")
                return Manifest(
                    artifactId = text(d["artifact_id"], "artifact_id", 16),
                    task = text(d["task"], "task", 64),
                    batchSize = whole(d["batch_size"], "batch_size", 1, MAX_BATCH).toInt(),
                    seqLen = whole(d["seq_len"], "seq_len", 2, MAX_SEQ_LEN).toInt(),
                    programs = programs,
                    optimizer = mapping(d["optimizer"] ?: emptyMap<String, Any>(), "optimizer") as Map<String, Any?>,
                    hashes = mapping(d["hashes"], "hashes").entries.associate { (f, h) ->
                        fileName(f, "hashes key") to ((h as? String)?.takeIf { SHA256.matches(it) } ?: bad("hashes[${shorten(f)}]", "a sha256 in 64 lowercase hex digits", h))
                    },
                    labels = labels,
                    tokenizer = d["tokenizer"]?.let { fileName(it, "tokenizer") },
                    seqBuckets = listing(d["seq_buckets"] ?: emptyList<Any>(), "seq_buckets", 64).map { whole(it, "seq_buckets", 2, MAX_SEQ_LEN).toInt() },
                ).also {
                    mapping(d["model"] ?: emptyMap<String, Any>(), "model")
                    mapping(d["adapters"] ?: emptyMap<String, Any>(), "adapters")
                }
            } catch (e: IllegalArgumentException) {
                throw ArtifactException("$where is missing or has a malformed field: ${e.message}; re-export the artifact")
            }
        }

        private fun batchShapeOk(batch: Long, seq: Long) =
            batch in 1..MAX_BATCH && seq in 2..MAX_SEQ_LEN && batch * seq <= MAX_BATCH_TOKENS

        /** Every broken rule of the contract (empty: the manifest is valid). */
        fun problems(m: Manifest): List<String> {
            val out = ArrayList<String>()
            if (m.task !in TASKS) out.add("task '${m.task}' is not one of $TASKS")
            if (!batchShapeOk(m.batchSize.toLong(), m.seqLen.toLong())) {
                out.add("batch_size=${m.batchSize} must lie in [1, $MAX_BATCH], seq_len=${m.seqLen} in [2, $MAX_SEQ_LEN], their product at most $MAX_BATCH_TOKENS")
            }
            if (!Regex("[0-9a-f]{16}").matches(m.artifactId)) out.add("artifact_id ${shorten(m.artifactId)} must be 16 lowercase hex digits")
            val files = m.programs.values.flatMap { it.dataFiles() }.toMutableSet().apply { add(STATE_FILE); m.tokenizer?.let { add(it) } }
            if (m.hashes.keys != files) out.add("hashes must list exactly the artifact's files ${shorten(files.sorted())}, not ${shorten(m.hashes.keys.sorted())}")
            val trains = "step" in m.programs
            if (trains) out.addAll(optimizerProblems(m.optimizer))
            if ("infer" !in m.programs) out.add("there is no infer program")
            val expected = mutableSetOf("infer").apply { if (trains) { add("step"); m.seqBuckets.forEach { add("step_s$it") } } }
            if (m.programs.keys != expected) out.add("programs ${shorten(m.programs.keys.sorted())} do not match seq_buckets ${m.seqBuckets} (expected ${expected.sorted()})")
            if (m.seqBuckets.any { it < 2 || it >= m.seqLen }) out.add("seq_buckets ${m.seqBuckets} must lie in [2, seq_len=${m.seqLen})")
            for ((name, prog) in m.programs) {
                if (name !in expected) continue
                val seq = if (name == "step" || name == "infer") m.seqLen else name.removePrefix("step_s").toInt()
                programProblems(m, name, prog, seq).forEach { out.add("program '$name': $it") }
            }
            if (trains && "infer" in m.programs) {
                val state = m.step.ofRole("state").associateBy { it.name }
                for (t in m.programs.getValue("infer").ofRole("state")) {
                    if (state[t.name] != t) out.add("infer input ${shorten(t.name)} is not a state input of the step with the same shape and dtype")
                }
                for ((name, prog) in m.programs) {
                    if (name.startsWith("step_s") && prog.ofRole("state").associateBy { it.name } != state) out.add("program '$name' has other state inputs than 'step'")
                }
            }
            m.labels?.let { labels ->
                val logits = m.programs["infer"]?.outputs?.firstOrNull()?.shape?.lastOrNull()
                when {
                    m.task != "sequence_classification" -> out.add("labels are for sequence classification")
                    labels.toSet().size != labels.size -> out.add("labels ${shorten(labels)} must be distinct strings")
                    logits != null && labels.size.toLong() != logits -> out.add("${labels.size} labels but the logits have $logits classes")
                }
            }
            return out
        }

        private fun optimizerProblems(opt: Map<String, Any?>): List<String> {
            val out = ArrayList<String>()
            if (opt["name"] !in OPTIMIZERS) out.add("optimizer name ${shorten(opt["name"])} must be one of $OPTIMIZERS")
            for ((k, v) in opt) {
                try {
                    when {
                        k == "lr" || k == "eps" -> number(v, "optimizer $k", positive = true)
                        k == "nu" || k == "rank" -> whole(v, "optimizer $k", 1, 1L shl 20)
                        k == "method" -> if (v !is String) bad("optimizer method", "a string", v)
                        k != "name" && v !is Boolean -> number(v, "optimizer ${shorten(k)}")
                    }
                } catch (e: IllegalArgumentException) {
                    out.add(e.message ?: "optimizer $k is malformed")
                }
            }
            if ("lr" !in opt) out.add("the optimizer entry has no default lr")
            return out
        }

        private fun programProblems(m: Manifest, name: String, prog: ProgramSpec, seq: Int): List<String> {
            val out = ArrayList<String>()
            for ((kind, specs) in listOf("input" to prog.inputs, "output" to prog.outputs)) {
                val names = specs.map { it.name }
                if (names.toSet().size != names.size) out.add("$kind names repeat: ${shorten(names.groupingBy { it }.eachCount().filter { it.value > 1 }.keys.sorted())}")
            }
            for ((rt, f) in prog.files) {
                val suffix = RUNTIMES[rt]
                if (suffix == null || !f.endsWith(suffix) || '/' in f || f.startsWith(".")) {
                    out.add("file ${shorten(f)} for runtime ${shorten(rt)} is not a ${RUNTIMES.keys.sorted()} program file in the artifact")
                }
            }
            prog.onnxWeights?.let { w ->
                if (!w.endsWith(ProgramSpec.ONNX_WEIGHTS_SUFFIX)) out.add("lowering.onnx.${ProgramSpec.ONNX_WEIGHTS_KEY} ${shorten(w)} must name a ${ProgramSpec.ONNX_WEIGHTS_SUFFIX} file of an ONNX program")
            }
            var b = m.batchSize.toLong()
            if (name == "infer") {
                b = m.inferBatch.toLong()
                if (!batchShapeOk(b, seq.toLong())) out.add("the inference batch $b must lie in [1, $MAX_BATCH], times seq_len at most $MAX_BATCH_TOKENS")
            }
            val batch = prog.ofRole("batch").associateBy { it.name }
            val want = linkedMapOf(Names.INPUT_IDS to listOf(b, seq.toLong()), Names.ATTENTION_MASK to listOf(b, seq.toLong()))
            if (m.task == "sequence_classification" && name != "infer") want[Names.LABELS] = listOf(b)
            for ((n, shape) in want) {
                val t = batch[n]
                if (t == null || t.shape != shape || t.dtype != DType.INT64) out.add("batch input '$n' must be int64$shape, is ${t?.let { "${it.dtype.manifestName}${it.shape}" }}")
            }
            if ((batch.keys - want.keys).isNotEmpty()) out.add("unknown batch inputs ${shorten((batch.keys - want.keys).sorted())}")
            for (t in prog.ofRole("hyper")) {
                if (t.name !in Names.HYPER_INPUTS || t.shape.isNotEmpty() || t.dtype != DType.FLOAT32) out.add("hyper input ${shorten(t.name)} must be a float32 scalar named one of ${Names.HYPER_INPUTS}")
            }
            for (t in prog.ofRole("noise")) {
                val prefixed = listOf(Names.NOISE_U_PREFIX, Names.NOISE_V_PREFIX, Names.NOISE_Z_PREFIX).any { t.name.startsWith(it) }
                if (!prefixed || t.dtype != DType.FLOAT32) out.add("noise input ${shorten(t.name)} must be float32 and named noise.U./noise.V./noise.z.<tensor>")
            }
            if (prog.inputs.any { it.feeds != null }) out.add("inputs may not name a 'feeds' target")
            if (name == "infer") {
                if (prog.outputs.map { it.name } != listOf(Names.LOGITS) || prog.outputs[0].dtype != DType.FLOAT32) out.add("outputs must be one float32 'logits'")
                if (prog.ofRole("hyper").isNotEmpty() || prog.ofRole("noise").isNotEmpty()) out.add("an inference program takes no hyper or noise inputs")
                return out
            }
            val loss = prog.outputs.filter { it.name == Names.LOSS }
            if (loss.size != 1 || loss[0].role != "metric" || loss[0].shape.isNotEmpty() || loss[0].dtype != DType.FLOAT32) out.add("a step needs one float32 scalar metric output 'loss'")
            val stateIn = prog.ofRole("state").associateBy { it.name }
            val fed = HashMap<String, String>()
            for (t in prog.outputs) {
                if (t.role == "state") {
                    val target = t.feeds ?: ""
                    val src = stateIn[target]
                    when {
                        src == null -> out.add("state output ${shorten(t.name)} feeds ${shorten(t.feeds)}, which is not a state input")
                        target in fed -> out.add("state outputs ${shorten(fed[target])} and ${shorten(t.name)} both feed ${shorten(target)}")
                        src.shape != t.shape || src.dtype != t.dtype || t.name != Names.next(target) ->
                            out.add("state output ${shorten(t.name)} must be named ${shorten(Names.next(target))} with the shape and dtype of ${shorten(target)}")
                        else -> fed[target] = t.name
                    }
                } else if (t.feeds != null) {
                    out.add("output ${shorten(t.name)} has role '${t.role}' but feeds ${shorten(t.feeds)}: only state outputs feed inputs")
                }
            }
            val unfed = stateIn.keys - fed.keys
            if (unfed.isNotEmpty()) out.add("state inputs ${shorten(unfed.sorted().take(3))} are fed by no output")
            val hyper = prog.ofRole("hyper").map { it.name }.toSet()
            if (Names.EPS in hyper && "eps" !in m.optimizer) out.add("the step takes 'eps' but the optimizer entry has no eps")
            if (Names.RESAMPLE in hyper && "nu" !in m.optimizer) out.add("the step resamples V but the optimizer entry has no nu")
            return out
        }
    }
}
