import Foundation

/// How a Core ML program's features stand for the manifest's tensors (contract section 2;
/// edgetune/contract/coreml.py): identifier names, int64 inputs as int32, rank-0 inputs as [1].
public enum CoreMLFeatures {
    /// The manifest name with every character outside [A-Za-z0-9_] replaced by "_".
    public static func name(_ manifestName: String) -> String {
        String(manifestName.unicodeScalars.map { s in
            s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s) || s == "_") ? Character(s) : "_"
        })
    }

    /// (dtype, shape, little-endian bytes) of input `t` as the Core ML program takes it.
    public static func input(_ t: Tensor) throws -> (DType, [Int64], Data) {
        let shape = t.shape.isEmpty ? [1] : t.shape
        switch t.dtype {
        case .float32, .int32: return (t.dtype, shape, t.bytes)
        case .int64:
            let narrow = try t.longs().map { v -> Int32 in
                guard let n = Int32(exactly: v) else { throw EdgetuneError.data("value \(v) does not fit Core ML's int32 inputs") }
                return n
            }
            return (.int32, shape, narrow.withUnsafeBufferPointer { Data(buffer: $0) })
        case .bool: throw EdgetuneError.data("a Core ML program takes no bool input")
        }
    }
}
