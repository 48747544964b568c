import NIOCore
import PGWire
import ShardMap
import SQLRouting

/// Choosing, filling, attaching and ending leases.
extension SessionEngine {
    /// Where a message goes before it is known whether it can go now.
    enum Choice: Equatable {
        case existing(LeaseID)
        case new(BackendTarget)
    }

    // MARK: choosing

    /// The lease for a statement on `shard`: a transaction's participant there, a pinned or already held
    /// lease that fits, else a new one (a replica for reads outside transactions when one may serve them).
    mutating func choose(shard: Int, primary: Bool, context: inout RoutingContext) -> Choice {
        if let transaction = self.transaction {
            if let lease = self.leases.first(where: { $0.participant && $0.target.shard == shard }) {
                return .existing(lease.id)
            }
            if transaction.readOnly, !primary,
               let replica = context.chooseReplica(shard: shard, fence: self.fence(shard, context: context)) {
                return .new(BackendTarget(shard: shard, replica: replica))
            }
            return .new(.primary(shard))
        }
        if let pinned = self.leases.first(where: { $0.pinned && $0.target.shard == shard && (!primary || $0.target.isPrimary) }) {
            return .existing(pinned.id)
        }
        let fence = primary ? nil : self.fence(shard, context: context)
        if let held = self.leases.first(where: { lease in
            lease.member == nil && lease.target.shard == shard && (lease.target.isPrimary || (!primary
                && context.replicaMayServe(shard: shard, replica: lease.target.replica!, fence: fence)))
        }) {
            return .existing(held.id)
        }
        if !primary, let replica = context.chooseReplica(shard: shard, fence: fence) {
            return .new(BackendTarget(shard: shard, replica: replica))
        }
        return .new(.primary(shard))
    }

    /// The lease for a statement any shard can run (catalog queries, SET, SHOW, ...): one the session
    /// already uses if possible, else shard 0.
    mutating func chooseAny(primary: Bool, context: inout RoutingContext) -> Choice {
        if self.transaction != nil {
            // A failed participant answers 25P02 as PostgreSQL would.
            if let failed = self.leases.first(where: { $0.participant && $0.status == .failedTransaction }) {
                return .existing(failed.id)
            }
            if let participant = self.leases.first(where: \.participant) { return .existing(participant.id) }
        }
        if case .lease(let id)? = self.batch { return .existing(id) }
        if let pinned = self.leases.first(where: { $0.pinned && (!primary || $0.target.isPrimary) }) {
            return .existing(pinned.id)
        }
        if let busy = self.leases.first(where: { $0.member == nil && $0.isBusy && (!primary || $0.target.isPrimary) }) {
            return .existing(busy.id)
        }
        return self.choose(shard: 0, primary: primary, context: &context)
    }

    /// The session's fence on `shard`, resolved against the newest primary sample.
    mutating func fence(_ shard: Int, context: RoutingContext) -> ReadFence? {
        guard let fence = self.fences[shard] else { return nil }
        let resolved = context.resolve(fence, shard: shard)
        if resolved != fence { self.fences[shard] = resolved }
        return resolved
    }

    /// Whether a message for `choice` may be sent now. When not, makes sure the source in the way finishes:
    /// its held answers are flushed out, an open batch on another backend is closed with a Sync.
    mutating func isReady(for choice: Choice) -> Bool {
        let target: Source? = {
            if case .existing(let id) = choice { return .lease(id) }
            return nil
        }()
        if let busy = self.inFlight, busy != target {
            // Switching away: a batch open there is closed now (which also brings its answers).
            if self.batch == busy { self.closeBatch(busy) } else { self.flushOut(busy) }
            return false
        }
        if let batch = self.batch, batch != target {
            self.closeBatch(batch)
            return false
        }
        return true
    }

    /// Whether a message for the group over `shards` may be sent now (see `isReady(for:)`).
    mutating func isReadyForGroup(_ shards: [Int]) -> Bool {
        let sameGroup = self.group.map { group in
            group.members.compactMap { id in self.leases.first { $0.id == id }?.target.shard } == shards
                && !group.combiner.isComplete
        } ?? false
        if let busy = self.inFlight, !(busy == .group && sameGroup) {
            if self.batch == busy { self.closeBatch(busy) } else { self.flushOut(busy) }
            return false
        }
        if let batch = self.batch, !(batch == .group && sameGroup) {
            self.closeBatch(batch)
            return false
        }
        return true
    }

    /// The lease of `choice`, creating (and acquiring) it if new. `grouped`: one member of a statement
    /// over several shards, acquired by `acquireDeferred`.
    mutating func lease(for choice: Choice, grouped: Bool = false) -> LeaseID {
        switch choice {
        case .existing(let id):
            return id
        case .new(let target):
            let id = self.nextLeaseID
            self.nextLeaseID += 1
            var lease = Lease(id: id, target: target)
            swap(&lease.queued, &self.spareQueue)
            swap(&lease.tracker, &self.spareTracker)
            lease.participant = self.transaction != nil
            lease.acquireLater = grouped
            self.leases.append(lease)
            if !grouped {
                // Whoever may hold this backend while waiting for another must not take a pool's reserve;
                // whoever already holds one gets it (see PoolStateMachine).
                let claim: BackendClaim = self.leases.contains(where: \.isAttached) ? .holding
                    : self.transaction != nil ? .opening : .single
                self.emit(.acquire(id, target, claim))
            }
            return id
        }
    }

    /// Asks the pools for deferred group members. A session holding no backend takes them one at a time
    /// (the first as `.opening`), and the rest once it holds one (as `.holding`): two statements over the
    /// same shards never each hold one shard's backend while waiting for the other's, and only a session
    /// that really holds a backend may use a pool's reserve.
    mutating func acquireDeferred() {
        guard self.leases.contains(where: \.acquireLater) else { return }
        let holding = self.leases.contains(where: \.isAttached)
        if !holding, self.leases.contains(where: { !$0.isAttached && !$0.acquireLater }) { return }
        for i in self.leases.indices where self.leases[i].acquireLater {
            self.leases[i].acquireLater = false
            self.emit(.acquire(self.leases[i].id, self.leases[i].target, holding ? .holding : .opening))
            if !holding { return }
        }
    }

    /// Makes the group over `shards` (reusing it while its batch is open), one member per shard.
    mutating func makeGroup(_ shards: [Int], primary: Bool, rows: ScatterCombiner.Rows, isWrite: Bool,
                            context: inout RoutingContext) -> [LeaseID] {
        let names = shards.map { $0 < self.shardNames.count ? self.shardNames[$0] : "shard \($0)" }
        let combiner = ScatterCombiner(shardNames: names, rows: rows, isWrite: isWrite, allocator: self.allocator)
        return self.makeGroup(shards, primary: primary, combiner: combiner, context: &context)
    }

    /// Makes the group over `shards` with this combiner (reusing the group while its batch is open).
    mutating func makeGroup(_ shards: [Int], primary: Bool, combiner: ScatterCombiner,
                            context: inout RoutingContext) -> [LeaseID] {
        if let group = self.group, !group.combiner.isComplete,
           group.members.compactMap({ id in self.leases.first { $0.id == id }?.target.shard }) == shards {
            return group.members
        }
        self.endGroup()
        var members: [LeaseID] = []
        for shard in shards {
            let id = self.lease(for: self.choose(shard: shard, primary: primary, context: &context), grouped: shards.count > 1)
            members.append(id)
        }
        for (index, id) in members.enumerated() {
            if let i = self.index(of: id) { self.leases[i].member = index }
        }
        self.acquireDeferred()
        self.groupAnswered = false
        self.group = Group(members: members, combiner: combiner)
        return members
    }

    mutating func endGroup() {
        guard let group = self.group else { return }
        for id in group.members {
            if let i = self.index(of: id) { self.leases[i].member = nil }
        }
        self.group = nil
        if self.batch == .group { self.batch = nil }
    }

    // MARK: writing

    /// Writes `op` to the lease now if it is attached, else when it is.
    mutating func enqueue(_ op: Queued, to id: LeaseID, current: Bool = false) {
        guard let i = self.index(of: id) else { return }
        if self.leases[i].isAttached, self.leases[i].after == nil, self.leases[i].gate.isEmpty {
            self.perform(op, at: i, current: current)
        } else {
            if current { self.leases[i].queuedCurrent = (self.frameSerial, self.leases[i].queued.count) }
            self.leases[i].queued.append(op)
        }
    }

    /// Writes `op` to attached lease `leases[i]`.
    mutating func perform(_ op: Queued, at i: Int, current: Bool) {
        let id = self.leases[i].id
        switch op {
        case .frame(let frame, let expected):
            if let expected { self.leases[i].tracker.append(expected) }
            self.noteWritten(frame.id, at: i)
            if current {
                self.emit(.forward(id))
            } else {
                var out = self.allocator.buffer(capacity: frame.wireLength)
                frame.write(into: &out)
                self.emit(.write(id, out))
            }
        case .statement(let statement, let key):
            guard let backend = self.leases[i].backend, !backend.hasStatement(statement) else { return }
            var out = self.allocator.buffer(capacity: key.sql.utf8.count + 32)
            FrontendMessage.parse(Parse(name: BackendState.statementName(statement), query: key.sql,
                                        parameterTypes: key.parameterTypes)).encode(into: &out)
            self.leases[i].tracker.append(.init(.parse, .swallow, statement: statement))
            if let evicted = backend.addStatement(statement) {
                FrontendMessage.close(.statement(BackendState.statementName(evicted))).encode(into: &out)
                self.leases[i].tracker.append(.init(.close, .swallow))
            }
            self.noteWritten(FrontendMessageID.parse.rawValue, at: i)
            self.emit(.write(id, out))
        case .unnamed(let key):
            guard !self.leases[i].unnamedValid else { return }
            var out = self.allocator.buffer(capacity: key.sql.utf8.count + 16)
            FrontendMessage.parse(Parse(name: "", query: key.sql, parameterTypes: key.parameterTypes)).encode(into: &out)
            self.leases[i].tracker.append(.init(.parse, .swallow))
            self.leases[i].unnamedValid = true
            self.noteWritten(FrontendMessageID.parse.rawValue, at: i)
            self.emit(.write(id, out))
        case .prepare(let statement, let key, let disposition):
            guard let backend = self.leases[i].backend else { return }
            if backend.hasStatement(statement) {
                var out = self.allocator.buffer(capacity: 5)
                BackendMessage.parseComplete.encode(into: &out)
                self.leases[i].tracker.append(.init(.local, disposition))
                self.leases[i].localAnswers.append(out)
                self.deliverLocal(at: i)
                return
            }
            var out = self.allocator.buffer(capacity: key.sql.utf8.count + 32)
            FrontendMessage.parse(Parse(name: BackendState.statementName(statement), query: key.sql,
                                        parameterTypes: key.parameterTypes)).encode(into: &out)
            self.leases[i].tracker.append(.init(.parse, disposition, statement: statement))
            if let evicted = backend.addStatement(statement) {
                FrontendMessage.close(.statement(BackendState.statementName(evicted))).encode(into: &out)
                self.leases[i].tracker.append(.init(.close, .swallow))
            }
            self.noteWritten(FrontendMessageID.parse.rawValue, at: i)
            self.emit(.write(id, out))
        case .forgetStatements:
            self.leases[i].backend?.removeAllStatements()
            self.leases[i].unnamedValid = false
        case .local(let bytes):
            self.leases[i].tracker.append(.init(.local, .relay))
            self.leases[i].localAnswers.append(bytes)
            self.deliverLocal(at: i)
        case .bytes(let bytes, let expected):
            for entry in expected {
                self.leases[i].tracker.append(entry)
                switch entry.kind {
                case .sync:
                    self.leases[i].batchOpen = false
                    self.leases[i].unflushed = false
                case .query, .functionCall, .local:
                    break
                case .parse, .bind, .describeStatement, .describePortal, .execute, .close, .mergeDescribe:
                    self.leases[i].batchOpen = true
                    self.leases[i].unflushed = true
                }
            }
            self.emit(.write(id, bytes))
        }
    }

    /// Batch bookkeeping for a client message written to `leases[i]`.
    mutating func noteWritten(_ id: UInt8, at i: Int) {
        switch FrontendMessageID(rawValue: id) {
        case .parse?, .bind?, .describe?, .execute?, .close?:
            self.leases[i].batchOpen = true
            self.leases[i].unflushed = true
        case .sync?:
            self.leases[i].batchOpen = false
            self.leases[i].unflushed = false
        case .flush?:
            self.leases[i].unflushed = false
        case .query?:
            // A simple Query replaces the backend's unnamed statement.
            self.leases[i].unnamedValid = false
        case .copyData?, .copyDone?, .copyFail?, .functionCall?, .password?, .terminate?, nil:
            break
        }
    }

    /// Makes the source's pending answers come: a Flush when extended messages are unflushed.
    mutating func flushOut(_ source: Source) {
        for id in self.ids(of: source) {
            guard let i = self.index(of: id), self.leases[i].unflushed else { continue }
            self.enqueue(.frame(Self.flushFrame, nil), to: id)
            self.leases[i].unflushed = false
        }
    }

    /// Ends an open batch on `source` with a Sync whose ReadyForQuery the client does not see.
    mutating func closeBatch(_ source: Source) {
        if source == .group, self.group?.combiner.isComplete == false {
            // The group's answers are still coming: its Sync's ReadyForQuery completes the group, and the
            // combiner holds it back (the client's own Sync answers later). A write ShardGate wrapped in a
            // transaction commits then.
            self.group?.combiner.holdsReadyForQuery = true
            if self.transaction?.implicit == true { self.transaction?.endsMidBatch = true }
            for id in self.ids(of: source) {
                var out = self.allocator.buffer(capacity: 5)
                FrontendMessage.sync.encode(into: &out)
                self.enqueue(.bytes(out, [.init(.sync, .combine)]), to: id)
            }
            self.batch = nil
            return
        }
        for id in self.ids(of: source) {
            guard let i = self.index(of: id), self.leases[i].batchOpen || !self.leases[i].isAttached else { continue }
            var out = self.allocator.buffer(capacity: 5)
            FrontendMessage.sync.encode(into: &out)
            self.enqueue(.bytes(out, [.init(.sync, .swallow)]), to: id)
        }
        self.batch = nil
        if source == .group { self.endGroup() }
    }

    func ids(of source: Source) -> LeaseIDs {
        switch source {
        case .lease(let id): return LeaseIDs(id)
        case .group: return LeaseIDs(self.group?.members ?? [])
        }
    }

    static let flushFrame: PGFrame = {
        var buffer = ByteBuffer()
        FrontendMessage.flush.encode(into: &buffer)
        return PGFrame(id: FrontendMessageID.flush.rawValue, payload: buffer.getSlice(at: 5, length: 0)!)
    }()

    // MARK: attaching

    /// A backend was leased for `id`: bring it to the session's state (parameters, settings, the open
    /// transaction), then write what waited for it.
    public mutating func leaseGranted(_ id: LeaseID, backend: BackendState, context: inout RoutingContext) {
        guard let i = self.index(of: id) else {
            // Nothing wants it any more.
            self.emit(.release(id))
            return
        }
        self.leases[i].backend = backend
        var prefix: [String] = []
        if let sync = self.parameters.synchronization(for: backend.parameters) {
            prefix.append(sync)
            self.parameters.applySynchronization(to: &backend.parameters)
        }
        if !self.settings.matches(backend: backend.parameters.replayed) {
            prefix += self.settings.synchronization(backend: backend.parameters.replayed)
            backend.parameters.replayed = self.settings.replayed
        }
        if !prefix.isEmpty {
            self.perform(.bytes(Self.query(prefix.joined(separator: Self.statementSeparator), allocator: self.allocator), [.init(.query, .swallow)]),
                         at: i, current: false)
        }
        if self.leases[i].participant, let transaction = self.transaction {
            let begin = ([transaction.begin] + transaction.replay).joined(separator: Self.statementSeparator)
            self.perform(.bytes(Self.query(begin, allocator: self.allocator), [.init(.query, .swallow)]), at: i, current: false)
            self.leases[i].status = .inTransaction
        }
        if self.leases[i].after == nil, self.leases[i].gate.isEmpty { self.performQueued(at: i) }
        self.acquireDeferred()
        self.settle(context: &context)
    }

    private mutating func performQueued(at i: Int) {
        var queued: [Queued] = []
        swap(&queued, &self.leases[i].queued)
        // A lease granted while the frame queued on it is still being handled (a pool with an idle
        // connection answers at once) forwards that frame's bytes rather than copying them.
        var current: Int?
        if let mark = self.leases[i].queuedCurrent, mark.frame == self.handlingFrame, self.handlingFrame != 0 {
            current = mark.index
        }
        self.leases[i].queuedCurrent = nil
        for (index, op) in queued.enumerated() {
            self.perform(op, at: i, current: index == current)
        }
        if self.leases[i].queued.isEmpty {
            // Keep the storage (nothing was queued meanwhile).
            queued.removeAll(keepingCapacity: true)
            swap(&queued, &self.leases[i].queued)
        }
    }

    /// A write over several shards goes to them one after another, in shard order: each member's messages
    /// wait until the member before it answered them. Two such writes (or a reference-table write, whose
    /// rows are on every shard) then take their row locks in the same shard order and never wait for each
    /// other across shards, where no PostgreSQL deadlock detector would see the cycle. Nothing is written
    /// before every member has its backend: a session that took a row lock on one shard and then waited
    /// for a pool slot of another could wait for ever for sessions that wait for that lock.
    mutating func orderWrites(_ members: [LeaseID]) {
        for (index, id) in members.enumerated() where index > 0 {
            if let i = self.index(of: id) { self.leases[i].after = members[index - 1] }
        }
        if let first = members.first, let i = self.index(of: first) {
            self.leases[i].gate = members.dropFirst().filter { id in self.index(of: id).map { !self.leases[$0].isAttached } ?? false }
        }
    }

    /// Leases whose predecessor (`after`) answered everything are written to now. True if any was.
    mutating func releaseOrdered() -> Bool {
        var released = false
        for i in self.leases.indices where !self.leases[i].gate.isEmpty {
            let gate = self.leases[i].gate
            guard gate.allSatisfy({ id in self.index(of: id).map { self.leases[$0].isAttached } ?? true }) else { continue }
            self.leases[i].gate = []
            if self.leases[i].isAttached, self.leases[i].after == nil { self.performQueued(at: i) }
            released = true
        }
        for i in self.leases.indices {
            guard let after = self.leases[i].after else { continue }
            if let blocker = self.leases.first(where: { $0.id == after }), blocker.after != nil || blocker.isBusy {
                continue
            }
            self.leases[i].after = nil
            if self.leases[i].isAttached { self.performQueued(at: i) }
            released = true
        }
        return released
    }

    /// No backend could be leased for `id` (connect failure, checkout timeout): every answer it owed is
    /// that error, as if the server had failed each statement.
    public mutating func leaseFailed(_ id: LeaseID, error: ErrorNoticeFields, context: inout RoutingContext) {
        guard let i = self.index(of: id) else { return }
        let lease = self.leases[i]
        var owed: [Owed] = []
        for op in lease.queued {
            switch op {
            case .frame(_, let expected): owed += expected.map { [.answer($0)] } ?? []
            case .bytes(_, let expected): owed += expected.map { .answer($0) }
            case .prepare(_, _, let disposition): owed.append(.answer(.init(.parse, disposition)))
            case .local(let bytes): owed.append(.local(bytes))
            case .statement, .unnamed, .forgetStatements: break
            }
        }
        self.leases.remove(at: i)
        if lease.participant, self.transaction != nil { self.transaction?.failedLocally = true }
        self.answerFailure(error, for: owed, member: lease.member)
        self.acquireDeferred()
        self.settle(context: &context)
    }

    /// An answer a lease owes: one the backend would give, or one ShardGate gives itself.
    enum Owed {
        case answer(ResponseTracker.Expected)
        case local(ByteBuffer)
    }

    /// What `lease` owes, in order.
    static func owed(by lease: Lease) -> [Owed] {
        var locals = lease.localAnswers[...]
        return lease.tracker.pending.map { entry in
            if entry.kind == .local, let bytes = locals.popFirst() { return .local(bytes) }
            return .answer(entry)
        }
    }

    /// Answers owed by a lease that will never give them: an error for the first, the rest skipped as
    /// PostgreSQL skips after an error, ReadyForQuery for each Query/Sync; ShardGate's own answers as they are.
    mutating func answerFailure(_ error: ErrorNoticeFields, for owed: [Owed], member: Int?) {
        var errorSent = false
        var extendedFailed = false
        for item in owed {
            let entry: ResponseTracker.Expected
            switch item {
            case .local(let bytes):
                if !extendedFailed { self.feed(bytes, member: member) }
                continue
            case .answer(let expected):
                entry = expected
            }
            guard entry.disposition != .swallow else { continue }
            switch entry.kind {
            case .query, .functionCall:
                self.feed([.errorResponse(error), .readyForQuery(self.clientStatus)], member: member)
                errorSent = false
            case .sync:
                if extendedFailed && !errorSent {
                    self.feed([.errorResponse(error)], member: member)
                }
                self.feed([.readyForQuery(self.clientStatus)], member: member)
                extendedFailed = false
                errorSent = false
            case .parse, .bind, .describeStatement, .describePortal, .execute, .close, .mergeDescribe:
                if !errorSent && !extendedFailed {
                    self.feed([.errorResponse(error)], member: member)
                    errorSent = true
                }
                extendedFailed = true
            case .local:
                break
            }
        }
        if extendedFailed {
            // The rest of the batch is skipped up to the client's Sync.
            self.skipping = true
        }
    }

    private mutating func feed(_ messages: [BackendMessage], member: Int?) {
        var out = self.allocator.buffer(capacity: 64)
        for message in messages { message.encode(into: &out) }
        self.feed(out, member: member)
    }

    /// Sends synthesized answers to the client, or into the combiner for group member `member`.
    private mutating func feed(_ bytes: ByteBuffer, member: Int?) {
        guard let member, self.group != nil else {
            self.emit(.send(bytes))
            return
        }
        var reader = bytes
        while let frame = try? PGFrame.decode(from: &reader, limits: .default) {
            self.combine(member: member, kind: .query, id: frame.id, payload: frame.payload)
        }
    }

    static func query(_ sql: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: sql.utf8.count + 6)
        FrontendMessage.query(sql).encode(into: &out)
        return out
    }

    // MARK: ending

    /// After every event: ends leases that are done, lets waiting messages go, closes when draining.
    mutating func settle(context: inout RoutingContext) {
        var progressed = true
        while progressed && !self.closed {
            progressed = self.releaseOrdered()
            self.releaseFinished()
            while self.waitingHead < self.waiting.count {
                let frame = self.waiting[self.waitingHead]
                guard self.process(frame, context: &context, current: false) else { break }
                self.waitingHead += 1
                progressed = true
                if self.closed { return }
            }
            if self.waitingHead > 0, self.waitingHead == self.waiting.count {
                self.waiting.removeAll(keepingCapacity: true)
                self.waitingHead = 0
            }
        }
        if self.inFlight == nil {
            self.flushDeferred()
            if self.transaction == nil { self.touched = [] }
        }
        self.acquireDeferred()
        if self.draining, !self.closed, self.transaction == nil, self.isIdle, self.held.isEmpty {
            self.close(ProxyErrors.shuttingDown)
        }
    }

    /// Whether `leases[i]` has nothing in flight, no open batch or transaction, is not pinned or in a group.
    /// (Looked at in place: a copy would share its arrays, and the release could not reuse them.)
    private func isReleasable(at i: Int) -> Bool {
        let id = self.leases[i].id
        return self.leases[i].isAttached && !self.leases[i].isBusy && !self.leases[i].batchOpen
            && self.leases[i].status == .idle && !self.leases[i].participant && !self.leases[i].pinned
            && self.leases[i].member == nil && !self.leases[i].copyIn && self.batch != .lease(id)
    }

    /// Releases leases with nothing in flight, no open batch or transaction, not pinned, not in a group.
    mutating func releaseFinished() {
        if let group = self.group, group.combiner.isComplete,
           group.members.allSatisfy({ id in !(self.leases.first { $0.id == id }?.isBusy ?? false) }) {
            self.endGroup()
        }
        var i = 0
        while i < self.leases.count {
            if self.isReleasable(at: i) {
                var released = self.leases.remove(at: i)
                self.emit(.release(released.id))
                // Not busy: its queue and tracker are empty; the next lease reuses their storage.
                released.queued.removeAll(keepingCapacity: true)
                released.tracker.removeAll()
                swap(&released.queued, &self.spareQueue)
                swap(&released.tracker, &self.spareTracker)
            } else {
                i += 1
            }
        }
    }

    /// Notifications held back while another backend was answering.
    mutating func flushDeferred() {
        for i in self.leases.indices {
            if let deferred = self.leases[i].deferred {
                self.leases[i].deferred = nil
                self.emit(.send(deferred))
            }
        }
    }

    /// Disposes of every lease and closes the client.
    mutating func close(_ error: ErrorNoticeFields?) {
        self.disposeAll()
        self.closed = true
        self.emit(.closeClient(error))
    }

    /// The session ends in the middle of a two-phase commit: its id is no longer in progress, so recovery
    /// finishes it (commits it if decided, rolls it back if not). While the decision is being written it
    /// stays in progress until the write ends (`decisionLogged`/`decisionFailed`): recovery must not roll
    /// back on one shard what the decision then commits on another.
    mutating func abandonTwoPhase() {
        guard let commit = self.twoPhase else { return }
        if commit.phase == .logging { return }
        if !commit.id.isEmpty { self.emit(.twoPhaseFinished(commit.id, complete: false)) }
        self.twoPhase = nil
    }

    /// Every lease: clean ones back to the pool, others closed, pending ones cancelled.
    mutating func disposeAll() {
        self.abandonTwoPhase()
        for lease in self.leases {
            if !lease.isAttached {
                self.emit(.cancelAcquire(lease.id))
            } else if !lease.isBusy, !lease.batchOpen, lease.status == .idle, !lease.pinned, !lease.copyIn {
                self.emit(.release(lease.id))
            } else {
                self.emit(.discard(lease.id))
            }
        }
        self.leases.removeAll()
        self.group = nil
        self.batch = nil
    }
}
