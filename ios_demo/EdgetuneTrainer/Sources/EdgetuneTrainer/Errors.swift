import Foundation

/// Every error the trainer reports on purpose; the message names the value and the fix
/// (android_demo/trainer: Errors.kt).
public enum EdgetuneError: Error, CustomStringConvertible {
    case artifact(String)
    case state(String)
    case data(String)
    case config(String)
    case nonFinite(String)

    public var description: String {
        switch self {
        case .artifact(let m), .state(let m), .data(let m), .config(let m), .nonFinite(let m): return m
        }
    }
}

/// An untrusted value, quoted and cut to about `limit` characters for a message.
func shorten(_ value: Any?, _ limit: Int = 80) -> String {
    let r: String
    if let s = value as? String { r = "'\(s)'" } else if let v = value { r = "\(v)" } else { r = "null" }
    return r.count <= limit ? r : "\(r.prefix(limit))... (\(r.count) characters)"
}
