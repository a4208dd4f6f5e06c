package edgetune.trainer

import java.io.File
import kotlin.system.exitProcess

/**
 * The Kotlin trainer as a command on the JVM, printing the Python runner's JSON lines:
 *
 *     java ... edgetune.trainer.TrainMainKt LIBONNXRUNTIME ARTIFACT DATA [--steps N] [--state PATH]
 *         [--lr X] [--seed S] [--save-every K] [--threads T] [--schedule constant|linear] [--total-steps N]
 *
 * Exit status 0 done, 2 an error (one `error:` line on stderr), as the runner's.
 */
fun main(args: Array<String>) {
    if (args.size < 3) {
        System.err.println("usage: TrainMainKt LIBONNXRUNTIME ARTIFACT DATA [--steps N] [--state PATH] [--lr X] [--seed S] [--save-every K] [--threads T] [--schedule S] [--total-steps N]")
        exitProcess(2)
    }
    val opts = args.drop(3).chunked(2).associate { it[0].removePrefix("--") to it.getOrElse(1) { "" } }
    try {
        val state = opts["state"]?.let { File(it) }
        val artifact = File(args[1])
        val statePath = state ?: File(artifact, "trained.onnx.safetensors")
        val lock = StateFile.lock(statePath, 120_000)
        try {
            StateFile.removeStaleTemporaries(statePath)
            Trainer(artifact, OrtFfmRuntime(File(args[0])), statePath, opts["threads"]?.toInt()).use { tr ->
                val tok = Tokenizer.load(File(artifact, tr.manifest.tokenizer ?: throw ArtifactException("$artifact has no tokenizer")), tr.manifest.seqLen)
                val batches = Batches.of(Examples.read(File(args[2])), tok, tr.manifest)
                val steps = opts["steps"]?.toInt() ?: 50
                val seed = opts["seed"]?.toLong() ?: 0L
                println(StepLines.start(tr.step, tr.step + steps, opts["threads"]?.toInt()))
                val t0 = System.nanoTime()
                var reason = "done"
                try {
                    var cpu = ProcStats.cpuMs()
                    tr.train(batches.from(tr.step, seed), steps, opts["lr"]?.toDouble(), seed, opts["save-every"]?.toInt() ?: 10,
                        opts["schedule"], opts["total-steps"]?.toLong()) { rec ->
                        val now = ProcStats.cpuMs()
                        println(StepLines.step(rec, now - cpu, (System.nanoTime() - t0) / 1e9))
                        cpu = now
                        true
                    }
                } catch (e: NonFiniteStepException) {
                    reason = "error"
                    println(StepLines.end(tr.step, reason))
                    throw e
                }
                println(StepLines.end(tr.step, reason))
            }
        } finally {
            lock.channel().close()
        }
    } catch (e: EdgetuneException) {
        System.err.println("error: ${e.message}")
        exitProcess(2)
    }
    exitProcess(0)
}
