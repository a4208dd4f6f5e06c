import Foundation

/// safetensors (never pickle): an 8-byte little-endian header length, a JSON header, the raw bytes (Safetensors.kt).
public enum Safetensors {
    public static let maxHeaderBytes: Int64 = 100 * 1024 * 1024

    public struct Contents {
        public let tensors: [String: Tensor]
        public let metadata: [String: String]
    }

    public static func decode(_ raw: Data) throws -> Contents {
        func bad(_ m: String) -> EdgetuneError { .state(m) }
        guard raw.count >= 8 else { throw bad("shorter than the 8-byte header length") }
        let n = raw.prefix(8).withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
        guard n >= 2, n <= min(maxHeaderBytes, Int64(raw.count - 8)) else { throw bad("header length \(n) exceeds the file") }
        let start = raw.startIndex
        guard let text = String(data: raw[(start + 8)..<(start + 8 + Int(n))], encoding: .utf8),
              let header = try Json.parse(text) as? [String: Any] else { throw bad("the header is not a JSON object") }
        let dataStart = start + 8 + Int(n)
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        var spans: [(Int64, Int64)] = []
        for (name, v) in header {
            guard let entry = v as? [String: Any] else { throw bad("entry \(shorten(name)) is not an object") }
            if name == "__metadata__" {
                for (k, x) in entry {
                    guard let s = x as? String else { throw bad("__metadata__ is not a map of strings") }
                    metadata[k] = s
                }
                continue
            }
            guard let dtype = DType.ofSafetensors(entry["dtype"] as? String ?? "") else { throw bad("tensor \(shorten(name)) has dtype \(shorten(entry["dtype"]))") }
            guard let dims = entry["shape"] as? [Any] else { throw bad("tensor \(shorten(name)) has no shape") }
            let shape = try dims.map { d -> Int64 in
                guard let x = d as? Int64, x >= 0, x <= Int64(Int32.max) else { throw bad("bad shape of \(shorten(name))") }
                return x
            }
            guard let offsets = entry["data_offsets"] as? [Any], offsets.count == 2,
                  let begin = offsets[0] as? Int64, let end = offsets[1] as? Int64 else { throw bad("tensor \(shorten(name)) has no data_offsets") }
            let elements = Tensor.count(shape)
            guard elements <= Int64(Int32.max), begin >= 0, begin <= end, end <= Int64(raw.count - 8 - Int(n)),
                  end - begin == elements * Int64(dtype.size) else { throw bad("tensor \(shorten(name)) has data_offsets [\(begin), \(end)] that do not fit its shape") }
            spans.append((begin, end))
            tensors[name] = try Tensor(dtype, shape, Data(raw[(dataStart + Int(begin))..<(dataStart + Int(end))]))
        }
        var at: Int64 = 0
        for s in spans.sorted(by: { $0.0 < $1.0 }) {
            guard s.0 == at else { throw bad("the tensors' byte ranges overlap or leave gaps") }
            at = s.1
        }
        guard at == Int64(raw.count - 8 - Int(n)) else { throw bad("the file has bytes past its last tensor") }
        return Contents(tensors: tensors, metadata: metadata)
    }

    /// The bytes of a safetensors file holding `tensors` (in name order) and `metadata`.
    public static func encode(_ tensors: [String: Tensor], _ metadata: [String: String]) -> Data {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset: Int64 = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            header[name] = ["dtype": t.dtype.safetensorsName, "shape": t.shape.map { Int($0) },
                            "data_offsets": [Int(offset), Int(offset) + t.bytes.count]] as [String: Any]
            offset += Int64(t.bytes.count)
        }
        var json = Data(Json.write(header).utf8)
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (json.count + 7) / 8 * 8 - json.count))
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names { out.append(tensors[name]!.bytes) }
        return out
    }
}
