package edgetune.trainer

import java.io.File

/**
 * The Python runner's `train` command over any [Runtime], printing its JSON lines (a start
 * event, one record per step, an end event): the JVM test command and the Android app's
 * benchmark mode both run this, so `device-harness` reads either like the Python runner.
 */
object TrainCommand {
    data class Options(val steps: Int = 50, val lr: Double? = null, val seed: Long = 0, val saveEvery: Int = 10,
                       val threads: Int? = null, val schedule: String? = null, val totalSteps: Long? = null,
                       val lockTimeoutMs: Long = 120_000)

    /**
     * Train [artifact] on the labelled [data] file (or, for a language model, a running-text .txt), resuming from [state] (default
     * `trained.<runtime>.safetensors` in the artifact); each line goes to [out]. Throws
     * [EdgetuneException] after writing the end line when a step is rejected as non-finite.
     */
    fun run(runtime: Runtime, artifact: File, data: File, state: File?, o: Options, out: (String) -> Unit) {
        val statePath = state ?: File(artifact, "trained.${runtime.name}.safetensors")
        val lock = StateFile.lock(statePath, o.lockTimeoutMs)
        try {
            StateFile.removeStaleTemporaries(statePath)  // a writer killed mid-save left them; none is alive now
            Trainer(artifact, runtime, statePath, o.threads).use { tr ->
                val tokenizer = Tokenizer.load(File(artifact, tr.manifest.tokenizer ?: throw ArtifactException("$artifact has no tokenizer; text data needs an artifact exported with one")), tr.manifest.seqLen)
                val batches = if (tr.manifest.task == "causal_lm" && data.name.endsWith(".txt", ignoreCase = true))
                    Batches.windows(RunningText.read(data), tokenizer, tr.manifest)
                else Batches.of(Examples.read(data), tokenizer, tr.manifest)
                out(StepLines.start(tr.step, tr.step + o.steps, o.threads))
                val t0 = System.nanoTime()
                var cpu = ProcStats.cpuMs()
                try {
                    tr.train(batches.from(tr.step, o.seed), o.steps, o.lr, o.seed, o.saveEvery, o.schedule, o.totalSteps) { rec ->
                        val now = ProcStats.cpuMs()
                        out(StepLines.step(rec, now - cpu, (System.nanoTime() - t0) / 1e9))
                        cpu = now
                        true
                    }
                } catch (e: EdgetuneException) {
                    out(StepLines.end(tr.step, "error"))
                    throw e
                }
                out(StepLines.end(tr.step, "done"))
            }
        } finally {
            lock.channel().close()
        }
    }
}

/** The runner's JSON lines (docs/artifact-contract.md, section 8), so `device-harness` reads any trainer alike. */
object StepLines {
    private fun round(x: Double, digits: Int): Double = Math.round(x * Math.pow(10.0, digits.toDouble())) / Math.pow(10.0, digits.toDouble())

    fun start(step: Long, target: Long, threads: Int?): String =
        Json.write(linkedMapOf("event" to "start", "step" to step, "target" to target, "threads" to threads, "trainer" to "kotlin"))

    fun step(rec: StepRecord, cpuMs: Double, seconds: Double): String {
        val (rss, peak) = ProcStats.rssMb()
        return Json.write(linkedMapOf("step" to rec.step, "loss" to round(rec.loss.toDouble(), 6), "ms" to round(rec.ms, 3),
            "cpu_ms" to round(cpuMs, 3), "t" to round(seconds, 3), "rss_mb" to round(rss, 1), "peak_rss_mb" to round(peak, 1)))
    }

    fun end(step: Long, reason: String): String = Json.write(linkedMapOf("event" to "end", "step" to step, "reason" to reason))
}
