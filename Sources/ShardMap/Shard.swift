import Foundation

/// One physical shard: a primary and its streaming replicas.
public struct Shard: Sendable, Equatable {
    /// Unique name, used in `slots`, `unlisted_tables`, `/* shard: s1 */` overrides and metrics labels.
    public var name: String
    /// Where writes, DDL and explicit transactions go.
    public var primary: PostgresURL
    /// Read replicas, in file order; may be empty.
    public var replicas: [PostgresURL]

    /// Creates a shard.
    public init(name: String, primary: PostgresURL, replicas: [PostgresURL] = []) {
        self.name = name
        self.primary = primary
        self.replicas = replicas
    }

    /// Whether `name` is acceptable as a shard name: 1–63 characters from `A-Z a-z 0-9 _ - .`.
    ///
    /// Names end up in SQL comments, metric labels and slot lists, so they are kept plain.
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 63 else { return false }
        return name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."):
                return true
            default:
                return false
            }
        }
    }
}
