import NIOCore
import PGWire

/// Merges the results of one statement that ran on several shards into the one result a single
/// PostgreSQL holding all the rows would return.
///
/// A state machine without I/O: the handler feeds each shard's RowDescription, DataRows and
/// CommandComplete (or its error) in, and sends what `nextOutput()` / `takeOutput()` give to the client,
/// in order. Streaming merges (concatenation, ORDER BY) emit rows as soon as they can; buffering merges
/// (GROUP BY, aggregates, DISTINCT) hold at most `maxBufferedBytes` and fail with 54000 beyond that.
///
/// Every shard's RowDescription must arrive before its first DataRow (in the extended protocol, send the
/// shards a Describe of the portal; drop the merged RowDescription if the client did not ask for one).
/// Failures — a shard's error, a value the merge cannot handle, the buffer limit — end the result with a
/// single ErrorResponse; after it nothing more is emitted, and later events are ignored (the handler keeps
/// reading every shard to its ReadyForQuery). Once a LIMIT is satisfied the result is complete
/// (CommandComplete is emitted) and the shards' remaining rows are dropped.
public struct ResultMerger {
    private enum Phase {
        /// No RowDescription yet.
        case describing
        case merging
        /// CommandComplete or ErrorResponse queued; events are ignored.
        case done
    }

    private let spec: MergeSpec
    private let shardCount: Int
    private let maxBufferedBytes: Int
    private let shardNames: [String]
    private var loader: CollationLoader

    private var phase: Phase = .describing
    private var layout: MergeLayout?
    private var firstDescription: RowDescription?
    private var described: [Bool]
    private var completed: [Bool]
    /// What the merge does once the columns are known: at most one is set (optionals rather than an enum,
    /// so that events mutate the merge in place instead of copying it out and back per row).
    private var stream: StreamMerge?
    private var grouped: GroupMerge?
    private var output = OutputQueue()
    /// Shards the ORDER BY merge has paused (kept here so that `wantsInput` reads no merge state).
    private var paused: [Bool]
    /// The merge's failure, if it failed (a shard's error is reported as that shard's ErrorResponse).
    public private(set) var failure: MergeError?
    /// The shard whose error ended the result, if one did.
    public private(set) var failedShard: Int?

    /// Creates a merger for `shardCount` shards (indexes `0..<shardCount`); `collation` is the backends'
    /// `lc_collate`, `shardNames` name the shards in error details (defaults: "shard 0", ...).
    public init(
        spec: MergeSpec, shardCount: Int, maxBufferedBytes: Int, collation: TextCollation, shardNames: [String] = []
    ) {
        precondition(shardCount > 0, "a merge needs at least one shard")
        self.spec = spec
        self.shardCount = shardCount
        self.maxBufferedBytes = max(1, maxBufferedBytes)
        self.shardNames = shardNames.count == shardCount ? shardNames : (0..<shardCount).map { "shard \($0)" }
        loader = CollationLoader(defaultCollation: collation)
        described = Array(repeating: false, count: shardCount)
        completed = Array(repeating: false, count: shardCount)
        paused = Array(repeating: false, count: shardCount)
    }

    /// Whether the result is complete or failed (nothing more will be emitted after the queued output).
    public var isFinished: Bool {
        phase == .done
    }

    /// Bytes held by buffering merges (groups, distinct values, queued rows).
    public var bufferedBytes: Int {
        stream?.bufferedBytes ?? grouped?.bufferedBytes ?? 0
    }

    /// Whether the handler should keep reading from `shard`. False pauses a shard whose rows the merge
    /// cannot use yet (an ORDER BY merge waiting for another shard's next row), or while output is queued;
    /// re-check after every event and after taking output. Finished merges want everything (to drain).
    public func wantsInput(from shard: Int) -> Bool {
        guard phase != .done else { return true }
        if output.count >= OutputQueue.highWater { return false }
        return shard < 0 || shard >= shardCount || !paused[shard]
    }

    /// Records which shards the ORDER BY merge pauses (after events that may move its queues).
    private mutating func notePaused() {
        for i in paused.indices { paused[i] = !(stream?.wantsInput(from: i) ?? true) }
    }

    // MARK: - Events

    /// A shard's RowDescription (once per shard, before its rows).
    public mutating func rowDescription(shard: Int, _ description: RowDescription) {
        guard phase != .done else { return }
        run { (merger: inout ResultMerger) throws(MergeError) in
            try merger.describe(shard: shard, description)
        }
    }

    /// A shard's row (`row.bytes` may be a zero-copy slice of the read buffer).
    public mutating func dataRow(shard: Int, _ row: DataRow) {
        guard phase != .done else { return }
        run { (merger: inout ResultMerger) throws(MergeError) in
            try merger.receive(shard: shard, row)
        }
    }

    /// A shard's CommandComplete: its result is complete.
    public mutating func commandComplete(shard: Int, tag: String) {
        guard phase != .done else { return }
        run { (merger: inout ResultMerger) throws(MergeError) in
            try merger.complete(shard: shard)
        }
    }

    /// A shard's ErrorResponse (or its connection failed with this error): the result fails with it.
    public mutating func shardFailed(shard: Int, _ error: ErrorNoticeFields) {
        guard phase != .done else { return }
        failedShard = shard
        output.append(.errorResponse(shardError(error, shard: shard)))
        finishEngine()
        phase = .done
    }

    /// The next message for the client, if any.
    public mutating func nextOutput() -> MergeOutput? {
        if let next = output.next() { return next }
        // A finished GROUP BY merge hands out its rows one at a time (they are encoded on the way out).
        guard grouped?.isFinalized == true else { return nil }
        if let row = grouped!.nextRow() { return .dataRow(row) }
        let count = grouped!.emittedCount
        grouped = nil
        return .commandComplete("SELECT \(count)")
    }

    /// Every message for the client available now, in order.
    public mutating func takeOutput() -> [MergeOutput] {
        var result: [MergeOutput] = []
        while let next = nextOutput() { result.append(next) }
        return result
    }

    /// The RowDescription the client sees for shards that describe their result as `shardDescription`
    /// (e.g. to answer a client's Describe without running the merge).
    public static func clientDescription(spec: MergeSpec, shardDescription: RowDescription) throws(MergeError) -> RowDescription {
        let layout = try MergeLayout(description: shardDescription, hidden: spec.hiddenColumnCount)
        guard let grouping = spec.grouping else {
            return RowDescription(columns: Array(shardDescription.columns.prefix(layout.visibleCount)))
        }
        var loader = CollationLoader(defaultCollation: .c)
        let resolved = try GroupMerge.resolveAggregates(grouping.aggregates, layout: layout, loader: &loader)
        return GroupMerge.clientDescription(shardDescription, layout: layout, aggregates: resolved)
    }

    // MARK: - Internals

    private mutating func run(_ body: (inout ResultMerger) throws(MergeError) -> Void) {
        do {
            try body(&self)
        } catch {
            fail(error)
        }
    }

    private mutating func fail(_ error: MergeError) {
        guard phase != .done else { return }
        failure = error
        output.append(.errorResponse(error.errorFields))
        finishEngine()
        phase = .done
    }

    /// Drops buffered state (nothing more will be emitted).
    private mutating func finishEngine() {
        stream = nil
        grouped = nil
    }

    private mutating func describe(shard: Int, _ description: RowDescription) throws(MergeError) {
        try checkShard(shard)
        guard !described[shard] else { throw MergeError.internalError("\(shardNames[shard]) described its result twice") }
        described[shard] = true
        if let first = firstDescription {
            try Self.checkSameColumns(first, description, shard: shardNames[shard])
            return
        }
        firstDescription = description
        let layout = try MergeLayout(description: description, hidden: spec.hiddenColumnCount)
        self.layout = layout
        if let grouping = spec.grouping {
            let merge = try GroupMerge(spec: spec, grouping: grouping, layout: layout, description: description,
                                       loader: &loader)
            output.append(.rowDescription(merge.clientDescription))
            grouped = merge
        } else {
            let merge = try StreamMerge(spec: spec, layout: layout, shardNames: shardNames, loader: &loader)
            output.append(.rowDescription(RowDescription(columns: Array(description.columns.prefix(layout.visibleCount)))))
            stream = merge
        }
        phase = .merging
        if stream?.isSatisfied == true {
            // LIMIT 0: complete before any row.
            finishStream()
        }
    }

    private mutating func receive(shard: Int, _ row: DataRow) throws(MergeError) {
        try checkShard(shard)
        guard described[shard], let layout else {
            throw MergeError.internalError("\(shardNames[shard]) sent a row before describing its result")
        }
        guard !completed[shard] else { throw MergeError.internalError("\(shardNames[shard]) sent a row after completing") }
        guard Int(row.columnCount) == layout.columnCount else {
            throw MergeError.internalError("\(shardNames[shard]) sent a row of \(row.columnCount) columns for a result of "
                + "\(layout.columnCount)")
        }
        if stream != nil {
            try stream!.receive(shard: shard, row: row, output: &output, limit: maxBufferedBytes)
            notePaused()
            if stream!.isSatisfied { finishStream() }
        } else if grouped != nil {
            let columns = try RowColumns(row, expected: layout.columnCount)
            try grouped!.add(columns, row: row, limit: maxBufferedBytes)
        }
    }

    private mutating func complete(shard: Int) throws(MergeError) {
        try checkShard(shard)
        guard !completed[shard] else { throw MergeError.internalError("\(shardNames[shard]) completed twice") }
        guard described[shard] else {
            throw MergeError.internalError("\(shardNames[shard]) completed without describing a result (not a SELECT?)")
        }
        completed[shard] = true
        let allDone = !completed.contains(false)
        if stream != nil {
            try stream!.complete(shard: shard, output: &output)
            notePaused()
            if stream!.isSatisfied || allDone { finishStream() }
        } else if grouped != nil, allDone {
            try grouped!.finish(limit: maxBufferedBytes)
            // The rows (and then CommandComplete) come out of nextOutput().
            phase = .done
        }
    }

    private mutating func finishStream() {
        output.append(.commandComplete("SELECT \(stream?.emittedCount ?? 0)"))
        stream = nil
        phase = .done
    }

    private func checkShard(_ shard: Int) throws(MergeError) {
        guard shard >= 0, shard < shardCount else {
            throw MergeError.internalError("event for shard \(shard) of a merge over \(shardCount) shards")
        }
    }

    private static func checkSameColumns(_ a: RowDescription, _ b: RowDescription, shard: String) throws(MergeError) {
        guard a.columns.count == b.columns.count else {
            throw MergeError(sqlState: "42804", message: "the shards returned different result columns: \(shard) "
                + "returned \(b.columns.count) columns, another shard \(a.columns.count)",
                hint: "The shards' schemas differ; make them the same.")
        }
        for (index, (x, y)) in zip(a.columns, b.columns).enumerated()
        where x.dataTypeOID != y.dataTypeOID || x.format != y.format {
            throw MergeError(sqlState: "42804", message: "the shards returned different result columns: column \(index + 1) "
                + "is \(ValueKind.name(oid: y.dataTypeOID)) on \(shard) and \(ValueKind.name(oid: x.dataTypeOID)) on "
                + "another shard", hint: "The shards' schemas differ; make them the same.")
        }
    }

    /// A shard's error as the client gets it: the shard named in the detail, a position into rewritten
    /// SQL dropped.
    private func shardError(_ error: ErrorNoticeFields, shard: Int) -> ErrorNoticeFields {
        let name = shardNames[shard]
        var fields: [(UInt8, String)] = []
        var sawDetail = false
        for (code, value) in error.fields {
            if code == ErrorNoticeFields.Code.position.rawValue, let limit = spec.errorPositionLimit,
               (Int(value) ?? Int.max) > limit {
                continue
            }
            if code == ErrorNoticeFields.Code.detail.rawValue {
                sawDetail = true
                fields.append((code, "\(value) (on \(name))"))
                continue
            }
            fields.append((code, value))
        }
        if !sawDetail {
            let messageIndex = fields.firstIndex { $0.0 == ErrorNoticeFields.Code.message.rawValue } ?? fields.count - 1
            fields.insert((ErrorNoticeFields.Code.detail.rawValue, "Reported by \(name)."),
                          at: min(fields.count, messageIndex + 1))
        }
        return ErrorNoticeFields(fields: fields)
    }
}

/// The messages waiting for the client: a FIFO that reuses its storage.
struct OutputQueue {
    /// More queued messages than this pause the shards (`wantsInput`) until the handler takes them.
    static let highWater = 512

    private var items: [MergeOutput] = []
    private var head = 0

    var count: Int { items.count - head }

    mutating func append(_ item: MergeOutput) {
        items.append(item)
    }

    mutating func next() -> MergeOutput? {
        guard head < items.count else { return nil }
        let item = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        return item
    }
}
