import NIOCore
import PGWire
import ShardMap
import SQLRouting

/// Describe, Execute, Close, Sync and Flush: they follow the portal or statement they name, or the batch.
extension SessionEngine {
    /// A portal ShardGate answers itself (BEGIN, or COMMIT/ROLLBACK with no shard involved).
    enum LocalPortal: Equatable {
        case begin(String, readOnly: Bool)
        case end(commit: Bool)
        /// DEALLOCATE name, or DEALLOCATE ALL (`nil`).
        case deallocate(String?)
    }

    mutating func describe(_ frame: PGFrame, context: inout RoutingContext, current: Bool) -> Bool {
        if self.skipping { return true }
        var payload = frame.payload
        guard let target = try? StatementOrPortal.decode(from: &payload, message: "Describe") else {
            self.protocolViolation("invalid Describe message")
            return true
        }
        switch target {
        case .portal(let name):
            if self.localPortals[name] != nil {
                return self.answerHeldLocally() && self.answer([.noData])
            }
            guard let source = self.portals[name] else {
                return self.refuse(ProxyErrors.error("34000", "portal \"\(name)\" does not exist"), simpleQuery: false)
            }
            if self.isEnded(source) {
                return self.refuse(ProxyErrors.unsupported("describing a portal over several shards after a Sync"),
                                   simpleQuery: false)
            }
            return self.send(frame, to: source, kind: .describePortal, current: current)
        case .statement(let name):
            guard let statement = self.statements[name] else {
                return self.refuse(ProxyErrors.error("26000", name.isEmpty ? "unnamed prepared statement does not exist"
                    : "prepared statement \"\(name)\" does not exist"), simpleQuery: false)
            }
            let source: Source
            if let batch = self.batch {
                source = batch
            } else if let busy = self.inFlight {
                source = busy
            } else {
                let choice = self.chooseAny(primary: false, context: &context)
                guard self.isReady(for: choice) else { return false }
                source = .lease(self.lease(for: choice))
            }
            guard self.isReady(source) else { return false }
            let ids = self.ids(of: source)
            self.sendHeld(to: ids)
            var bytes: ByteBuffer?
            if let id = statement.id {
                var out = self.allocator.buffer(capacity: 16)
                FrontendMessage.describe(.statement(BackendState.statementName(id))).encode(into: &out)
                bytes = out
            }
            let disposition: ResponseTracker.Disposition = source == .group ? .combine : .relay
            for lease in ids {
                self.enqueue(Self.ensure(statement), to: lease)
                if let bytes {
                    self.enqueue(.bytes(bytes, [.init(.describeStatement, disposition)]), to: lease)
                } else {
                    self.enqueue(.frame(frame, .init(.describeStatement, disposition)), to: lease,
                                 current: current && source != .group)
                }
            }
            self.batch = source
            return true
        }
    }

    mutating func execute(_ frame: PGFrame, context: inout RoutingContext, current: Bool) -> Bool {
        if self.skipping { return true }
        var payload = frame.payload
        guard let execute = try? Execute.decode(from: &payload) else {
            self.protocolViolation("invalid Execute message")
            return true
        }
        if let local = self.localPortals[execute.portal] {
            return self.executeLocal(local, portal: execute.portal, context: &context)
        }
        guard let source = self.portals[execute.portal] else {
            return self.refuse(ProxyErrors.error("34000", "portal \"\(execute.portal)\" does not exist"), simpleQuery: false)
        }
        if self.isEnded(source) {
            return self.refuse(ProxyErrors.unsupported("executing a portal over several shards after a Sync (a cursor "
                + "over several shards)", hint: "Execute the portal before the Sync, or add a shard key condition."),
                               simpleQuery: false)
        }
        if source == .group, execute.maxRows > 0 {
            // The first rows of a portal over several shards (asyncpg's fetchrow/fetchval): the shards run
            // it to the end, the client gets the first maxRows. Fetching on from there is a cursor over
            // several shards, which ShardGate cannot resume.
            guard self.limitedPortals.insert(execute.portal).inserted else {
                return self.refuse(ProxyErrors.unsupported("fetching more rows of a portal over several shards "
                    + "(a cursor over several shards)", hint: "Fetch all rows at once, or add a shard key condition."),
                                   simpleQuery: false)
            }
            guard self.isReady(.group) else {
                self.limitedPortals.remove(execute.portal)
                return false
            }
            self.group?.combiner.rowLimit = Int(execute.maxRows)
            var out = self.allocator.buffer(capacity: frame.wireLength)
            FrontendMessage.execute(Execute(portal: execute.portal, maxRows: 0)).encode(into: &out)
            let ids = self.ids(of: .group)
            self.sendHeld(to: ids)
            for id in ids { self.enqueue(.bytes(out, [.init(.execute, .combine)]), to: id) }
            self.batch = .group
            return true
        }
        return self.send(frame, to: source, kind: .execute, current: current)
    }

    mutating func executeLocal(_ portal: LocalPortal, portal name: String, context: inout RoutingContext) -> Bool {
        switch portal {
        case .begin(let text, let readOnly):
            guard self.answer([.commandComplete("BEGIN")]) else { return false }
            if self.transaction == nil {
                self.transaction = Transaction(begin: text, readOnly: readOnly, answeredLocally: true)
            }
        case .end(let commit):
            let tag = commit && self.transaction?.failedLocally != true ? "COMMIT" : "ROLLBACK"
            if self.transaction == nil {
                guard self.answer([.noticeResponse(ProxyErrors.warning("25P01", "there is no transaction in progress")),
                                   .commandComplete(tag)]) else { return false }
            } else if self.leases.contains(where: \.participant) {
                guard self.endTransactionExtended(commit: commit, context: &context) else { return false }
            } else {
                guard self.answer([.commandComplete(tag)]) else { return false }
                self.finishTransaction(committed: false, now: .now())
            }
        case .deallocate(let statement):
            if self.clientStatus == .failedTransaction {
                self.localPortals[name] = nil
                return self.refuse(ProxyErrors.transactionAborted, simpleQuery: false)
            }
            if let error = self.deallocationError(statement) {
                self.localPortals[name] = nil
                return self.refuse(error, simpleQuery: false)
            }
            guard self.answer([.commandComplete(statement == nil ? "DEALLOCATE ALL" : "DEALLOCATE")]) else { return false }
            self.deallocate(statement, context: &context)
        }
        self.localPortals[name] = nil
        return true
    }

    mutating func closeMessage(_ frame: PGFrame, context: inout RoutingContext, current: Bool) -> Bool {
        if self.skipping { return true }
        var payload = frame.payload
        guard let target = try? StatementOrPortal.decode(from: &payload, message: "Close") else {
            self.protocolViolation("invalid Close message")
            return true
        }
        switch target {
        case .statement(let name):
            // Backends keep the prepared statement (other clients may share it); the client's name is gone.
            guard self.answer([.closeComplete]) else { return false }
            if let statement = self.statements.removeValue(forKey: name), statement.id != nil {
                context.catalog.release(statement.key)
            }
            return true
        case .portal(let name):
            if self.localPortals.removeValue(forKey: name) != nil || self.portals[name] == nil {
                return self.answer([.closeComplete])
            }
            let source = self.portals[name]!
            if self.isEnded(source) {
                // The shards' portals went with the group (each shard's ended at its Sync or stays unused).
                self.portals[name] = nil
                return self.answer([.closeComplete])
            }
            guard self.send(frame, to: source, kind: .close, current: current) else { return false }
            self.portals[name] = nil
            return true
        }
    }

    mutating func sync(_ frame: PGFrame, context: inout RoutingContext, current: Bool) -> Bool {
        if self.skipping {
            if let batch = self.batch {
                guard self.isReady(batch) else { return false }
                self.skipping = false
                self.held.removeAll()
                return self.finishSync(frame, source: batch, current: current, context: context)
            }
            guard self.answer([.readyForQuery(self.clientStatus)]) else { return false }
            self.skipping = false
            self.held.removeAll()
            self.endBatchState()
            return true
        }
        if !self.held.isEmpty, self.batch == nil, self.inFlight == nil, let transaction = self.transaction,
           !transaction.failedLocally, !self.leases.contains(where: \.participant) {
            // Parse + Sync in a transaction that has not reached a shard yet (libpq's PQprepare; pgbench
            // -M prepared before each command's first use): parsed here (syntax checked), answered here, and
            // prepared on the shard its first Bind goes to. A backend taken just to parse would join the
            // transaction on a shard it may never use, waiting for a pool slot while the client waits too.
            let count = self.held.count
            self.held.removeAll(keepingCapacity: true)
            _ = self.answer(Array(repeating: .parseComplete, count: count) + [.readyForQuery(self.clientStatus)])
            self.endBatchState()
            return true
        }
        if !self.held.isEmpty {
            if self.batch == nil, self.inFlight == nil {
                let choice = self.chooseAny(primary: false, context: &context)
                guard self.isReady(for: choice) else { return false }
                let id = self.lease(for: choice)
                self.sendHeld(to: LeaseIDs(id))
            } else {
                self.sendHeld()
            }
        }
        if let batch = self.batch {
            guard self.isReady(batch) else { return false }
            return self.finishSync(frame, source: batch, current: current, context: context)
        }
        guard self.answer([.readyForQuery(self.clientStatus)]) else { return false }
        self.endBatchState()
        return true
    }

    private mutating func finishSync(_ frame: PGFrame, source: Source, current: Bool, context: RoutingContext) -> Bool {
        let ids = self.ids(of: source)
        let primary = ids.first.flatMap { id in self.leases.first { $0.id == id }?.target.isPrimary } ?? true
        self.noteDispatch(source == .group ? .multi : .single, primary: primary, context: context)
        let disposition: ResponseTracker.Disposition = source == .group ? .combine : .relay
        if source == .group, self.transaction?.failedLocally == true { self.group?.combiner.failsTransaction = true }
        for id in ids {
            self.enqueue(.frame(frame, .init(.sync, disposition)), to: id, current: current && ids.count == 1)
        }
        self.endBatchState()
        return true
    }

    /// Portals live until the transaction ends; outside one, a Sync ends it.
    private mutating func endBatchState() {
        self.batch = nil
        if self.transaction == nil {
            self.portals.removeAll()
            self.localPortals.removeAll()
            self.limitedPortals.removeAll()
        }
    }

    mutating func flush(_ frame: PGFrame, context: inout RoutingContext, current: Bool) -> Bool {
        if self.skipping { return true }
        if !self.held.isEmpty {
            if self.batch == nil, self.inFlight == nil {
                let choice = self.chooseAny(primary: false, context: &context)
                guard self.isReady(for: choice) else { return false }
                self.sendHeld(to: LeaseIDs(self.lease(for: choice)))
            } else {
                self.sendHeld()
            }
        }
        guard let source = self.batch ?? self.inFlight else { return true }
        let ids = self.ids(of: source)
        for id in ids {
            self.enqueue(.frame(frame, nil), to: id, current: current && ids.count == 1)
        }
        return true
    }

    /// Writes a client message to the portal's (or batch's) source, answered per `kind`.
    private mutating func send(_ frame: PGFrame, to source: Source, kind: ResponseTracker.Expected.Kind,
                               current: Bool) -> Bool {
        guard self.isReady(source) else { return false }
        let ids = self.ids(of: source)
        self.sendHeld(to: ids)
        let disposition: ResponseTracker.Disposition = source == .group ? .combine : .relay
        for id in ids {
            self.enqueue(.frame(frame, .init(kind, disposition)), to: id, current: current && ids.count == 1)
        }
        self.batch = source
        return true
    }

    /// A portal over several shards whose group is over (answered up to its Sync): nothing can reach it.
    func isEnded(_ source: Source) -> Bool {
        guard source == .group else { return false }
        guard let group = self.group else { return true }
        return group.combiner.isComplete
    }

    /// Whether a message may go to `source` now (see `isReady(for:)`).
    mutating func isReady(_ source: Source) -> Bool {
        switch source {
        case .lease(let id):
            return self.isReady(for: .existing(id))
        case .group:
            let shards = (self.group?.members ?? []).compactMap { id in self.leases.first { $0.id == id }?.target.shard }
            return self.isReadyForGroup(shards)
        }
    }
}
