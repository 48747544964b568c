import Foundation
import ShardMap

/// A sharded table of the map as one shard's catalog describes it.
public struct ShardTable: Sendable, Equatable {
    /// The table's name in the map.
    public var mapName: String
    public var schema: String
    public var name: String
    /// `r` (table) or `p` (partitioned table).
    public var kind: String
    /// `d` (primary key), `f` (full), `i` (an index), `n` (nothing).
    public var replicaIdentity: String
    /// The shard-key column and how it is hashed.
    public var keyColumn: String
    public var keyType: ShardKeyType
    /// The key column's SQL type (`format_type`), `nil` when the table has no such column.
    public var keyColumnType: String?
    /// Primary key columns in index order (empty when there is none).
    public var primaryKey: [String]
    /// Columns of the `REPLICA IDENTITY USING INDEX` index.
    public var identityIndex: [String]
    /// Every column, in order.
    public var columns: [String]
    /// For a partitioned table, its leaf partitions (`"schema"."name"`); for a table, itself.
    public var leaves: [String]

    /// `"schema"."name"`.
    public var relation: String { SQLText.relation(schema: self.schema, name: self.name) }

    /// The slot of a row of this table, in SQL.
    public func slotExpression(slotCount: Int) -> SlotExpression {
        SlotExpression(column: self.keyColumn, type: self.keyType, slotCount: slotCount)
    }

    /// The columns that identify a row to logical replication (empty for FULL or none).
    public var identityColumns: [String] {
        switch self.replicaIdentity {
        case "d": return self.primaryKey
        case "i": return self.identityIndex
        default: return []
        }
    }

    /// Why PostgreSQL cannot publish this table with a row filter on its key (`nil` when it can).
    ///
    /// PostgreSQL 15 refuses UPDATE and DELETE on a published table whose row filter uses a column
    /// outside the replica identity, so the key must be part of the identity (or the identity FULL).
    public var replicationProblem: String? {
        if self.replicaIdentity == "f" { return nil }
        let ident = SQLText.identifier(self.keyColumn)
        if self.identityColumns.isEmpty {
            return """
                table \(self.relation) has no primary key and no REPLICA IDENTITY FULL: logical replication \
                cannot carry its UPDATEs and DELETEs (add a primary key that includes \(ident), or run \
                ALTER TABLE \(self.relation) REPLICA IDENTITY FULL)
                """
        }
        if !self.identityColumns.contains(self.keyColumn) {
            return """
                table \(self.relation): the shard key \(ident) is not part of its replica identity \
                (\(self.identityColumns.map(SQLText.identifier).joined(separator: ", "))); with a row filter on \
                it PostgreSQL would refuse UPDATE and DELETE on this table during the move (make the primary key \
                include \(ident), or run ALTER TABLE \(self.relation) REPLICA IDENTITY FULL)
                """
        }
        return nil
    }

    /// Why the key column does not fit the map's key type (`nil` when it fits).
    public var keyTypeProblem: String? {
        guard let type = self.keyColumnType else {
            return "table \(self.relation) has no column \(SQLText.identifier(self.keyColumn)) (its shard key in the map)"
        }
        let base = type.split(separator: "(").first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? type
        let fits: Bool
        switch self.keyType {
        case .bigint: fits = ["bigint", "integer", "smallint"].contains(base)
        case .text: fits = ["text", "character varying"].contains(base)
        case .uuid: fits = base == "uuid"
        }
        return fits ? nil : """
            table \(self.relation): the shard key \(SQLText.identifier(self.keyColumn)) is \(type), but the map \
            says \(self.keyType.rawValue)
            """
    }

    /// Columns for ordering rows the same way on every shard (verify): the primary key, else the row.
    public var orderColumns: [String] {
        self.primaryKey.isEmpty ? self.identityIndex : self.primaryKey
    }
}

extension ShardTable {
    /// The map's sharded tables (name, key, type), sorted by name.
    public static func shardedTables(of map: ShardMap) -> [(name: String, key: String, type: ShardKeyType)] {
        map.tables.keys.sorted().compactMap { name in
            guard case .sharded(let key, let type)? = map.tables[name] else { return nil }
            return (name, key, type)
        }
    }

    static let catalogQuery = """
        SELECT n.nspname, c.relname, c.relkind::text, c.relreplident::text,
          (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped) AS key_type,
          (SELECT coalesce(json_agg(a.attname ORDER BY k.ord), '[]') FROM pg_index i
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid AND i.indisprimary)::text AS pk,
          (SELECT coalesce(json_agg(a.attname ORDER BY k.ord), '[]') FROM pg_index i
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid AND i.indisreplident)::text AS ri,
          (SELECT coalesce(json_agg(a.attname ORDER BY a.attnum), '[]') FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)::text AS columns,
          (SELECT coalesce(json_agg(format('%I.%I', ln.nspname, lc.relname) ORDER BY lc.oid), '[]')
             FROM pg_partition_tree(c.oid) t JOIN pg_class lc ON lc.oid = t.relid
             JOIN pg_namespace ln ON ln.oid = lc.relnamespace WHERE t.isleaf)::text AS leaves
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')
        """

    /// The table `mapName` on the shard behind `db`, or `nil` when it does not exist there.
    public static func load(mapName: String, key: String, type: ShardKeyType, on db: PGConnection) throws -> ShardTable? {
        let result = try db.query(self.catalogQuery, [SQLText.regclassText(mapName: mapName), key])
        guard let row = result.rows.first else { return nil }
        func list(_ index: Int) -> [String] {
            guard let text = row[index], let data = text.data(using: .utf8),
                  let array = try? JSONSerialization.jsonObject(with: data) as? [String] else { return [] }
            return array
        }
        let kind = row[2] ?? "r"
        // Leaves come as format('%I.%I'): quoted where SQL needs it.
        var leaves = list(8)
        if kind == "r" { leaves = [SQLText.relation(schema: row[0] ?? "public", name: row[1] ?? mapName)] }
        return ShardTable(mapName: mapName, schema: row[0] ?? "public", name: row[1] ?? mapName, kind: kind,
                          replicaIdentity: row[3] ?? "d", keyColumn: key, keyType: type, keyColumnType: row[4],
                          primaryKey: list(5), identityIndex: list(6), columns: list(7), leaves: leaves)
    }
}
