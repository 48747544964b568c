import Foundation

/// A parsed JSON document that keeps what `JSONSerialization` loses: member order, duplicate keys,
/// the difference between `1`, `1.0` and `true`, and the exact text of every number.
///
/// The shard map is strict about types and unknown keys, so its decoder needs to see the document as
/// written. Only this module uses it.
enum JSONValue: Equatable, Sendable {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    /// The number exactly as written (JSON grammar already checked).
    case number(String)
    case bool(Bool)
    case null

    static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.object(let l), .object(let r)):
            return l.count == r.count && zip(l, r).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case (.array(let l), .array(let r)):
            return l == r
        case (.string(let l), .string(let r)):
            return l == r
        case (.number(let l), .number(let r)):
            return l == r
        case (.bool(let l), .bool(let r)):
            return l == r
        case (.null, .null):
            return true
        case (.object, _), (.array, _), (.string, _), (.number, _), (.bool, _), (.null, _):
            return false
        }
    }

    /// How the value is named in "expected X, got Y" messages.
    var kindDescription: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "true/false"
        case .null: return "null"
        }
    }
}
