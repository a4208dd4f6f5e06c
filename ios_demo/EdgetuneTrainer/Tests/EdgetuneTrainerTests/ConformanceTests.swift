import EdgetuneRuntimes
@testable import EdgetuneTrainer
import XCTest

/// Replays a conformance kit through the Swift trainer (android_demo's ConformanceMain.kt, in XCTest):
///
///     edgetune conformance ARTIFACT KIT          # on the host, from the artifact
///     EDGETUNE_ARTIFACT=ARTIFACT EDGETUNE_KIT=KIT swift test
///
/// Tokenizer ids, the schedule, exact hyper and noise inputs, every loss and state tensor of eager
/// PyTorch's steps chained on the trainer's own outputs, resume, the rejected non-finite step, and a
/// state file that reads back. EDGETUNE_RUNTIME picks onnx (default), executorch or coreml (an artifact
/// exported with `--format coreml`: the Core ML programs' numbers are first checked here).
final class ConformanceTests: XCTestCase {
    var failures: [String] = []
    var checks = 0

    func check(_ what: String, _ problem: String?) {
        checks += 1
        if let p = problem { failures.append("\(what): \(p)") }
    }

    func testTheTrainerPassesTheKit() throws {
        let env = ProcessInfo.processInfo.environment
        guard let art = env["EDGETUNE_ARTIFACT"], let kitPath = env["EDGETUNE_KIT"] else {
            throw XCTSkip("set EDGETUNE_ARTIFACT and EDGETUNE_KIT (a kit written by `edgetune conformance`)")
        }
        let kitDir = URL(fileURLWithPath: kitPath)
        let kit = try Json.parse(String(contentsOf: kitDir.appendingPathComponent("kit.json"))) as! [String: Any]
        let tensors = try Safetensors.decode(Data(contentsOf: kitDir.appendingPathComponent("tensors.safetensors"))).tensors
        let runtime: Runtime
        switch env["EDGETUNE_RUNTIME"] ?? "onnx" {
        case "executorch": runtime = ExecuTorchSwift()
        case "coreml": runtime = CoreMLSwift()
        default: runtime = try OnnxRuntimeSwift()
        }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        let tr = try Trainer(URL(fileURLWithPath: art), runtime, statePath: tmp.appendingPathComponent("state.safetensors"))
        XCTAssertEqual(kit["artifact_id"] as? String, tr.manifest.artifactId)
        if let tok = kit["tokenizer"] as? [String: Any], let texts = tok["texts"] as? [String] {
            let t = try Tokenizer.load(URL(fileURLWithPath: art).appendingPathComponent(tr.manifest.tokenizer!), seqLen: Int(tok["seq_len"] as! Int64))
            let rows = texts.map { t.encodeOne($0) }
            check("tokenizer input_ids", rows.flatMap(\.0) == tensors[tok["input_ids"] as! String]!.longs() ? nil : "ids differ")
            check("tokenizer attention_mask", rows.flatMap(\.1) == tensors[tok["attention_mask"] as! String]!.longs() ? nil : "masks differ")
        }
        let sch = kit["schedule"] as! [String: Any]
        let total = sch["total"] as! Int64, peak = Manifest.number(sch["peak"])!
        let want = (sch["linear"] as! [Any]).map { Manifest.number($0)! }
        check("linear schedule", zip((1...total).map { Hyper.linear($0, total, peak) }, want).allSatisfy { abs($0 - $1) <= 1e-12 * abs($1) } ? nil : "differs")
        for case let c as [String: Any] in kit["cases"] as! [Any] { try replay(tr, c, kit, tensors, kitDir) }
        XCTAssertEqual(failures, [], "\(failures.count) of \(checks) checks failed")
        XCTAssertGreaterThan(checks, 20)
    }

    func prefixed(_ t: [String: Tensor], _ p: String) -> [String: Tensor] {
        Dictionary(t.filter { $0.key.hasPrefix(p) }.map { (String($0.key.dropFirst(p.count)), $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    func replay(_ tr: Trainer, _ c: [String: Any], _ kit: [String: Any], _ tensors: [String: Tensor], _ kitDir: URL) throws {
        let name = c["name"] as! String, seed = UInt64(kit["seed"] as! Int64)
        let tol = (kit["tolerance"] as! [String: Any]).mapValues { Manifest.number($0)! }
        if c["start"] as? String == "resume.safetensors" {
            (tr.state, tr.step) = try StateFile.load(kitDir.appendingPathComponent("resume.safetensors"), tr.manifest)
            check("\(name): step counter", tr.step == c["start_step"] as? Int64 ? nil : "\(tr.step)")
        } else {
            tr.state = prefixed(tensors, c["start"] as! String); tr.step = c["start_step"] as! Int64
        }
        for case let s as [String: Any] in c["steps"] as! [Any] {
            let at = "\(name) step \(s["step"]!)", lr = Manifest.number(s["lr"])!
            let wantH = prefixed(tensors, s["hyper"] as! String), gotH = try tr.hyper(lr: lr, seed: seed)
            check("\(at): hyper inputs", Set(gotH.keys) == Set(wantH.keys) ? nil : "\(gotH.keys.sorted()) != \(wantH.keys.sorted())")
            for (h, w) in wantH { check("\(at): \(h)", gotH[h]?.bytes == w.bytes ? nil : "differs (must match exactly)") }
            let stepBefore = tr.step
            let rec = try? tr.trainStep(prefixed(tensors, s["batch"] as! String), lr: lr, seed: seed)
            if s["accepted"] as? Bool != true {
                check("\(at): non-finite step rejected", rec == nil && tr.step == stepBefore ? nil : "the step was accepted")
                continue
            }
            guard let r = rec else { check("\(at): accepted", "rejected as non-finite"); return }
            check("\(at): loss", mismatch([Float(Manifest.number(s["loss"])!)], [r.loss], tol))
            for (n, w) in prefixed(tensors, s["state"] as! String) { check("\(at): \(n)", mismatch(w.floats(), tr.state[n]?.floats() ?? [], tol)) }
        }
        try tr.save()
        let (back, k) = try StateFile.load(tr.statePath, tr.manifest)
        check("\(name): state file round trip", k == tr.step && tr.state.allSatisfy { back[$0.key]?.bytes == $0.value.bytes } ? nil : "reads back differently")
    }

    /// |got - want| <= max(atol, atol_scale max|want|) + rtol |want|, and finite.
    func mismatch(_ want: [Float], _ got: [Float], _ tol: [String: Double]) -> String? {
        guard want.count == got.count else { return "size \(got.count), expected \(want.count)" }
        if got.contains(where: { !$0.isFinite }) { return "not finite" }
        let floor = max(tol["atol"]!, tol["atol_scale"]! * Double(want.map { abs($0) }.max() ?? 0))
        let bad = zip(want, got).contains { abs(Double($1) - Double($0)) > floor + tol["rtol"]! * abs(Double($0)) }
        return bad ? "max |diff| \(zip(want, got).map { abs(Double($1) - Double($0)) }.max() ?? 0)" : nil
    }
}
