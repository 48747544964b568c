import NIOCore
import PGWire
import ShardMap
import SQLRouting

/// Explicit transactions: lazy BEGIN, participants per shard, COMMIT/ROLLBACK/savepoints over them.
extension SessionEngine {
    /// Joins statements sent as one query string; a newline first ends a trailing `--` comment.
    static let statementSeparator = "\n;\n"

    /// A query string that is one transaction-control statement.
    mutating func transactionStatement(_ control: TransactionControl, sql: String, analysis: SQLAnalysis, frame: PGFrame,
                                       context: inout RoutingContext, current: Bool) -> Bool {
        let text = SessionEffect.statementText(sql)
        switch control {
        case .begin(let readOnly):
            guard self.transaction == nil else {
                if self.clientStatus == .failedTransaction {
                    return self.refuse(ProxyErrors.transactionAborted, simpleQuery: true)
                }
                return self.answerWhenIdle([.noticeResponse(ProxyErrors.warning("25001", "there is already a transaction in progress")),
                                            .commandComplete("BEGIN"), .readyForQuery(.inTransaction)])
            }
            guard self.answerWhenIdle([.commandComplete("BEGIN"), .readyForQuery(.inTransaction)]) else { return false }
            self.transaction = Transaction(begin: text, readOnly: readOnly, answeredLocally: true)
            return true

        case .commit, .rollback:
            let tag = control == .commit ? "COMMIT" : "ROLLBACK"
            guard let transaction = self.transaction else {
                return self.answerWhenIdle([.noticeResponse(ProxyErrors.warning("25P01", "there is no transaction in progress")),
                                            .commandComplete(tag), .readyForQuery(.idle)])
            }
            let failed = transaction.failedLocally
            let participants = self.leases.filter(\.participant).map(\.id)
            if control == .commit, !failed, self.clientStatus != .failedTransaction, transaction.writers.count >= 2 {
                return self.startTwoPhaseCommit(implicit: false, context: &context)
            }
            // COMMIT of a failed transaction rolls it back (PostgreSQL answers "ROLLBACK").
            let statement = control == .commit && !failed ? text : "ROLLBACK"
            if participants.isEmpty {
                guard self.answerWhenIdle([.commandComplete(control == .commit && !failed ? "COMMIT" : "ROLLBACK"),
                                           .readyForQuery(.idle)]) else { return false }
                self.finishTransaction(committed: false, now: .now())
                return true
            }
            for id in participants {
                if let i = self.index(of: id) { self.leases[i].ending = statement == "ROLLBACK" ? .rollback : .commit }
            }
            return self.endTransaction(statement: statement, participants: participants, frame: failed ? nil : frame,
                                       current: current, context: &context)

        case .savepoint(let name), .release(let name), .rollbackTo(let name):
            guard self.transaction != nil else {
                return self.forwardAnywhere(frame, context: &context, current: current)
            }
            var isSavepoint = false
            var isRollbackTo = false
            switch control {
            case .savepoint: isSavepoint = true
            case .rollbackTo: isRollbackTo = true
            default: break
            }
            if self.transaction?.failedLocally == true, !isRollbackTo {
                return self.refuse(ProxyErrors.transactionAborted, simpleQuery: true)
            }
            if !isSavepoint, !(self.transaction?.savepoints.contains(name) ?? false) {
                return self.refuse(ProxyErrors.error("3B001", "savepoint \"\(name)\" does not exist"), simpleQuery: true)
            }
            let participants = self.leases.filter(\.participant).map(\.id)
            if participants.isEmpty {
                let tag: String
                switch control {
                case .savepoint: tag = "SAVEPOINT"
                case .release: tag = "RELEASE"
                default: tag = "ROLLBACK"
                }
                guard self.answerWhenIdle([.commandComplete(tag), .readyForQuery(.inTransaction)]) else { return false }
            } else {
                guard self.sendToParticipants(participants, frame: frame, current: current, rows: .firstShard,
                                              context: &context) else {
                    return false
                }
            }
            self.recordSavepoint(control, name: name, text: text)
            return true

        case .prepare:
            guard self.transaction != nil else { return self.forwardAnywhere(frame, context: &context, current: current) }
            let participants = self.leases.filter(\.participant)
            guard participants.count <= 1 else {
                return self.refuse(ProxyErrors.unsupported("PREPARE TRANSACTION in a transaction over several shards"),
                                   simpleQuery: true)
            }
            guard let participant = participants.first else {
                return self.refuse(ProxyErrors.unsupported("PREPARE TRANSACTION of a transaction that touched no shard yet"),
                                   simpleQuery: true)
            }
            guard self.isReady(for: .existing(participant.id)) else { return false }
            self.enqueue(.frame(frame, .init(.query, .relay)), to: participant.id, current: current)
            return true

        case .commitPrepared, .rollbackPrepared:
            guard case .shard(let shard)? = analysis.override.flatMap({ _ in
                try? RoutePlanner.plan(analysis, map: context.map).target
            }) else {
                return self.refuse(ProxyErrors.unsupported("COMMIT/ROLLBACK PREPARED without a /* shard: name */ comment "
                    + "naming the shard that prepared the transaction"), simpleQuery: true)
            }
            let choice = self.choose(shard: shard, primary: true, context: &context)
            guard self.isReady(for: choice) else { return false }
            self.enqueue(.frame(frame, .init(.query, .relay)), to: self.lease(for: choice), current: current)
            return true
        }
    }

    /// Sends a statement any backend can answer (PostgreSQL's own error or warning is what the client wants).
    mutating func forwardAnywhere(_ frame: PGFrame, context: inout RoutingContext, current: Bool) -> Bool {
        let choice = self.chooseAny(primary: false, context: &context)
        guard self.isReady(for: choice) else { return false }
        self.enqueue(.frame(frame, .init(.query, .relay)), to: self.lease(for: choice), current: current)
        return true
    }

    /// COMMIT or ROLLBACK on the participants: relayed from one, combined from several.
    mutating func endTransaction(statement: String, participants: [LeaseID], frame: PGFrame?, current: Bool,
                                 context: inout RoutingContext) -> Bool {
        if participants.count == 1 {
            let id = participants[0]
            guard self.isReady(for: .existing(id)) else { return false }
            if let frame {
                self.enqueue(.frame(frame, .init(.query, .relay)), to: id, current: current)
            } else {
                self.enqueue(.bytes(Self.query(statement, allocator: self.allocator), [.init(.query, .relay)]), to: id)
            }
            return true
        }
        return self.sendToParticipants(participants, frame: nil, query: statement, current: current, rows: .transactionEnd,
                                       context: &context)
    }

    /// Sends one statement to every participant as a group and combines their answers.
    mutating func sendToParticipants(_ participants: [LeaseID], frame: PGFrame?, query: String? = nil, current: Bool,
                                     rows: ScatterCombiner.Rows, context: inout RoutingContext) -> Bool {
        if participants.count == 1, let frame {
            guard self.isReady(for: .existing(participants[0])) else { return false }
            self.enqueue(.frame(frame, .init(.query, .relay)), to: participants[0], current: current)
            return true
        }
        let shards = participants.compactMap { id in self.leases.first { $0.id == id }?.target.shard }.sorted()
        guard self.isReadyForGroup(shards) else { return false }
        let members = self.makeGroup(shards, primary: true, rows: rows, isWrite: false, context: &context)
        var bytes = self.allocator.buffer(capacity: 32)
        if let query {
            FrontendMessage.query(query).encode(into: &bytes)
        } else if let frame {
            frame.write(into: &bytes)
        }
        for member in members {
            self.enqueue(.bytes(bytes, [.init(.query, .combine)]), to: member)
        }
        return true
    }

    mutating func recordSavepoint(_ control: TransactionControl, name: String, text: String) {
        guard var transaction = self.transaction else { return }
        switch control {
        case .savepoint:
            transaction.savepoints.append(name)
            transaction.replay.append(text)
        case .release:
            if let index = transaction.savepoints.lastIndex(of: name) {
                transaction.savepoints.removeSubrange(index...)
            }
            transaction.replay.append(text)
        case .rollbackTo:
            if let index = transaction.savepoints.lastIndex(of: name) {
                transaction.savepoints.removeSubrange((index + 1)...)
            }
            transaction.replay.append(text)
            transaction.failedLocally = false
        default:
            break
        }
        self.transaction = transaction
    }

    /// The transaction ended (every participant is idle again). Session-level settings made inside take
    /// effect only if it committed.
    mutating func finishTransaction(committed: Bool, now: NIODeadline) {
        guard let transaction = self.transaction else { return }
        if committed {
            for change in transaction.pendingSettings {
                self.settings.apply(change)
            }
            for i in self.leases.indices where self.leases[i].participant {
                for change in transaction.pendingSettings {
                    self.leases[i].backend?.parameters.apply(change)
                }
            }
        }
        for i in self.leases.indices where self.leases[i].participant {
            self.leases[i].participant = false
            self.leases[i].ending = nil
            if self.leases[i].wrote {
                self.leases[i].wrote = false
                self.fences[self.leases[i].target.shard] = .pending(since: now)
            }
        }
        self.transaction = nil
        self.touched = []
        self.portals.removeAll()
        self.limitedPortals.removeAll()
    }
}

extension BackendParameters {
    /// Records on the backend a setting change its session made there.
    mutating func apply(_ change: SettingChange) {
        switch change {
        case .set(let name, let sql): self.replayed[name] = sql
        case .reset(let name): self.replayed[name] = nil
        case .resetAll: self.replayed.removeAll()
        }
    }
}
