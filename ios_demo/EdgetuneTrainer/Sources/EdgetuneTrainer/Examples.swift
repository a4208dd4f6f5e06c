import Foundation

/// One labelled text.
public struct Example { public let text: String, label: String; public init(_ text: String, _ label: String) { self.text = text; self.label = label } }

/// Labelled examples of a CSV/TSV (header with `text` and `label`) or JSON Lines file (Examples.kt);
/// a record over 1 MiB, a NUL, bytes that are not UTF-8, a row with the wrong number of fields or a
/// file with no example is refused naming the file and line.
public enum Examples {
    public static let maxRecordBytes = 1 << 20

    public static func read(_ file: URL) throws -> [Example] {
        let ext = file.pathExtension.lowercased()
        guard ["csv", "tsv", "jsonl", "json"].contains(ext) else { throw EdgetuneError.data("data file \(file.path) has suffix '.\(ext)'; use .csv (text,label header) or .jsonl") }
        guard let data = try? Data(contentsOf: file) else { throw EdgetuneError.data("data file \(file.path) does not exist") }
        var lines: [(Int, String)] = []
        for (n, raw) in data.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            if raw.count > maxRecordBytes { throw EdgetuneError.data("\(file.path):\(n + 1) is longer than \(maxRecordBytes) bytes; split or shorten that line") }
            guard var line = String(data: Data(raw), encoding: .utf8) else { throw EdgetuneError.data("\(file.path):\(n + 1) is not UTF-8 text; save the file as UTF-8") }
            if n == 0, line.hasPrefix("\u{FEFF}") { line.removeFirst() }
            if line.unicodeScalars.contains("\u{0}") { throw EdgetuneError.data("\(file.path):\(n + 1) holds a NUL character; it is not a text file (or it is damaged)") }
            if line.hasSuffix("\r") { line.removeLast() }
            lines.append((n + 1, line))
        }
        if lines.last?.1.isEmpty == true { lines.removeLast() }  // the final line break
        let out = try (ext == "csv" || ext == "tsv") ? csv(lines, file, ext == "tsv" ? "\t" : ",") : jsonl(lines, file)
        if out.isEmpty { throw EdgetuneError.data("data file \(file.path) holds no examples") }
        return out
    }

    static func example(_ file: URL, _ n: Int, _ text: Any?, _ label: Any?) throws -> Example {
        guard let t = text as? String, !t.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw EdgetuneError.data("\(file.path):\(n) has no text (found \(shorten(text, 40))); every example needs a non-empty 'text'")
        }
        let l: String
        if let s = label as? String { l = s } else if let i = label as? Int64 { l = String(i) } else {
            throw EdgetuneError.data("\(file.path):\(n) has label \(shorten(label, 40)); a label is a string or a whole number")
        }
        if l.isEmpty { throw EdgetuneError.data("\(file.path):\(n) has no 'label'; a classification artifact needs text,label rows") }
        return Example(t, l)
    }

    static func jsonl(_ lines: [(Int, String)], _ file: URL) throws -> [Example] {
        try lines.filter { !$0.1.trimmingCharacters(in: .whitespaces).isEmpty }.map { n, line in
            guard let obj = (try? Json.parse(line)) as? [String: Any] else {
                throw EdgetuneError.data("\(file.path):\(n) is not a JSON object {\"text\": ..., \"label\": ...}")
            }
            return try example(file, n, obj["text"], obj["label"])
        }
    }

    static func csv(_ lines: [(Int, String)], _ file: URL, _ delimiter: Character) throws -> [Example] {
        var out: [Example] = [], header: [String]? = nil, i = 0
        while i < lines.count {
            let (n, first) = lines[i]
            var record = first
            i += 1
            while record.filter({ $0 == "\"" }).count % 2 == 1 {  // inside a quoted field: the record goes on
                guard i < lines.count else { throw EdgetuneError.data("\(file.path):\(n) opens a quoted field that does not close; check the quotes of that row") }
                record += "\n" + lines[i].1
                i += 1
            }
            if record.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            guard let fields = fields(record, delimiter) else { throw EdgetuneError.data("\(file.path):\(n) is not a valid CSV row; check its quotes") }
            guard let h = header else {
                let names = fields.map { $0.trimmingCharacters(in: .whitespaces) }
                guard Set(names).count == names.count else { throw EdgetuneError.data("\(file.path): the header repeats a column; each column name must be unique") }
                guard names.contains("text"), names.contains("label") else { throw EdgetuneError.data("\(file.path): the header \(shorten(names)) needs a 'text' and a 'label' column") }
                header = names
                continue
            }
            guard fields.count == h.count else { throw EdgetuneError.data("\(file.path):\(n) has \(fields.count) fields, the header has \(h.count); quote texts that hold the delimiter") }
            let row = Dictionary(zip(h, fields), uniquingKeysWith: { a, _ in a })
            out.append(try example(file, n, row["text"], row["label"]))
        }
        return out
    }

    /// One RFC 4180 record -> its fields; nil when its quotes are malformed.
    static func fields(_ record: String, _ delimiter: Character) -> [String]? {
        var out: [String] = [], f = "", quoted = false, wasQuoted = false
        let chars = Array(record)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if quoted {
                if c == "\"" {
                    if i + 1 < chars.count && chars[i + 1] == "\"" { f.append("\""); i += 1 } else { quoted = false }
                } else { f.append(c) }
            } else if c == delimiter {
                out.append(f); f = ""; wasQuoted = false
            } else if c == "\"" && f.isEmpty && !wasQuoted {
                quoted = true; wasQuoted = true
            } else if c == "\"" || wasQuoted {
                return nil
            } else {
                f.append(c)
            }
            i += 1
        }
        if quoted { return nil }
        out.append(f)
        return out
    }
}

/// Examples (or running text) as token rows of the artifact's fixed shape, and endless batches in a
/// deterministic order (Batches in Examples.kt: Fisher-Yates per epoch driven by PCG64 seeded
/// with SeedSequence([seed, epoch]); the last batch of an epoch wraps round).
public struct Batches {
    let ids: [[Int64]], masks: [[Int64]], labels: [Int]?
    let batchSize: Int, seqLen: Int
    public var rows: Int { ids.count }
    public var perEpoch: Int { (rows + batchSize - 1) / batchSize }

    /// Batches from step `start` on (the steps the state has taken).
    public struct Cursor {
        let owner: Batches
        let seed: UInt64
        var k: Int64
        var epoch: Int64 = -1
        var order: [Int] = []

        public mutating func next() -> [String: Tensor] {
            let e = k / Int64(owner.perEpoch)
            if e != epoch { epoch = e; order = owner.shuffled(seed, e) }
            let pos = Int(k % Int64(owner.perEpoch))
            k += 1
            return owner.batch((0..<owner.batchSize).map { order[(pos * owner.batchSize + $0) % owner.rows] })
        }
    }

    public func from(_ start: Int64, seed: UInt64) -> Cursor { Cursor(owner: self, seed: seed, k: start) }

    func shuffled(_ seed: UInt64, _ epoch: Int64) -> [Int] {
        var g = Pcg64(SeedSequence([seed, UInt64(epoch)]).generateState64(4))
        var p = Array(0..<rows)
        if rows > 1 { for i in stride(from: rows - 1, through: 1, by: -1) { p.swapAt(i, Int(g.nextUInt64() % UInt64(i + 1))) } }
        return p
    }

    public func batch(_ index: [Int]) -> [String: Tensor] {
        let shape = [Int64(index.count), Int64(seqLen)]
        var out: [String: Tensor] = [Names.inputIds: .longs(shape, index.flatMap { ids[$0] }),
                                     Names.attentionMask: .longs(shape, index.flatMap { masks[$0] })]
        if let l = labels { out[Names.labels] = .longs([Int64(index.count)], index.map { Int64(l[$0]) }) }
        return out
    }

    /// Labelled examples -> rows, with each label's index in the manifest's labels.
    public static func of(_ examples: [Example], _ tok: Tokenizer, _ m: Manifest) throws -> Batches {
        guard let labels = m.labels else { throw EdgetuneError.artifact("the artifact lists no labels; export it with labelled data") }
        let index = Dictionary(labels.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let y = try examples.map { e -> Int in
            guard let i = index[e.label] else { throw EdgetuneError.data("label \(shorten(e.label)) is not one of the artifact's labels \(shorten(labels))") }
            return i
        }
        let enc = examples.map { tok.encodeOne($0.text) }
        return Batches(ids: enc.map(\.0), masks: enc.map(\.1), labels: y, batchSize: m.batchSize, seqLen: m.seqLen)
    }

    /// Running text's ids as consecutive windows of seq_len; a text shorter than one window is one padded window.
    public static func windows(_ text: String, _ tok: Tokenizer, _ m: Manifest) -> Batches {
        let ids = tok.tokens(text).map(Int64.init), s = m.seqLen
        if ids.count < s {
            let row = (0..<s).map { $0 < ids.count ? ids[$0] : Int64(tok.padId) }
            return Batches(ids: [row], masks: [(0..<s).map { $0 < ids.count ? 1 : 0 }], labels: nil, batchSize: m.batchSize, seqLen: s)
        }
        let rows = (0..<(ids.count / s)).map { Array(ids[($0 * s)..<($0 * s + s)]) }
        return Batches(ids: rows, masks: rows.map { _ in [Int64](repeating: 1, count: s) }, labels: nil, batchSize: m.batchSize, seqLen: s)
    }
}
