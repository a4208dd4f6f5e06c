import Foundation

/// The artifact's tokenizer.json for the contract's two families (Tokenizer.kt): WordPiece with
/// BERT's normalizer, and byte-level BPE. `encodeOne` gives the ids of the `tokenizers` library's
/// `encode(text)` with special tokens, truncated and padded to `seqLen`.
/// A tokenizer model: the ids of a text segment that holds no added token.
protocol TokenizerModel { func ids(_ segment: String, _ out: inout [Int]) }

public final class Tokenizer {
    public let seqLen: Int
    public let padId: Int
    let model: TokenizerModel
    let added: [(String, Int)]
    let prefix: [Int], suffix: [Int]
    public static let charsPerToken = 64

    /// The added tokens as scalars, and their first scalars: only there can one start.
    let addedScalars: [([Unicode.Scalar], Int)]
    let addedStarts: Set<Unicode.Scalar>

    init(seqLen: Int, model: TokenizerModel, added: [(String, Int)], prefix: [Int], suffix: [Int], padId: Int) {
        self.seqLen = seqLen; self.model = model; self.added = added; self.prefix = prefix; self.suffix = suffix; self.padId = padId
        addedScalars = added.map { (Array($0.0.unicodeScalars), $0.1) }.filter { !$0.0.isEmpty }  // an empty one would match everywhere
        addedStarts = Set(addedScalars.map { $0.0[0] })
    }

    /// `text` cut to 64 x seq_len code points, before its last space in the second half when there is one.
    public func cut(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars), m = Tokenizer.charsPerToken * seqLen
        if scalars.count <= m { return text }
        let space = (m / 2..<m).last { scalars[$0] == " " }
        let end = (space ?? 0) > 0 ? space! : m
        return String(String.UnicodeScalarView(scalars[0..<end]))
    }

    /// Every id of `text`: no special tokens, truncation or padding. Added tokens split the text first.
    public func tokens(_ text: String) -> [Int] {
        let s = Array(text.unicodeScalars)
        var out: [Int] = [], start = 0, i = 0
        while i < s.count {
            let hit = addedStarts.contains(s[i])
                ? addedScalars.filter { i + $0.0.count <= s.count && Array(s[i..<i + $0.0.count]) == $0.0 }.max { $0.0.count < $1.0.count }
                : nil
            guard let h = hit else { i += 1; continue }
            if i > start { model.ids(String(String.UnicodeScalarView(s[start..<i])), &out) }
            out.append(h.1)
            i += h.0.count
            start = i
        }
        if start < s.count { model.ids(String(String.UnicodeScalarView(s[start...])), &out) }
        return out
    }

    /// One text -> (ids, mask) of exactly `seqLen` entries.
    public func encodeOne(_ text: String) -> ([Int64], [Int64]) {
        let body = tokens(cut(text))
        let ids = prefix + body.prefix(max(0, seqLen - prefix.count - suffix.count)) + suffix
        var outIds = [Int64](repeating: Int64(padId), count: seqLen), mask = [Int64](repeating: 0, count: seqLen)
        for k in 0..<min(seqLen, ids.count) { outIds[k] = Int64(ids[k]); mask[k] = 1 }
        return (outIds, mask)
    }

    public static func load(_ file: URL, seqLen: Int) throws -> Tokenizer {
        guard let data = try? Data(contentsOf: file), let text = String(data: data, encoding: .utf8),
              let root = try? Json.parse(text) as? [String: Any] else {
            throw EdgetuneError.data("cannot read tokenizer \(file.path): it is not a tokenizers JSON file")
        }
        guard let m = root["model"] as? [String: Any], let vocabJson = m["vocab"] as? [String: Any] else {
            throw EdgetuneError.data("cannot read tokenizer \(file.path): no model vocabulary")
        }
        var vocab: [String: Int] = [:]
        for (k, v) in vocabJson { if let i = v as? Int64 { vocab[k] = Int(i) } }
        let added: [(String, Int)] = ((root["added_tokens"] as? [Any]) ?? []).compactMap {
            guard let a = $0 as? [String: Any], let c = a["content"] as? String, let id = a["id"] as? Int64 else { return nil }
            return (c, Int(id))
        }
        let model: TokenizerModel
        switch m["type"] as? String {
        case "WordPiece":
            let norm = root["normalizer"] as? [String: Any]
            if let n = norm, n["type"] as? String != "BertNormalizer" { throw EdgetuneError.data("normalizer \(shorten(n["type"])) is not supported with WordPiece (BertNormalizer is)") }
            guard (root["pre_tokenizer"] as? [String: Any])?["type"] as? String == "BertPreTokenizer" else {
                throw EdgetuneError.data("only BertPreTokenizer is supported with WordPiece")
            }
            guard let unk = m["unk_token"] as? String, let unkId = vocab[unk] else { throw EdgetuneError.data("the WordPiece vocabulary lacks its unknown token") }
            model = WordPiece(vocab: vocab, unkId: unkId, continuing: m["continuing_subword_prefix"] as? String ?? "##",
                              maxChars: Int(m["max_input_chars_per_word"] as? Int64 ?? 100), normalizer: norm.map(BertNormalizer.init))
        case "BPE":
            let pre = root["pre_tokenizer"] as? [String: Any]
            guard root["normalizer"] == nil || root["normalizer"] is NSNull else { throw EdgetuneError.data("a normalizer before byte-level BPE is not supported") }
            guard pre?["type"] as? String == "ByteLevel", pre?["add_prefix_space"] as? Bool != true, pre?["use_regex"] as? Bool != false else {
                throw EdgetuneError.data("pre-tokenizer \(shorten(pre?["type"])) is not supported with BPE (ByteLevel without a prefix space is)")
            }
            let merges: [(String, String)] = ((m["merges"] as? [Any]) ?? []).compactMap { x in
                if let s = x as? String { let p = s.split(separator: " ", maxSplits: 1).map(String.init); return p.count == 2 ? (p[0], p[1]) : nil }
                if let l = x as? [Any], l.count == 2, let a = l[0] as? String, let b = l[1] as? String { return (a, b) }
                return nil
            }
            model = ByteLevelBPE(vocab: vocab, merges: merges)
        default:
            throw EdgetuneError.data("tokenizer model \(shorten(m["type"])) is not supported (WordPiece and BPE are)")
        }
        let (prefix, suffix) = try template(root["post_processor"] as? [String: Any])
        let byContent = Dictionary(added.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        let pad = byContent["[PAD]"] ?? vocab["[PAD]"] ?? byContent["<pad>"] ?? vocab["<pad>"] ?? 0
        return Tokenizer(seqLen: seqLen, model: model, added: added, prefix: prefix, suffix: suffix, padId: pad)
    }

    /// The ids a TemplateProcessing post-processor puts before and after a single sequence.
    static func template(_ post: [String: Any]?) throws -> ([Int], [Int]) {
        guard let post = post, post["type"] as? String != "ByteLevel" else { return ([], []) }
        guard post["type"] as? String == "TemplateProcessing", let specials = post["special_tokens"] as? [String: Any],
              let single = post["single"] as? [Any] else { throw EdgetuneError.data("post-processor \(shorten(post["type"])) is not supported (TemplateProcessing is)") }
        var before: [Int] = [], after: [Int] = [], seen = false
        for piece in single {
            guard let p = piece as? [String: Any] else { continue }
            if p["Sequence"] != nil { seen = true; continue }
            guard let id = (p["SpecialToken"] as? [String: Any])?["id"] as? String,
                  let ids = (specials[id] as? [String: Any])?["ids"] as? [Any] else { continue }
            let values = ids.compactMap { ($0 as? Int64).map(Int.init) }
            if seen { after += values } else { before += values }
        }
        return (before, after)
    }
}

/// Unicode's White_Space property.
func isUnicodeWhitespace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }

/// BERT's normalizer (WordPiece.kt): drop control characters, space out CJK ideographs, strip accents, lowercase.
struct BertNormalizer {
    let cleanText: Bool, chinese: Bool, stripAccents: Bool, lowercase: Bool

    init(_ cfg: [String: Any]) {
        lowercase = cfg["lowercase"] as? Bool ?? true
        cleanText = cfg["clean_text"] as? Bool ?? true
        chinese = cfg["handle_chinese_chars"] as? Bool ?? true
        stripAccents = cfg["strip_accents"] as? Bool ?? lowercase
    }

    func normalize(_ s: String) -> String {
        var text = s
        if cleanText || chinese {
            var out = String.UnicodeScalarView()
            for c in text.unicodeScalars {
                if cleanText && (c.value == 0 || c.value == 0xfffd || isControl(c)) { continue }
                if cleanText && isUnicodeWhitespace(c) { out.append(" "); continue }
                if chinese && isChinese(c.value) { out.append(" "); out.append(c); out.append(" "); continue }
                out.append(c)
            }
            text = String(out)
        }
        if stripAccents {
            text = String(String.UnicodeScalarView(text.decomposedStringWithCanonicalMapping.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }))
        }
        if lowercase {  // per character, as the library does (no context rule for a final sigma)
            text = text.unicodeScalars.map { String($0).lowercased() }.joined()
        }
        return text
    }

    func isControl(_ c: Unicode.Scalar) -> Bool {
        if c == "\t" || c == "\n" || c == "\r" { return false }
        switch c.properties.generalCategory {  // the library keeps unassigned code points (and maps them to [UNK])
        case .control, .format, .privateUse, .surrogate: return true
        default: return false
        }
    }

    func isChinese(_ c: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(c) || (0x3400...0x4DBF).contains(c) || (0x20000...0x2A6DF).contains(c) ||
            (0x2A700...0x2B73F).contains(c) || (0x2B740...0x2B81F).contains(c) || (0x2B920...0x2CEAF).contains(c) ||
            (0xF900...0xFAFF).contains(c) || (0x2F800...0x2FA1F).contains(c)
    }
}

/// BERT's pre-tokenizer (split on whitespace, punctuation alone) and the WordPiece model.
struct WordPiece: TokenizerModel {
    let vocab: [String: Int], unkId: Int, continuing: String, maxChars: Int, normalizer: BertNormalizer?

    func ids(_ segment: String, _ out: inout [Int]) {
        let text = normalizer?.normalize(segment) ?? segment
        var word = String.UnicodeScalarView()
        func flush(_ out: inout [Int]) { if !word.isEmpty { piece(Array(word), &out); word = String.UnicodeScalarView() } }
        for c in text.unicodeScalars {
            if isUnicodeWhitespace(c) { flush(&out) } else if isPunctuation(c) { flush(&out); piece([c], &out) } else { word.append(c) }
        }
        flush(&out)
    }

    /// Greedy longest-match-first; a word with a part not in the vocabulary is one unknown token.
    func piece(_ cps: [Unicode.Scalar], _ out: inout [Int]) {
        if cps.count > maxChars { out.append(unkId); return }
        var found: [Int] = [], start = 0
        while start < cps.count {
            var end = cps.count, id: Int? = nil
            while start < end {
                id = vocab[(start > 0 ? continuing : "") + String(String.UnicodeScalarView(cps[start..<end]))]
                if id != nil { break }
                end -= 1
            }
            guard let i = id else { out.append(unkId); return }
            found.append(i)
            start = end
        }
        out += found
    }

    func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .closePunctuation, .finalPunctuation, .initialPunctuation, .otherPunctuation, .openPunctuation: return true
        default: return false
        }
    }
}

/// GPT-2's byte-level pre-tokenizer and a BPE model whose merges apply lowest rank first, leftmost among equals.
final class ByteLevelBPE: TokenizerModel {
    let vocab: [String: Int]
    var ranks: [String: Int] = [:]
    var cache: [String: [Int]] = [:]
    // GPT-2's pattern, with Unicode's White_Space spelled out (ICU's \s lacks U+000B and U+0085)
    static let ws = "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
    static let split = try! NSRegularExpression(pattern:
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\(ByteLevelBPE.ws)\\p{L}\\p{N}]+|[\(ByteLevelBPE.ws)]+(?![^\(ByteLevelBPE.ws)])|[\(ByteLevelBPE.ws)]+")
    static let byteChars: [Character] = {
        var next = 256
        return (0..<256).map { b in
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) { return Character(Unicode.Scalar(UInt8(b))) }
            defer { next += 1 }
            return Character(Unicode.Scalar(UInt16(next))!)
        }
    }()

    init(vocab: [String: Int], merges: [(String, String)]) {
        self.vocab = vocab
        for (i, (a, b)) in merges.enumerated() where ranks[a + "\u{0}" + b] == nil { ranks[a + "\u{0}" + b] = i }
    }

    func ids(_ segment: String, _ out: inout [Int]) {
        let ns = segment as NSString
        for m in ByteLevelBPE.split.matches(in: segment, range: NSRange(location: 0, length: ns.length)) {
            let word = ns.substring(with: m.range)
            if let hit = cache[word] { out += hit; continue }
            let mapped = String(word.utf8.map { ByteLevelBPE.byteChars[Int($0)] })
            let ids = merge(mapped)
            if cache.count < 10_000 { cache[word] = ids }
            out += ids
        }
    }

    func merge(_ word: String) -> [Int] {
        // a character outside the vocabulary is dropped before merging (there is no unknown token)
        var parts = word.unicodeScalars.map { String($0) }.filter { vocab[$0] != nil }
        while parts.count > 1 {
            var best = -1, bestRank = Int.max
            for i in 0..<(parts.count - 1) {
                if let r = ranks[parts[i] + "\u{0}" + parts[i + 1]], r < bestRank { bestRank = r; best = i }
            }
            if best < 0 { break }
            parts[best] += parts[best + 1]
            parts.remove(at: best + 1)
        }
        return parts.compactMap { vocab[$0] }
    }
}
