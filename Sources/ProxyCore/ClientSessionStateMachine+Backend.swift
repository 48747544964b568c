import NIOCore
import PGWire

/// Backend events: a lease granted or refused, the backend's ReadyForQuery, ParameterStatus and
/// internal-statement errors, and the backend's loss.
extension ClientSessionStateMachine {
    // MARK: backend lease

    /// A backend was leased. `current` are its parameter values now, `defaults` those at its connection start.
    public mutating func backendAttached(current: [String: String], defaults: [String: String]) -> Action {
        self.backendAttached(synchronization: self.parameters.synchronization(backend: current, backendDefaults: defaults))
    }

    /// A backend was leased; `synchronization` is `parameters.synchronization(for:)` of that backend.
    public mutating func backendAttached(synchronization sync: String?) -> Action {
        switch self.state {
        case .loggingIn(.acquiring):
            guard let sync else {
                self.state = .loggingIn(.attached(Attached(outstanding: 0, internalPending: 0, transactionStatus: .idle)))
                return self.completeLogin()
            }
            self.state = .loggingIn(.attached(Attached(outstanding: 0, internalPending: 1, transactionStatus: .idle)))
            return .startBackend(sync: sync, frames: [])
        case .ready(.acquiring(let queue), _):
            let outstanding = queue.reduce(0) { count, frame in
                count + (FrontendMessageID(rawValue: frame.id).map(Self.expectsReadyForQuery) == true ? 1 : 0)
            }
            var attached = Attached(outstanding: outstanding, internalPending: sync == nil ? 0 : 1, transactionStatus: .idle)
            attached.batchOpen = queue.reduce(false) { open, frame in
                FrontendMessageID(rawValue: frame.id).map { Self.batchOpen(open, after: $0) } ?? open
            }
            attached.pinned = self.pinRequested
                || queue.contains { $0.id == FrontendMessageID.parse.rawValue && Self.namesStatement($0) }
            self.state = .ready(.attached(attached), skipUntilSync: false)
            return .startBackend(sync: sync, frames: queue)
        case .closed:
            // The client left while the lease was in flight.
            return .releaseBackend
        case .awaitingStartup, .authenticating, .loggingIn(.none), .loggingIn(.attached), .ready(.none, _), .ready(.attached, _):
            preconditionFailure("backend attached in state \(self.state)")
        }
    }

    /// The pool could not provide a backend (connect failure or checkout timeout).
    public mutating func backendUnavailable(_ error: ErrorNoticeFields) -> Action {
        switch self.state {
        case .loggingIn:
            self.state = .closed
            return .closeClient(error.withSeverity("FATAL"), backend: .none)
        case .ready(.acquiring(let queue), _):
            // Answer as PostgreSQL would have had each statement failed: an error and ReadyForQuery for each
            // Query and each batch ended by Sync (so that no pipelined statement looks executed); an
            // extended-protocol batch without Sync gets its error and skips to its Sync.
            var messages: [BackendMessage] = []
            var batchOpen = false
            for frame in queue {
                guard let id = FrontendMessageID(rawValue: frame.id) else { continue }
                if Self.expectsReadyForQuery(id) {
                    if id != .sync || batchOpen { messages.append(.errorResponse(error)) }
                    messages.append(.readyForQuery(.idle))
                }
                batchOpen = Self.batchOpen(batchOpen, after: id)
            }
            if batchOpen { messages.append(.errorResponse(error)) }
            self.state = .ready(.none, skipUntilSync: batchOpen)
            return self.drainingCheck(.send(messages))
        case .closed:
            return .none
        case .awaitingStartup, .authenticating, .ready(.none, _), .ready(.attached, _):
            preconditionFailure("backend unavailable in state \(self.state)")
        }
    }

    // MARK: backend frames

    /// ReadyForQuery from the attached backend.
    public mutating func backendReadyForQuery(_ status: BackendMessage.TransactionStatus) -> Action {
        switch self.state {
        case .loggingIn(.attached(var attached)):
            attached.internalPending -= 1
            attached.transactionStatus = status
            if let error = attached.internalError {
                self.state = .closed
                return .closeClient(error.withSeverity("FATAL"), backend: status == .idle ? .release : .close)
            }
            self.state = .loggingIn(.attached(attached))
            return attached.internalPending == 0 ? self.completeLogin() : .none
        case .ready(.attached(var attached), _):
            attached.transactionStatus = status
            if attached.internalPending > 0 {
                attached.internalPending -= 1
                let error = attached.internalError
                attached.internalError = nil
                self.state = .ready(.attached(attached), skipUntilSync: false)
                if let error {
                    // Parameters could not be carried over: tell the client, keep serving it.
                    return .send([.noticeResponse(error.withSeverity("WARNING"))])
                }
                return .none
            }
            attached.outstanding -= 1
            // An extended-protocol batch sent after the answered statement is still running on this backend.
            guard attached.outstanding <= 0, status == .idle, !attached.batchOpen, !attached.pinned else {
                self.state = .ready(.attached(attached), skipUntilSync: false)
                return .none
            }
            self.state = .ready(.none, skipUntilSync: false)
            return self.drainingCheck(.releaseBackend)
        case .closed:
            return .none
        case .awaitingStartup, .authenticating, .loggingIn, .ready:
            preconditionFailure("ReadyForQuery without an attached backend in state \(self.state)")
        }
    }

    /// ErrorResponse from the backend while it answers an internal statement.
    public mutating func internalStatementFailed(_ error: ErrorNoticeFields) {
        switch self.state {
        case .loggingIn(.attached(var attached)):
            attached.internalError = error
            self.state = .loggingIn(.attached(attached))
        case .ready(.attached(var attached), let skip):
            attached.internalError = error
            self.state = .ready(.attached(attached), skipUntilSync: skip)
        default:
            break
        }
    }

    /// ParameterStatus relayed from the attached backend.
    public mutating func backendParameterStatus(name: String, value: String) {
        self.parameters.observe(name: name, value: value)
    }

    /// The attached backend closed or failed.
    public mutating func backendLost(server: String, reason: String) -> Action {
        switch self.state {
        case .loggingIn:
            self.state = .closed
            return .closeClient(ProxyErrors.fatal("08006", "ShardGate lost backend \(server) during login: \(reason)"), backend: .close)
        case .ready(.attached(let attached), _):
            if attached.transactionStatus != .idle {
                self.state = .closed
                return .closeClient(ProxyErrors.transactionLost(server), backend: .close)
            }
            if attached.pinned {
                // The session's prepared statements and settings lived on that backend; carrying on without
                // them would run later statements in a different session state.
                self.state = .closed
                return .closeClient(ProxyErrors.sessionLost(server), backend: .close)
            }
            // Each answer still due fails on its own; a batch without its Sync gets its error now (a driver
            // waiting after Flush would otherwise wait forever) and the rest of it is skipped up to Sync.
            let error = ProxyErrors.backendUnavailable(server, reason: reason)
            var messages: [BackendMessage] = []
            for _ in 0..<max(attached.outstanding, 0) {
                messages += [.errorResponse(error), .readyForQuery(.idle)]
            }
            if attached.batchOpen { messages.append(.errorResponse(error)) }
            self.state = .ready(.none, skipUntilSync: attached.batchOpen)
            return self.drainingCheck(.sendAndCloseBackend(messages))
        case .closed, .ready, .awaitingStartup, .authenticating:
            return .none
        }
    }
}
