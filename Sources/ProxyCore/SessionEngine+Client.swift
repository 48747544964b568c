import NIOCore
import PGWire
import ShardMap
import SQLRouting

/// Client messages: dispatch, answers ShardGate gives itself, and the simple query protocol.
extension SessionEngine {
    // MARK: entry points

    /// A message from the client. Sends it on, answers it, or keeps it until the answers in flight are in.
    ///
    /// The caller keeps the frame's bytes readable until it calls `clientFrameHandled()`, after performing
    /// the actions this returns: `.forward` sends them from there.
    public mutating func clientFrame(_ frame: PGFrame, context: inout RoutingContext) {
        guard !self.closed else { return }
        self.frameSerial &+= 1
        self.handlingFrame = self.frameSerial
        if self.waitingHead < self.waiting.count || !self.process(frame, context: &context, current: true) {
            self.waiting.append(frame)
        }
        self.settle(context: &context)
    }

    /// The frame last given to `clientFrame` is no longer readable by the caller: from now on its bytes
    /// are copied wherever they still have to go.
    public mutating func clientFrameHandled() {
        self.handlingFrame = 0
    }

    /// The client connection is gone: every lease is disposed of, the client's statements released.
    public mutating func clientClosed(context: inout RoutingContext) {
        guard !self.closed else { return }
        self.closed = true
        self.disposeAll()
        self.releaseStatements(context: &context)
    }

    // MARK: metrics

    /// A Query or Sync went to backends: its ReadyForQuery will end a unit.
    mutating func noteDispatch(_ route: RouteKind, primary: Bool, context: RoutingContext) {
        guard context.metrics != nil else { return }
        self.units.append(Unit(start: context.clock(), route: route, role: primary ? .primary : .replica))
    }

    /// A ReadyForQuery from a backend reached the client.
    mutating func noteUnitDone(context: RoutingContext, failed: Bool) {
        guard let metrics = context.metrics, self.unitsHead < self.units.count else { return }
        let unit = self.units[self.unitsHead]
        self.unitsHead += 1
        if self.unitsHead == self.units.count {
            self.units.removeAll(keepingCapacity: true)
            self.unitsHead = 0
        }
        metrics.queryFinished(route: unit.route, role: unit.role,
                              nanoseconds: (context.clock() - unit.start).nanoseconds)
        if failed { metrics.queryFailed(route: unit.route) }
    }

    static func route(_ plan: RoutePlan, shards: [Int]?, shardCount: Int) -> RouteKind {
        guard let shards else { return .any }
        if shards.count == 1 { return .single }
        return shards.count == shardCount ? .all : .multi
    }

    /// The shards a plan runs on, in shard order. A plan on one shard (almost every statement) is `one`,
    /// found without building a set or an array.
    enum PlanShards {
        /// Any one shard (the engine picks).
        case any
        case one(Int)
        /// Two or more, sorted.
        case several([Int])

        init(_ plan: RoutePlan, shardCount: Int) {
            switch plan.target {
            case .shard(let index): self = .one(index)
            case .anyShard: self = .any
            case .shards, .allShards:
                let sorted = plan.shardIndexes(shardCount: shardCount)!.sorted()
                self = sorted.count == 1 ? .one(sorted[0]) : .several(sorted)
            }
        }

        /// The first (or only) shard; nil for `any`.
        var first: Int? {
            switch self {
            case .any: return nil
            case .one(let index): return index
            case .several(let indexes): return indexes.first
            }
        }

        func route(shardCount: Int) -> RouteKind {
            switch self {
            case .any: return .any
            case .one: return .single
            case .several(let indexes): return indexes.count == shardCount ? .all : .multi
            }
        }
    }

    /// Paused slots were resumed: statements that waited for them go now.
    public mutating func resume(context: inout RoutingContext) {
        self.settle(context: &context)
    }

    /// Whether a statement over `plan.slots` must wait for paused slots. A transaction that already touched
    /// them goes on (the pause waits for it to end).
    mutating func waitsForPause(_ plan: RoutePlan, context: RoutingContext) -> Bool {
        guard context.isPaused(plan.slots) else { return false }
        if self.transaction != nil, self.touches(context.pausedSlots) { return false }
        self.emit(.waitForPause)
        return true
    }

    /// Proxy shutdown: close now if idle, else once the transaction in progress ends.
    public mutating func shutdown(context: inout RoutingContext) {
        self.draining = true
        self.settle(context: &context)
    }

    /// The shutdown deadline passed: close whatever is in flight.
    public mutating func forceClose(context: inout RoutingContext) {
        guard !self.closed else { return }
        self.close(ProxyErrors.shuttingDown)
        self.releaseStatements(context: &context)
    }

    mutating func releaseStatements(context: inout RoutingContext) {
        for statement in self.statements.values where statement.id != nil {
            context.catalog.release(statement.key)
        }
        self.statements.removeAll()
    }

    /// Handles one client frame; false when it must wait for the answers in flight (nothing was done).
    /// `current`: the frame is the one the caller is processing, so `.forward` may send its bytes.
    mutating func process(_ frame: PGFrame, context: inout RoutingContext, current: Bool) -> Bool {
        guard let id = FrontendMessageID(rawValue: frame.id) else {
            self.protocolViolation("invalid frontend message type \(ClientSessionStateMachine.name(frame.id))")
            return true
        }
        // A commit in progress answers first (its decision may still be being written).
        if self.twoPhase != nil, id != .terminate { return false }
        switch id {
        case .query:
            return self.query(frame, context: &context, current: current)
        case .parse:
            return self.parse(frame, context: &context)
        case .bind:
            return self.bind(frame, context: &context, current: current)
        case .describe:
            return self.describe(frame, context: &context, current: current)
        case .execute:
            return self.execute(frame, context: &context, current: current)
        case .close:
            return self.closeMessage(frame, context: &context, current: current)
        case .sync:
            return self.sync(frame, context: &context, current: current)
        case .flush:
            return self.flush(frame, context: &context, current: current)
        case .functionCall:
            return self.functionCall(frame, context: &context, current: current)
        case .copyData, .copyDone, .copyFail:
            return self.copy(frame, current: current)
        case .terminate:
            self.close(nil)
            self.releaseStatements(context: &context)
            return true
        case .password:
            self.protocolViolation("unexpected password message")
            return true
        }
    }

    mutating func protocolViolation(_ message: String) {
        self.disposeAllDirty()
        self.closed = true
        self.emit(.closeClient(ProxyErrors.protocolViolation(message)))
    }

    /// As `disposeAll`, but no backend goes back to the pool: the client broke the protocol mid-stream.
    mutating func disposeAllDirty() {
        self.abandonTwoPhase()
        for lease in self.leases {
            self.emit(lease.isAttached ? .discard(lease.id) : .cancelAcquire(lease.id))
        }
        self.leases.removeAll()
        self.group = nil
        self.batch = nil
    }

    // MARK: answers ShardGate gives itself

    /// Answers with `messages` in order after everything sent before: at once when nothing is in flight,
    /// after the in-flight lease's answers otherwise. False (nothing done) while a group is answering.
    mutating func answer(_ messages: [BackendMessage]) -> Bool {
        var messages = messages
        if !self.held.isEmpty {
            if self.batch == nil, self.inFlight == nil, self.leases.isEmpty {
                // No backend to parse them on: they were parsed here (syntax checked) and are answered here.
                messages.insert(contentsOf: Array(repeating: BackendMessage.parseComplete, count: self.held.count), at: 0)
                self.held.removeAll(keepingCapacity: true)
            } else {
                self.sendHeld()
            }
        }
        var out = self.allocator.buffer(capacity: 64)
        for message in messages { message.encode(into: &out) }
        switch self.inFlight {
        case nil:
            self.emit(.send(out))
            return true
        case .lease(let id)?:
            self.enqueue(.local(out), to: id)
            return true
        case .group?:
            self.flushOut(.group)
            return false
        }
    }

    /// An error ShardGate found itself: answered like a server error (in a transaction it fails the
    /// transaction; in an extended-protocol batch the rest of the batch is skipped).
    mutating func refuse(_ error: ErrorNoticeFields, simpleQuery: Bool) -> Bool {
        if simpleQuery {
            guard self.inFlight == nil else {
                if let busy = self.inFlight { self.flushOut(busy) }
                return false
            }
            if self.transaction != nil { self.transaction?.failedLocally = true }
            return self.answer([.errorResponse(error), .readyForQuery(self.clientStatus)])
        }
        guard self.answer([.errorResponse(error)]) else { return false }
        if self.transaction != nil { self.transaction?.failedLocally = true }
        self.skipping = true
        return true
    }

    static func error(_ route: RouteError) -> ErrorNoticeFields {
        ErrorNoticeFields(severity: "ERROR", sqlState: route.sqlState, message: route.message, position: route.position)
    }

    // MARK: simple query

    mutating func query(_ frame: PGFrame, context: inout RoutingContext, current: Bool) -> Bool {
        if self.skipping { return true }
        guard let sql = frame.payload.getNullTerminatedString(at: frame.payload.readerIndex) else {
            self.protocolViolation("unterminated query string")
            return true
        }
        if self.draining, self.transaction == nil, self.inFlight == nil {
            self.close(ProxyErrors.shuttingDown)
            return true
        }
        let analysis: SQLAnalysis
        do {
            analysis = try context.router.analyze(sql)
        } catch {
            return self.refuse(Self.error(error), simpleQuery: true)
        }
        guard !analysis.statements.isEmpty else {
            return self.answerWhenIdle([.emptyQueryResponse, .readyForQuery(self.clientStatus)])
        }
        if analysis.statements.count == 1, case .transaction(let control) = analysis.kind {
            return self.transactionStatement(control, sql: sql, analysis: analysis, frame: frame, context: &context,
                                             current: current)
        }
        if let transaction = self.transaction, transaction.failedLocally {
            return self.refuse(ProxyErrors.transactionAborted, simpleQuery: true)
        }
        if analysis.statements.count == 1, let command = analysis.statements[0].preparedCommand {
            return self.preparedCommand(command, sql: sql, context: &context)
        }
        return self.route(frame, sql: sql, analysis: analysis, context: &context, current: current)
    }

    /// Sends query `frame` (text `sql`, analyzed) where its plan says, or answers why it cannot go.
    /// `hidesPosition`: the text is not the client's (EXECUTE's substitution), so error positions are dropped.
    mutating func route(_ frame: PGFrame, sql: String, analysis: SQLAnalysis, hidesPosition: Bool = false,
                        context: inout RoutingContext, current: Bool) -> Bool {
        let plan: RoutePlan
        do {
            plan = try RoutePlanner.plan(analysis, map: context.map)
        } catch {
            return self.refuse(Self.error(error), simpleQuery: true)
        }
        if self.waitsForPause(plan, context: context) { return false }
        let hasControl = plan.kinds.contains { if case .transaction = $0 { return true } else { return false } }
        let effect = SessionEffect(analysis: analysis, sql: sql, inTransaction: self.transaction != nil)
        let shards = PlanShards(plan, shardCount: context.map.shards.count)

        if case .several(let shards) = shards {
            guard !hasControl else {
                return self.refuse(ProxyErrors.unsupported("transaction control in a query string whose statements run on "
                    + "several shards; send BEGIN, COMMIT and ROLLBACK on their own"), simpleQuery: true)
            }
            return self.scatterQuery(frame, sql: sql, analysis: analysis, plan: plan, shards: shards, effect: effect,
                                     hidesPosition: hidesPosition, context: &context, current: current)
        }
        if hasControl, self.leases.filter(\.participant).count > 1 {
            return self.refuse(ProxyErrors.unsupported("transaction control in a query string with other statements "
                + "while the transaction spans several shards; send COMMIT or ROLLBACK on its own"), simpleQuery: true)
        }
        let primary = plan.needsPrimary || plan.isWrite || hasControl || effect.needsPrimary
        let choice = shards.first.map { self.choose(shard: $0, primary: primary, context: &context) }
            ?? self.chooseAny(primary: primary, context: &context)
        // A statement whose effect on the session is recorded when it succeeds goes alone, so that the
        // next ReadyForQuery is its own.
        if effect.needsOwnReadyForQuery, self.inFlight != nil {
            if let busy = self.inFlight { self.flushOut(busy) }
            return false
        }
        guard self.isReady(for: choice) else { return false }
        let id = self.lease(for: choice)
        self.noteUnit(effect, plan: plan, lease: id, shard: shards.first)
        self.noteDispatch(shards.route(shardCount: context.map.shards.count),
                          primary: self.leases.first { $0.id == id }?.target.isPrimary ?? true, context: context)
        self.enqueue(.frame(frame, .init(.query, .relay, hidesPosition: hidesPosition)), to: id, current: current)
        if analysis.statements.count == 1, analysis.statements[0].discardsAll, self.transaction == nil {
            // DISCARD ALL deallocates every prepared statement, on the backend and in the client's session.
            self.deallocate(nil, context: &context)
            self.enqueue(.forgetStatements, to: id)
        }
        return true
    }

    /// Answers when nothing is in flight (false until then).
    mutating func answerWhenIdle(_ messages: [BackendMessage]) -> Bool {
        if let busy = self.inFlight {
            self.flushOut(busy)
            return false
        }
        return self.answer(messages)
    }

    /// Bookkeeping before a statement goes to lease `id`: pinning, the transaction's writer and replay log,
    /// the setting to record when it succeeds, the fence to set when a write completes.
    mutating func noteUnit(_ effect: SessionEffect, plan: RoutePlan?, lease id: LeaseID, shard: Int?) {
        if let plan {
            if let slots = plan.slots, let known = self.touched {
                // Sharing the plan's set when nothing was touched yet (every autocommit statement) copies nothing.
                self.touched = known.isEmpty ? slots : known.union(slots)
            } else {
                self.touched = nil
            }
        }
        guard let i = self.index(of: id) else { return }
        if effect.pins || self.pinNext {
            self.leases[i].pinned = true
            self.pinNext = false
        }
        self.leases[i].sawError = false
        self.leases[i].pendingChange = effect.change
        if let plan, plan.isWrite || plan.needsPrimary && plan.kinds.contains(where: { if case .read = $0 { return false } else { return true } }) {
            self.leases[i].wrote = self.leases[i].wrote || plan.isWrite
            if plan.isWrite, self.transaction != nil, let shard { self.transaction?.writers.insert(shard) }
        }
        self.leases[i].pendingReplay = effect.replay
    }

    /// COPY data from the client goes to the backend(s) of the COPY in progress (PostgreSQL ignores copy
    /// messages outside COPY, and so does ShardGate).
    mutating func copy(_ frame: PGFrame, current: Bool) -> Bool {
        if self.skipping { return true }
        if case .lookingUp? = self.copyIn { return false }  // the COPY has not started: its data waits
        if case .splitting(var splitter) = self.copyIn {
            self.copyIn = nil
            self.splitCopy(frame, splitter: &splitter)
            if frame.id == FrontendMessageID.copyData.rawValue { self.copyIn = .splitting(splitter) }
            return true
        }
        switch self.inFlight {
        case .lease(let id)?:
            self.enqueue(.frame(frame, nil), to: id, current: current)
        case .group?:
            for member in self.group?.members ?? [] {
                self.enqueue(.frame(frame, nil), to: member)
            }
        case nil:
            break
        }
        return true
    }

    mutating func functionCall(_ frame: PGFrame, context: inout RoutingContext, current: Bool) -> Bool {
        if self.skipping { return true }
        let choice = self.chooseAny(primary: true, context: &context)
        guard self.isReady(for: choice) else { return false }
        let id = self.lease(for: choice)
        self.enqueue(.frame(frame, .init(.functionCall, .relay)), to: id, current: current)
        return true
    }
}
