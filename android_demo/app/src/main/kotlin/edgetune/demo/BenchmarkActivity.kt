package edgetune.demo

import android.app.Activity
import android.os.Bundle
import android.util.Log
import edgetune.trainer.EdgetuneException
import edgetune.trainer.TrainCommand
import java.io.File

/**
 * Benchmark mode for device-harness: trains an artifact on a data file with [TrainCommand] and
 * writes the Python runner's JSON lines to a file (and to logcat, tag "edgetune"):
 *
 *     adb shell am start -W -n edgetune.demo/.BenchmarkActivity --es artifact DIR --es data FILE \
 *         --ei steps N [--es runtime onnx|executorch] [--ei threads T] [--es out FILE]
 *
 * DIR and FILE are paths the app can read (its external files directory, where `adb push` can
 * write: /sdcard/Android/data/edgetune.demo/files/...). The lines go to `out` (default
 * run.jsonl there); the last one is the end event, or `{"event": "end", "reason": "error: ..."}`.
 */
class BenchmarkActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val extras = intent.extras ?: Bundle()
        val files = getExternalFilesDir(null) ?: filesDir
        val out = File(extras.getString("out") ?: File(files, "run.jsonl").path)
        Thread {
            out.parentFile?.mkdirs()
            out.bufferedWriter().use { w ->
                fun emit(line: String) {
                    w.write(line); w.newLine(); w.flush()
                    Log.i("edgetune", line)
                }
                try {
                    val runtime = if (extras.getString("runtime", "onnx") == "executorch") ExecuTorchAndroid() else OnnxRuntimeAndroid()
                    val threads = extras.getInt("threads", 0).takeIf { it > 0 }
                    TrainCommand.run(runtime, File(extras.getString("artifact") ?: error("--es artifact DIR is missing")),
                        File(extras.getString("data") ?: error("--es data FILE is missing")), null,
                        TrainCommand.Options(steps = extras.getInt("steps", 50), threads = threads), ::emit)
                } catch (e: Exception) {  // EdgetuneException or a missing extra: one line the harness reports
                    val msg = if (e is EdgetuneException || e is IllegalStateException) e.message else "internal error: $e"
                    emit(edgetune.trainer.Json.write(mapOf("event" to "end", "reason" to "error: $msg")))
                }
            }
            runOnUiThread { finish() }
        }.start()
    }
}
