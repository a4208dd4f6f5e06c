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
