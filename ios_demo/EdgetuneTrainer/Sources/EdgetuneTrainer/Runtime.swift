import Foundation

/// One loaded program of an artifact (Runtime.kt): inputs in the manifest's input order, outputs in
/// its output order. ONNX Runtime takes inputs by name, ExecuTorch by position.
public protocol Program {
    var spec: ProgramSpec { get }
    func run(_ inputs: [Tensor]) throws -> [Tensor]
}

/// Opens an artifact's programs on one runtime (`onnx`, `executorch` or `coreml`).
public protocol Runtime {
    var name: String { get }
    /// Load `file`; refuse it when the runtime's description of its inputs and outputs differs from `spec`.
    func open(_ file: URL, _ spec: ProgramSpec, threads: Int?) throws -> Program
}

/// What a runtime reports of one input or output; nil where it keeps no name, dtype or dimension.
public struct Signature {
    public let name: String?, dtype: DType?, shape: [Int64?]?
    public init(name: String?, dtype: DType?, shape: [Int64?]?) { self.name = name; self.dtype = dtype; self.shape = shape }
}

/// Refuse a program whose `kind` ("inputs" or "outputs") differ from the manifest's.
public func checkSignature(_ file: URL, _ spec: ProgramSpec, _ kind: String, _ have: [Signature]) throws {
    let want = kind == "inputs" ? spec.inputs : spec.outputs
    guard have.count == want.count else {
        throw EdgetuneError.artifact("\(file.path) has \(have.count) \(kind), the manifest lists \(want.count): the manifest belongs to another artifact; re-export")
    }
    for (i, (t, s)) in zip(want, have).enumerated() {
        let sameShape = s.shape.map { $0.count == t.shape.count && zip($0, t.shape).allSatisfy { $0 == nil || $0 == $1 } } ?? true
        if (s.name != nil && s.name != t.name) || (s.dtype != nil && s.dtype != t.dtype) || !sameShape {
            throw EdgetuneError.artifact("\(file.path): \(kind.dropLast()) \(i) is \(shorten(s.name ?? "?")), the manifest says \(shorten(t.name)) \(t.dtype.rawValue)\(t.shape): the manifest belongs to another artifact or was edited; re-export")
        }
    }
}

/// Every input present with its dtype and shape, in the program's order.
func checkFeeds(_ spec: ProgramSpec, _ feeds: [String: Tensor]) throws -> [Tensor] {
    try spec.inputs.map { t in
        guard let a = feeds[t.name] else { throw EdgetuneError.data("input \(shorten(t.name)) (\(t.role)) is missing") }
        guard a.dtype == t.dtype, a.shape == t.shape else {
            throw EdgetuneError.data("input \(shorten(t.name)) is \(a.dtype.rawValue)\(a.shape), the program takes \(t.dtype.rawValue)\(t.shape)")
        }
        return a
    }
}
