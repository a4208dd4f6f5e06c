package edgetune.trainer

import java.io.File

/** One finished step: its number (steps taken), loss and wall time. */
data class StepRecord(val step: Long, val loss: Float, val ms: Double)

/** Held-out accuracy and mean cross-entropy over [examples] labelled rows. */
data class Evaluation(val accuracy: Double, val loss: Double, val examples: Int)

/**
 * The device loop of the contract (docs/artifact-contract.md, section 4) over any [Runtime]:
 * resume or start, feed state + batch + hyper + noise, keep the new state only when the loss
 * and every new tensor are finite, save atomically.
 *
 * [statePath] is where progress goes (default `trained.<runtime>.safetensors` in the artifact);
 * when it exists the trainer resumes from it. The artifact's `state.safetensors` is never written.
 */
class Trainer(val dir: File, private val runtime: Runtime, statePath: File? = null, private val threads: Int? = null) : AutoCloseable {
    val manifest: Manifest = Manifest.load(dir, runtime.name)
    val statePath: File = statePath ?: File(dir, "trained.${runtime.name}.safetensors")
    private val programs = HashMap<String, Program>()
    var state: Map<String, Tensor>
    var step: Long

    init {
        if (this.statePath.canonicalFile == File(dir, Manifest.STATE_FILE).canonicalFile) {
            throw ConfigException("state path ${this.statePath} is the artifact's initial state, which a trainer never writes; pass another path")
        }
        program("step")
        val initial = File(dir, Manifest.STATE_FILE)
        val loaded = if (this.statePath.exists()) StateFile.load(this.statePath, manifest) else StateFile.load(initial, manifest, initial = true)
        state = loaded.first
        step = loaded.second
    }

    /** A program of the artifact, loaded when first needed. */
    fun program(name: String): Program = programs.getOrPut(name) {
        val spec = manifest.programs[name] ?: throw ArtifactException("$dir has no $name program (it has ${manifest.programs.keys.sorted()})")
        val file = spec.files[runtime.name] ?: throw ArtifactException("the artifact has no ${runtime.name} $name program; re-export with --format ${runtime.name}")
        runtime.open(File(dir, file), spec, threads)
    }

    /** The hyper and noise inputs of the next step at learning rate [lr]. */
    fun hyper(lr: Double, seed: Long): Map<String, Tensor> = Hyper.feeds(program("step").spec, manifest, step + 1, lr, seed)

    /**
     * One step on [batch] (input_ids, attention_mask[, labels] of batch_size rows); the state
     * advances only if the loss and every new state tensor are finite, else
     * [NonFiniteStepException] and nothing changes.
     */
    fun trainStep(batch: Map<String, Tensor>, lr: Double, seed: Long = 0): StepRecord {
        val (prog, trimmed) = programFor(batch)
        val feeds = HashMap<String, Tensor>(state)
        feeds.putAll(trimmed)
        feeds.putAll(Hyper.feeds(prog.spec, manifest, step + 1, lr, seed))
        val t0 = System.nanoTime()
        val outs = prog.run(checkFeeds(prog.spec, feeds))
        val ms = (System.nanoTime() - t0) / 1e6
        val byName = prog.spec.outputs.map { it.name }.zip(outs).toMap()
        val loss = byName.getValue(Names.LOSS).floats()[0]
        val next = prog.spec.ofRole("state", outputs = true).associate { it.feeds!! to byName.getValue(it.name) }
        val bad = next.filterValues { !it.isFinite() }.keys.take(3)
        if (!loss.isFinite() || bad.isNotEmpty()) {
            throw NonFiniteStepException("step ${step + 1}: loss=$loss, non-finite state $bad; the step was rejected and the state kept at step $step. Lower the learning rate or check the batch for bad labels.")
        }
        state = next
        step += 1
        return StepRecord(step, loss, ms)
    }

    /** The shortest step program that holds the batch's longest text, and the batch trimmed to its length. */
    private fun programFor(batch: Map<String, Tensor>): Pair<Program, Map<String, Tensor>> {
        val mask = batch[Names.ATTENTION_MASK]
        if (manifest.seqBuckets.isEmpty() || mask == null) return program("step") to batch
        val rows = mask.shape[0].toInt()
        val cols = mask.shape[1].toInt()
        val m = mask.longs()
        val longest = (0 until rows).maxOf { r -> (0 until cols).sumOf { c -> m[r * cols + c] } }.toInt()
        val (name, n) = manifest.stepProgramFor(longest)
        if (n == cols) return program(name) to batch
        return program(name) to batch.mapValues { (_, t) -> if (t.shape.size == 2) trimColumns(t, n) else t }
    }

    private fun trimColumns(t: Tensor, n: Int): Tensor {
        val rows = t.shape[0].toInt()
        val cols = t.shape[1].toInt()
        val size = t.dtype.size
        val out = ByteArray(rows * n * size)
        for (r in 0 until rows) System.arraycopy(t.bytes, r * cols * size, out, r * n * size, n * size)
        return Tensor(t.dtype, longArrayOf(rows.toLong(), n.toLong()), out)
    }

    fun save() = StateFile.save(statePath, state, manifest, step)

    /**
     * Accuracy (argmax against the label) and mean cross-entropy of the current state on every
     * row of [rows], through the inference program, [Manifest.inferBatch] rows per call (the last
     * partial call is filled by repeating rows, whose logits are dropped).
     */
    fun evaluate(rows: Batches): Evaluation {
        val prog = program("infer")
        val b = manifest.inferBatch
        var hits = 0
        var nll = 0.0
        for (start in 0 until rows.rows step b) {
            val batch = rows.batch(IntArray(b) { (start + it) % rows.rows })
            val feeds = HashMap<String, Tensor>(state)
            feeds.putAll(batch)
            val logits = prog.run(checkFeeds(prog.spec, feeds))[0]
            val classes = logits.shape[1].toInt()
            val z = logits.floats()
            val labels = batch.getValue(Names.LABELS).longs()
            for (r in 0 until minOf(b, rows.rows - start)) {
                val row = (0 until classes).map { z[r * classes + it].toDouble() }
                val max = row.max()
                val logSum = max + kotlin.math.ln(row.sumOf { kotlin.math.exp(it - max) })
                val y = labels[r].toInt()
                if (row.indexOf(max) == y) hits++
                nll += logSum - row[y]
            }
        }
        return Evaluation(hits.toDouble() / rows.rows, nll / rows.rows, rows.rows)
    }

    /**
     * [steps] more steps over [batches], with [schedule] (default: linear for first-order,
     * constant for forward-only) peaking at [lr] (default: the artifact's) and ending at
     * [totalSteps] (default: this run's last step). Saves every [saveEvery] steps and, whatever
     * happens, at the end (only ever the last good state). [onStep] sees each record.
     */
    fun train(batches: Iterator<Map<String, Tensor>>, steps: Int, lr: Double? = null, seed: Long = 0, saveEvery: Int = 10,
              schedule: String? = null, totalSteps: Long? = null, onStep: (StepRecord) -> Boolean = { true }) {
        if (steps < 0 || saveEvery < 0 || seed < 0) throw ConfigException("steps, save-every and seed must be >= 0")
        val sched = schedule ?: Hyper.defaultSchedule(manifest)
        val peak = lr ?: manifest.learningRate
        val total = totalSteps ?: (step + steps)
        var saved = step
        try {
            repeat(steps) {
                val rec = trainStep(batches.next(), Hyper.scheduled(sched, step + 1, total, peak), seed)
                if (saveEvery > 0 && step % saveEvery == 0L) { save(); saved = step }
                if (!onStep(rec)) return
            }
        } finally {
            if (step != saved) save()
        }
    }

    override fun close() {
        programs.values.forEach { it.close() }
        programs.clear()
    }
}
