package edgetune.trainer

import java.io.File

/**
 * This process's CPU time and resident memory from /proc (Linux and Android alike), for the
 * step lines the harness reads; zeros where /proc is not there (iOS, macOS).
 */
object ProcStats {
    private val TICKS_PER_SECOND = 100.0  // USER_HZ on Linux and Android

    /** CPU time of all threads of the process, ms. */
    fun cpuMs(): Double = try {
        val fields = File("/proc/self/stat").readText().substringAfterLast(')').trim().split(' ')
        (fields[11].toLong() + fields[12].toLong()) * 1000.0 / TICKS_PER_SECOND  // utime, stime
    } catch (e: Exception) {
        0.0
    }

    /** (current, peak) resident set size in MiB. */
    fun rssMb(): Pair<Double, Double> = try {
        val v = File("/proc/self/status").readLines().filter { it.startsWith("VmRSS:") || it.startsWith("VmHWM:") }
            .associate { it.substring(0, 5) to it.split(Regex("\\s+"))[1].toDouble() / 1024.0 }
        v.getValue("VmRSS") to v.getValue("VmHWM")
    } catch (e: Exception) {
        0.0 to 0.0
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
