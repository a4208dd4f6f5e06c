import Foundation

public struct StepRecord { public let step: Int64; public let loss: Float; public let ms: Double }

public struct Evaluation { public let accuracy: Double; public let loss: Double; public let examples: Int }

/// The device loop of the contract over any Runtime (Trainer.kt): resume or start, feed state +
/// batch + hyper + noise, keep the new state only when the loss and every new tensor are finite,
/// save atomically. The artifact's state.safetensors is never written.
public final class Trainer {
    public let dir: URL
    public let manifest: Manifest
    public let statePath: URL
    let runtime: Runtime
    let threads: Int?
    var programs: [String: Program] = [:]
    public var state: [String: Tensor]
    public var step: Int64

    public init(_ dir: URL, _ runtime: Runtime, statePath: URL? = nil, threads: Int? = nil) throws {
        self.dir = dir
        self.runtime = runtime
        self.threads = threads
        manifest = try Manifest.load(dir, runtime: runtime.name)
        self.statePath = statePath ?? dir.appendingPathComponent("trained.\(runtime.name).safetensors")
        let initial = dir.appendingPathComponent(Manifest.stateFile)
        if self.statePath.standardizedFileURL == initial.standardizedFileURL {
            throw EdgetuneError.config("state path \(self.statePath.path) is the artifact's initial state, which a trainer never writes; pass another path")
        }
        let exists = FileManager.default.fileExists(atPath: self.statePath.path)
        (state, step) = try exists ? StateFile.load(self.statePath, manifest) : StateFile.load(initial, manifest, initial: true)
        _ = try program("step")
    }

    /// A program of the artifact, loaded when first needed.
    public func program(_ name: String) throws -> Program {
        if let p = programs[name] { return p }
        guard let spec = manifest.programs[name] else { throw EdgetuneError.artifact("\(dir.path) has no \(name) program") }
        guard let file = spec.files[runtime.name] else { throw EdgetuneError.artifact("the artifact has no \(runtime.name) \(name) program; re-export with --format \(runtime.name)") }
        let p = try runtime.open(dir.appendingPathComponent(file), spec, threads: threads)
        programs[name] = p
        return p
    }

    public func hyper(lr: Double, seed: UInt64) throws -> [String: Tensor] {
        try Hyper.feeds(try program("step").spec, manifest, step: step + 1, lr: lr, seed: seed)
    }

    /// One step on `batch`; the state advances only if the loss and every new state tensor are finite.
    @discardableResult
    public func trainStep(_ batch: [String: Tensor], lr: Double, seed: UInt64 = 0) throws -> StepRecord {
        let (prog, trimmed) = try programFor(batch)
        var feeds = state
        trimmed.forEach { feeds[$0.key] = $0.value }
        try Hyper.feeds(prog.spec, manifest, step: step + 1, lr: lr, seed: seed).forEach { feeds[$0.key] = $0.value }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let outs = try prog.run(try checkFeeds(prog.spec, feeds))
        let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        let byName = Dictionary(zip(prog.spec.outputs.map(\.name), outs), uniquingKeysWith: { a, _ in a })
        let loss = byName[Names.loss]!.floats()[0]
        var next: [String: Tensor] = [:]
        for o in prog.spec.ofRole("state", outputs: true) { next[o.feeds!] = byName[o.name]! }
        let bad = next.filter { !$0.value.isFinite }.keys.sorted().prefix(3)
        if !loss.isFinite || !bad.isEmpty {
            throw EdgetuneError.nonFinite("step \(step + 1): loss=\(loss), non-finite state \(Array(bad)); the step was rejected and the state kept at step \(step). Lower the learning rate or check the batch for bad labels.")
        }
        state = next
        step += 1
        return StepRecord(step: step, loss: loss, ms: ms)
    }

    /// The shortest step program that holds the batch's longest text, and the batch trimmed to its length.
    func programFor(_ batch: [String: Tensor]) throws -> (Program, [String: Tensor]) {
        guard !manifest.seqBuckets.isEmpty, let mask = batch[Names.attentionMask] else { return (try program("step"), batch) }
        let rows = Int(mask.shape[0]), cols = Int(mask.shape[1]), m = mask.longs()
        let longest = (0..<rows).map { r in (0..<cols).reduce(Int64(0)) { $0 + m[r * cols + $1] } }.max() ?? 0
        let (name, n) = manifest.stepProgramFor(Int(longest))
        if n == cols { return (try program(name), batch) }
        return (try program(name), try batch.mapValues { t in
            guard t.shape.count == 2 else { return t }
            let size = t.dtype.size, r = Int(t.shape[0]), c = Int(t.shape[1])
            var out = Data()
            for i in 0..<r { out.append(t.bytes.subdata(in: (t.bytes.startIndex + i * c * size)..<(t.bytes.startIndex + (i * c + n) * size))) }
            return try Tensor(t.dtype, [Int64(r), Int64(n)], out)
        })
    }

    public func save() throws { try StateFile.save(statePath, state, manifest, step: step) }

    /// `steps` more steps over `batches` under `schedule` (default: linear for first-order, constant
    /// for forward-only); saves every `saveEvery` steps and, whatever happens, at the end.
    public func train(_ batches: inout Batches.Cursor, steps: Int, lr: Double? = nil, seed: UInt64 = 0, saveEvery: Int = 10,
                      schedule: String? = nil, totalSteps: Int64? = nil, onStep: (StepRecord) -> Bool = { _ in true }) throws {
        let sched = schedule ?? Hyper.defaultSchedule(manifest)
        let peak = lr ?? manifest.learningRate
        let total = totalSteps ?? step + Int64(steps)
        var saved = step
        defer { if step != saved { try? save() } }
        for _ in 0..<steps {
            let rec = try trainStep(batches.next(), lr: try Hyper.scheduled(sched, step + 1, total, peak), seed: seed)
            if saveEvery > 0 && step % Int64(saveEvery) == 0 { try save(); saved = step }
            if !onStep(rec) { break }
        }
        if step != saved { try save(); saved = step }
    }

    /// Accuracy and mean cross-entropy of the current state on `rows`, through the inference program.
    public func evaluate(_ rows: Batches) throws -> Evaluation {
        let prog = try program("infer")
        let b = manifest.inferBatch
        var hits = 0, nll = 0.0
        for start in stride(from: 0, to: rows.rows, by: b) {
            let batch = rows.batch((0..<b).map { (start + $0) % rows.rows })
            var feeds = state
            batch.forEach { feeds[$0.key] = $0.value }
            let logits = try prog.run(try checkFeeds(prog.spec, feeds))[0]
            let classes = Int(logits.shape[1]), z = logits.floats(), labels = batch[Names.labels]!.longs()
            for r in 0..<min(b, rows.rows - start) {
                let row = (0..<classes).map { Double(z[r * classes + $0]) }
                let mx = row.max()!
                let logSum = mx + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - mx) })
                let y = Int(labels[r])
                if row.firstIndex(of: mx) == y { hits += 1 }
                nll += logSum - row[y]
            }
        }
        return Evaluation(accuracy: Double(hits) / Double(rows.rows), loss: nll / Double(rows.rows), examples: rows.rows)
    }
}
