import Foundation

/// The contract's dtypes: manifest name, safetensors name, bytes per element (Tensor.kt).
public enum DType: String, CaseIterable {
    case float32, int64, int32, bool

    public var safetensorsName: String { ["float32": "F32", "int64": "I64", "int32": "I32", "bool": "BOOL"][rawValue]! }
    public var size: Int { ["float32": 4, "int64": 8, "int32": 4, "bool": 1][rawValue]! }

    static func ofSafetensors(_ name: String) -> DType? { allCases.first { $0.safetensorsName == name } }
}

/// A dense tensor: dtype, shape (empty for a scalar) and its elements as little-endian bytes in
/// row-major order, as safetensors stores them and the runtimes take them.
public struct Tensor {
    public let dtype: DType
    public let shape: [Int64]
    public let bytes: Data

    public init(_ dtype: DType, _ shape: [Int64], _ bytes: Data) throws {
        guard Int64(bytes.count) == Tensor.count(shape) * Int64(dtype.size) else {
            throw EdgetuneError.data("a \(dtype.rawValue)\(shape) tensor needs \(Tensor.count(shape) * Int64(dtype.size)) bytes, got \(bytes.count)")
        }
        self.dtype = dtype; self.shape = shape; self.bytes = bytes
    }

    public static func count(_ shape: [Int64]) -> Int64 { shape.reduce(1, *) }

    public var size: Int { bytes.count / dtype.size }

    public func floats() -> [Float] {  // every platform the runtimes ship on is little-endian
        bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    public func longs() -> [Int64] {
        bytes.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
    }

    /// No NaN or Inf (always true of integer tensors).
    public var isFinite: Bool { dtype != .float32 || floats().allSatisfy { $0.isFinite } }

    public static func floats(_ shape: [Int64], _ values: [Float]) -> Tensor {
        try! Tensor(.float32, shape, values.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    public static func longs(_ shape: [Int64], _ values: [Int64]) -> Tensor {
        try! Tensor(.int64, shape, values.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    public static func scalar(_ v: Float) -> Tensor { floats([], [v]) }
}
