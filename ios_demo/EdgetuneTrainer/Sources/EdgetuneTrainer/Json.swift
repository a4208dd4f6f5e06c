import Foundation

/// A strict JSON reader and a small writer (android_demo/trainer: Json.kt). Values: [String: Any],
/// [Any], String, Int64 for an integer literal that fits, Double for any other number, Bool, NSNull.
/// Foundation's JSONSerialization does not tell 4 from 4.0 reliably, which the contract does.
public enum Json {
    static let maxDepth = 64

    public static func parse(_ text: String) throws -> Any {
        var p = Parser(Array(text.unicodeScalars))
        p.skipSpace()
        let v = try p.value(0)
        p.skipSpace()
        if p.i != p.s.count { throw p.fail("unexpected text after the JSON value") }
        return v
    }

    struct Parser {
        let s: [Unicode.Scalar]
        var i = 0
        init(_ s: [Unicode.Scalar]) { self.s = s }

        func fail(_ what: String) -> EdgetuneError { .data("\(what) at character \(i)") }

        mutating func skipSpace() {
            while i < s.count, [" ", "\n", "\r", "\t"].contains(s[i]) { i += 1 }
        }

        mutating func value(_ depth: Int) throws -> Any {
            if depth > Json.maxDepth { throw fail("nesting deeper than \(Json.maxDepth)") }
            guard i < s.count else { throw fail("unexpected end") }
            switch s[i] {
            case "{": return try object(depth)
            case "[": return try array(depth)
            case "\"": return try string()
            case "t": return try literal("true", true)
            case "f": return try literal("false", false)
            case "n": return try literal("null", NSNull())
            default: return try number()
            }
        }

        mutating func literal(_ word: String, _ v: Any) throws -> Any {
            let w = Array(word.unicodeScalars)
            guard i + w.count <= s.count, Array(s[i..<i + w.count]) == w else { throw fail("unknown literal") }
            i += w.count
            return v
        }

        mutating func object(_ depth: Int) throws -> [String: Any] {
            var out: [String: Any] = [:]
            i += 1
            skipSpace()
            if i < s.count, s[i] == "}" { i += 1; return out }
            while true {
                skipSpace()
                guard i < s.count, s[i] == "\"" else { throw fail("expected a key") }
                let k = try string()
                skipSpace()
                guard i < s.count, s[i] == ":" else { throw fail("expected ':'") }
                i += 1
                skipSpace()
                if out[k] != nil { throw fail("key \(shorten(k)) repeats") }
                out[k] = try value(depth + 1)
                skipSpace()
                if i < s.count, s[i] == "," { i += 1; continue }
                if i < s.count, s[i] == "}" { i += 1; return out }
                throw fail("expected ',' or '}'")
            }
        }

        mutating func array(_ depth: Int) throws -> [Any] {
            var out: [Any] = []
            i += 1
            skipSpace()
            if i < s.count, s[i] == "]" { i += 1; return out }
            while true {
                skipSpace()
                out.append(try value(depth + 1))
                skipSpace()
                if i < s.count, s[i] == "," { i += 1; continue }
                if i < s.count, s[i] == "]" { i += 1; return out }
                throw fail("expected ',' or ']'")
            }
        }

        mutating func string() throws -> String {
            var units: [UInt16] = []
            i += 1
            while true {
                guard i < s.count else { throw fail("unterminated string") }
                let c = s[i]; i += 1
                if c == "\"" { return String(decoding: units, as: UTF16.self) }
                if c == "\\" {
                    guard i < s.count else { throw fail("unterminated escape") }
                    let e = s[i]; i += 1
                    switch e {
                    case "\"", "\\", "/": units.append(UInt16(e.value))
                    case "b": units.append(8)
                    case "f": units.append(12)
                    case "n": units.append(10)
                    case "r": units.append(13)
                    case "t": units.append(9)
                    case "u":
                        guard i + 4 <= s.count, let code = UInt16(String(String.UnicodeScalarView(s[i..<i + 4])), radix: 16)
                        else { throw fail("bad \\u escape") }
                        units.append(code)  // a lone surrogate decodes to U+FFFD
                        i += 4
                    default: throw fail("bad escape")
                    }
                } else if c.value < 0x20 {
                    throw fail("control character in a string")
                } else {
                    units.append(contentsOf: String(c).utf16)
                }
            }
        }

        func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 48 && c.value <= 57 }

        mutating func number() throws -> Any {
            let start = i
            if i < s.count, s[i] == "-" { i += 1 }
            let intStart = i
            while i < s.count, isDigit(s[i]) { i += 1 }
            if i == intStart { throw fail("expected a value") }
            if s[intStart] == "0", i - intStart > 1 { throw fail("leading zero") }
            var integral = true
            if i < s.count, s[i] == "." {
                integral = false
                i += 1
                let f = i
                while i < s.count, isDigit(s[i]) { i += 1 }
                if i == f { throw fail("digits expected after '.'") }
            }
            if i < s.count, s[i] == "e" || s[i] == "E" {
                integral = false
                i += 1
                if i < s.count, s[i] == "+" || s[i] == "-" { i += 1 }
                let e = i
                while i < s.count, isDigit(s[i]) { i += 1 }
                if i == e { throw fail("digits expected in the exponent") }
            }
            let text = String(String.UnicodeScalarView(s[start..<i]))
            if integral, let v = Int64(text) { return v }
            if text.count > 400 { throw fail("number of \(text.count) characters") }
            guard let d = Double(text) else { throw fail("bad number") }
            return d
        }
    }

    /// `v` as compact JSON (maps with sorted keys, lists, strings, numbers, booleans, null).
    public static func write(_ v: Any?) -> String {
        var b = ""
        write(v, &b)
        return b
    }

    static func write(_ v: Any?, _ b: inout String) {
        switch v {
        case nil, is NSNull: b += "null"
        case let s as String: quote(s, &b)
        case let x as Bool: b += x ? "true" : "false"
        case let x as Int: b += String(x)
        case let x as Int64: b += String(x)
        case let x as Float: number(Double(x), &b)
        case let x as Double: number(x, &b)
        case let m as [String: Any]:
            b += "{"
            for (n, k) in m.keys.sorted().enumerated() {
                if n > 0 { b += ", " }
                quote(k, &b); b += ": "; write(m[k], &b)
            }
            b += "}"
        case let a as [Any]:
            b += "["
            for (n, x) in a.enumerated() {
                if n > 0 { b += ", " }
                write(x, &b)
            }
            b += "]"
        default: b += "\"\(String(describing: v!))\""
        }
    }

    static func number(_ d: Double, _ b: inout String) {
        b += d.isNaN ? "NaN" : d.isInfinite ? (d > 0 ? "Infinity" : "-Infinity") : "\(d)"
    }

    static func quote(_ s: String, _ b: inout String) {
        b += "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": b += "\\\""
            case "\\": b += "\\\\"
            case "\n": b += "\\n"
            case "\r": b += "\\r"
            case "\t": b += "\\t"
            default: b += c.value < 0x20 ? String(format: "\\u%04x", c.value) : String(c)
            }
        }
        b += "\""
    }
}
