import ShardMap

/// A table named in a statement.
public struct TableReference: Sendable, Hashable {
    /// The schema as written, `nil` when unqualified or `public`.
    public var schema: String?
    /// The relation name (unquoted names already lowercased by the parser).
    public var name: String
    /// The alias (`FROM users u`), if any.
    public var alias: String?

    /// Creates a reference.
    public init(schema: String? = nil, name: String, alias: String? = nil) {
        self.schema = schema == "public" ? nil : schema
        self.name = name
        self.alias = alias
    }

    /// The name looked up in the shard map: `name`, or `schema.name` for other schemas.
    public var mapName: String {
        schema.map { "\($0).\(name)" } ?? name
    }

    /// Whether this is a system catalog relation: in `pg_catalog` or `information_schema`, or an
    /// unqualified `pg_*` name (pg_catalog is searched first).
    public var isCatalog: Bool {
        switch schema {
        case "pg_catalog", "information_schema": return true
        case nil: return name.hasPrefix("pg_")
        default: return false
        }
    }
}

/// Where a table's rows live, as the shard map says.
public enum TablePlacement: Sendable, Hashable {
    /// Spread over the slots by `key`.
    case sharded(key: String, type: ShardKeyType)
    /// The same rows on every shard.
    case reference
    /// A system catalog (present on every shard).
    case catalog
    /// Not in the map: refused unless the map names a shard for unlisted tables.
    case unlisted
}

/// What a statement does to one table.
public enum TableRole: Sendable, Hashable {
    /// Read (also a `FROM` of UPDATE/DELETE, subqueries, joins).
    case read
    /// The target of INSERT/UPDATE/DELETE/TRUNCATE/COPY FROM, or locked by `LOCK TABLE`.
    case written
    /// Created, altered or dropped by DDL.
    case ddl
}

/// Where a value compared with a shard key comes from.
public enum KeyValueSource: Sendable, Hashable {
    /// The `index`-th literal token of the statement text; `negated` for `-42` (the sign is its own token).
    case literal(index: Int, negated: Bool)
    /// Bind parameter `$n` (1-based).
    case parameter(Int)
    /// The `index`-th literal is an array literal (`'{1,2,3}'`) compared with `= ANY(...)`.
    case arrayLiteral(index: Int)
    /// Bind parameter `$n` is an array compared with `= ANY($n)`.
    case arrayParameter(Int)
    /// SQL `NULL` (matches nothing in a WHERE; in an INSERT it is hash partitioning's slot 0).
    case null
}

/// The key values a table occurrence is restricted to.
public indirect enum KeyPredicate: Sendable, Hashable {
    /// The key equals one of these values.
    case values([KeyValueSource])
    /// Every predicate holds (AND): the intersection.
    case all([KeyPredicate])
    /// One of the predicates holds (OR): the union.
    case any([KeyPredicate])
}

/// One appearance of a table in a statement (a self-join has two).
public struct TableOccurrence: Sendable, Hashable {
    /// The table as written.
    public var table: TableReference
    /// Its placement in the map the analysis was made for.
    public var placement: TablePlacement
    /// What the statement does to it.
    public var role: TableRole
    /// For sharded tables: the key restriction found under AND (`nil`: every row may be involved).
    public var key: KeyPredicate?
    /// For the target of `INSERT ... VALUES` into a sharded table: each row's key (`nil`: a row whose key
    /// is not a constant or parameter).
    public var insertRows: [KeyValueSource?]?
}

/// An equality between the shard keys of two sharded occurrences (`o.user_id = u.id`): their rows meet
/// only within one slot, so the join runs exactly shard by shard.
public struct KeyJoin: Sendable, Hashable {
    /// One side, as an index into `StatementAnalysis.occurrences`.
    public var left: Int
    /// The other side, as an index into `StatementAnalysis.occurrences`.
    public var right: Int
    /// Whether a key restriction on `left` also restricts `right` (false for the preserved side of an
    /// outer join, and from a subquery to its outer query).
    public var leftRestrictsRight: Bool
    /// Whether a key restriction on `right` also restricts `left`.
    public var rightRestrictsLeft: Bool
}

/// Everything routing needs to know about one statement, computed from PostgreSQL's parse tree.
///
/// Literal values are not part of it: key predicates point at literal tokens by index, so one analysis
/// serves every statement of the same shape (see `AnalysisCache`).
public struct StatementAnalysis: Sendable, Hashable {
    /// The statement kind.
    public var kind: StatementKind
    /// Every table occurrence (CTE references excluded), in parse-tree order.
    public var occurrences: [TableOccurrence] = []
    /// Shard-key equalities between occurrences.
    public var keyJoins: [KeyJoin] = []
    /// `SELECT ... FOR UPDATE/SHARE/...` anywhere.
    public var locksRows = false
    /// The top-level SELECT's result shape (what a scatter would have to merge).
    public var resultShape: ResultShape = []
    /// Shape facts of subqueries and CTEs that are not correlated by shard key: a scatter over several
    /// shards would compute them per shard, which is wrong.
    public var nestedShape: ResultShape = []
    /// A sharded table whose shard key column an UPDATE (or `ON CONFLICT DO UPDATE`) assigns.
    public var updatedShardKey: String?
    /// Runs on every shard whatever the keys: DDL, `VACUUM`, `CHECKPOINT` (see `RoutePlanner` for DDL on
    /// unlisted tables).
    public var broadcast = false
    /// A construct refused whatever the keys (`0A000`), e.g. `INSERT ... SELECT` into a sharded table.
    public var unsupported: String?
    /// A construct that must run on a single shard (e.g. a cursor), refused when the keys span several.
    public var singleShardOnly: String?
    /// PostgreSQL refuses to run it inside a transaction block (VACUUM, CREATE INDEX CONCURRENTLY, CREATE
    /// DATABASE, ...): ShardGate cannot make it atomic across shards.
    public var runsOutsideTransaction = false
    /// `COPY ... FROM STDIN` into a sharded table: how to find each row's key in the data.
    public var copyIn: CopyInFormat?
    /// SQL-level PREPARE, EXECUTE or DEALLOCATE, which ShardGate runs itself.
    public var preparedCommand: SQLPreparedCommand?
    /// `DISCARD ALL`: the backend drops its prepared statements (and the client's are gone).
    public var discardsAll = false
    /// The statement calls set_config(), which can change session state no ParameterStatus reports.
    public var callsSetConfig = false
    /// The statement creates something that lives as long as the session, not the transaction: a temporary
    /// table, view or sequence, a cursor WITH HOLD, or a session-level advisory lock.
    public var createsSessionObject = false
    /// False when the analysis embeds a literal's value (e.g. a two-phase gid) and must not be cached.
    var cacheable = true

    /// The distinct tables named, in order of first appearance.
    public var tables: [TableReference] {
        var seen = Set<TableReference>()
        return occurrences.map(\.table).filter { seen.insert($0).inserted }
    }

    /// Bind parameter numbers whose values routing reads (the proxy only needs to provide these).
    public var keyParameters: Set<Int> {
        var numbers = Set<Int>()
        self.forEachKeyParameter { numbers.insert($0) }
        return numbers
    }

    /// Calls `body` with each parameter number (`$n`) the route depends on, repeats included, without
    /// building a set (the Bind path asks this on every Bind).
    public func forEachKeyParameter(_ body: (Int) -> Void) {
        func collect(_ source: KeyValueSource?) {
            switch source {
            case .parameter(let n), .arrayParameter(let n): body(n)
            case .literal, .arrayLiteral, .null, nil: break
            }
        }
        func collect(_ predicate: KeyPredicate) {
            switch predicate {
            case .values(let sources): sources.forEach(collect)
            case .all(let ps), .any(let ps): ps.forEach(collect)
            }
        }
        for occurrence in self.occurrences {
            occurrence.key.map(collect)
            occurrence.insertRows?.forEach(collect)
        }
    }
}

/// How the rows of a `COPY sharded_table FROM STDIN` are written, as far as finding each row's shard key
/// goes (PostgreSQL's COPY text and CSV formats).
public struct CopyInFormat: Sendable, Hashable {
    public enum Format: Sendable, Hashable {
        case text
        case csv
    }

    /// The table, as the map names it.
    public var table: String
    public var key: String
    public var keyType: ShardKeyType
    /// The key's position among the columns of the column list; nil when the COPY names no columns (then
    /// it is the key's position among the table's columns, which only the server knows).
    public var keyColumn: Int?
    public var format: Format
    /// One byte (PostgreSQL requires a single one-byte character).
    public var delimiter: UInt8
    /// The NULL string (`\N` in text format, empty in CSV, unless set).
    public var null: String
    /// The first line is a header (each shard gets it too).
    public var header: Bool
    public var quote: UInt8
    public var escape: UInt8

    public init(table: String, key: String, keyType: ShardKeyType, keyColumn: Int?, format: Format, delimiter: UInt8,
                null: String, header: Bool, quote: UInt8, escape: UInt8) {
        self.table = table
        self.key = key
        self.keyType = keyType
        self.keyColumn = keyColumn
        self.format = format
        self.delimiter = delimiter
        self.null = null
        self.header = header
        self.quote = quote
        self.escape = escape
    }
}
