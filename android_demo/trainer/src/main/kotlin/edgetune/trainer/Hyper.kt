package edgetune.trainer

/** Learning-rate schedules and the step's hyper and noise inputs (docs/artifact-contract.md, 4.1, 4.2, 6). */
object Hyper {
    const val WARMUP_FRACTION = 0.06
    val SCHEDULES = listOf("constant", "linear")

    /** Rate of [step] (1-based) of [total]: warm-up over round-half-even(6% of total) steps (>= 1), then linear decay to 0. */
    fun linear(step: Long, total: Long, peak: Double): Double {
        val warmup = maxOf(1L, Math.rint(WARMUP_FRACTION * total).toLong())
        if (step <= warmup) return peak * step / warmup
        return peak * maxOf(0.0, (total - step + 1).toDouble() / maxOf(1L, total - warmup + 1))
    }

    /** Linear warm-up and decay for first-order steps, constant for forward-only ones. */
    fun defaultSchedule(manifest: Manifest) = if (manifest.optimizer["name"] == "zo") "constant" else "linear"

    fun scheduled(schedule: String, step: Long, total: Long, peak: Double): Double {
        if (schedule !in SCHEDULES) throw ConfigException("schedule ${shorten(schedule)}; choose one of $SCHEDULES")
        return if (schedule == "constant") peak else linear(step, total, peak)
    }

    /** LOZO draws a new V on steps 1, nu + 1, 2 nu + 1, ... */
    fun resampleDue(step: Long, nu: Long) = (step - 1) % maxOf(1L, nu) == 0L

    /**
     * The hyper and noise inputs of [program] for step [step] (1-based) at learning rate [lr]:
     * `lr`, `step`, `eps`, `resample`, and every noise input drawn in the manifest's order.
     */
    fun feeds(program: ProgramSpec, manifest: Manifest, step: Long, lr: Double, seed: Long): Map<String, Tensor> {
        if (!lr.isFinite() || lr <= 0 || lr > Manifest.FLOAT32_MAX) throw ConfigException("learning rate $lr must be a positive number that fits float32")
        val names = program.inputs.map { it.name }.toSet()
        val out = LinkedHashMap<String, Tensor>()
        out[Names.LR] = Tensor.scalar(lr.toFloat())
        if (Names.STEP in names) out[Names.STEP] = Tensor.scalar(step.toFloat())
        if (Names.EPS in names) out[Names.EPS] = Tensor.scalar((manifest.optimizer.getValue("eps") as Number).toFloat())
        val noise = program.ofRole("noise")
        if (noise.isNotEmpty() || Names.RESAMPLE in names) {
            val due = resampleDue(step, (manifest.optimizer["nu"] as? Number)?.toLong() ?: 1L)
            if (Names.RESAMPLE in names) out[Names.RESAMPLE] = Tensor.scalar(if (due) 1f else 0f)
            val rng = NumpyNormal(longArrayOf(seed, step))
            for (t in noise) {
                val n = Tensor.count(t.shapeArray).toInt()
                // V candidates are zeros on steps that keep V, and draw nothing
                val values = if (t.name.startsWith(Names.NOISE_V_PREFIX) && !due) FloatArray(n) else rng.fill(n)
                out[t.name] = Tensor.ofFloats(t.shapeArray, values)
            }
        }
        return out
    }
}
