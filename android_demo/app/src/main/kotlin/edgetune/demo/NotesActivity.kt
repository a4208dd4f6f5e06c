package edgetune.demo

import android.app.Activity
import android.os.Bundle
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ProgressBar
import android.widget.RadioButton
import android.widget.RadioGroup
import android.widget.Spinner
import android.widget.TextView
import edgetune.trainer.Batches
import edgetune.trainer.EdgetuneException
import edgetune.trainer.Example
import edgetune.trainer.Examples
import edgetune.trainer.Json
import edgetune.trainer.Manifest
import edgetune.trainer.StateFile
import edgetune.trainer.Tokenizer
import edgetune.trainer.Trainer
import java.io.File

/**
 * The notes screen: a person writes notes and files each under one of their own labels (the
 * artifact's, chosen when it was exported from their notes), trains on the phone with a progress
 * bar, and sees the loss and the accuracy on held-out notes (every fifth). Notes and the trained
 * state live in the app's files directory, so both survive a restart; training resumes from the
 * saved state. Everything below the views is the trainer library the suite tests on the JVM.
 */
class NotesActivity : Activity() {
    private val artifact by lazy { File(filesDir, "artifact") }
    private val notesFile by lazy { File(filesDir, "notes.jsonl") }
    private val notes = ArrayList<Example>()
    private lateinit var status: TextView
    private lateinit var progress: ProgressBar

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        copyArtifactFromAssets()
        if (notesFile.isFile) notes.addAll(Examples.read(notesFile))
        val labels = Manifest.parse(File(artifact, "manifest.json").readText()).labels ?: emptyList()

        val text = EditText(this).apply { hint = "Write a note" }
        val label = Spinner(this).apply { adapter = ArrayAdapter(context, android.R.layout.simple_spinner_dropdown_item, labels) }
        val runtimes = RadioGroup(this).apply {
            orientation = RadioGroup.HORIZONTAL
            addView(RadioButton(context).apply { id = 1; this.text = "ONNX Runtime"; isChecked = true })
            addView(RadioButton(context).apply { id = 2; this.text = "ExecuTorch" })
        }
        status = TextView(this)
        progress = ProgressBar(this, null, android.R.attr.progressBarStyleHorizontal)
        val file = Button(this).apply {
            this.text = "File note"
            setOnClickListener {
                if (text.text.isNotBlank() && label.selectedItem != null) {
                    notes.add(Example(text.text.toString(), label.selectedItem as String))
                    saveNotes()
                    text.text.clear()
                    showCount()
                }
            }
        }
        val train = Button(this).apply {
            this.text = "Train on my notes"
            setOnClickListener { train(if (runtimes.checkedRadioButtonId == 2) ExecuTorchAndroid() else OnnxRuntimeAndroid()) }
        }
        setContentView(LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            setPadding(32, 32, 32, 32)
            listOf(text, label, file, runtimes, train, progress, status).forEach { addView(it) }
        })
        showCount()
    }

    private fun showCount() {
        status.text = "${notes.size} notes"
    }

    /** The artifact ships in the APK's assets/artifact; runtimes need files, so it is copied once. */
    private fun copyArtifactFromAssets() {
        if (File(artifact, "manifest.json").isFile) return
        val tmp = File(filesDir, "artifact.tmp").apply { deleteRecursively(); mkdirs() }
        for (name in assets.list("artifact") ?: emptyArray()) {
            assets.open("artifact/$name").use { input -> File(tmp, name).outputStream().use { input.copyTo(it) } }
        }
        tmp.renameTo(artifact)
    }

    private fun saveNotes() {
        val lines = notes.joinToString("") { Json.write(mapOf("text" to it.text, "label" to it.label)) + "\n" }
        StateFile.writeAtomic(notesFile, lines.toByteArray(Charsets.UTF_8))
    }

    private fun train(runtime: edgetune.trainer.Runtime) {
        val held = notes.filterIndexed { i, _ -> i % 5 == 4 }
        val fit = notes.filterIndexed { i, _ -> i % 5 != 4 }
        if (fit.isEmpty() || held.isEmpty()) { status.text = "File at least five notes first"; return }
        Thread {
            try {
                Trainer(artifact, runtime, File(filesDir, "trained.${runtime.name}.safetensors")).use { tr ->
                    val tok = Tokenizer.load(File(artifact, tr.manifest.tokenizer!!), tr.manifest.seqLen)
                    val rows = Batches.of(fit, tok, tr.manifest)
                    val steps = 3 * rows.perEpoch  // three passes over the notes
                    val first = tr.step
                    runOnUiThread { progress.max = steps; progress.progress = 0 }
                    tr.train(rows.from(tr.step, 0), steps) { rec ->
                        runOnUiThread { progress.progress = (rec.step - first).toInt(); status.text = "step ${rec.step}: loss %.3f".format(rec.loss) }
                        true
                    }
                    val e = tr.evaluate(Batches.of(held, tok, tr.manifest))
                    runOnUiThread { status.text = "held-out accuracy %.0f%% on %d notes (loss %.3f), %d steps taken".format(100 * e.accuracy, e.examples, e.loss, tr.step) }
                }
            } catch (e: EdgetuneException) {
                runOnUiThread { status.text = e.message }
            }
        }.start()
    }
}
