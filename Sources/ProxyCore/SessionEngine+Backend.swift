import NIOCore
import PGWire
import ShardMap
import SQLRouting

/// Messages from leased backends, and their loss.
extension SessionEngine {
    /// One complete message from lease `id`'s backend (DataRow and CopyData may be passed through
    /// without calling this while `BackendStep.relayRows` says so). Says whether the caller relays it.
    public mutating func backendMessage(_ id: LeaseID, type: UInt8, payload: ByteBuffer,
                                        context: inout RoutingContext) -> BackendStep {
        // An error whose position ShardGate drops goes to the combiner re-encoded.
        var rewritten: ByteBuffer?
        guard let i = self.index(of: id) else { return BackendStep(disposition: .swallow, relayRows: false) }
        let head = self.leases[i].tracker.first
        let step = self.leases[i].tracker.receive(type)
        var disposition = step.disposition

        switch type {
        case BackendMessageID.parameterStatus.rawValue:
            var reader = payload
            if let name = reader.readNullTerminatedString(), let value = reader.readNullTerminatedString() {
                self.leases[i].backend?.parameters.set(name, value)
                if disposition != .swallow { self.parameters.observe(name: name, value: value) }
            }
            if disposition == .combine { disposition = .swallow }
        case BackendMessageID.errorResponse.rawValue:
            var reader = payload
            let fields = try? ErrorNoticeFields.decode(from: &reader, message: "ErrorResponse")
            if let completed = step.completed, completed.statement >= 0 {
                self.leases[i].backend?.removeStatement(completed.statement)
            }
            if disposition == .swallow {
                if let completed = step.completed, completed.kind != .query, completed.kind != .sync {
                    // An injected Parse failed: the backend now skips the client's messages up to Sync, so the
                    // client must see why (it is the error of the client's statement).
                    disposition = self.leases[i].member == nil ? .relay : .combine
                    self.skipping = self.skipping || self.batch != nil
                } else if let fields {
                    // The parameter sync or a transaction replay failed: tell the client, keep serving it.
                    self.sendToClient([.noticeResponse(fields.withSeverity("WARNING"))])
                }
            } else {
                if head?.hidesPosition == true, let fields, fields[.position] != nil {
                    let hidden = ErrorNoticeFields(fields: fields.fields.filter { $0.0 != ErrorNoticeFields.Code.position.rawValue })
                    if disposition == .relay {
                        self.sendToClient([.errorResponse(hidden)])
                        disposition = .swallow
                    } else {
                        var out = self.allocator.buffer(capacity: payload.readableBytes)
                        BackendMessage.errorResponse(hidden).encode(into: &out)
                        out.moveReaderIndex(forwardBy: 5)
                        rewritten = out
                    }
                }
                self.leases[i].sawError = true
                if step.completed?.kind == .execute || step.completed.map({ $0.kind != .query && $0.kind != .sync
                    && $0.kind != .functionCall }) == true {
                    // The rest of the batch is skipped, as the server skips it.
                    self.skipping = self.skipping || self.batch != nil
                }
            }
        case BackendMessageID.copyInResponse.rawValue, BackendMessageID.copyBothResponse.rawValue:
            self.leases[i].copyIn = true
        case BackendMessageID.noticeResponse.rawValue, BackendMessageID.notificationResponse.rawValue:
            if head == nil, let busy = self.inFlight, busy != .lease(id) {
                // An idle (pinned) backend speaks while another answers: hold it until the answer is complete.
                var deferred = self.leases[i].deferred ?? self.allocator.buffer(capacity: payload.readableBytes + 5)
                deferred.writeInteger(type)
                deferred.writeInteger(Int32(payload.readableBytes + 4))
                deferred.writeImmutableBuffer(payload)
                self.leases[i].deferred = deferred
                return BackendStep(disposition: .swallow, relayRows: false)
            }
        default:
            break
        }

        if type == BackendMessageID.readyForQuery.rawValue, disposition == .relay, step.completed != nil,
           self.transaction?.failedLocally == true, Self.status(payload) == .inTransaction {
            // ShardGate failed the transaction for the client (it refused a statement); the backend cannot know.
            disposition = .swallow
            self.sendToClient([.readyForQuery(.failedTransaction)])
        }
        if disposition == .capture {
            let completed = type == BackendMessageID.readyForQuery.rawValue && step.completed != nil
            if self.twoPhase != nil {
                self.twoPhaseAnswer(lease: id, type: type, payload: payload, completed: completed, context: &context)
            } else {
                self.keyPositionAnswer(type: type, payload: payload, completed: completed, context: &context)
            }
            disposition = .swallow
        }
        if disposition == .combine, let member = self.leases[i].member {
            self.combine(member: member, kind: head?.kind ?? .query, id: type, payload: rewritten ?? payload)
            disposition = .swallow
        }
        if let completed = step.completed {
            if completed.kind == .query || completed.kind == .execute || completed.kind == .functionCall {
                self.leases[i].copyIn = false
            }
        }
        if type == BackendMessageID.readyForQuery.rawValue, let completed = step.completed {
            self.readyForQuery(at: i, status: Self.status(payload),
                               relayed: completed.disposition == .relay || completed.disposition == .combine, context: &context)
        }
        if step.completed != nil, let i = self.index(of: id) {
            self.deliverLocal(at: i)
        }
        if step.completed != nil {
            self.settle(context: &context)
        }
        let relayRows = self.index(of: id).map { self.leases[$0].tracker.first?.disposition == .relay } ?? false
        return BackendStep(disposition: disposition, relayRows: relayRows)
    }

    static func status(_ payload: ByteBuffer) -> BackendMessage.TransactionStatus {
        payload.getInteger(at: payload.readerIndex, as: UInt8.self).flatMap(BackendMessage.TransactionStatus.init(rawValue:))
            ?? .idle
    }

    /// ReadyForQuery from `leases[i]`: a unit of the session ended there.
    mutating func readyForQuery(at i: Int, status: BackendMessage.TransactionStatus, relayed: Bool,
                                context: inout RoutingContext) {
        let previous = self.leases[i].status
        self.leases[i].status = status
        guard relayed else { return }
        if self.leases[i].member == nil { self.noteUnitDone(context: context, failed: self.leases[i].sawError) }
        let now = context.clock()
        if let replay = self.leases[i].pendingReplay {
            self.leases[i].pendingReplay = nil
            if !self.leases[i].sawError { self.transaction?.replay.append(replay) }
        }
        if let change = self.leases[i].pendingChange {
            self.leases[i].pendingChange = nil
            if !self.leases[i].sawError {
                if self.transaction != nil {
                    self.transaction?.pendingSettings.append(change)
                } else {
                    self.settings.apply(change)
                    self.leases[i].backend?.parameters.apply(change)
                }
            }
        }
        if status == .idle, self.leases[i].wrote, self.transaction == nil || !self.leases[i].participant {
            self.leases[i].wrote = false
            self.fences[self.leases[i].target.shard] = .pending(since: now)
        }
        let inGroup = self.leases[i].member != nil
        if !inGroup {
            if self.transaction == nil, status != .idle {
                // A query string that began a transaction ("BEGIN; INSERT ...").
                self.transaction = Transaction(begin: "BEGIN", readOnly: false, answeredLocally: false)
                self.leases[i].participant = true
                if self.leases[i].wrote { self.transaction?.writers.insert(self.leases[i].target.shard) }
            } else if self.transaction != nil, status == .idle, previous != .idle || self.leases[i].participant,
                      self.leases[i].participant, self.leases.filter(\.participant).count == 1 {
                let committed = self.leases[i].ending.map { $0 == .commit } ?? !self.leases[i].sawError
                self.finishTransaction(committed: committed && !self.leases[i].sawError, now: now)
            }
        }
        self.leases[i].sawError = false
        if let group = self.group, group.combiner.isComplete, inGroup, !self.groupAnswered {
            self.groupAnswered = true
            self.noteUnitDone(context: context, failed: group.combiner.failed)
            self.groupCompleted(now: now, context: &context)
        }
    }

    /// Every member answered the group's unit.
    mutating func groupCompleted(now: NIODeadline, context: inout RoutingContext) {
        guard let group = self.group else { return }
        if case .splitting? = self.copyIn { self.copyIn = nil }
        if self.transaction?.implicit == true {
            // The statement ShardGate wrapped in a transaction is answered: commit it, or roll it back.
            self.endImplicitTransaction(failed: group.combiner.failed, context: &context)
            return
        }
        if self.transaction != nil, group.combiner.rows == .transactionEnd {
            self.finishTransaction(committed: !group.combiner.failed && !group.combiner.rolledBack, now: now)
        }
    }

    /// Local answers that reached the head of `leases[i]`'s tracker go out now.
    mutating func deliverLocal(at i: Int) {
        while let first = self.leases[i].tracker.first, first.kind == .local {
            self.leases[i].tracker.removeFirst()
            guard !self.leases[i].localAnswers.isEmpty else { continue }
            let bytes = self.leases[i].localAnswers.removeFirst()
            if first.disposition == .combine, let member = self.leases[i].member {
                var reader = bytes
                while let frame = try? PGFrame.decode(from: &reader, limits: .default) {
                    self.combine(member: member, kind: .parse, id: frame.id, payload: frame.payload)
                }
            } else {
                self.emit(.send(bytes))
            }
        }
    }

    /// Lease `id`'s backend closed or failed. `midMessage`: part of a message already reached the client,
    /// so nothing valid can follow on this connection.
    public mutating func backendLost(_ id: LeaseID, server: String, reason: String, midMessage: Bool,
                                     context: inout RoutingContext) {
        guard let i = self.index(of: id) else { return }
        let lease = self.leases.remove(at: i)
        self.emit(.discard(id))
        if midMessage {
            self.close(nil)
            self.releaseStatements(context: &context)
            return
        }
        if lease.participant, self.transaction != nil {
            self.close(ProxyErrors.transactionLost(server))
            self.releaseStatements(context: &context)
            return
        }
        if lease.pinned {
            self.close(ProxyErrors.sessionLost(server))
            self.releaseStatements(context: &context)
            return
        }
        if self.batch == .lease(id) { self.batch = nil }
        let error = ProxyErrors.backendUnavailable(server, reason: reason)
        let owed = Self.owed(by: lease)
        self.answerFailure(error, for: owed, member: lease.member)
        let owesSync = lease.tracker.contains(.sync)
        let owesExtended = lease.tracker.pending.contains { $0.isExtended && $0.disposition != .swallow }
        if lease.batchOpen, lease.member == nil, !owesSync {
            // A batch without its Sync: its error now (a driver waiting after Flush would otherwise wait
            // forever), the rest of it is skipped up to the client's Sync.
            if !owesExtended { self.sendToClient([.errorResponse(error)]) }
            self.skipping = true
        }
        self.settle(context: &context)
    }
}
