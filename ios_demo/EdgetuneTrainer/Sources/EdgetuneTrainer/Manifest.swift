import CryptoKit
import Foundation

/// One input or output of a program (docs/artifact-contract.md, section 2).
public struct TensorSpec: Equatable {
    public let name: String
    public let shape: [Int64]
    public let dtype: DType
    public let role: String
    public let feeds: String?
}

/// A program (`step`, `step_s<N>`, `infer`) with its file per runtime.
public struct ProgramSpec {
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]
    public let files: [String: String]
    public let lowering: [String: [String: Any]]

    public func ofRole(_ role: String, outputs: Bool = false) -> [TensorSpec] {
        (outputs ? self.outputs : inputs).filter { $0.role == role }
    }

    public static let onnxWeightsKey = "external_data"
    public static let onnxWeightsSuffix = ".onnx.data"

    /// The file of the ONNX program's frozen weights (ONNX external data), or nil when they are inside the .onnx file.
    public var onnxWeights: String? { files["onnx"] == nil ? nil : lowering["onnx"]?[ProgramSpec.onnxWeightsKey] as? String }

    /// Every file this program reads on `runtime` (all runtimes when nil): program files and the ONNX weights file.
    public func dataFiles(_ runtime: String? = nil) -> [String] {
        files.filter { runtime == nil || $0.key == runtime }.map(\.value)
            + ((runtime == nil || runtime == "onnx") ? [onnxWeights].compactMap { $0 } : [])
    }

    /// ONNX Runtime session config entries the exporter chose for this program.
    public func onnxSessionConfig() throws -> [String: String] {
        guard let c = lowering["onnx"]?["session_config"] else { return [:] }
        guard let m = c as? [String: String] else {
            throw EdgetuneError.artifact("the manifest's onnx session_config is not a map of strings; re-export the artifact")
        }
        return m
    }
}

/// An artifact's manifest.json, read and checked by every rule of the contract (Manifest.kt).
public struct Manifest {
    public let artifactId: String
    public let task: String
    public let batchSize: Int
    public let seqLen: Int
    public let programs: [String: ProgramSpec]
    public let optimizer: [String: Any]
    public let hashes: [String: String]
    public let labels: [String]?
    public let tokenizer: String?
    public let seqBuckets: [Int]

    public static let stateFile = "state.safetensors"
    static let runtimes = ["onnx": ".onnx", "executorch": ".pte", "coreml": ".mlpackage"]
    /// Runtimes whose program is a package directory, hashed as a tree (`treeSha256`).
    static let packageRuntimes: Set<String> = ["coreml"]
    static let version: Int64 = 2, maxPackageFiles = 1024
    static let tasks = ["sequence_classification", "causal_lm"]
    static let optimizers = ["adamw", "sgd", "zo"]
    static let roles = ["state", "batch", "hyper", "noise", "metric"]
    static let fields: Set<String> = ["format", "version", "artifact_id", "task", "batch_size", "seq_len", "programs",
                                      "seq_buckets", "optimizer", "hashes", "labels", "tokenizer", "model", "adapters"]
    static let maxBatch: Int64 = 4096, maxSeqLen: Int64 = 65536, maxBatchTokens: Int64 = 1 << 20
    static let maxElements = Int64(Int32.max), maxWhole: Int64 = 1 << 53, maxName = 1024
    static let float32Max = 3.4028234663852886e38

    public var step: ProgramSpec {
        get throws {
            guard let s = programs["step"] else { throw EdgetuneError.artifact("the artifact has no step program: it is inference-only") }
            return s
        }
    }

    /// The tensors of a state file: the step's state inputs.
    public func stateSpecs() -> [TensorSpec] { programs["step"]?.ofRole("state") ?? [] }

    /// Rows per call of the inference program (its own input_ids batch).
    public var inferBatch: Int {
        programs["infer"]?.inputs.first { $0.name == Names.inputIds }?.shape.first.map { Int($0) } ?? batchSize
    }

    /// (program name, its sequence length) of the shortest step that holds `length` tokens.
    public func stepProgramFor(_ length: Int) -> (String, Int) {
        let n = seqBuckets.filter { $0 >= length }.min() ?? seqLen
        return (n != seqLen ? "step_s\(n)" : "step", n)
    }

    public var learningRate: Double { Manifest.number(optimizer["lr"]) ?? 0 }

    /// Read `dir`/manifest.json and check it: the schema, every rule, its digest (artifact_id), and
    /// the sha256 of every file `runtime` will read.
    public static func load(_ dir: URL, runtime: String) throws -> Manifest {
        let path = dir.appendingPathComponent("manifest.json")
        guard let raw = try? Data(contentsOf: path) else {
            throw EdgetuneError.artifact("\(dir.path) has no manifest.json: is it an edgetune artifact directory? Create one with `edgetune export`.")
        }
        guard runtimes[runtime] != nil else { throw EdgetuneError.artifact("runtime \(shorten(runtime)) is unknown; choose one of \(runtimes.keys.sorted())") }
        guard raw.count <= 16 << 20 else { throw EdgetuneError.artifact("\(path.path) is \(raw.count) bytes, more than any manifest; re-export the artifact") }
        guard let text = String(data: raw, encoding: .utf8) else { throw EdgetuneError.artifact("\(path.path) is not UTF-8 text; re-export the artifact") }
        let m = try parse(text, path.path)
        let found = problems(m)
        if let first = found.first {
            throw EdgetuneError.artifact("\(path.path): \(first)\(found.count > 1 ? " (and \(found.count - 1) more)" : ""); re-export the artifact")
        }
        guard digest(raw, m.artifactId) == m.artifactId else {
            throw EdgetuneError.artifact("\(path.path) was changed after export (its content does not match its artifact_id \(m.artifactId)); re-export the artifact instead of editing its manifest")
        }
        guard m.programs.values.contains(where: { $0.files[runtime] != nil }) else {
            throw EdgetuneError.artifact("\(dir.path) has no \(runtime) program; re-export with --format \(runtime)")
        }
        var needed = [stateFile] + (m.tokenizer.map { [$0] } ?? [])
        for p in m.programs.values { for f in p.dataFiles(runtime) where !needed.contains(f) { needed.append(f) } }
        let package = packageRuntimes.contains(runtime)
        for name in needed {
            let f = dir.appendingPathComponent(name)
            var isDir: ObjCBool = false
            let isPackage = package && name != stateFile && name != m.tokenizer
            guard FileManager.default.fileExists(atPath: f.path, isDirectory: &isDir), isDir.boolValue == isPackage else {
                throw EdgetuneError.artifact("\(f.path) is listed in the manifest but missing; copy the whole artifact directory")
            }
            guard try (isPackage ? treeSha256(f) : sha256(f)) == m.hashes[name] else {
                throw EdgetuneError.artifact("\(f.path) does not match manifest.json (sha256 differs): the manifest belongs to another artifact or the file was changed; re-export or copy the artifact directory as a whole")
            }
        }
        return m
    }

    static func hex<D: Sequence>(_ d: D) -> String where D.Element == UInt8 { d.map { String(format: "%02x", $0) }.joined() }

    static func sha256(_ file: URL) throws -> String {
        let h = try FileHandle(forReadingFrom: file)
        defer { try? h.close() }
        var hasher = SHA256()
        while let chunk = try h.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hex(hasher.finalize())
    }

    /// A package directory's hash (contract section 2): sha256 of "<file sha256>  <relative path>\n"
    /// for each regular file, ordered by the paths' UTF-8 bytes. Links and special files are refused.
    static func treeSha256(_ dir: URL) throws -> String {
        let keys: [URLResourceKey] = [.isRegularFileKey, .isDirectoryKey, .isSymbolicLinkKey]
        guard let walk = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: keys) else {
            throw EdgetuneError.artifact("\(dir.path) cannot be read; copy the whole artifact directory")
        }
        let base = dir.standardizedFileURL.resolvingSymlinksInPath().path + "/"
        var files: [(Data, URL)] = []
        for case let url as URL in walk {
            let v = try url.resourceValues(forKeys: Set(keys))
            if v.isSymbolicLink == true || (v.isRegularFile != true && v.isDirectory != true) {
                throw EdgetuneError.artifact("\(url.path) is a link or special file, which no program package holds; copy the artifact directory as a whole")
            }
            if v.isRegularFile == true {
                let full = url.standardizedFileURL.resolvingSymlinksInPath().path
                files.append((Data(String(full.dropFirst(base.count)).utf8), url))
            }
            if files.count > maxPackageFiles {
                throw EdgetuneError.artifact("\(dir.path) holds more than \(maxPackageFiles) files, more than any program package; re-export the artifact")
            }
        }
        files.sort { $0.0.lexicographicallyPrecedes($1.0) }
        var hasher = SHA256()
        for (rel, url) in files {
            hasher.update(data: Data(try sha256(url).utf8) + Data("  ".utf8) + rel + Data("\n".utf8))
        }
        return hex(hasher.finalize())
    }

    /// The id manifest bytes `raw` must carry: sha256 of `raw` with its one id field zeroed, first 16 hex digits.
    static func digest(_ raw: Data, _ artifactId: String) -> String? {
        let key = Data("\"artifact_id\": \"\(artifactId)\"".utf8)
        guard let first = raw.range(of: key), raw.range(of: key, in: (first.lowerBound + 1)..<raw.endIndex) == nil else { return nil }
        var zeroed = raw
        zeroed.replaceSubrange(first, with: Data("\"artifact_id\": \"0000000000000000\"".utf8))
        return String(hex(SHA256.hash(data: zeroed)).prefix(16))
    }

    // ---- schema: typed reads of untrusted JSON ----

    static func bad(_ field: String, _ what: String, _ x: Any?) -> EdgetuneError { .artifact("\(field) must be \(what), not \(shorten(x))") }

    static func whole(_ x: Any?, _ field: String, _ lo: Int64 = 0, _ hi: Int64 = maxWhole) throws -> Int64 {
        guard let v = x as? Int64, v >= lo, v <= hi else { throw bad(field, "a whole number in [\(lo), \(hi)]", x) }
        return v
    }

    static func text(_ x: Any?, _ field: String, _ limit: Int = maxName) throws -> String {
        guard let s = x as? String, !s.isEmpty, s.unicodeScalars.count <= limit else { throw bad(field, "a non-empty string of at most \(limit) characters", x) }
        return s
    }

    static func fileName(_ x: Any?, _ field: String) throws -> String {
        let n = try text(x, field)
        if n.contains("/") || n.contains("\\") || n.hasPrefix(".") || n.contains("\u{0}") { throw bad(field, "a plain file name inside the artifact", n) }
        return n
    }

    static func mapping(_ x: Any?, _ field: String) throws -> [String: Any] {
        guard let m = x as? [String: Any] else { throw bad(field, "a JSON object", x) }
        return m
    }

    static func listing(_ x: Any?, _ field: String, _ limit: Int = 1 << 20) throws -> [Any] {
        guard let l = x as? [Any], l.count <= limit else { throw bad(field, "a JSON list of at most \(limit) entries", x) }
        return l
    }

    static func tensorSpec(_ x: Any?, _ where_: String) throws -> TensorSpec {
        let d = try mapping(x, where_)
        let name = try text(d["name"], "\(where_) name")
        let w = "tensor \(shorten(name))"
        let shape = try listing(d["shape"], "\(w) shape", 8).map { try whole($0, "\(w) shape", 0, maxElements) }
        let n = shape.reduce(1.0) { $0 * Double($1) }
        if n > Double(maxElements) { throw EdgetuneError.artifact("\(w) has \(Int64(n)) elements, more than \(maxElements)") }
        let unknown = Set(d.keys).subtracting(["name", "shape", "dtype", "role", "feeds"])
        if !unknown.isEmpty { throw EdgetuneError.artifact("\(w) has unknown keys \(shorten(unknown.sorted()))") }
        let dtypeName = try text(d["dtype"], "\(w) dtype", 16)
        let role = try text(d["role"], "\(w) role", 16)
        guard let dtype = DType(rawValue: dtypeName) else { throw EdgetuneError.artifact("tensor \(shorten(name)): dtype \(shorten(dtypeName)) is not one of \(DType.allCases.map(\.rawValue))") }
        guard roles.contains(role) else { throw EdgetuneError.artifact("tensor \(shorten(name)): role \(shorten(role)) is not one of \(roles)") }
        let feeds = d["feeds"].flatMap { $0 is NSNull ? nil : $0 }
        return TensorSpec(name: name, shape: shape, dtype: dtype, role: role, feeds: try feeds.map { try text($0, "\(w) feeds") })
    }

    static func present(_ x: Any?) -> Any? { x is NSNull ? nil : x }

    /// The manifest's JSON -> Manifest, with every value's type and bounds checked.
    public static func parse(_ json: String, _ where_: String = "manifest.json") throws -> Manifest {
        let d: Any
        do { d = try Json.parse(json) } catch { throw EdgetuneError.artifact("\(where_) is not valid JSON (\(error)); re-export the artifact") }
        guard let root = d as? [String: Any], root["format"] as? String == "edgetune.artifact" else {
            throw EdgetuneError.artifact("\(where_) is not an edgetune manifest")
        }
        guard root["version"] as? Int64 == version else {
            throw EdgetuneError.artifact("\(where_) has manifest version \(shorten(root["version"])); this trainer reads version \(version): re-export the artifact")
        }
        do {
            let unknown = Set(root.keys).subtracting(fields)
            if !unknown.isEmpty { throw EdgetuneError.artifact("unknown keys \(shorten(unknown.sorted()))") }
            for k in ["artifact_id", "task", "batch_size", "seq_len", "programs", "hashes"] where root[k] == nil {
                throw EdgetuneError.artifact("'\(k)' is missing")
            }
            // the task first: a tensors artifact (seq_len 0) trains on the Python runner, not here
            guard let task = root["task"] as? String, tasks.contains(task) else {
                throw EdgetuneError.artifact("task \(shorten(root["task"])) is not one of \(tasks), the tasks this trainer implements")
            }
            var programs: [String: ProgramSpec] = [:]
            for (name, v) in try mapping(root["programs"], "programs") {
                _ = try text(name, "program name", 32)
                let p = try mapping(v, "program '\(name)'")
                var files: [String: String] = [:]
                for (rt, f) in try mapping(present(p["files"]) ?? [String: Any](), "program '\(name)' files") {
                    files[try text(rt, "program '\(name)' runtime", 32)] = try fileName(f, "program '\(name)' file")
                }
                var lowering: [String: [String: Any]] = [:]
                for (rt, x) in try mapping(present(p["lowering"]) ?? [String: Any](), "program '\(name)' lowering") {
                    lowering[rt] = try mapping(x, "program '\(name)' lowering.\(rt)")
                }
                if let w = lowering["onnx"]?[ProgramSpec.onnxWeightsKey] {
                    _ = try fileName(w, "program '\(name)' lowering.onnx.\(ProgramSpec.onnxWeightsKey)")
                }
                let ins = try listing(p["inputs"], "program '\(name)' inputs", 1 << 16).map { try tensorSpec($0, "program '\(name)' inputs") }
                let outs = try listing(p["outputs"], "program '\(name)' outputs", 1 << 16).map { try tensorSpec($0, "program '\(name)' outputs") }
                programs[name] = ProgramSpec(inputs: ins, outputs: outs, files: files, lowering: lowering)
            }
            let labels = try present(root["labels"]).map { try listing($0, "labels", 1 << 16).map { try text($0, "label") } }
            var hashes: [String: String] = [:]
            for (f, h) in try mapping(root["hashes"], "hashes") {
                guard let s = h as? String, s.count == 64, s.allSatisfy({ "0123456789abcdef".contains($0) }) else {
                    throw bad("hashes[\(shorten(f))]", "a sha256 in 64 lowercase hex digits", h)
                }
                hashes[try fileName(f, "hashes key")] = s
            }
            _ = try mapping(present(root["model"]) ?? [String: Any](), "model")
            _ = try mapping(present(root["adapters"]) ?? [String: Any](), "adapters")
            return Manifest(
                artifactId: try text(root["artifact_id"], "artifact_id", 16), task: try text(root["task"], "task", 64),
                batchSize: Int(try whole(root["batch_size"], "batch_size", 1, maxBatch)),
                seqLen: Int(try whole(root["seq_len"], "seq_len", 2, maxSeqLen)),
                programs: programs, optimizer: try mapping(present(root["optimizer"]) ?? [String: Any](), "optimizer"),
                hashes: hashes, labels: labels, tokenizer: try present(root["tokenizer"]).map { try fileName($0, "tokenizer") },
                seqBuckets: try listing(present(root["seq_buckets"]) ?? [Any](), "seq_buckets", 64).map { Int(try whole($0, "seq_buckets", 2, maxSeqLen)) })
        } catch let e as EdgetuneError {
            throw EdgetuneError.artifact("\(where_) is missing or has a malformed field: \(e); re-export the artifact")
        }
    }

    /// Specs by name (the first of a repeated name; repeats are reported by `programProblems`).
    static func byName(_ specs: [TensorSpec]) -> [String: TensorSpec] {
        Dictionary(specs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    static func batchShapeOK(_ b: Int64, _ s: Int64) -> Bool { b >= 1 && b <= maxBatch && s >= 2 && s <= maxSeqLen && b * s <= maxBatchTokens }

    /// Every broken rule of the contract (empty: the manifest is valid); Manifest.kt's `problems`.
    public static func problems(_ m: Manifest) -> [String] {
        var out: [String] = []
        if !tasks.contains(m.task) { out.append("task '\(m.task)' is not one of \(tasks)") }
        if !batchShapeOK(Int64(m.batchSize), Int64(m.seqLen)) {
            out.append("batch_size=\(m.batchSize) must lie in [1, \(maxBatch)], seq_len=\(m.seqLen) in [2, \(maxSeqLen)], their product at most \(maxBatchTokens)")
        }
        if m.artifactId.count != 16 || !m.artifactId.allSatisfy({ "0123456789abcdef".contains($0) }) { out.append("artifact_id \(shorten(m.artifactId)) must be 16 lowercase hex digits") }
        var files = Set(m.programs.values.flatMap { $0.dataFiles() })
        files.insert(stateFile)
        if let t = m.tokenizer { files.insert(t) }
        if Set(m.hashes.keys) != files { out.append("hashes must list exactly the artifact's files \(files.sorted()), not \(m.hashes.keys.sorted())") }
        let trains = m.programs["step"] != nil
        if trains { out += optimizerProblems(m.optimizer) }
        if m.programs["infer"] == nil { out.append("there is no infer program") }
        var expected: Set<String> = ["infer"]
        if trains { expected.insert("step"); m.seqBuckets.forEach { expected.insert("step_s\($0)") } }
        if Set(m.programs.keys) != expected { out.append("programs \(m.programs.keys.sorted()) do not match seq_buckets \(m.seqBuckets) (expected \(expected.sorted()))") }
        if m.seqBuckets.contains(where: { $0 < 2 || $0 >= m.seqLen }) { out.append("seq_buckets \(m.seqBuckets) must lie in [2, seq_len=\(m.seqLen))") }
        for (name, prog) in m.programs where expected.contains(name) {
            let seq = (name == "step" || name == "infer") ? m.seqLen : Int(name.dropFirst(6)) ?? 0
            out += programProblems(m, name, prog, seq).map { "program '\(name)': \($0)" }
        }
        if trains, let infer = m.programs["infer"], let step = m.programs["step"] {
            let state = byName(step.ofRole("state"))
            for t in infer.ofRole("state") where state[t.name] != t {
                out.append("infer input \(shorten(t.name)) is not a state input of the step with the same shape and dtype")
            }
            for (name, prog) in m.programs where name.hasPrefix("step_s") {
                if byName(prog.ofRole("state")) != state { out.append("program '\(name)' has other state inputs than 'step'") }
            }
        }
        if let labels = m.labels {
            let logits = m.programs["infer"]?.outputs.first?.shape.last
            if m.task != "sequence_classification" { out.append("labels are for sequence classification") }
            else if Set(labels).count != labels.count { out.append("labels \(shorten(labels)) must be distinct strings") }
            else if let n = logits, Int64(labels.count) != n { out.append("\(labels.count) labels but the logits have \(n) classes") }
        }
        return out
    }

    static func number(_ x: Any?) -> Double? {
        if let v = x as? Int64 { return Double(v) }
        if let v = x as? Double { return v }
        return nil
    }

    static func optimizerProblems(_ opt: [String: Any]) -> [String] {
        var out: [String] = []
        if !optimizers.contains(opt["name"] as? String ?? "") { out.append("optimizer name \(shorten(opt["name"])) must be one of \(optimizers)") }
        for (k, v) in opt {
            switch k {
            case "lr", "eps":
                if let d = number(v), d.isFinite, d > 0, d <= float32Max {} else { out.append("optimizer \(k) must be a positive finite float32 number, not \(shorten(v))") }
            case "nu", "rank":
                if let n = v as? Int64, n >= 1, n <= 1 << 20 {} else { out.append("optimizer \(k) must be a whole number in [1, \(1 << 20)], not \(shorten(v))") }
            case "method":
                if !(v is String) { out.append("optimizer method must be a string, not \(shorten(v))") }
            case "name": break
            default:
                if v is Bool { break }
                if let d = number(v), d.isFinite, abs(d) <= float32Max {} else { out.append("optimizer \(shorten(k)) must be a finite float32 number, not \(shorten(v))") }
            }
        }
        if opt["lr"] == nil { out.append("the optimizer entry has no default lr") }
        return out
    }

    static func programProblems(_ m: Manifest, _ name: String, _ prog: ProgramSpec, _ seq: Int) -> [String] {
        var out: [String] = []
        for (kind, specs) in [("input", prog.inputs), ("output", prog.outputs)] {
            let names = specs.map(\.name)
            if Set(names).count != names.count { out.append("\(kind) names repeat") }
        }
        for (rt, f) in prog.files {
            if let suffix = runtimes[rt], f.hasSuffix(suffix), !f.contains("/"), !f.hasPrefix(".") { continue }
            out.append("file \(shorten(f)) for runtime \(shorten(rt)) is not a \(runtimes.keys.sorted()) program file in the artifact")
        }
        if let w = prog.onnxWeights, !w.hasSuffix(ProgramSpec.onnxWeightsSuffix) {
            out.append("lowering.onnx.\(ProgramSpec.onnxWeightsKey) \(shorten(w)) must name a \(ProgramSpec.onnxWeightsSuffix) file of an ONNX program")
        }
        var b = Int64(m.batchSize)
        if name == "infer" {
            b = Int64(m.inferBatch)
            if !batchShapeOK(b, Int64(seq)) { out.append("the inference batch \(b) must lie in [1, \(maxBatch)], times seq_len at most \(maxBatchTokens)") }
        }
        let batch = byName(prog.ofRole("batch"))
        var want: [String: [Int64]] = [Names.inputIds: [b, Int64(seq)], Names.attentionMask: [b, Int64(seq)]]
        if m.task == "sequence_classification" && name != "infer" { want[Names.labels] = [b] }
        for (n, shape) in want.sorted(by: { $0.key < $1.key }) {
            if let t = batch[n], t.shape == shape, t.dtype == .int64 { continue }
            out.append("batch input '\(n)' must be int64\(shape)")
        }
        if !Set(batch.keys).subtracting(want.keys).isEmpty { out.append("unknown batch inputs \(Set(batch.keys).subtracting(want.keys).sorted())") }
        for t in prog.ofRole("hyper") where !Names.hyperInputs.contains(t.name) || !t.shape.isEmpty || t.dtype != .float32 {
            out.append("hyper input \(shorten(t.name)) must be a float32 scalar named one of \(Names.hyperInputs)")
        }
        for t in prog.ofRole("noise") {
            let prefixed = [Names.noiseU, Names.noiseV, Names.noiseZ].contains { t.name.hasPrefix($0) }
            if !prefixed || t.dtype != .float32 { out.append("noise input \(shorten(t.name)) must be float32 and named noise.U./noise.V./noise.z.<tensor>") }
        }
        if prog.inputs.contains(where: { $0.feeds != nil }) { out.append("inputs may not name a 'feeds' target") }
        if name == "infer" {
            if prog.outputs.map(\.name) != [Names.logits] || prog.outputs.first?.dtype != .float32 { out.append("outputs must be one float32 'logits'") }
            if !prog.ofRole("hyper").isEmpty || !prog.ofRole("noise").isEmpty { out.append("an inference program takes no hyper or noise inputs") }
            return out
        }
        let loss = prog.outputs.filter { $0.name == Names.loss }
        if loss.count != 1 || loss[0].role != "metric" || !loss[0].shape.isEmpty || loss[0].dtype != .float32 { out.append("a step needs one float32 scalar metric output 'loss'") }
        let stateIn = byName(prog.ofRole("state"))
        var fed: [String: String] = [:]
        for t in prog.outputs {
            if t.role == "state" {
                guard let target = t.feeds, let src = stateIn[target] else { out.append("state output \(shorten(t.name)) feeds \(shorten(t.feeds)), which is not a state input"); continue }
                if let other = fed[target] { out.append("state outputs \(shorten(other)) and \(shorten(t.name)) both feed \(shorten(target))"); continue }
                if src.shape != t.shape || src.dtype != t.dtype || t.name != Names.next(target) {
                    out.append("state output \(shorten(t.name)) must be named \(shorten(Names.next(target))) with the shape and dtype of \(shorten(target))"); continue
                }
                fed[target] = t.name
            } else if t.feeds != nil {
                out.append("output \(shorten(t.name)) has role '\(t.role)' but feeds \(shorten(t.feeds)): only state outputs feed inputs")
            }
        }
        let unfed = Set(stateIn.keys).subtracting(fed.keys)
        if !unfed.isEmpty { out.append("state inputs \(unfed.sorted().prefix(3)) are fed by no output") }
        let hyper = Set(prog.ofRole("hyper").map(\.name))
        if hyper.contains(Names.eps) && m.optimizer["eps"] == nil { out.append("the step takes 'eps' but the optimizer entry has no eps") }
        if hyper.contains(Names.resample) && m.optimizer["nu"] == nil { out.append("the step resamples V but the optimizer entry has no nu") }
        return out
    }
}

/// Tensor names of the contract (Names.kt).
public enum Names {
    public static let noiseU = "noise.U.", noiseV = "noise.V.", noiseZ = "noise.z."
    public static let loss = "loss", logits = "logits"
    public static let lr = "lr", step = "step", eps = "eps", resample = "resample"
    public static let hyperInputs = [lr, step, eps, resample]
    public static let inputIds = "input_ids", attentionMask = "attention_mask", labels = "labels"
    public static func next(_ input: String) -> String { "next." + input }
}
