package edgetune.trainer

import java.io.File
import kotlin.system.exitProcess

/**
 * [TrainCommand] on the JVM with ONNX Runtime's C library, printing the Python runner's JSON lines:
 *
 *     java ... edgetune.trainer.TrainMainKt LIBONNXRUNTIME ARTIFACT DATA [--steps N] [--state PATH]
 *         [--lr X] [--seed S] [--save-every K] [--threads T] [--schedule constant|linear] [--total-steps N]
 *
 * Exit status 0 done, 2 an error (one `error:` line on stderr), as the runner's.
 */
fun main(args: Array<String>) {
    if (args.size < 3 || (args.size - 3) % 2 != 0) {
        System.err.println("error: usage: TrainMainKt LIBONNXRUNTIME ARTIFACT DATA [--steps N] [--state PATH] [--lr X] [--seed S] [--save-every K] [--threads T] [--schedule S] [--total-steps N]")
        exitProcess(2)
    }
    val opts = args.drop(3).chunked(2).associate { it[0].removePrefix("--") to it[1] }
    try {
        val o = TrainCommand.Options(steps = opts["steps"]?.toInt() ?: 50, lr = opts["lr"]?.toDouble(),
            seed = opts["seed"]?.toLong() ?: 0L, saveEvery = opts["save-every"]?.toInt() ?: 10,
            threads = opts["threads"]?.toInt(), schedule = opts["schedule"], totalSteps = opts["total-steps"]?.toLong())
        TrainCommand.run(OrtFfmRuntime(File(args[0])), File(args[1]), File(args[2]), opts["state"]?.let { File(it) }, o) { println(it) }
    } catch (e: EdgetuneException) {
        System.err.println("error: ${e.message}")
        exitProcess(2)
    } catch (e: NumberFormatException) {
        System.err.println("error: ${e.message}: options take numbers")
        exitProcess(2)
    }
    exitProcess(0)
}
