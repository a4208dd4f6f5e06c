import EdgetuneRuntimes
import EdgetuneTrainer
import SwiftUI

/// The notes screen (NotesActivity.kt's twin): write a note, file it under one of your labels (the
/// artifact's, chosen when it was exported from your notes), train on the phone with a progress
/// bar, see the loss and the accuracy on held-out notes (every fifth). Notes and the trained state
/// live in Application Support, so both survive a restart; training resumes from the saved state.
/// The artifact ships in the app bundle as a folder reference named "artifact".
@main
struct NotesApp: App {
    var body: some Scene { WindowGroup { NotesView() } }
}

struct NotesView: View {
    @State private var text = ""
    @State private var label = ""
    @State private var notes: [Example] = []
    @State private var useExecuTorch = false
    @State private var progress = 0.0
    @State private var status = ""
    private let store = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
    private var artifact: URL { Bundle.main.url(forResource: "artifact", withExtension: nil)! }
    private var notesFile: URL { store.appendingPathComponent("notes.jsonl") }
    private var labels: [String] {
        (try? Manifest.parse(String(contentsOf: artifact.appendingPathComponent("manifest.json"))).labels) ?? []
    }

    var body: some View {
        Form {
            TextField("Write a note", text: $text)
            Picker("Label", selection: $label) { ForEach(labels, id: \.self) { Text($0) } }
            Button("File note") {
                guard !text.isEmpty, !label.isEmpty else { return }
                notes.append(Example(text, label)); text = ""; saveNotes()
            }
            Toggle("ExecuTorch (else ONNX Runtime)", isOn: $useExecuTorch)
            Button("Train on my notes") { train() }
            ProgressView(value: progress)
            Text(status.isEmpty ? "\(notes.count) notes" : status)
        }
        .onAppear {
            if notes.isEmpty, let read = try? Examples.read(notesFile) { notes = read }
            if label.isEmpty { label = labels.first ?? "" }
        }
    }

    private func saveNotes() {
        let lines = notes.map { Json.write(["text": $0.text, "label": $0.label]) + "\n" }.joined()
        try? StateFile.writeAtomic(notesFile, Data(lines.utf8))
    }

    private func train() {
        let held = notes.enumerated().filter { $0.offset % 5 == 4 }.map(\.element)
        let fit = notes.enumerated().filter { $0.offset % 5 != 4 }.map(\.element)
        guard !fit.isEmpty, !held.isEmpty else { status = "File at least five notes first"; return }
        let executorch = useExecuTorch
        DispatchQueue.global(qos: .userInitiated).async {
            do {
                let runtime: Runtime = executorch ? ExecuTorchSwift() : try OnnxRuntimeSwift()
                let tr = try Trainer(artifact, runtime, statePath: store.appendingPathComponent("trained.\(runtime.name).safetensors"))
                let tok = try Tokenizer.load(artifact.appendingPathComponent(tr.manifest.tokenizer!), seqLen: tr.manifest.seqLen)
                let rows = try Batches.of(fit, tok, tr.manifest)
                let steps = 3 * rows.perEpoch, first = tr.step
                var cursor = rows.from(tr.step, seed: 0)
                try tr.train(&cursor, steps: steps) { rec in
                    DispatchQueue.main.async {
                        progress = Double(rec.step - first) / Double(steps)
                        status = String(format: "step %lld: loss %.3f", rec.step, rec.loss)
                    }
                    return true
                }
                let e = try tr.evaluate(try Batches.of(held, tok, tr.manifest))
                DispatchQueue.main.async {
                    status = String(format: "held-out accuracy %.0f%% on %d notes (loss %.3f), %lld steps taken", 100 * e.accuracy, e.examples, e.loss, tr.step)
                }
            } catch {
                DispatchQueue.main.async { status = "\(error)" }
            }
        }
    }
}
