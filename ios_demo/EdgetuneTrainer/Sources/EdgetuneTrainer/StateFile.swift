import CryptoKit
import Foundation

/// State files (docs/artifact-contract.md, section 5; StateFile.kt): safetensors with one tensor per
/// state input and metadata `artifact_id`, `step`, `sha256`; checked alike on load and before every
/// save, written atomically.
public enum StateFile {
    /// sha256 over the tensors in the order of their names' UTF-8 bytes: name, 0, dtype, 0, shape, 0, bytes.
    public static func checksum(_ tensors: [String: Tensor]) -> String {
        var h = SHA256()
        for name in tensors.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            let t = tensors[name]!
            h.update(data: Data(name.utf8) + [0] + Data(t.dtype.safetensorsName.utf8) + [0]
                     + Data(t.shape.map(String.init).joined(separator: ",").utf8) + [0])
            h.update(data: t.bytes)
        }
        return Manifest.hex(h.finalize())
    }

    /// Parse and check the bytes of a state file -> (tensors by input name, steps taken).
    public static func check(_ raw: Data, _ m: Manifest, _ where_: String, initial: Bool = false) throws -> ([String: Tensor], Int64) {
        let contents: Safetensors.Contents
        do { contents = try Safetensors.decode(raw) } catch {
            throw EdgetuneError.state("state file \(where_) is corrupt or not safetensors (\(error)); restore it from a backup or start again from the artifact's state.safetensors")
        }
        let owner = contents.metadata["artifact_id"]
        if initial ? owner != nil : owner != m.artifactId {
            throw EdgetuneError.state("state file \(where_) belongs to artifact \(shorten(owner)), not to this one ('\(m.artifactId)'); use the state written for this artifact")
        }
        let specs = m.stateSpecs()
        let extra = Set(contents.tensors.keys).subtracting(specs.map(\.name))
        if !extra.isEmpty { throw EdgetuneError.state("state file \(where_) holds tensors the manifest does not list: \(shorten(extra.sorted()))") }
        for s in specs {
            guard let t = contents.tensors[s.name] else { throw EdgetuneError.state("state file \(where_) lacks tensor \(shorten(s.name)); it does not match the manifest") }
            if t.shape != s.shape || t.dtype != s.dtype {
                throw EdgetuneError.state("state tensor \(shorten(s.name)) in \(where_) is \(t.dtype.rawValue)\(t.shape), the manifest says \(s.dtype.rawValue)\(s.shape)")
            }
            if !t.isFinite { throw EdgetuneError.state("state tensor \(shorten(s.name)) in \(where_) holds NaN/Inf; restore an earlier state") }
        }
        guard let step = contents.metadata["step"], !step.isEmpty, step.count <= 16, step.allSatisfy({ $0.isASCII && $0.isNumber }),
              let n = Int64(step), n <= Manifest.maxWhole else {
            throw EdgetuneError.state("state file \(where_) has step counter \(shorten(contents.metadata["step"])), not a whole number of steps; restore it from a backup")
        }
        guard contents.metadata["sha256"] == checksum(contents.tensors) else {
            throw EdgetuneError.state("state file \(where_) does not match its checksum: its tensors were changed or damaged after it was written; restore it from a backup or start again from state.safetensors")
        }
        return (contents.tensors, n)
    }

    public static func load(_ file: URL, _ m: Manifest, initial: Bool = false) throws -> ([String: Tensor], Int64) {
        guard let size = (try? FileManager.default.attributesOfItem(atPath: file.path))?[.size] as? Int64 else {
            throw EdgetuneError.state("state file \(file.path) does not exist; start from the artifact's state.safetensors or pass the path of a state written by an earlier run")
        }
        let limit = Safetensors.maxHeaderBytes + 8 + m.stateSpecs().reduce(0) { $0 + Tensor.count($1.shape) * Int64($1.dtype.size) }
        if size > limit { throw EdgetuneError.state("state file \(file.path) is \(size) bytes, more than this artifact's state can take (\(limit)); it is not a state of this artifact") }
        return try check(try Data(contentsOf: file), m, file.path, initial: initial)
    }

    /// The bytes of a state file, checked exactly as a load would check them.
    public static func encode(_ tensors: [String: Tensor], _ m: Manifest, step: Int64) throws -> Data {
        let raw = Safetensors.encode(tensors, ["step": String(step), "sha256": checksum(tensors), "artifact_id": m.artifactId])
        _ = try check(raw, m, "about to be written")
        return raw
    }

    public static func save(_ file: URL, _ tensors: [String: Tensor], _ m: Manifest, step: Int64) throws {
        try writeAtomic(file, try encode(tensors, m, step: step))
    }

    /// Write `data` to a temporary file beside `file`, fsync it, rename it over `file`, fsync the directory.
    public static func writeAtomic(_ file: URL, _ data: Data) throws {
        let dir = file.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tmp = dir.appendingPathComponent(".\(file.lastPathComponent).\(UUID().uuidString).tmp")
        defer { try? FileManager.default.removeItem(at: tmp) }
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else { throw EdgetuneError.state("cannot write in \(dir.path)") }
        let h = try FileHandle(forWritingTo: tmp)
        try h.write(contentsOf: data)
        try h.synchronize()
        try h.close()
        guard rename(tmp.path, file.path) == 0 else { throw EdgetuneError.state("cannot replace \(file.path) (errno \(errno))") }
        let fd = open(dir.path, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    /// Remove the temporaries a killed writer of `file` left; call under the lock.
    public static func removeStaleTemporaries(_ file: URL) {
        let dir = file.deletingLastPathComponent()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        where name.hasPrefix(".\(file.lastPathComponent).") && name.hasSuffix(".tmp") {
            try? FileManager.default.removeItem(at: dir.appendingPathComponent(name))
        }
    }

    /// An exclusive `flock` on `<state>.lock` (the Python runner's kind of lock); returns its descriptor.
    public static func lock(_ file: URL, timeout: TimeInterval) throws -> Int32 {
        let path = file.path + ".lock"
        let fd = open(path, O_CREAT | O_WRONLY, 0o644)
        guard fd >= 0 else { throw EdgetuneError.config("cannot open \(path)") }
        let deadline = Date().addingTimeInterval(timeout)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if Date() > deadline { close(fd); throw EdgetuneError.config("another run holds \(path) after \(Int(timeout)) s; stop it or pass another state path") }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return fd
    }

    public static func unlock(_ fd: Int32) { flock(fd, LOCK_UN); close(fd) }
}
