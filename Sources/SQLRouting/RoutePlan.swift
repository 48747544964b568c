/// Where a query string runs, and how.
public struct RoutePlan: Sendable, Hashable {
    /// The shards a statement runs on (indexes into `ShardMap.shards`).
    public enum Target: Sendable, Hashable {
        /// Exactly this shard (the key's owner, an override, or the unlisted-tables shard).
        case shard(Int)
        /// Each of these shards (keys whose slots several shards own); always two or more.
        case shards(Set<Int>)
        /// Every shard (no key on a sharded table, DDL, reference-table writes).
        case allShards
        /// Any one shard will do (catalog or table-less statements, reference-table reads, session and
        /// transaction statements, whose handling the proxy's session state decides by `kinds`).
        case anyShard
    }

    /// The shards to run on.
    public var target: Target
    /// Must run on primaries: writes, DDL, `FOR UPDATE/SHARE`, transaction control other than
    /// `BEGIN READ ONLY`, and utility statements.
    public var needsPrimary: Bool
    /// Changes data or schema (INSERT/UPDATE/DELETE/TRUNCATE/COPY FROM/DDL).
    public var isWrite: Bool
    /// The statement kinds, in text order.
    public var kinds: [StatementKind]
    /// For an `INSERT ... VALUES` into a sharded table: the 0-based row indexes each shard receives (one
    /// entry when every row goes to one shard), so the proxy can split a multi-row statement; `nil`
    /// otherwise.
    public var insertRowsByShard: [Int: [Int]]?
    /// The top-level SELECT's result shape (what merging a scatter would involve).
    public var resultShape: ResultShape
    /// Whether a leading-comment override decided the target.
    public var isOverride: Bool
    /// The slots of sharded tables the statement touches: empty when it touches no sharded table, nil when
    /// it may touch any slot (no key, or an override). A rebalance's pause holds statements that touch the
    /// slots being moved.
    public var slots: Set<Int>? = []
    /// For `COPY sharded_table FROM STDIN`: how to split its rows by key (the statement runs on every shard,
    /// each getting its own rows).
    public var copyIn: CopyInFormat?

    /// Creates a plan.
    public init(
        target: Target, needsPrimary: Bool, isWrite: Bool, kinds: [StatementKind],
        insertRowsByShard: [Int: [Int]]? = nil, resultShape: ResultShape = [], isOverride: Bool = false,
        copyIn: CopyInFormat? = nil
    ) {
        self.target = target
        self.needsPrimary = needsPrimary
        self.isWrite = isWrite
        self.kinds = kinds
        self.insertRowsByShard = insertRowsByShard
        self.resultShape = resultShape
        self.isOverride = isOverride
        self.copyIn = copyIn
    }

    /// The first statement's kind (`.empty` for an empty query string).
    public var kind: StatementKind {
        kinds.first ?? .empty
    }

    /// The shard indexes the plan runs on, with `allShards` expanded for a map of `shardCount` shards and
    /// `anyShard` as `nil` (the caller picks one).
    public func shardIndexes(shardCount: Int) -> Set<Int>? {
        switch target {
        case .shard(let index): return [index]
        case .shards(let indexes): return indexes
        case .allShards: return Set(0..<shardCount)
        case .anyShard: return nil
        }
    }
}

extension StatementKind {
    /// Whether the statement must run on a primary (see `RoutePlan.needsPrimary`).
    func needsPrimary(locksRows: Bool) -> Bool {
        switch self {
        case .read: return locksRows
        case .write, .ddl, .utility: return true
        case .transaction(.begin(let readOnly)): return !readOnly
        case .transaction: return true
        case .set, .reset, .show, .empty: return false
        }
    }

    /// Whether the statement changes data or schema.
    var isWrite: Bool {
        switch self {
        case .write, .ddl: return true
        case .read, .transaction, .set, .reset, .show, .utility, .empty: return false
        }
    }
}
