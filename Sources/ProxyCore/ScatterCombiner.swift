import NIOCore
import PGWire
import ResultMerge

/// Combines the answers of several shards to the same client messages into the one answer a single
/// PostgreSQL would give: one RowDescription, the rows of every shard (concatenated as they arrive, or
/// merged by a `RowMerging`), one CommandComplete with the counts added up, one ReadyForQuery.
///
/// Each shard's stream is cut into results — everything up to a CommandComplete, EmptyQueryResponse,
/// ErrorResponse, ParseComplete, BindComplete, CloseComplete, NoData, PortalSuspended, a Describe's
/// RowDescription, or ReadyForQuery. Result `n` of every shard is combined before anything of result
/// `n + 1` reaches the client; a shard that runs ahead is buffered (and paused when the buffer grows).
/// After an error nothing of a later result is shown: the client sees one ErrorResponse, as from one
/// server, and then ReadyForQuery.
struct ScatterCombiner {
    /// How rows of several shards become the client's rows.
    enum Rows {
        /// Every shard's rows, in arrival order (a read over several shards).
        case concatenate
        /// The first shard's rows only, and its command tag as is: a write that every shard performs on
        /// the same rows (reference tables, DDL), whose answer a single server would give once.
        case firstShard
        /// COMMIT/ROLLBACK on every participant: like `firstShard`, but "ROLLBACK" if any shard rolled back.
        case transactionEnd
    }

    /// What the combiner wants from its caller after an input.
    struct Output {
        var bytes: ByteBuffer
        /// Members to pause reading from (too far ahead), or to resume.
        var pause: [Int] = []
        var resume: [Int] = []
    }

    private struct Buffered {
        var result: Int
        var kind: ResponseTracker.Expected.Kind
        var id: UInt8
        var payload: ByteBuffer
    }

    private struct Member {
        /// Results whose last message has arrived from this member.
        var received = 0
        /// Results whose last message has been combined.
        var handled = 0
        /// The member's ReadyForQuery arrived (its answer is complete once `buffered` is drained).
        var ready: BackendMessage.TransactionStatus?
        /// Messages that arrived before the results ahead of them were combined, oldest first.
        var buffered: [Buffered] = []
        var bufferedHead = 0
        var bufferedBytes = 0
        var paused = false

        var hasBuffered: Bool { self.bufferedHead < self.buffered.count }
        /// Nothing more will come from this member.
        var isDone: Bool { self.ready != nil && !self.hasBuffered }
    }

    private struct ResultState {
        var rowDescription: RowDescription?
        var rowDescriptionSent = false
        var tags: [String?]
        var errors: [(member: Int, fields: ErrorNoticeFields)] = []
        var notices: Set<String> = []
        var copyOutSent = false
        var copyDone = 0
        /// The rows of this result went through the merger.
        var merged = false
        /// The message that ended the result on the first member that ended it without an error.
        var end: (id: UInt8, payload: ByteBuffer)?
    }

    let shardNames: [String]
    let rows: Rows
    /// Whether the statement changes data outside any transaction (it cannot run in one): a partial failure
    /// is then reported with where it was applied.
    let isWrite: Bool
    private var members: [Member]
    private var result = 0
    private var state: ResultState
    /// A result failed: later results are not shown.
    private(set) var failed = false
    /// Every member answered up to its ReadyForQuery and the combined ReadyForQuery was produced.
    private(set) var isComplete = false
    /// The statement runs in a transaction ShardGate opened around it: the members' ReadyForQuery (in a
    /// transaction) is not the client's; ShardGate answers after the commit.
    var holdsReadyForQuery = false
    /// ShardGate failed the client's transaction (it refused a statement) though no member knows it: an
    /// "in transaction" ReadyForQuery is answered as "failed".
    var failsTransaction = false
    /// The client's Execute asked for at most this many rows (asyncpg's fetchrow asks for 1): the shards run
    /// the portal to completion, the client gets the first rows and PortalSuspended if there were more.
    var rowLimit: Int?
    private var rowsSent = 0
    /// Rows were dropped for `rowLimit`.
    private(set) var truncated = false

    /// Whether one more row may go to the client (counting it).
    private mutating func admitRow() -> Bool {
        guard let limit = self.rowLimit else { return true }
        guard self.rowsSent < limit else {
            self.truncated = true
            return false
        }
        self.rowsSent += 1
        return true
    }
    /// The transaction status of the members' ReadyForQuery when they were all in.
    private(set) var combinedStatus: BackendMessage.TransactionStatus = .idle
    /// In `transactionEnd` mode: some shard answered "ROLLBACK" (its transaction had failed).
    private(set) var rolledBack = false
    private var output: ByteBuffer
    private var pause: [Int] = []
    private var resume: [Int] = []

    /// For a read whose rows must be merged (ORDER BY, LIMIT, aggregates, ...): the rows, the RowDescription
    /// and the CommandComplete of the (one) result go through it, and its output is the client's.
    private(set) var merger: ResultMerger?
    private var mergeSpec: MergeSpec?
    /// Extended protocol: the merged rows' RowDescription is not the client's (only Describe answers with one).
    private var dropMergedDescription = false
    private var mergePaused: [Bool] = []

    /// Pause a member once it has buffered this much for later results.
    static let bufferLimit = 1 << 20

    init(shardNames: [String], rows: Rows, isWrite: Bool, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.shardNames = shardNames
        self.rows = rows
        self.isWrite = isWrite
        self.members = Array(repeating: Member(), count: shardNames.count)
        self.state = ResultState(tags: Array(repeating: nil, count: shardNames.count))
        self.output = allocator.buffer(capacity: 256)
    }

    var memberCount: Int { self.members.count }

    /// A combiner whose rows are merged by `merger`.
    init(shardNames: [String], merger: ResultMerger, spec: MergeSpec, extendedProtocol: Bool = false,
         allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.init(shardNames: shardNames, rows: .concatenate, isWrite: false, allocator: allocator)
        self.merger = merger
        self.mergeSpec = spec
        self.dropMergedDescription = extendedProtocol
        self.mergePaused = Array(repeating: false, count: shardNames.count)
    }

    /// Whether message `id`, answering a message of `kind`, is the last of a result.
    static func endsResult(_ kind: ResponseTracker.Expected.Kind, _ id: UInt8) -> Bool {
        switch id {
        case BackendMessageID.rowDescription.rawValue:
            return kind == .describeStatement || kind == .describePortal || kind == .mergeDescribe
        case BackendMessageID.noData.rawValue where kind == .mergeDescribe:
            return true
        case BackendMessageID.errorResponse.rawValue, BackendMessageID.commandComplete.rawValue, BackendMessageID.emptyQueryResponse.rawValue,
             BackendMessageID.parseComplete.rawValue, BackendMessageID.bindComplete.rawValue,
             BackendMessageID.closeComplete.rawValue, BackendMessageID.noData.rawValue,
             BackendMessageID.portalSuspended.rawValue:
            return true
        default:
            return false
        }
    }

    /// One message of `member`'s answer; `kind` is the message it answers.
    mutating func receive(member: Int, kind: ResponseTracker.Expected.Kind, id: UInt8, payload: ByteBuffer) -> Output {
        if id == BackendMessageID.readyForQuery.rawValue {
            // The member's last message: it ends every result the member did not get to (after an error the
            // server skips the rest of the query string, or of the batch up to Sync).
            self.members[member].ready = payload.getInteger(at: payload.readerIndex, as: UInt8.self)
                .flatMap(BackendMessage.TransactionStatus.init(rawValue:)) ?? .idle
            self.combineFinishedResults()
            return self.takeOutput()
        }
        let result = self.members[member].received
        if Self.endsResult(kind, id) { self.members[member].received += 1 }
        if result == self.result, !self.members[member].hasBuffered {
            self.handle(member: member, kind: kind, id: id, payload: payload)
        } else {
            self.members[member].buffered.append(Buffered(result: result, kind: kind, id: id, payload: payload))
            self.members[member].bufferedBytes += payload.readableBytes + 5
            if self.members[member].bufferedBytes > Self.bufferLimit, !self.members[member].paused {
                self.members[member].paused = true
                self.pause.append(member)
            }
        }
        self.combineFinishedResults()
        return self.takeOutput()
    }

    private mutating func takeOutput() -> Output {
        let out = Output(bytes: self.output, pause: self.pause, resume: self.resume)
        self.output.clear()
        self.pause.removeAll()
        self.resume.removeAll()
        return out
    }

    /// While every member has ended the current result: answer it, move on, replay what was buffered.
    private mutating func combineFinishedResults() {
        while !self.isComplete {
            let current = self.result
            if self.members.allSatisfy({ $0.isDone && $0.handled <= current }) {
                // Nothing left but the ReadyForQuery of every member.
                let statuses = self.members.compactMap(\.ready)
                var status: BackendMessage.TransactionStatus = statuses.contains(.failedTransaction) ? .failedTransaction
                    : statuses.contains(.inTransaction) ? .inTransaction : .idle
                if self.failsTransaction, status == .inTransaction { status = .failedTransaction }
                self.combinedStatus = status
                if !self.holdsReadyForQuery { BackendMessage.readyForQuery(status).encode(into: &self.output) }
                self.isComplete = true
                return
            }
            guard self.members.allSatisfy({ $0.handled > current || $0.isDone }) else { return }
            self.emitResult()
            self.result += 1
            self.state = ResultState(tags: Array(repeating: nil, count: self.members.count))
            for index in self.members.indices {
                while self.members[index].hasBuffered {
                    let message = self.members[index].buffered[self.members[index].bufferedHead]
                    guard message.result == self.result else { break }
                    self.members[index].bufferedHead += 1
                    self.members[index].bufferedBytes -= message.payload.readableBytes + 5
                    self.handle(member: index, kind: message.kind, id: message.id, payload: message.payload)
                }
                if !self.members[index].hasBuffered {
                    self.members[index].buffered.removeAll(keepingCapacity: true)
                    self.members[index].bufferedHead = 0
                }
                if self.members[index].paused, self.members[index].bufferedBytes <= Self.bufferLimit / 2 {
                    self.members[index].paused = false
                    self.resume.append(index)
                }
            }
        }
    }

    private mutating func handle(member: Int, kind: ResponseTracker.Expected.Kind, id: UInt8, payload: ByteBuffer) {
        if self.merger != nil, kind == .query || kind == .execute || kind == .mergeDescribe,
           self.mergeHandle(member: member, kind: kind, id: id, payload: payload) {
            return
        }
        if let spec = self.mergeSpec, id == BackendMessageID.rowDescription.rawValue,
           kind == .describePortal || kind == .describeStatement {
            // The client's Describe of a merged portal: the columns it will get (hidden ones removed,
            // aggregates typed as the merge gives them).
            var reader = payload
            var encoded = ByteBuffer()
            if let shard = try? RowDescription.decode(from: &reader),
               let client = try? ResultMerger.clientDescription(spec: spec, shardDescription: shard) {
                client.encode(into: &encoded)
            } else {
                encoded = payload
            }
            self.noteRowDescription(member: member, payload: encoded)
            self.finish(member: member, id: id, payload: encoded)
            return
        }
        switch id {
        case BackendMessageID.rowDescription.rawValue:
            self.noteRowDescription(member: member, payload: payload)
            if kind == .describeStatement || kind == .describePortal {
                self.finish(member: member, id: id, payload: payload)
            }
        case BackendMessageID.dataRow.rawValue:
            guard !self.failed, self.state.errors.isEmpty else { return }
            if self.rows != .concatenate, member != 0 { return }
            self.emitRowDescriptionIfNeeded()
            guard self.admitRow() else { return }
            self.write(id, payload)
        case BackendMessageID.copyOutResponse.rawValue, BackendMessageID.copyInResponse.rawValue:
            // Once; for COPY FROM the session copies the client's data to every shard.
            if !self.state.copyOutSent, !self.failed {
                self.state.copyOutSent = true
                self.write(id, payload)
            }
        case BackendMessageID.copyData.rawValue:
            guard !self.failed, self.rows == .concatenate || member == 0 else { return }
            self.write(id, payload)
        case BackendMessageID.copyDone.rawValue:
            self.state.copyDone += 1
            if self.state.copyDone == self.members.count, !self.failed { self.write(id, payload) }
        case BackendMessageID.noticeResponse.rawValue:
            // The same notice from every shard (e.g. DROP ... IF EXISTS) is shown once.
            if self.state.notices.insert(String(buffer: payload)).inserted { self.write(id, payload) }
        case BackendMessageID.notificationResponse.rawValue:
            self.write(id, payload)
        case BackendMessageID.parameterDescription.rawValue:
            // Precedes a Describe's RowDescription/NoData; the same from every shard.
            if member == 0, !self.failed { self.write(id, payload) }
        case BackendMessageID.errorResponse.rawValue:
            var copy = payload
            let fields = (try? ErrorNoticeFields.decode(from: &copy, message: "ErrorResponse"))
                ?? ProxyErrors.error("XX000", "malformed error from shard \(self.shardNames[member])")
            self.state.errors.append((member, fields))
            self.finish(member: member, id: id, payload: payload)
        case BackendMessageID.commandComplete.rawValue:
            self.state.tags[member] = payload.getString(at: payload.readerIndex, length: max(0, payload.readableBytes - 1))
            self.finish(member: member, id: id, payload: payload)
        case BackendMessageID.emptyQueryResponse.rawValue, BackendMessageID.parseComplete.rawValue,
             BackendMessageID.bindComplete.rawValue, BackendMessageID.closeComplete.rawValue,
             BackendMessageID.noData.rawValue, BackendMessageID.portalSuspended.rawValue:
            self.finish(member: member, id: id, payload: payload)
        default:
            // ParameterStatus is the session's to track, not the client's to see once per shard.
            break
        }
    }

    /// A message of the merged result; false for messages the merge does not take (notices, copy, ...).
    private mutating func mergeHandle(member: Int, kind: ResponseTracker.Expected.Kind, id: UInt8, payload: ByteBuffer) -> Bool {
        var reader = payload
        self.state.merged = true
        switch id {
        case BackendMessageID.rowDescription.rawValue:
            guard let description = try? RowDescription.decode(from: &reader) else { return false }
            self.merger!.rowDescription(shard: member, description)
            if kind == .mergeDescribe { self.finish(member: member, id: id, payload: payload) }
        case BackendMessageID.noData.rawValue where kind == .mergeDescribe:
            self.finish(member: member, id: id, payload: payload)
        case BackendMessageID.dataRow.rawValue:
            guard let row = try? DataRow.decode(from: &reader) else { return false }
            self.merger!.dataRow(shard: member, row)
        case BackendMessageID.commandComplete.rawValue:
            let tag = payload.getString(at: payload.readerIndex, length: max(0, payload.readableBytes - 1)) ?? ""
            self.merger!.commandComplete(shard: member, tag: tag)
            self.finish(member: member, id: id, payload: payload)
        case BackendMessageID.errorResponse.rawValue:
            let fields = (try? ErrorNoticeFields.decode(from: &reader, message: "ErrorResponse"))
                ?? ProxyErrors.error("XX000", "malformed error from shard \(self.shardNames[member])")
            self.merger!.shardFailed(shard: member, fields)
            self.finish(member: member, id: id, payload: payload)
        case BackendMessageID.emptyQueryResponse.rawValue, BackendMessageID.portalSuspended.rawValue:
            self.finish(member: member, id: id, payload: payload)
        default:
            return false
        }
        while let out = self.merger!.nextOutput() {
            switch out {
            case .rowDescription(let description):
                if !self.dropMergedDescription { BackendMessage.rowDescription(description).encode(into: &self.output) }
            case .dataRow(let row):
                if self.admitRow() { BackendMessage.dataRow(row).encode(into: &self.output) }
            case .commandComplete(let tag):
                if self.truncated {
                    BackendMessage.portalSuspended.encode(into: &self.output)
                } else {
                    BackendMessage.commandComplete(tag).encode(into: &self.output)
                }
            case .errorResponse(let error):
                BackendMessage.errorResponse(error).encode(into: &self.output)
                self.failed = true
            }
        }
        // Backpressure: a shard the merge has enough rows from is not read until it needs more.
        for index in self.mergePaused.indices {
            let wants = self.merger!.wantsInput(from: index)
            if !wants, !self.mergePaused[index] {
                self.mergePaused[index] = true
                self.pause.append(index)
            } else if wants, self.mergePaused[index] {
                self.mergePaused[index] = false
                self.resume.append(index)
            }
        }
        return true
    }

    private mutating func finish(member: Int, id: UInt8, payload: ByteBuffer) {
        self.members[member].handled += 1
        if id != BackendMessageID.errorResponse.rawValue, self.state.end == nil {
            self.state.end = (id, payload)
        }
    }

    private mutating func noteRowDescription(member: Int, payload: ByteBuffer) {
        var copy = payload
        guard let description = try? RowDescription.decode(from: &copy) else { return }
        if let first = self.state.rowDescription {
            if !Self.compatible(first, description), self.state.errors.isEmpty {
                self.state.errors.append((member, ProxyErrors.error(
                    "XX000", "shards returned different row types for the same statement",
                    detail: "Shard \(self.shardNames[member]) returned columns \(Self.describe(description)); "
                        + "another returned \(Self.describe(first)).",
                    hint: "Make the table definitions equal on every shard.")))
            }
        } else {
            self.state.rowDescription = description
        }
    }

    private static func compatible(_ a: RowDescription, _ b: RowDescription) -> Bool {
        a.columns.count == b.columns.count && zip(a.columns, b.columns).allSatisfy {
            $0.name == $1.name && $0.dataTypeOID == $1.dataTypeOID && $0.format == $1.format
        }
    }

    private static func describe(_ d: RowDescription) -> String {
        "(" + d.columns.map { "\($0.name) oid \($0.dataTypeOID)" }.joined(separator: ", ") + ")"
    }

    private mutating func emitRowDescriptionIfNeeded() {
        guard !self.state.rowDescriptionSent, let description = self.state.rowDescription else { return }
        self.state.rowDescriptionSent = true
        BackendMessage.rowDescription(description).encode(into: &self.output)
    }

    private mutating func emitResult() {
        if self.state.merged {
            // The merger answered the result itself (CommandComplete or one ErrorResponse).
            return
        }
        guard let end = self.state.end else {
            // Every member failed.
            if !self.failed {
                self.failed = true
                BackendMessage.errorResponse(self.combinedError()).encode(into: &self.output)
            }
            return
        }
        guard !self.failed else { return }
        if !self.state.errors.isEmpty {
            self.failed = true
            BackendMessage.errorResponse(self.combinedError()).encode(into: &self.output)
            return
        }
        if end.id == BackendMessageID.commandComplete.rawValue {
            if self.rows == .transactionEnd, self.state.tags.contains("ROLLBACK") { self.rolledBack = true }
            self.emitRowDescriptionIfNeeded()
            if self.truncated {
                BackendMessage.portalSuspended.encode(into: &self.output)
            } else {
                BackendMessage.commandComplete(self.combinedTag()).encode(into: &self.output)
            }
        } else if end.id == BackendMessageID.rowDescription.rawValue {
            self.write(end.id, end.payload)  // a Describe's answer: the same from every shard
        } else {
            self.emitRowDescriptionIfNeeded()
            self.write(end.id, end.payload)
        }
    }

    /// One error for the client: the first shard's, naming it; for a write, also where it did take effect.
    private func combinedError() -> ErrorNoticeFields {
        let (member, first) = self.state.errors[0]
        var fields = first
        let failedShards = self.state.errors.map { self.shardNames[$0.member] }
        let succeeded = self.shardNames.indices.filter { index in !self.state.errors.contains { $0.member == index } }
            .map { self.shardNames[$0] }
        var detail = "Shard \(self.shardNames[member]) reported this error."
        if self.isWrite {
            detail = "The statement ran on shards \(self.shardNames.joined(separator: ", ")): it failed on "
                + failedShards.joined(separator: ", ")
                + (succeeded.isEmpty ? "." : " and was applied on \(succeeded.joined(separator: ", ")), where it "
                    + "was not rolled back (the statement cannot run in a transaction block, so it is not atomic across shards).")
        }
        fields.detail = [first.detail, detail].compactMap { $0 }.joined(separator: "\n")
        return fields
    }

    /// `SELECT 3` + `SELECT 4` → `SELECT 7`; tags without a count (CREATE TABLE) are the same on every shard.
    private func combinedTag() -> String {
        let tags = self.state.tags.compactMap { $0 }
        guard let first = tags.first else { return "" }
        if self.rows == .transactionEnd { return tags.contains("ROLLBACK") ? "ROLLBACK" : first }
        // (rolledBack is set in emitResult, which may mutate.)
        guard self.rows == .concatenate else { return first }
        var words = first.split(separator: " ", omittingEmptySubsequences: false)
        guard let last = words.last, Int(last) != nil, Self.countingTags.contains(String(words[0])) else { return first }
        var total = 0
        for tag in tags {
            guard let n = tag.split(separator: " ").last.flatMap({ Int($0) }) else { return first }
            total += n
        }
        words[words.count - 1] = Substring(String(total))
        return words.joined(separator: " ")
    }

    private static let countingTags: Set<String> = ["SELECT", "INSERT", "UPDATE", "DELETE", "COPY", "MERGE", "FETCH", "MOVE"]

    private mutating func write(_ id: UInt8, _ payload: ByteBuffer) {
        self.output.writeInteger(id)
        self.output.writeInteger(Int32(4 + payload.readableBytes))
        self.output.writeImmutableBuffer(payload)
    }
}
