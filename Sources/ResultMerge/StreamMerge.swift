import NIOCore
import PGWire

/// Concatenation and ORDER BY merges: rows stream to the client as soon as their place is known.
///
/// Without sort keys, rows pass as they arrive. With sort keys every shard's rows arrive sorted, and a
/// k-way merge (a binary heap over the shards' next rows) emits the smallest head while every unfinished
/// shard has one; a shard far ahead is paused through `wantsInput`. DISTINCT, OFFSET and LIMIT (WITH
/// TIES) filter the merged stream.
struct StreamMerge {
    /// A queued row of one shard, with its decoded sort-key values.
    struct Entry {
        var keys: [MergeValue]
        var row: DataRow
    }

    /// One shard's rows waiting for their turn (a FIFO reusing its storage).
    struct ShardQueue {
        var entries: [Entry] = []
        var head = 0
        var bytes = 0
        /// The sort keys of the last row received, to check that the shard's stream is sorted.
        var lastKeys: [MergeValue]?

        var isEmpty: Bool { head == entries.count }
        var count: Int { entries.count - head }

        mutating func append(_ entry: Entry) {
            bytes += entry.row.bytes.readableBytes
            entries.append(entry)
        }

        mutating func popFirst() -> Entry {
            let entry = entries[head]
            head += 1
            bytes -= entry.row.bytes.readableBytes
            if head == entries.count {
                entries.removeAll(keepingCapacity: true)
                head = 0
            }
            return entry
        }
    }

    /// A shard with this many rows or bytes queued is paused.
    static let queueRowLimit = 256
    static let queueByteLimit = 1 << 20
    /// A queue this large means the handler kept reading a paused shard.
    static let queueHardLimit = 64 << 20

    private let layout: MergeLayout
    private let sort: SortKeyComparator
    private var distinct: DistinctFilter?
    private var limiter: RowLimiter
    private var queues: [ShardQueue]
    private var completed: [Bool]
    /// Shards that are unfinished and have no queued row: while any exist, nothing can be emitted.
    private var waiting: Int
    /// Shards with a queued row, as a min-heap by their head rows.
    private var heap: [Int] = []
    private(set) var emittedCount = 0
    private let shardNames: [String]

    init(
        spec: MergeSpec, layout: MergeLayout, shardNames: [String], loader: inout CollationLoader
    ) throws(MergeError) {
        let shardCount = shardNames.count
        self.layout = layout
        var keys: [ResolvedSortKey] = []
        for key in spec.sortKeys {
            let index = try layout.index(key.column)
            let (decoder, comparator) = try loader.resolve(oid: layout.shardTypes[index], binary: layout.binary[index],
                                                           index: index, collation: key.collation, purpose: "ORDER BY")
            keys.append(ResolvedSortKey(index: index, decoder: decoder, comparator: comparator,
                                        descending: key.descending, nullsFirst: key.nullsFirst))
        }
        sort = SortKeyComparator(keys: keys)
        if let mode = spec.distinct {
            distinct = try DistinctFilter(mode, layout: layout, types: layout.shardTypes, sortColumns: keys.map(\.index))
        }
        limiter = RowLimiter(offset: spec.offset, limit: spec.limit, withTies: spec.withTies && !keys.isEmpty)
        queues = Array(repeating: ShardQueue(), count: shardCount)
        completed = Array(repeating: false, count: shardCount)
        waiting = shardCount
        self.shardNames = shardNames
    }

    /// No more rows will be emitted (the LIMIT is satisfied).
    var isSatisfied: Bool { limiter.isSatisfied }

    var bufferedBytes: Int {
        (distinct?.bytes ?? 0) + queues.reduce(0) { $0 + $1.bytes }
    }

    func wantsInput(from shard: Int) -> Bool {
        guard !sort.isEmpty, shard >= 0, shard < queues.count else { return true }
        let queue = queues[shard]
        return queue.isEmpty || (queue.count < Self.queueRowLimit && queue.bytes < Self.queueByteLimit)
    }

    mutating func receive(shard: Int, row: DataRow, output: inout OutputQueue, limit: Int) throws(MergeError) {
        guard !sort.isEmpty else {
            let columns = distinct == nil ? nil : try RowColumns(row, expected: layout.columnCount)
            try offer(row, columns: columns, keys: [], output: &output, limit: limit)
            return
        }
        let keys = try sort.values(row)
        if let last = queues[shard].lastKeys, sort.compare(keys, last) < 0 {
            throw MergeError.unsupported(
                "merging this ORDER BY across shards: \(shardNames[shard]) returned rows in an order ShardGate's comparison "
                    + "does not reproduce",
                detail: "ShardGate compares text in the database's collation; a column with its own collation sorts "
                    + "differently.",
                hint: "Add COLLATE \"C\" (or the column's collation) to the ORDER BY expression.")
        }
        queues[shard].lastKeys = keys
        if queues[shard].isEmpty {
            waiting -= 1
            push(shard, entry: Entry(keys: keys, row: row))
        } else {
            queues[shard].append(Entry(keys: keys, row: row))
        }
        if queues[shard].bytes > Self.queueHardLimit {
            // Only a handler that ignores `wantsInput` gets here: the queue is bounded by design.
            throw MergeError.internalError("\(shardNames[shard]) was read far ahead of the other shards (the proxy did "
                + "not pause it)")
        }
        try drain(output: &output, limit: limit)
    }

    mutating func complete(shard: Int, output: inout OutputQueue) throws(MergeError) {
        completed[shard] = true
        guard !sort.isEmpty else { return }
        if queues[shard].isEmpty { waiting -= 1 }
        try drain(output: &output, limit: Int.max)
    }

    /// Emits merged rows while the next one is known: every unfinished shard has a queued row.
    private mutating func drain(output: inout OutputQueue, limit: Int) throws(MergeError) {
        while waiting == 0, let shard = heap.first, !limiter.isSatisfied {
            let entry = queues[shard].popFirst()
            if queues[shard].isEmpty {
                removeHeapTop()
                if !completed[shard] { waiting += 1 }
            } else {
                siftDown(0)
            }
            let columns = distinct == nil ? nil : try RowColumns(entry.row, expected: layout.columnCount)
            try offer(entry.row, columns: columns, keys: entry.keys, output: &output, limit: limit)
        }
    }

    /// Passes one row of the merged stream through DISTINCT, OFFSET and LIMIT.
    private mutating func offer(
        _ row: DataRow, columns: RowColumns?, keys: [MergeValue], output: inout OutputQueue, limit: Int
    ) throws(MergeError) {
        guard !limiter.isSatisfied else { return }
        if distinct != nil, let columns {
            guard try distinct!.isNew(columns) else { return }
            if distinct!.bytes > limit { throw MergeError.bufferLimit(limit) }
        }
        guard limiter.admit(keys, sort: sort) else { return }
        output.append(.dataRow(RowColumns.visiblePrefix(of: row, visible: layout.visibleCount)))
        emittedCount += 1
    }

    // MARK: - Heap of shards by head row (ties: the lower shard index first)

    private func less(_ a: Int, _ b: Int) -> Bool {
        let qa = queues[a], qb = queues[b]
        let c = sort.compare(qa.entries[qa.head].keys, qb.entries[qb.head].keys)
        return c != 0 ? c < 0 : a < b
    }

    private mutating func push(_ shard: Int, entry: Entry) {
        queues[shard].append(entry)
        heap.append(shard)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    private mutating func removeHeapTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        siftDown(0)
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < heap.count, less(heap[l], heap[smallest]) { smallest = l }
            if r < heap.count, less(heap[r], heap[smallest]) { smallest = r }
            guard smallest != i else { return }
            heap.swapAt(i, smallest)
            i = smallest
        }
    }
}

/// OFFSET and LIMIT (with ties) over a stream of rows in their final order.
struct RowLimiter {
    private var toSkip: Int64
    private var remaining: Int64?
    private let withTies: Bool
    private var tieKeys: [MergeValue]?
    private(set) var isSatisfied: Bool

    init(offset: Int64, limit: Int64?, withTies: Bool) {
        toSkip = max(0, offset)
        remaining = limit.map { max(0, $0) }
        self.withTies = withTies
        isSatisfied = remaining == 0
    }

    /// Whether the next row (with sort-key values `keys`) is returned.
    mutating func admit(_ keys: [MergeValue], sort: SortKeyComparator) -> Bool {
        if isSatisfied { return false }
        if toSkip > 0 {
            toSkip -= 1
            return false
        }
        guard let left = remaining else { return true }
        if left == 0 {
            if withTies, let tie = tieKeys, sort.compare(keys, tie) == 0 { return true }
            isSatisfied = true
            return false
        }
        remaining = left - 1
        if left == 1 {
            if withTies { tieKeys = keys } else { isSatisfied = true }
        }
        return true
    }
}

/// DISTINCT / DISTINCT ON: adjacent duplicates when the order groups equal rows together, else a set of
/// the values seen (bounded by the merge's memory limit).
struct DistinctFilter {
    private let columns: [Int]
    private let decoders: [ValueDecoder]
    private let adjacent: Bool
    private var last: [MergeValue]?
    private var seen: Set<[MergeValue]> = []
    private(set) var bytes = 0

    /// `sortColumns`: the merged stream's ORDER BY columns, in order (empty when unsorted).
    init(_ mode: MergeDistinct, layout: MergeLayout, types: [UInt32], sortColumns: [Int]) throws(MergeError) {
        switch mode {
        case .rows: columns = Array(0..<layout.visibleCount)
        case .on(let on):
            var indexes: [Int] = []
            for column in on { indexes.append(try layout.index(column)) }
            columns = indexes
        }
        var decoders: [ValueDecoder] = []
        for index in columns {
            guard let kind = ValueKind(oid: types[index]) else {
                throw MergeError.unsupported("DISTINCT on a column of type \(ValueKind.name(oid: types[index])) across shards",
                                             detail: "Column \(index + 1) has a type ShardGate cannot compare.")
            }
            decoders.append(ValueDecoder(kind: kind, binary: layout.binary[index], terminateText: false,
                                         oid: types[index], column: index))
        }
        self.decoders = decoders
        // Equal rows are adjacent when the distinct columns are the leading sort keys (as a set).
        let distinctSet = Set(columns)
        adjacent = !sortColumns.isEmpty && sortColumns.count >= distinctSet.count
            && Set(sortColumns.prefix(distinctSet.count)) == distinctSet
    }

    /// Whether the row is the first of its distinct values.
    mutating func isNew(_ row: RowColumns) throws(MergeError) -> Bool {
        var key: [MergeValue] = []
        key.reserveCapacity(columns.count)
        for (index, decoder) in zip(columns, decoders) { key.append(try decoder.decode(row[index])) }
        if adjacent {
            if key == last { return false }
            last = key
            return true
        }
        guard seen.insert(key).inserted else { return false }
        bytes += 48 + columns.reduce(0) { $0 + 16 + (row[$1]?.readableBytes ?? 0) }
        return true
    }
}
