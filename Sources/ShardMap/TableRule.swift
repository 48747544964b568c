import Foundation

/// How a table is placed on the shards.
public enum TableRule: Sendable, Equatable {
    /// Rows are spread over the slots by the value of `key`, hashed as `type`.
    case sharded(key: String, type: ShardKeyType)
    /// The same rows live on every shard: reads go to any one shard, writes to all.
    case reference
}

/// The hash family used for a shard key column (DESIGN §3).
public enum ShardKeyType: String, Sendable, CaseIterable {
    /// `hashint8extended`; also covers `smallint` and `integer` columns, whose hashes are equal for equal values.
    case bigint
    /// `hashtextextended` over the UTF-8 bytes (deterministic collations only).
    case text
    /// `uuid_hash_extended` over the 16 bytes.
    case uuid

    /// Parses a type name as written in the map or in SQL, case-insensitively, accepting PostgreSQL's
    /// aliases: `smallint`, `integer`, `int`, `int2`, `int4`, `int8` for `bigint`;
    /// `varchar` and `character varying` for `text` (they share text's hash opclass).
    public init?(typeName: String) {
        switch typeName.lowercased() {
        case "bigint", "int8", "integer", "int", "int4", "smallint", "int2":
            self = .bigint
        case "text", "varchar", "character varying":
            self = .text
        case "uuid":
            self = .uuid
        default:
            return nil
        }
    }
}
