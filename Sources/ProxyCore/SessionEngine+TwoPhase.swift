import NIOCore
import PGWire
import ShardMap
import SQLRouting

/// Atomic commit over several shards (DESIGN §6): PREPARE TRANSACTION on every shard that wrote, the
/// decision written durably, then COMMIT PREPARED; any failure before the decision rolls every shard back.
extension SessionEngine {
    struct TwoPhaseCommit {
        enum Phase {
            case preparing
            case logging
            case committing
            case rollingBack
        }

        var id: String
        var phase: Phase
        /// The gid prepared (or to be prepared) on each writing participant.
        var gids: [LeaseID: String] = [:]
        var pending: Set<LeaseID> = []
        var prepared: [LeaseID] = []
        /// Why it rolls back (nil when it commits, or when the client already got the error).
        var error: ErrorNoticeFields?
        /// ShardGate opened the transaction around one statement: the client gets ReadyForQuery only.
        var implicit: Bool
        /// The client's COMMIT or ROLLBACK came as an Execute: its answer is the command tag (or the error);
        /// the ReadyForQuery is the Sync's.
        var extended = false
        var warnings: [ErrorNoticeFields] = []
        /// The lease answering now had an error.
        var failedLeases: Set<LeaseID> = []
    }

    /// COMMIT of a transaction that wrote on several shards. False (nothing done) while answers are in flight.
    mutating func startTwoPhaseCommit(implicit: Bool, extended: Bool = false, context: inout RoutingContext) -> Bool {
        guard let transaction = self.transaction else { return true }
        if let busy = self.inFlight {
            self.flushOut(busy)
            return false
        }
        guard let registry = context.twoPhase else {
            return self.refuse(ProxyErrors.unsupported("a transaction that wrote on several shards without a two-phase "
                + "commit log"), simpleQuery: !extended)
        }
        let id = registry.begin()
        var commit = TwoPhaseCommit(id: id, phase: .preparing, implicit: implicit)
        commit.extended = extended
        for lease in self.leases where lease.participant {
            if transaction.writers.contains(lease.target.shard) {
                let gid = "\(id)_\(lease.target.shard)"
                commit.gids[lease.id] = gid
                self.internalQuery("PREPARE TRANSACTION \(SessionParameters.quoteLiteral(gid))", lease: lease.id)
            } else {
                // Read only here: nothing to make durable.
                self.internalQuery("COMMIT", lease: lease.id)
            }
            commit.pending.insert(lease.id)
        }
        self.twoPhase = commit
        return true
    }

    /// The statement ShardGate wrapped in a transaction was answered (the client got its result).
    mutating func endImplicitTransaction(failed: Bool, context: inout RoutingContext) {
        // Ending mid-batch, the client gets no ReadyForQuery now (its Sync gives one), as after an Execute.
        let midBatch = self.transaction?.endsMidBatch == true
        if failed {
            self.endOnParticipants(commit: false, implicit: true, extended: midBatch)
        } else if (self.transaction?.writers.count ?? 0) >= 2 {
            _ = self.startTwoPhaseCommit(implicit: true, extended: midBatch, context: &context)
        } else {
            self.endOnParticipants(commit: true, implicit: true, extended: midBatch)
        }
    }

    /// COMMIT or ROLLBACK sent as an Execute in a transaction with several participants (or one ShardGate
    /// failed for the client): a two-phase commit when it wrote on several shards, else COMMIT (ROLLBACK) on
    /// each participant. False (nothing done) while answers are in flight.
    mutating func endTransactionExtended(commit: Bool, context: inout RoutingContext) -> Bool {
        guard let transaction = self.transaction else { return true }
        // A participant's open batch is closed first: the statements below are simple queries.
        for lease in self.leases where lease.participant && lease.batchOpen {
            self.closeBatch(.lease(lease.id))
        }
        if let busy = self.inFlight {
            self.flushOut(busy)
            return false
        }
        let failed = transaction.failedLocally || self.clientStatus == .failedTransaction
        if commit, !failed, transaction.writers.count >= 2 {
            return self.startTwoPhaseCommit(implicit: false, extended: true, context: &context)
        }
        self.endOnParticipants(commit: commit && !failed, implicit: false, extended: true)
        if self.twoPhase?.pending.isEmpty == true { self.finishTwoPhase(committed: commit && !failed, now: context.clock()) }
        return true
    }

    /// A plain COMMIT (one shard wrote at most) or ROLLBACK on every participant, answered like a commit's
    /// statements (`twoPhaseAnswer`).
    private mutating func endOnParticipants(commit: Bool, implicit: Bool, extended: Bool) {
        var end = TwoPhaseCommit(id: "", phase: commit ? .committing : .rollingBack, implicit: implicit)
        end.extended = extended
        for lease in self.leases where lease.participant {
            self.internalQuery(commit ? "COMMIT" : "ROLLBACK", lease: lease.id)
            end.pending.insert(lease.id)
        }
        self.twoPhase = end
    }

    /// A statement of ShardGate's on a participant, whose answer `twoPhaseAnswer` reads.
    private mutating func internalQuery(_ sql: String, lease: LeaseID) {
        self.enqueue(.bytes(Self.query(sql, allocator: self.allocator), [.init(.query, .capture)]), to: lease)
    }

    /// A message of the answer to one of the commit's statements.
    mutating func twoPhaseAnswer(lease: LeaseID, type: UInt8, payload: ByteBuffer, completed: Bool,
                                 context: inout RoutingContext) {
        guard var commit = self.twoPhase else { return }
        if type == BackendMessageID.errorResponse.rawValue {
            var reader = payload
            let fields = (try? ErrorNoticeFields.decode(from: &reader, message: "ErrorResponse"))
                ?? ProxyErrors.error("XX000", "malformed error from a shard")
            commit.failedLeases.insert(lease)
            let shard = self.leases.first { $0.id == lease }.map { self.shardName($0.target.shard) } ?? "a shard"
            switch commit.phase {
            case .preparing:
                if commit.error == nil {
                    var error = fields
                    error.detail = [fields.detail, "The transaction was rolled back on every shard (PREPARE TRANSACTION "
                        + "failed on \(shard))."].compactMap { $0 }.joined(separator: "\n")
                    commit.error = error
                }
            case .committing where commit.id.isEmpty:
                // A plain COMMIT (one shard wrote at most): its failure is the answer, as PostgreSQL's would be.
                if commit.error == nil {
                    var error = fields
                    error.detail = [fields.detail, "COMMIT failed on \(shard)."].compactMap { $0 }.joined(separator: "\n")
                    commit.error = error
                }
            case .committing:
                commit.warnings.append(ProxyErrors.warning(fields.sqlState ?? "XX000",
                    "COMMIT PREPARED on \(shard) failed: \(fields.message ?? "?"); the commit was decided and ShardGate "
                    + "completes it when \(shard) can be reached"))
            case .rollingBack, .logging:
                commit.warnings.append(ProxyErrors.warning(fields.sqlState ?? "XX000",
                    "rolling back on \(shard) failed: \(fields.message ?? "?")"))
            }
        }
        if completed {
            commit.pending.remove(lease)
            if commit.phase == .preparing, commit.gids[lease] != nil, !commit.failedLeases.contains(lease) {
                commit.prepared.append(lease)
            }
        }
        self.twoPhase = commit
        if completed, commit.pending.isEmpty { self.advanceTwoPhase(now: context.clock()) }
    }

    private mutating func advanceTwoPhase(now: NIODeadline) {
        guard var commit = self.twoPhase else { return }
        switch commit.phase {
        case .preparing:
            if commit.error != nil || commit.gids.isEmpty {
                commit.phase = .rollingBack
                for lease in commit.prepared {
                    self.internalQuery("ROLLBACK PREPARED \(SessionParameters.quoteLiteral(commit.gids[lease]!))", lease: lease)
                    commit.pending.insert(lease)
                }
                self.twoPhase = commit
                if commit.pending.isEmpty { self.finishTwoPhase(committed: false, now: now) }
                return
            }
            commit.phase = .logging
            self.twoPhase = commit
            let participants = commit.prepared.compactMap { lease -> TwoPhaseDecision.Participant? in
                guard let gid = commit.gids[lease], let target = self.leases.first(where: { $0.id == lease })?.target
                else { return nil }
                return .init(shard: self.shardName(target.shard), gid: gid)
            }
            self.emit(.logCommitDecision(TwoPhaseDecision(id: commit.id, participants: participants)))
        case .logging:
            break
        case .committing:
            self.finishTwoPhase(committed: commit.id.isEmpty ? commit.error == nil : true, now: now)
        case .rollingBack:
            self.finishTwoPhase(committed: false, now: now)
        }
    }

    /// The decision to commit is durable: the prepared transactions are committed.
    public mutating func decisionLogged(context: inout RoutingContext) {
        guard var commit = self.twoPhase, commit.phase == .logging else { return }
        guard !self.closed else {
            // The session ended while the decision was written: recovery takes it from here.
            self.twoPhase = nil
            self.emit(.twoPhaseFinished(commit.id, complete: false))
            return
        }
        commit.phase = .committing
        for lease in commit.prepared {
            self.internalQuery("COMMIT PREPARED \(SessionParameters.quoteLiteral(commit.gids[lease]!))", lease: lease)
            commit.pending.insert(lease)
        }
        self.twoPhase = commit
        if commit.pending.isEmpty { self.finishTwoPhase(committed: true, now: context.clock()) }
        self.settle(context: &context)
    }

    /// The decision could not be written: nothing was committed anywhere, so everything rolls back.
    public mutating func decisionFailed(_ reason: String, context: inout RoutingContext) {
        guard var commit = self.twoPhase, commit.phase == .logging else { return }
        guard !self.closed else {
            // The session ended while the decision was written: recovery takes it from here.
            self.twoPhase = nil
            self.emit(.twoPhaseFinished(commit.id, complete: false))
            return
        }
        commit.phase = .rollingBack
        commit.error = ProxyErrors.error("58030", "ShardGate could not record the commit decision: \(reason); the "
            + "transaction was rolled back on every shard")
        for lease in commit.prepared {
            self.internalQuery("ROLLBACK PREPARED \(SessionParameters.quoteLiteral(commit.gids[lease]!))", lease: lease)
            commit.pending.insert(lease)
        }
        self.twoPhase = commit
        if commit.pending.isEmpty { self.finishTwoPhase(committed: false, now: context.clock()) }
        self.settle(context: &context)
    }

    private mutating func finishTwoPhase(committed: Bool, now: NIODeadline) {
        guard let commit = self.twoPhase else { return }
        self.twoPhase = nil
        if !commit.id.isEmpty {
            self.emit(.twoPhaseFinished(commit.id, complete: !committed || commit.warnings.isEmpty))
        }
        var messages: [BackendMessage] = commit.warnings.map { .noticeResponse($0) }
        if committed {
            if !commit.implicit { messages.append(.commandComplete("COMMIT")) }
        } else if let error = commit.error {
            messages.append(.errorResponse(error))
        } else if !commit.implicit {
            messages.append(.commandComplete("ROLLBACK"))
        }
        if !commit.extended {
            messages.append(.readyForQuery(.idle))
        } else if !committed, commit.error != nil || commit.implicit {
            // An error in the extended protocol (the commit's, or the statement's in a transaction ShardGate
            // opened): the rest of the client's batch is skipped up to its Sync, as PostgreSQL skips it.
            self.skipping = true
        }
        for i in self.leases.indices where self.leases[i].participant {
            self.leases[i].status = .idle
        }
        self.finishTransaction(committed: committed, now: now)
        self.sendToClient(messages)
    }

    func shardName(_ shard: Int) -> String {
        shard < self.shardNames.count ? self.shardNames[shard] : "shard \(shard)"
    }
}
