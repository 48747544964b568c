import Foundation

/// The slot of a row in SQL (DESIGN §3): shardctl's publication row filters, deletes and verify, and the
/// proxy's filter that hides a rebalance's copies from reads over several shards.
///
/// With 1024 slots (any power of two) it is the short form of the design,
/// `((hashint8extended(k, 8816678312871386365) & 1023) + 227) & 1023`; other slot counts use exact
/// unsigned arithmetic in `numeric`. Both use only built-in immutable functions and operators, which
/// is what PostgreSQL 15 allows in a publication's `WHERE`.
public struct SlotExpression: Sendable, Equatable {
    /// The shard-key column, as written in the map.
    public var column: String
    /// How the key is hashed.
    public var type: ShardKeyType
    /// The map's slot count.
    public var slotCount: Int
    /// The table (or alias) to qualify the column with, if any.
    public var qualifier: String?

    /// `HASH_PARTITION_SEED` as a signed bigint literal.
    static let seed = Int64(bitPattern: SlotHash.seed)
    /// The constant `hash_combine64(0, h)` adds.
    static let combine: UInt64 = 0x49A0_F4DD_15E5_A8E3

    /// The expression for `column` hashed as `type` with `slotCount` slots.
    public init(column: String, type: ShardKeyType, slotCount: Int = 1024, qualifier: String? = nil) {
        self.column = column
        self.type = type
        self.slotCount = slotCount
        self.qualifier = qualifier
    }

    static func identifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The seeded extended hash of the key column, a bigint.
    public var hash: String {
        let column = (self.qualifier.map { Self.identifier($0) + "." } ?? "") + Self.identifier(self.column)
        switch self.type {
        case .bigint: return "hashint8extended(\(column), \(Self.seed))"
        case .text: return "hashtextextended(\(column), \(Self.seed))"
        case .uuid: return "uuid_hash_extended(\(column), \(Self.seed))"
        }
    }

    /// The slot, `0..<slotCount`.
    public var sql: String {
        let n = UInt64(self.slotCount)
        if n & (n - 1) == 0 {
            let mask = n - 1
            return "(((\(self.hash) & \(mask)) + \(Self.combine & mask)) & \(mask))"
        }
        // (UInt64(bitPattern: h) + combine) mod 2^64 mod n; h + 2^64 + combine is always positive.
        let twoTo64 = "18446744073709551616"
        return "(mod(\(self.hash)::numeric + \(twoTo64) + \(Self.combine), \(twoTo64)) % \(n))"
    }

    /// `slot IN (…)` for `slots` (ascending, deduplicated); `false` for none.
    public func filter(slots: [Int]) -> String {
        let slots = Array(Set(slots)).sorted()
        guard !slots.isEmpty else { return "false" }
        return "\(self.sql) IN (\(slots.map(String.init).joined(separator: ", ")))"
    }
}
