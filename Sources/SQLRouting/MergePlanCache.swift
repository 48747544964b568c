/// Merge plans by statement text, least recently used first out, bounded by bytes.
///
/// Keyed by the exact text (a merge plan embeds literal values, e.g. `LIMIT 10 OFFSET 5` becomes the
/// shards' `LIMIT 15`), so only repeated statements — prepared statements, ORM queries with parameters —
/// hit. Errors are not cached. A value type without locks: keep one per event loop.
public struct MergePlanCache: Sendable {
    private struct Entry: Sendable {
        var plan: MergePlan
        var bytes: Int
        var lastUse: UInt64
    }

    /// The most bytes the entries may account for.
    public let byteLimit: Int
    /// Bytes currently accounted for (texts and plans).
    public private(set) var byteCount = 0
    /// Lookups that found a plan.
    public private(set) var hits = 0
    /// Lookups that planned.
    public private(set) var misses = 0

    private var entries: [String: Entry] = [:]
    private var clock: UInt64 = 0

    /// Creates an empty cache of at most `byteLimit` bytes.
    public init(byteLimit: Int = 1 << 20) {
        self.byteLimit = byteLimit
    }

    /// The number of cached plans.
    public var count: Int { entries.count }

    /// The plan of `sql`, from the cache or freshly planned (see `MergePlanner.plan`).
    public mutating func plan(_ sql: String) throws(RouteError) -> MergePlan {
        clock &+= 1
        if let entry = entries[sql] {
            hits += 1
            entries[sql]?.lastUse = clock
            return entry.plan
        }
        misses += 1
        let plan = try MergePlanner.plan(sql)
        let bytes = 256 + 2 * sql.utf8.count + plan.shardSQL.utf8.count + 64 * (plan.sortKeys.count
            + (plan.grouping?.aggregates.count ?? 0) + (plan.grouping?.keys.count ?? 0))
        guard bytes <= byteLimit else { return plan }
        while byteCount + bytes > byteLimit, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            // Eviction scans the (small) cache; lookups, the common case, are one hash probe.
            byteCount -= oldest.value.bytes
            entries[oldest.key] = nil
        }
        entries[sql] = Entry(plan: plan, bytes: bytes, lastUse: clock)
        byteCount += bytes
        return plan
    }

    /// Removes every plan.
    public mutating func removeAll() {
        entries.removeAll()
        byteCount = 0
    }
}
