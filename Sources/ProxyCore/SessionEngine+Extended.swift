import NIOCore
import PGWire
import ResultMerge
import ShardMap
import SQLRouting

/// The extended query protocol: statements are kept per client and prepared lazily on whichever backend
/// serves each Bind (named ones as `sg_<id>`, shared by clients with the same text); each Bind is routed by
/// its statement and its parameter values; Parse waits for the message that decides where it goes.
extension SessionEngine {
    // MARK: Parse

    mutating func parse(_ frame: PGFrame, context: inout RoutingContext) -> Bool {
        if self.skipping { return true }
        var payload = frame.payload
        let parse: Parse
        do {
            parse = try Parse.decode(from: &payload)
        } catch {
            self.protocolViolation("invalid Parse message: \(error)")
            return true
        }
        let analysis: SQLAnalysis
        do {
            analysis = try context.router.analyze(parse.query)
        } catch {
            return self.refuse(Self.error(error), simpleQuery: false)
        }
        let key = StatementCatalog.Key(sql: parse.query, parameterTypes: parse.parameterTypes)
        if parse.name.isEmpty {
            self.statements[""] = ClientStatement(key: key, analysis: analysis, id: nil)
            for i in self.leases.indices { self.leases[i].unnamedValid = false }
            self.held.append(frame)
        } else {
            guard self.statements[parse.name] == nil else {
                return self.refuse(ProxyErrors.error("42P05", "prepared statement \"\(parse.name)\" already exists"),
                                   simpleQuery: false)
            }
            let id = context.catalog.retain(key)
            self.statements[parse.name] = ClientStatement(key: key, analysis: analysis, id: id)
            self.held.append(frame)
        }
        return true
    }

    /// The held Parse messages go to `ids` (all of them: a group) ahead of what follows; with `nil`, to
    /// the default lease (the batch's, a participant, shard 0).
    mutating func sendHeld(to ids: LeaseIDs? = nil) {
        guard !self.held.isEmpty else { return }
        let targets: LeaseIDs
        if let ids {
            targets = ids
        } else if let batch = self.batch {
            targets = self.ids(of: batch)
        } else if let busy = self.inFlight {
            targets = self.ids(of: busy)
        } else if let participant = self.leases.first(where: \.participant) {
            targets = LeaseIDs(participant.id)
        } else if let any = self.leases.first {
            targets = LeaseIDs(any.id)
        } else {
            return
        }
        // Taken out rather than copied, so that its storage is kept for the next batch.
        var held: [PGFrame] = []
        swap(&held, &self.held)
        let disposition: ResponseTracker.Disposition = targets.count > 1 ? .combine : .relay
        for frame in held {
            // An unnamed statement's Parse starts with its empty name: it goes as it is, undecoded.
            let name: String
            if frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt8.self) == 0 {
                name = ""
            } else {
                var payload = frame.payload
                guard let parse = try? Parse.decode(from: &payload) else { continue }
                name = parse.name
            }
            for id in targets {
                if name.isEmpty {
                    self.enqueue(.frame(frame, .init(.parse, disposition)), to: id)
                    if let i = self.index(of: id) { self.leases[i].unnamedValid = true }
                } else if let statement = self.statements[name], let statementID = statement.id {
                    self.enqueue(.prepare(statementID, statement.key, disposition), to: id)
                }
            }
        }
        if self.held.isEmpty {
            held.removeAll(keepingCapacity: true)
            swap(&held, &self.held)
        }
        if self.batch == nil, let first = targets.first {
            self.batch = targets.count > 1 ? .group : .lease(first)
        }
    }

    // MARK: Bind

    mutating func bind(_ frame: PGFrame, context: inout RoutingContext, current: Bool) -> Bool {
        if self.skipping { return true }
        var payload = frame.payload
        let bind: Bind
        do {
            bind = try Bind.decode(from: &payload)
        } catch {
            self.protocolViolation("invalid Bind message: \(error)")
            return true
        }
        guard let statement = self.statements[bind.statement] else {
            return self.refuse(ProxyErrors.error("26000", bind.statement.isEmpty ? "unnamed prepared statement does not exist"
                : "prepared statement \"\(bind.statement)\" does not exist"), simpleQuery: false)
        }
        let analysis = statement.analysis
        if analysis.statements.count == 1, case .transaction(let control) = analysis.kind {
            return self.bindTransactionControl(control, frame: frame, bind: bind, statement: statement,
                                               context: &context, current: current)
        }
        if let transaction = self.transaction, transaction.failedLocally {
            return self.refuse(ProxyErrors.transactionAborted, simpleQuery: false)
        }
        if analysis.statements.count == 1, case .deallocate(let name)? = analysis.statements[0].preparedCommand {
            // psycopg's DEALLOCATE in pipeline mode: done at the portal's Execute, as the simple query is.
            guard self.answerHeldLocally(), self.answer([.bindComplete]) else { return false }
            self.portals[bind.portal] = nil
            self.localPortals[bind.portal] = .deallocate(name)
            return true
        }
        let plan: RoutePlan
        do {
            plan = try RoutePlanner.plan(analysis, map: context.map,
                                         parameters: Self.parameters(bind, statement: statement, analysis: analysis))
        } catch {
            return self.refuse(Self.error(error), simpleQuery: false)
        }
        if self.waitsForPause(plan, context: context) { return false }
        let effect = SessionEffect(analysis: analysis, sql: statement.key.sql, inTransaction: self.transaction != nil)
        let shards = PlanShards(plan, shardCount: context.map.shards.count)
        if case .several(let shards) = shards {
            return self.bindScatter(frame, bind: bind, statement: statement, analysis: analysis, plan: plan,
                                    shards: shards, effect: effect, context: &context)
        }
        let primary = plan.needsPrimary || plan.isWrite
        let choice = shards.first.map { self.choose(shard: $0, primary: primary, context: &context) }
            ?? self.chooseAny(primary: primary, context: &context)
        if effect.needsOwnReadyForQuery, let busy = self.inFlight, busy != Self.source(choice) {
            self.flushOut(busy)
            return false
        }
        guard self.isReady(for: choice) else { return false }
        let id = self.lease(for: choice)
        self.sendHeld(to: LeaseIDs(id))
        self.noteUnit(effect, plan: plan, lease: id, shard: shards.first)
        if let statementID = statement.id {
            self.enqueue(.statement(statementID, statement.key), to: id)
            self.enqueue(.bytes(Self.rebind(bind, statement: BackendState.statementName(statementID), allocator: self.allocator),
                                [.init(.bind, .relay)]), to: id)
        } else {
            self.enqueue(.unnamed(statement.key), to: id)
            self.enqueue(.frame(frame, .init(.bind, .relay)), to: id, current: current)
        }
        self.portals[bind.portal] = .lease(id)
        self.batch = .lease(id)
        return true
    }

    /// Bind of a statement whose parameters select several shards.
    mutating func bindScatter(_ frame: PGFrame, bind: Bind, statement: ClientStatement, analysis: SQLAnalysis,
                              plan: RoutePlan, shards: [Int], effect: SessionEffect,
                              context: inout RoutingContext) -> Bool {
        if let refusal = self.scatterRefusal(plan: plan, effect: effect) {
            return self.refuse(refusal, simpleQuery: false)
        }
        if self.mergeNeeded(plan) != nil {
            return self.bindMerged(frame, bind: bind, statement: statement, plan: plan, shards: shards, effect: effect,
                                   context: &context)
        }
        var filtered: [Int: String]?
        // A multi-row INSERT whose rows go to several shards (SQLAlchemy's insertmanyvalues, Django's
        // bulk_create): each shard gets its rows, with just their parameters, renumbered.
        let split = plan.insertRowsByShard.map { $0.count > 1 } ?? false
        do {
            if split, let rows = plan.insertRowsByShard {
                filtered = try InsertSplitter.split(statement.key.sql, rowsByShard: rows)
            }
            try Self.filterCopies(&filtered, sql: statement.key.sql, shards: shards, map: context.map)
        } catch {
            return self.refuse(Self.error(error), simpleQuery: false)
        }
        guard self.isReadyForGroup(shards) else { return false }
        // A write outside a transaction runs in one ShardGate opens around it, committed (two-phase when
        // several shards wrote) when the batch ends: at the client's Sync, or when it moves to another backend.
        let atomic = self.beginImplicitTransaction(plan: plan, analysis: analysis)
        let members = self.makeGroup(shards, primary: plan.needsPrimary || plan.isWrite,
                                     rows: Self.answersOnce(analysis) ? .firstShard : .concatenate,
                                     isWrite: plan.isWrite && self.transaction == nil, context: &context)
        if atomic { self.group?.combiner.holdsReadyForQuery = true }
        if plan.isWrite { self.orderWrites(members) }
        self.sendHeld(to: LeaseIDs(members))
        let bytes: ByteBuffer
        if let statementID = statement.id {
            bytes = Self.rebind(bind, statement: BackendState.statementName(statementID), allocator: self.allocator)
        } else {
            var out = self.allocator.buffer(capacity: frame.wireLength)
            frame.write(into: &out)
            bytes = out
        }
        for (index, member) in members.enumerated() {
            self.noteUnit(effect, plan: plan, lease: member, shard: shards[index])
            if let text = filtered?[shards[index]] {
                // This shard's part of a split INSERT, or the filtered text of a shard that holds a rebalance's
                // copies: it runs as the shard's unnamed statement.
                var out = self.allocator.buffer(capacity: text.utf8.count + bytes.readableBytes + 16)
                if split {
                    let (part, order) = InsertSplitter.renumberingParameters(text)
                    let types = order.map { $0 <= statement.key.parameterTypes.count ? statement.key.parameterTypes[$0 - 1] : 0 }
                    FrontendMessage.parse(Parse(name: "", query: part, parameterTypes: types)).encode(into: &out)
                    FrontendMessage.bind(Self.subset(bind, order: order)).encode(into: &out)
                } else {
                    FrontendMessage.parse(Parse(name: "", query: text, parameterTypes: statement.key.parameterTypes))
                        .encode(into: &out)
                    out.writeImmutableBuffer(Self.rebind(bind, statement: "", allocator: self.allocator))
                }
                self.enqueue(.bytes(out, [.init(.parse, .swallow), .init(.bind, .combine)]), to: member)
                if let i = self.index(of: member) { self.leases[i].unnamedValid = false }
                continue
            }
            self.enqueue(Self.ensure(statement), to: member)
            self.enqueue(.bytes(bytes, [.init(.bind, .combine)]), to: member)
        }
        self.portals[bind.portal] = .group
        self.batch = .group
        return true
    }

    /// Bind of a read over several shards whose rows are merged. Each shard prepares the planner's rewritten
    /// SQL as its unnamed statement, binds it with the client's values (and a result format for each hidden
    /// column), and describes the portal for the merge, which needs the columns before the rows.
    mutating func bindMerged(_ frame: PGFrame, bind: Bind, statement: ClientStatement, plan: RoutePlan, shards: [Int],
                             effect: SessionEffect, context: inout RoutingContext) -> Bool {
        let mergePlan: MergePlan
        let spec: MergeSpec
        do {
            mergePlan = try context.mergePlans.plan(statement.key.sql)
            let values = bind.parameters.indices.map { index -> BindParameter in
                let type = index < statement.key.parameterTypes.count ? statement.key.parameterTypes[index] : 0
                return BindParameter(format: bind.format(ofParameter: index) == 1 ? .binary : .text, typeOID: type,
                                     value: bind.parameters[index].map { Array($0.readableBytesView) })
            }
            spec = try MergeSpec(plan: mergePlan, parameters: BindParameters(values),
                                 parameterTypes: statement.key.parameterTypes)
        } catch {
            return self.refuse(Self.error(error), simpleQuery: false)
        }
        var filtered: [Int: String]?
        do {
            try Self.filterCopies(&filtered, sql: mergePlan.shardSQL, shards: shards, map: context.map)
        } catch {
            return self.refuse(Self.error(error), simpleQuery: false)
        }
        guard self.isReadyForGroup(shards) else { return false }
        let names = shards.map { $0 < self.shardNames.count ? self.shardNames[$0] : "shard \($0)" }
        let merger = ResultMerger(spec: spec, shardCount: shards.count, maxBufferedBytes: context.map.merge.maxBytes,
                                  collation: context.collation ?? Self.unknownCollation, shardNames: names)
        let combiner = ScatterCombiner(shardNames: names, merger: merger, spec: spec, extendedProtocol: true,
                                       allocator: self.allocator)
        let members = self.makeGroup(shards, primary: plan.needsPrimary, combiner: combiner, context: &context)
        self.sendHeld(to: LeaseIDs(members))
        var shardBind = bind
        shardBind.statement = ""
        if shardBind.resultFormats.count > 1 {
            shardBind.resultFormats += Array(repeating: 0, count: mergePlan.hiddenColumnCount)
        }
        let allocator = self.allocator
        let messages = { (text: String) -> ByteBuffer in
            var out = allocator.buffer(capacity: text.utf8.count + 64)
            FrontendMessage.parse(Parse(name: "", query: text, parameterTypes: statement.key.parameterTypes))
                .encode(into: &out)
            FrontendMessage.bind(shardBind).encode(into: &out)
            FrontendMessage.describe(.portal(bind.portal)).encode(into: &out)
            return out
        }
        let out = messages(mergePlan.shardSQL)
        for (index, member) in members.enumerated() {
            self.noteUnit(effect, plan: plan, lease: member, shard: shards[index])
            self.enqueue(.bytes(filtered?[shards[index]].map(messages) ?? out, [.init(.parse, .swallow), .init(.bind, .combine), .init(.mergeDescribe, .combine)]),
                         to: member)
            // The unnamed statement there is now the rewritten one, not the client's.
            if let i = self.index(of: member) { self.leases[i].unnamedValid = false }
        }
        self.portals[bind.portal] = .group
        self.batch = .group
        return true
    }

    /// BEGIN/COMMIT/ROLLBACK through the extended protocol.
    mutating func bindTransactionControl(_ control: TransactionControl, frame: PGFrame, bind: Bind, statement: ClientStatement,
                                         context: inout RoutingContext, current: Bool) -> Bool {
        switch control {
        case .begin(let readOnly) where self.transaction == nil:
            // Answered here, as the simple-protocol BEGIN is; the portal's Execute starts the transaction.
            guard self.answerHeldLocally(), self.answer([.bindComplete]) else { return false }
            self.portals[bind.portal] = nil
            self.localPortals[bind.portal] = .begin(SessionEffect.statementText(statement.key.sql), readOnly: readOnly)
            return true
        case .commit, .rollback:
            let participants = self.leases.filter(\.participant)
            if self.transaction == nil || participants.isEmpty {
                guard self.answerHeldLocally(), self.answer([.bindComplete]) else { return false }
                self.localPortals[bind.portal] = .end(commit: control == .commit)
                return true
            }
            guard participants.count == 1, self.transaction?.failedLocally != true else {
                // Several participants (a two-phase commit when several wrote), or a transaction ShardGate
                // failed: ended by ShardGate at the portal's Execute.
                guard self.answerHeldLocally(), self.answer([.bindComplete]) else { return false }
                self.localPortals[bind.portal] = .end(commit: control == .commit)
                return true
            }
            let id = participants[0].id
            guard self.isReady(for: .existing(id)) else { return false }
            if let i = self.index(of: id) {
                self.leases[i].ending = control == .commit && self.clientStatus != .failedTransaction ? .commit : .rollback
            }
            self.sendHeld(to: LeaseIDs(id))
            self.enqueue(Self.ensure(statement), to: id)
            self.enqueue(.bytes(Self.rebind(bind, statement: statement.id.map(BackendState.statementName) ?? "",
                                            allocator: self.allocator), [.init(.bind, .relay)]), to: id)
            self.portals[bind.portal] = .lease(id)
            self.batch = .lease(id)
            return true
        default:
            if self.transaction?.failedLocally == true {
                if case .rollbackTo = control {} else {
                    return self.refuse(ProxyErrors.transactionAborted, simpleQuery: false)
                }
            }
            // Savepoints and the rest: where a simple-protocol statement would go.
            let choice = self.chooseAny(primary: true, context: &context)
            guard self.isReady(for: choice) else { return false }
            let id = self.lease(for: choice)
            self.sendHeld(to: LeaseIDs(id))
            self.enqueue(Self.ensure(statement), to: id)
            self.enqueue(.bytes(Self.rebind(bind, statement: statement.id.map(BackendState.statementName) ?? "",
                                            allocator: self.allocator), [.init(.bind, .relay)]), to: id)
            self.portals[bind.portal] = .lease(id)
            self.batch = .lease(id)
            return true
        }
    }

    /// Held Parses answered by ShardGate (ParseComplete each), for statements that need no backend.
    mutating func answerHeldLocally() -> Bool {
        guard !self.held.isEmpty else { return true }
        guard self.inFlight != .group else {
            self.flushOut(.group)
            return false
        }
        let count = self.held.count
        self.held.removeAll(keepingCapacity: true)
        return self.answer(Array(repeating: .parseComplete, count: count))
    }

    /// The bind parameters routing reads, from the Bind's values and the statement's declared types.
    static func parameters(_ bind: Bind, statement: ClientStatement, analysis: SQLAnalysis) -> BindParameters {
        // The parameters that decide a route, as bits when they are among $1...$64 (a set otherwise).
        var highest = 0
        var bits: UInt64 = 0
        for analyzed in analysis.statements {
            analyzed.forEachKeyParameter { number in
                highest = max(highest, number)
                if (1...64).contains(number) { bits |= 1 << UInt64(number - 1) }
            }
        }
        guard highest > 0 else { return BindParameters() }
        let many = highest > 64
            ? analysis.statements.reduce(into: Set<Int>()) { $0.formUnion($1.keyParameters) } : []
        func wanted(_ number: Int) -> Bool {
            highest > 64 ? many.contains(number) : bits & (1 << UInt64(number - 1)) != 0
        }
        var values: [BindParameter] = []
        values.reserveCapacity(highest)
        for number in 1...highest {
            let index = number - 1
            guard index < bind.parameters.count else { break }
            guard wanted(number) else {
                values.append(.null)
                continue
            }
            let type = index < statement.key.parameterTypes.count ? statement.key.parameterTypes[index] : 0
            let format: BindParameter.Format = bind.format(ofParameter: index) == 1 ? .binary : .text
            values.append(BindParameter(format: format, typeOID: type, value: bind.parameters[index].map { Array($0.readableBytesView) }))
        }
        return BindParameters(values)
    }

    /// `bind` of the unnamed statement with parameters `order` (old 1-based numbers) as `$1, $2, ...`.
    static func subset(_ bind: Bind, order: [Int]) -> Bind {
        var copy = bind
        copy.statement = ""
        copy.parameters = order.map { $0 <= bind.parameters.count ? bind.parameters[$0 - 1] : nil }
        if bind.parameterFormats.count > 1 {
            copy.parameterFormats = order.map { $0 <= bind.parameterFormats.count ? bind.parameterFormats[$0 - 1] : 0 }
        }
        return copy
    }

    static func rebind(_ bind: Bind, statement: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        var copy = bind
        copy.statement = statement
        var out = allocator.buffer(capacity: 64)
        FrontendMessage.bind(copy).encode(into: &out)
        return out
    }

    /// The client's statement must exist on the backend (injected Parse when it does not).
    static func ensure(_ statement: ClientStatement) -> Queued {
        if let id = statement.id { return .statement(id, statement.key) }
        return .unnamed(statement.key)
    }

    static func source(_ choice: Choice) -> Source? {
        if case .existing(let id) = choice { return .lease(id) }
        return nil
    }
}
