/// What a statement does, as far as routing and session handling care.
public enum StatementKind: Sendable, Hashable {
    /// `SELECT` (also `VALUES`, `TABLE t`, `COPY ... TO`, a cursor declaration, `EXPLAIN` without ANALYZE).
    case read
    /// `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `TRUNCATE`, `COPY ... FROM`, or a SELECT with a
    /// data-modifying CTE.
    case write
    /// Schema changes (`CREATE`/`ALTER`/`DROP`, `CREATE INDEX`, `GRANT`, `SELECT ... INTO`, ...): sent to
    /// every shard.
    case ddl
    /// `BEGIN`/`START TRANSACTION`, `COMMIT`, `ROLLBACK`, savepoints, two-phase commands.
    case transaction(TransactionControl)
    /// `SET [LOCAL] name ...`; `name` is as PostgreSQL normalizes it (`SET TIME ZONE` is `timezone`,
    /// `SET TRANSACTION ...` is `transaction`).
    case set(name: String, isLocal: Bool)
    /// `RESET name`; `nil` for `RESET ALL`.
    case reset(name: String?)
    /// `SHOW name` (`all` for `SHOW ALL`).
    case show(name: String)
    /// Any other utility statement (`LISTEN`, `DISCARD`, `VACUUM`, `LOCK`, `FETCH`, ...), named by its
    /// parse node, e.g. `"ListenStmt"`.
    case utility(String)
    /// An empty query string (PostgreSQL answers EmptyQueryResponse).
    case empty
}

/// A transaction-control statement.
public enum TransactionControl: Sendable, Hashable {
    /// `BEGIN` / `START TRANSACTION`; `readOnly` for `READ ONLY` (which may run on replicas).
    case begin(readOnly: Bool)
    /// `COMMIT` / `END`.
    case commit
    /// `ROLLBACK` / `ABORT`.
    case rollback
    /// `SAVEPOINT name`.
    case savepoint(String)
    /// `RELEASE [SAVEPOINT] name`.
    case release(String)
    /// `ROLLBACK TO [SAVEPOINT] name`.
    case rollbackTo(String)
    /// `PREPARE TRANSACTION 'gid'`.
    case prepare(gid: String)
    /// `COMMIT PREPARED 'gid'`.
    case commitPrepared(gid: String)
    /// `ROLLBACK PREPARED 'gid'`.
    case rollbackPrepared(gid: String)
}

/// Facts about a SELECT's result that decide whether per-shard results can simply be concatenated.
public struct ResultShape: OptionSet, Sendable, Hashable {
    /// The bits.
    public let rawValue: UInt16
    /// Creates a shape from its bits.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// `ORDER BY`.
    public static let orderBy = ResultShape(rawValue: 1 << 0)
    /// `LIMIT` / `OFFSET` / `FETCH FIRST`.
    public static let limit = ResultShape(rawValue: 1 << 1)
    /// An aggregate function call (built-in aggregates by name, or any call with `*`, `DISTINCT`,
    /// `ORDER BY`, `FILTER` or `WITHIN GROUP`).
    public static let aggregate = ResultShape(rawValue: 1 << 2)
    /// `GROUP BY` or `HAVING`.
    public static let groupBy = ResultShape(rawValue: 1 << 3)
    /// `DISTINCT` / `DISTINCT ON`.
    public static let distinct = ResultShape(rawValue: 1 << 4)
    /// A window function (`OVER`).
    public static let window = ResultShape(rawValue: 1 << 5)
    /// `UNION` / `INTERSECT` / `EXCEPT`.
    public static let setOperation = ResultShape(rawValue: 1 << 6)
}
