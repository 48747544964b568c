import NIOCore
import PGWire

/// Backend events of the login: the lease granted or refused, the backend's ReadyForQuery, ParameterStatus
/// and internal-statement errors, and the backend's loss.
extension ClientSessionStateMachine {
    /// A backend was leased. `current` are its parameter values now, `defaults` those at its connection start.
    public mutating func backendAttached(current: [String: String], defaults: [String: String]) -> Action {
        self.backendAttached(synchronization: self.parameters.synchronization(backend: current, backendDefaults: defaults))
    }

    /// The login backend was leased; `synchronization` is `parameters.synchronization(for:)` of that backend.
    public mutating func backendAttached(synchronization sync: String?) -> Action {
        switch self.state {
        case .loggingIn(.acquiring):
            guard let sync else {
                self.state = .loggingIn(.attached(Attached(internalPending: 0, transactionStatus: .idle)))
                return self.completeLogin()
            }
            self.state = .loggingIn(.attached(Attached(internalPending: 1, transactionStatus: .idle)))
            return .startBackend(sync: sync, frames: [])
        case .closed:
            // The client left while the lease was in flight.
            return .releaseBackend
        case .awaitingStartup, .authenticating, .loggingIn(.attached), .ready:
            preconditionFailure("backend attached in state \(self.state)")
        }
    }

    /// The pool could not provide the login backend (connect failure or checkout timeout).
    public mutating func backendUnavailable(_ error: ErrorNoticeFields) -> Action {
        switch self.state {
        case .loggingIn:
            self.state = .closed
            return .closeClient(error.withSeverity("FATAL"), backend: .none)
        case .closed:
            return .none
        case .awaitingStartup, .authenticating, .ready:
            preconditionFailure("backend unavailable in state \(self.state)")
        }
    }

    /// ReadyForQuery from the login backend.
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
        case .closed:
            return .none
        case .awaitingStartup, .authenticating, .loggingIn, .ready:
            preconditionFailure("ReadyForQuery without a login backend in state \(self.state)")
        }
    }

    /// ErrorResponse from the login backend while it answers the internal statement.
    public mutating func internalStatementFailed(_ error: ErrorNoticeFields) {
        if case .loggingIn(.attached(var attached)) = self.state {
            attached.internalError = error
            self.state = .loggingIn(.attached(attached))
        }
    }

    /// ParameterStatus relayed from the login backend.
    public mutating func backendParameterStatus(name: String, value: String) {
        self.parameters.observe(name: name, value: value)
    }

    /// The login backend closed or failed.
    public mutating func backendLost(server: String, reason: String) -> Action {
        guard case .loggingIn = self.state else { return .none }
        self.state = .closed
        return .closeClient(ProxyErrors.fatal("08006", "ShardGate lost backend \(server) during login: \(reason)"), backend: .close)
    }
}
