import EdgetuneTrainer
import ExecuTorch
import Foundation

/// ExecuTorch's Swift API as the trainer's Runtime: inputs by position in the manifest's order
/// (ExecuTorchAndroid.kt's twin); the method's metadata is compared with the manifest before the first step.
public final class ExecuTorchSwift: Runtime {
    public let name = "executorch"

    public init() {}

    public func open(_ file: URL, _ spec: ProgramSpec, threads: Int?) throws -> Program {
        let module = Module(filePath: file.path)
        do { try module.load("forward") } catch { throw EdgetuneError.artifact("ExecuTorch cannot load \(file.path): \(error)") }
        let meta = try module.methodMetadata("forward")
        let dtypes: [DataType: DType] = [.float: .float32, .long: .int64, .int: .int32, .bool: .bool]
        try checkSignature(file, spec, "inputs", meta.inputTensorMetadata.keys.sorted().map { i in
            let t = meta.inputTensorMetadata[i]!
            return Signature(name: nil, dtype: dtypes[t.dataType], shape: t.shape.map { Int64(truncating: $0) })
        })
        return EtProgram(module: module, spec: spec)
    }

    struct EtProgram: Program {
        let module: Module
        let spec: ProgramSpec

        func run(_ inputs: [Tensor]) throws -> [Tensor] {
            let values: [Value] = inputs.map { t in
                let shape = t.shape.map { Int($0) }
                return t.dtype == .float32 ? Value(ExecuTorch.Tensor<Float>(t.floats(), shape: shape))
                                           : Value(ExecuTorch.Tensor<Int64>(t.longs(), shape: shape))
            }
            let outs = try module.forward(values)
            guard outs.count == spec.outputs.count else { throw EdgetuneError.artifact("ExecuTorch returned \(outs.count) outputs, the manifest lists \(spec.outputs.count); re-export") }
            return try zip(spec.outputs, outs).map { o, v in
                switch o.dtype {
                case .float32:
                    guard let t = v.tensor(Float.self) else { throw EdgetuneError.artifact("\(o.name) is not a float32 tensor") }
                    return .floats(t.shape.map(Int64.init), t.scalars())
                default:
                    guard let t = v.tensor(Int64.self) else { throw EdgetuneError.artifact("\(o.name) is not an int64 tensor") }
                    return .longs(t.shape.map(Int64.init), t.scalars())
                }
            }
        }
    }
}
