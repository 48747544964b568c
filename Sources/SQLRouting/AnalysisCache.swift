/// A least-recently-used cache of statement analyses keyed by statement shape, bounded by bytes.
///
/// The key is the text with its literals abstracted (`SQLLexer`'s shape: literals replaced by a marker,
/// comments and whitespace runs collapsed, unquoted words lowercased), built in one pass over the bytes
/// without calling the parser — libpg_query's own `pg_query_normalize`/`pg_query_fingerprint` parse the
/// statement, which is the cost the cache exists to avoid. The cached analysis points at literals by
/// index, so each text's own literal values still drive its route.
///
/// Not thread-safe by design: keep one per event loop (as the proxy keeps its pools), no locks.
public struct AnalysisCache: Sendable {
    private struct Key: Hashable, Sendable {
        var bytes: [UInt8]

        func hash(into hasher: inout Hasher) {
            bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }

    private struct Entry: Sendable {
        var key: Key
        var statements: [StatementAnalysis]
        var bytes: Int
        var previous: Int
        var next: Int
    }

    /// The most bytes the entries may account for.
    public let byteLimit: Int
    /// Bytes currently accounted for (key bytes plus an estimate of each analysis's size).
    public private(set) var byteCount = 0
    /// Lookups that found an entry.
    public private(set) var hits = 0
    /// Lookups that did not.
    public private(set) var misses = 0
    /// Entries removed to stay within `byteLimit`.
    public private(set) var evictions = 0

    private var index: [Key: Int] = [:]
    private var entries: [Entry?] = []
    private var free: [Int] = []
    private var head = -1 // most recently used
    private var tail = -1 // least recently used

    /// Creates an empty cache holding at most `byteLimit` bytes.
    public init(byteLimit: Int) {
        self.byteLimit = byteLimit
    }

    /// The number of cached shapes.
    public var count: Int {
        index.count
    }

    /// Removes every entry (for example after the map's table rules changed).
    public mutating func removeAll() {
        index.removeAll()
        entries.removeAll()
        free.removeAll()
        head = -1
        tail = -1
        byteCount = 0
    }

    /// The analyses cached for `shape`, marking them most recently used.
    mutating func lookup(_ shape: [UInt8]) -> [StatementAnalysis]? {
        guard let slot = index[Key(bytes: shape)] else {
            misses += 1
            return nil
        }
        hits += 1
        moveToFront(slot)
        return entries[slot]!.statements
    }

    /// Caches `statements` for `shape`, evicting least recently used entries to stay within the limit.
    /// An entry larger than the whole limit is not cached.
    mutating func insert(_ shape: [UInt8], _ statements: [StatementAnalysis]) {
        let key = Key(bytes: shape)
        let size = Self.estimatedBytes(shape: shape, statements: statements)
        guard size <= byteLimit, index[key] == nil else { return }
        while byteCount + size > byteLimit, tail >= 0 {
            remove(tail)
            evictions += 1
        }
        let entry = Entry(key: key, statements: statements, bytes: size, previous: -1, next: head)
        let slot: Int
        if let reused = free.popLast() {
            slot = reused
            entries[slot] = entry
        } else {
            slot = entries.count
            entries.append(entry)
        }
        if head >= 0 { entries[head]!.previous = slot }
        head = slot
        if tail < 0 { tail = slot }
        index[key] = slot
        byteCount += size
    }

    /// The shapes from most to least recently used (for tests and diagnostics).
    var shapesByRecency: [[UInt8]] {
        var result: [[UInt8]] = []
        var slot = head
        while slot >= 0, let entry = entries[slot] {
            result.append(entry.key.bytes)
            slot = entry.next
        }
        return result
    }

    private mutating func moveToFront(_ slot: Int) {
        guard slot != head else { return }
        unlink(slot)
        entries[slot]!.previous = -1
        entries[slot]!.next = head
        if head >= 0 { entries[head]!.previous = slot }
        head = slot
        if tail < 0 { tail = slot }
    }

    private mutating func unlink(_ slot: Int) {
        let entry = entries[slot]!
        if entry.previous >= 0 { entries[entry.previous]!.next = entry.next } else { head = entry.next }
        if entry.next >= 0 { entries[entry.next]!.previous = entry.previous } else { tail = entry.previous }
    }

    private mutating func remove(_ slot: Int) {
        unlink(slot)
        let entry = entries[slot]!
        index[entry.key] = nil
        byteCount -= entry.bytes
        entries[slot] = nil
        free.append(slot)
    }

    /// Key bytes plus a conservative estimate of the analysis's heap footprint (struct sizes, arrays,
    /// names) and of the dictionary/list bookkeeping.
    static func estimatedBytes(shape: [UInt8], statements: [StatementAnalysis]) -> Int {
        var total = 128 + shape.count
        for statement in statements {
            total += 256 + statement.keyJoins.count * 40
            for occurrence in statement.occurrences {
                total += 160 + occurrence.table.name.utf8.count + (occurrence.table.schema?.utf8.count ?? 0)
                    + (occurrence.table.alias?.utf8.count ?? 0)
                total += (occurrence.insertRows?.count ?? 0) * 24
                if let key = occurrence.key { total += predicateBytes(key) }
            }
            total += statement.unsupported?.utf8.count ?? 0
        }
        return total
    }

    private static func predicateBytes(_ predicate: KeyPredicate) -> Int {
        switch predicate {
        case .values(let sources): return 48 + sources.count * 24
        case .all(let parts), .any(let parts): return 48 + parts.reduce(0) { $0 + predicateBytes($1) }
        }
    }
}
