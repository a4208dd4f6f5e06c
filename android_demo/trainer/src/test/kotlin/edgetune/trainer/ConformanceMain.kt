package edgetune.trainer

import java.io.File
import kotlin.math.abs
import kotlin.system.exitProcess

/**
 * Replays a conformance kit (`edgetune conformance`) through the Kotlin trainer on ONNX Runtime:
 *
 *     java ... edgetune.trainer.ConformanceMainKt LIBONNXRUNTIME ARTIFACT KIT [THREADS]
 *
 * prints {"checks", "failures", "cases"} as one JSON line, like `python -m device_harness.conformance`,
 * and exits 2 when a check fails. The kit's numbers come from eager PyTorch.
 */
fun main(args: Array<String>) {
    if (args.size !in 3..4) {
        System.err.println("usage: ConformanceMainKt LIBONNXRUNTIME ARTIFACT KIT [THREADS]")
        exitProcess(2)
    }
    val report = try {
        Conformance(OrtFfmRuntime(File(args[0])), File(args[1]), File(args[2]), args.getOrNull(3)?.toInt()).replay()
    } catch (e: EdgetuneException) {
        System.err.println("error: ${e.message}")
        exitProcess(2)
    }
    println(Json.write(report))
    exitProcess(if ((report["failures"] as List<*>).isEmpty()) 0 else 2)
}

class Conformance(private val runtime: Runtime, private val artifact: File, private val kitDir: File, private val threads: Int?) {
    private var count = 0
    private val failures = ArrayList<String>()

    private fun check(what: String, problem: String?) {
        count++
        if (problem != null) failures.add("$what: $problem")
    }

    @Suppress("UNCHECKED_CAST")
    fun replay(): Map<String, Any?> {
        val kit = Json.parse(File(kitDir, "kit.json").readText()) as Map<String, Any?>
        val tensors = Safetensors.decode(File(kitDir, "tensors.safetensors").readBytes()).tensors
        val tmp = kotlin.io.path.createTempDirectory("kit").toFile()
        try {
            Trainer(artifact, runtime, File(tmp, "state.safetensors"), threads).use { tr ->
                if (kit["artifact_id"] != tr.manifest.artifactId) throw ArtifactException("kit $kitDir was written for artifact ${kit["artifact_id"]}, not ${tr.manifest.artifactId}")
                (kit["tokenizer"] as Map<String, Any?>?)?.let { tok ->
                    val enc = Tokenizer.load(File(artifact, tr.manifest.tokenizer!!), (tok["seq_len"] as Long).toInt())
                    val (ids, mask) = enc.encode(tok["texts"] as List<String>)
                    for ((name, got) in listOf("input_ids" to ids, "attention_mask" to mask)) {
                        val want = tensors.getValue(tok[name] as String)
                        val diff = if (want.shapeList() != got.shapeList()) "shape ${got.shapeList()}, expected ${want.shapeList()}"
                                   else want.longs().zip(got.longs()).count { (a, b) -> a != b }.takeIf { it > 0 }?.let { "$it entries differ" }
                        check("tokenizer $name", diff)
                    }
                }
                val sch = kit["schedule"] as Map<String, Any?>
                val total = sch["total"] as Long
                val peak = (sch["peak"] as Number).toDouble()
                val want = (sch["linear"] as List<*>).map { (it as Number).toDouble() }
                val got = (1..total).map { Hyper.linear(it, total, peak) }
                check("linear schedule", if (got.size == want.size && got.zip(want).all { (g, w) -> abs(g - w) <= 1e-12 * abs(w) }) null else "$got != $want")
                for (case in kit["cases"] as List<Map<String, Any?>>) replayCase(tr, case, kit, tensors)
            }
        } finally {
            tmp.deleteRecursively()
        }
        return linkedMapOf("checks" to count, "failures" to failures, "cases" to (kit["cases"] as List<Map<String, Any?>>).map { it["name"] })
    }

    @Suppress("UNCHECKED_CAST")
    private fun replayCase(tr: Trainer, case: Map<String, Any?>, kit: Map<String, Any?>, tensors: Map<String, Tensor>) {
        val name = case["name"] as String
        val tol = (kit["tolerance"] as Map<String, Any?>).mapValues { (it.value as Number).toDouble() }
        val seed = kit["seed"] as Long
        if (case["start"] == "resume.safetensors") {
            val (s, k) = StateFile.load(File(kitDir, "resume.safetensors"), tr.manifest)
            tr.state = s; tr.step = k
            check("$name: step counter of resume.safetensors", if (k == case["start_step"]) null else "$k, expected ${case["start_step"]}")
        } else {
            tr.state = prefixed(tensors, case["start"] as String); tr.step = case["start_step"] as Long
        }
        for (s in case["steps"] as List<Map<String, Any?>>) {
            val where = "$name step ${s["step"]}"
            val lr = (s["lr"] as Number).toDouble()
            val wantH = prefixed(tensors, s["hyper"] as String)
            val gotH = tr.hyper(lr, seed)
            check("$where: hyper inputs", if (gotH.keys == wantH.keys) null else "${gotH.keys.sorted()} != ${wantH.keys.sorted()}")
            for (h in (gotH.keys intersect wantH.keys).sorted()) {
                val same = gotH.getValue(h).bytes.contentEquals(wantH.getValue(h).bytes) && gotH.getValue(h).shapeList() == wantH.getValue(h).shapeList()
                check("$where: $h", if (same) null else "differs (must match exactly)")
            }
            val before = tr.state
            val stepBefore = tr.step
            val rec = try { tr.trainStep(prefixed(tensors, s["batch"] as String), lr, seed) } catch (e: NonFiniteStepException) { null }
            if (s["accepted"] != true) {
                val kept = rec == null && tr.step == stepBefore && tr.state === before
                check("$where: non-finite step rejected, state kept", if (kept) null else "the step was accepted")
                continue
            }
            if (rec == null) { check("$where: accepted", "rejected as non-finite"); return }
            check("$where: loss", mismatch(floatArrayOf((s["loss"] as Number).toFloat()), floatArrayOf(rec.loss), tol))
            for ((n, w) in prefixed(tensors, s["state"] as String)) {
                val g = tr.state[n]
                check("$where: $n", if (g == null) "missing" else if (g.shapeList() != w.shapeList()) "shape ${g.shapeList()}, expected ${w.shapeList()}" else mismatch(w.floats(), g.floats(), tol))
            }
        }
        tr.save()
        val (back, k) = StateFile.load(tr.statePath, tr.manifest)
        val same = k == tr.step && tr.state.all { (n, t) -> back[n]?.bytes?.contentEquals(t.bytes) == true }
        check("$name: state file round trip", if (same) null else "the saved state reads back differently")
    }

    private fun prefixed(tensors: Map<String, Tensor>, prefix: String) =
        tensors.filterKeys { it.startsWith(prefix) }.mapKeys { it.key.removePrefix(prefix) }

    /** The kit's tolerance rule: |got - want| <= max(atol, atol_scale max|want|) + rtol |want|, and finite. */
    private fun mismatch(want: FloatArray, got: FloatArray, tol: Map<String, Double>): String? {
        if (want.size != got.size) return "size ${got.size}, expected ${want.size}"
        if (got.any { !it.isFinite() }) return "not finite"
        val floor = maxOf(tol.getValue("atol"), tol.getValue("atol_scale") * (want.maxOfOrNull { abs(it.toDouble()) } ?: 0.0))
        var worst = 0.0
        var bad = false
        for (i in want.indices) {
            val d = abs(got[i].toDouble() - want[i].toDouble())
            worst = maxOf(worst, d)
            if (d > floor + tol.getValue("rtol") * abs(want[i].toDouble())) bad = true
        }
        return if (bad) "max |diff| %.3g".format(worst) else null
    }
}
