import EdgetuneTrainer
import Foundation
import onnxruntime_objc

/// ONNX Runtime's Swift/Objective-C API as the trainer's Runtime: inputs by name (OnnxRuntimeAndroid.kt's twin).
/// All graph optimizations, the manifest's session config entries, intra-op threads as asked.
public final class OnnxRuntimeSwift: Runtime {
    public let name = "onnx"
    let env: ORTEnv

    public init() throws { env = try ORTEnv(loggingLevel: .warning) }

    public func open(_ file: URL, _ spec: ProgramSpec, threads: Int?) throws -> Program {
        let opts = try ORTSessionOptions()
        try opts.setGraphOptimizationLevel(.all)
        for (k, v) in try spec.onnxSessionConfig() { try opts.addConfigEntry(withKey: k, value: v) }
        if let t = threads { try opts.setIntraOpNumThreads(Int32(t)) }
        let session: ORTSession
        do { session = try ORTSession(env: env, modelPath: file.path, sessionOptions: opts) } catch {
            throw EdgetuneError.artifact("onnxruntime cannot load \(file.path): \(error)")
        }
        // this API reports names only; dtypes and shapes are checked by the runtime at the first run
        try checkSignature(file, spec, "inputs", try session.inputNames().map { Signature(name: $0, dtype: nil, shape: nil) })
        try checkSignature(file, spec, "outputs", try session.outputNames().map { Signature(name: $0, dtype: nil, shape: nil) })
        return OrtProgram(session: session, spec: spec)
    }

    struct OrtProgram: Program {
        let session: ORTSession
        let spec: ProgramSpec

        func run(_ inputs: [Tensor]) throws -> [Tensor] {
            var feeds: [String: ORTValue] = [:]
            for (s, t) in zip(spec.inputs, inputs) {
                feeds[s.name] = try ORTValue(tensorData: NSMutableData(data: t.bytes), elementType: t.dtype == .float32 ? .float : .int64,
                                             shape: t.shape.map { NSNumber(value: $0) })
            }
            let outs = try session.run(withInputs: feeds, outputNames: Set(spec.outputs.map(\.name)), runOptions: nil)
            return try spec.outputs.map { o in
                guard let v = outs[o.name] else { throw EdgetuneError.artifact("onnxruntime returned no \(o.name)") }
                let shape = try v.tensorTypeAndShapeInfo().shape.map(\.int64Value)
                return try Tensor(o.dtype, shape, try v.tensorData() as Data)
            }
        }
    }
}
