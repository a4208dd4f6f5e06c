import CoreML
import EdgetuneTrainer
import Foundation

/// Core ML as the trainer's Runtime: features by the contract's mapped names (CoreMLFeatures).
/// The package is compiled on the device once per open; compute stays on the CPU by default,
/// where Core ML keeps the program's float32 (the GPU and Neural Engine may compute in float16).
public final class CoreMLSwift: Runtime {
    public let name = "coreml"
    let units: MLComputeUnits

    public init(computeUnits: MLComputeUnits = .cpuOnly) { units = computeUnits }

    public func open(_ file: URL, _ spec: ProgramSpec, threads: Int?) throws -> Program {
        let model: MLModel
        do {
            let compiled = try MLModel.compileModel(at: file)
            let config = MLModelConfiguration()
            config.computeUnits = units
            model = try MLModel(contentsOf: compiled, configuration: config)
        } catch {
            throw EdgetuneError.artifact("Core ML cannot load \(file.path): \(error)")
        }
        let desc = model.modelDescription
        for t in spec.inputs {
            let c = desc.inputDescriptionsByName[CoreMLFeatures.name(t.name)]?.multiArrayConstraint
            let want: MLMultiArrayDataType = t.dtype == .float32 ? .float32 : .int32
            let shape = c?.shape.map(\.int64Value)
            guard let c = c, c.dataType == want, shape == (t.shape.isEmpty ? [1] : t.shape) else {
                throw EdgetuneError.artifact("\(file.path): input \(shorten(t.name)) is not a \(t.dtype.rawValue)\(t.shape) feature \(CoreMLFeatures.name(t.name)): the manifest belongs to another artifact; re-export")
            }
        }
        for t in spec.outputs where desc.outputDescriptionsByName[CoreMLFeatures.name(t.name)] == nil {
            throw EdgetuneError.artifact("\(file.path) has no output \(CoreMLFeatures.name(t.name)): the manifest belongs to another artifact; re-export")
        }
        return CoreMLProgram(model: model, spec: spec)
    }

    struct CoreMLProgram: Program {
        let model: MLModel
        let spec: ProgramSpec

        func run(_ inputs: [Tensor]) throws -> [Tensor] {
            var feeds: [String: MLFeatureValue] = [:]
            for (s, t) in zip(spec.inputs, inputs) {
                let (dtype, shape, bytes) = try CoreMLFeatures.input(t)
                let array = try MLMultiArray(shape: shape.map { NSNumber(value: $0) }, dataType: dtype == .float32 ? .float32 : .int32)
                bytes.withUnsafeBytes { src in array.withUnsafeMutableBytes { dst, _ in dst.copyMemory(from: src) } }
                feeds[CoreMLFeatures.name(s.name)] = MLFeatureValue(multiArray: array)
            }
            let out = try model.prediction(from: try MLDictionaryFeatureProvider(dictionary: feeds))
            return try spec.outputs.map { o in
                guard let a = out.featureValue(for: CoreMLFeatures.name(o.name))?.multiArrayValue else {
                    throw EdgetuneError.artifact("Core ML returned no \(o.name)")
                }
                let values = MLShapedArray<Float>(converting: a).scalars  // row-major, whatever the strides
                return Tensor.floats(o.shape, values)
            }
        }
    }
}
