import NIOCore
import PGWire

/// The protocol logic of one client connection, from its startup packet to its close.
///
/// Transaction pooling: a backend is attached when the client sends something that needs one and is
/// released when every Query/Sync/FunctionCall forwarded has been answered by ReadyForQuery with status
/// idle. The handler (ProxyServer's `ClientChannelHandler`) performs the returned actions; backend frames
/// reach the machine only when they matter for this bookkeeping (ReadyForQuery, ParameterStatus, errors
/// of internal statements), everything else is relayed without it.
public struct ClientSessionStateMachine {
    /// What the handler must do after an event.
    public enum Action {
        case none
        /// Answer SSLRequest with 'S' (then start TLS) or 'N'.
        case answerSSLRequest(accept: Bool)
        /// Answer GSSENCRequest with 'N'.
        case refuseGSSEncryption
        /// Forward this CancelRequest to the backend running that session's statement, then close.
        case forwardCancel(BackendKey)
        /// Send these to the client; with `acquireBackend` also lease a backend afterwards.
        case sendAuthentication([Authentication], acquireBackend: Bool)
        /// Lease a backend from the pool; report `backendAttached` or `backendUnavailable`.
        case acquireBackend
        /// Send `sync` (an internal statement whose results the client never sees) and then `frames`.
        case startBackend(sync: String?, frames: [PGFrame])
        /// Relay this client frame to the attached backend.
        case forward(PGFrame)
        /// Login done: send ParameterStatus for the backend's reported parameters, BackendKeyData and
        /// ReadyForQuery, then release the backend.
        case finishLogin
        /// The backend is clean: return it to the pool.
        case releaseBackend
        /// Send these to the client (no backend involved).
        case send([BackendMessage])
        /// Send `messages` to the client, then close the backend (it cannot be reused) .
        case sendAndCloseBackend([BackendMessage])
        /// Send the error (if any) and close the client connection; dispose of the backend as said.
        case closeClient(ErrorNoticeFields?, backend: BackendDisposition)
    }

    public enum BackendDisposition: Equatable {
        case none
        case release
        case close
        case cancelLease
    }

    struct Attached {
        /// ReadyForQuery answers still due for forwarded Query/Sync/FunctionCall messages.
        var outstanding: Int
        /// ReadyForQuery answers still due for internal statements (not shown to the client).
        var internalPending: Int
        var internalError: ErrorNoticeFields?
        var transactionStatus: BackendMessage.TransactionStatus
        /// Extended-protocol messages were forwarded after the last Sync: the backend is inside a batch.
        var batchOpen = false
        /// The client created a named prepared statement here. Until statements are multiplexed across
        /// backends (issue 4), the backend stays with this client for the rest of its session, so that a
        /// statement name always means this client's statement, and is closed, not pooled, afterwards.
        var pinned = false
    }

    enum Backend {
        case none
        case acquiring(queue: [PGFrame])
        case attached(Attached)
    }

    enum State {
        /// `sslAnswered`: an SSLRequest was answered ('S' or 'N'); PostgreSQL accepts only one.
        case awaitingStartup(sslAnswered: Bool)
        case authenticating(ClientAuthenticator, user: String)
        case loggingIn(Backend)
        case ready(Backend, skipUntilSync: Bool)
        case closed
    }

    private var state: State
    private let tlsAvailable: Bool
    private var draining = false
    /// The client ran SQL whose effect stays on its backend: pin the backend that runs (or ran) it.
    private var pinRequested = false
    public private(set) var parameters = SessionParameters()
    public private(set) var user: String = ""

    public init(tlsAvailable: Bool) {
        self.state = .awaitingStartup(sslAnswered: false)
        self.tlsAvailable = tlsAvailable
    }

    /// True while the attached backend is answering an internal statement: its frames are not relayed.
    public var isSwallowingBackendOutput: Bool {
        switch self.state {
        case .ready(.attached(let a), _), .loggingIn(.attached(let a)):
            return a.internalPending > 0
        default:
            return false
        }
    }

    /// True once the client ran SQL whose effect stays on its backend (the backend is pinned to it).
    public var holdsSessionState: Bool { self.pinRequested }

    /// True when the session holds a backend.
    public var hasBackend: Bool {
        switch self.state {
        case .ready(.attached, _), .loggingIn(.attached):
            return true
        default:
            return false
        }
    }

    // MARK: startup and authentication

    public mutating func startupPacketReceived(_ packet: StartupPacket, settings: ClientAuthSettings, databaseName: String) -> Action {
        guard case .awaitingStartup(let sslAnswered) = self.state else {
            return self.protocolViolation("unexpected startup packet")
        }
        switch packet {
        case .sslRequest:
            guard !sslAnswered else {
                return self.protocolViolation("SSLRequest received twice")
            }
            self.state = .awaitingStartup(sslAnswered: true)
            return .answerSSLRequest(accept: self.tlsAvailable)
        case .gssEncRequest:
            return .refuseGSSEncryption
        case .cancel(let key):
            self.state = .closed
            return .forwardCancel(key)
        case .startup(let message):
            guard ["false", "off", "no", "0"].contains(message["replication"]?.lowercased() ?? "false") else {
                self.state = .closed
                return .closeClient(ProxyErrors.fatal("0A000", "ShardGate does not support replication connections",
                                                      hint: "Connect to a shard's primary directly for replication."), backend: .none)
            }
            guard let user = message["user"], !user.isEmpty else {
                self.state = .closed
                return .closeClient(ProxyErrors.fatal("28000", "no PostgreSQL user name specified in startup packet"), backend: .none)
            }
            let database = message["database"] ?? user
            guard database == databaseName else {
                self.state = .closed
                return .closeClient(ProxyErrors.fatal("3D000", "database \"\(database)\" does not exist",
                                                      hint: "ShardGate serves the database \"\(databaseName)\"."), backend: .none)
            }
            self.user = user
            self.parameters = SessionParameters(startup: message.parameters)
            let (authenticator, step) = ClientAuthenticator.begin(user: user, settings: settings)
            return self.authStep(step, authenticator: authenticator)
        }
    }

    private mutating func authStep(_ step: ClientAuthenticator.Step, authenticator: ClientAuthenticator) -> Action {
        switch step {
        case .challenge(let request):
            self.state = .authenticating(authenticator, user: authenticator.user)
            return .sendAuthentication([request], acquireBackend: false)
        case .succeeded(let messages):
            self.state = .loggingIn(.acquiring(queue: []))
            return .sendAuthentication(messages, acquireBackend: true)
        case .failed(let error):
            self.state = .closed
            return .closeClient(error, backend: .none)
        }
    }

    // MARK: client frames

    /// A client message. `changesSessionState`: its SQL changes session state that cannot follow the client
    /// to another backend (see `SessionStateEffect`); the backend that runs it stays with this client.
    public mutating func clientFrameReceived(_ frame: PGFrame, changesSessionState: Bool = false) -> Action {
        if changesSessionState { self.pinRequested = true }
        switch self.state {
        case .awaitingStartup, .closed:
            return self.protocolViolation("unexpected message before startup")

        case .authenticating(var authenticator, _):
            guard frame.id == FrontendMessageID.password.rawValue else {
                if frame.id == FrontendMessageID.terminate.rawValue {
                    self.state = .closed
                    return .closeClient(nil, backend: .none)
                }
                return self.protocolViolation("expected password response, got message type \(Self.name(frame.id))")
            }
            let step = authenticator.receive(frame.payload)
            return self.authStep(step, authenticator: authenticator)

        case .loggingIn(let backend):
            // The client sends nothing before ReadyForQuery except possibly Terminate.
            if frame.id == FrontendMessageID.terminate.rawValue {
                self.state = .closed
                return .closeClient(nil, backend: Self.disposition(of: backend))
            }
            return self.protocolViolation("unexpected message type \(Self.name(frame.id)) during login")

        case .ready(let backend, let skipUntilSync):
            guard let id = FrontendMessageID(rawValue: frame.id) else {
                return self.protocolViolation("invalid frontend message type \(Self.name(frame.id))")
            }
            switch id {
            case .terminate:
                self.state = .closed
                return .closeClient(nil, backend: Self.disposition(of: backend))
            case .password:
                return self.protocolViolation("unexpected password message")
            default:
                break
            }
            switch backend {
            case .attached(var attached):
                if Self.expectsReadyForQuery(id) { attached.outstanding += 1 }
                attached.batchOpen = Self.batchOpen(attached.batchOpen, after: id)
                if (id == .parse && Self.namesStatement(frame)) || self.pinRequested { attached.pinned = true }
                self.state = .ready(.attached(attached), skipUntilSync: false)
                return .forward(frame)
            case .acquiring(var queue):
                queue.append(frame)
                self.state = .ready(.acquiring(queue: queue), skipUntilSync: false)
                return .none
            case .none:
                if self.draining {
                    // Shutdown: the answer to the last statement was delivered; no new one starts.
                    self.state = .closed
                    return .closeClient(ProxyErrors.shuttingDown, backend: .none)
                }
                if skipUntilSync {
                    if id == .sync {
                        self.state = .ready(.none, skipUntilSync: false)
                        return .send([.readyForQuery(.idle)])
                    }
                    return .none
                }
                switch id {
                case .copyData, .copyDone, .copyFail:
                    // PostgreSQL ignores copy messages outside COPY (e.g. after a failed COPY): so do we.
                    return .none
                default:
                    self.state = .ready(.acquiring(queue: [frame]), skipUntilSync: false)
                    return .acquireBackend
                }
            }
        }
    }

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

    // MARK: close and shutdown

    /// The client connection closed (or failed). Says what to do with the backend.
    public mutating func clientClosed() -> BackendDisposition {
        let backend: Backend
        switch self.state {
        case .loggingIn(let b), .ready(let b, _):
            backend = b
        case .awaitingStartup, .authenticating, .closed:
            self.state = .closed
            return .none
        }
        self.state = .closed
        return Self.disposition(of: backend)
    }

    /// Proxy shutdown: close now if idle, else after the current transaction ends.
    public mutating func shutdown() -> Action {
        self.draining = true
        switch self.state {
        case .ready(.none, _), .awaitingStartup, .authenticating:
            self.state = .closed
            return .closeClient(ProxyErrors.shuttingDown, backend: .none)
        case .loggingIn(let backend):
            self.state = .closed
            return .closeClient(ProxyErrors.shuttingDown, backend: Self.disposition(of: backend))
        case .ready(.acquiring, _), .ready(.attached, _), .closed:
            return .none
        }
    }

    /// Shutdown deadline passed: close whatever is in flight.
    public mutating func forceClose() -> Action {
        let disposition = self.clientClosed()
        return .closeClient(ProxyErrors.shuttingDown, backend: disposition)
    }

    // MARK: helpers

    private mutating func completeLogin() -> Action {
        // finishLogin releases the backend; the session is then idle.
        self.state = .ready(.none, skipUntilSync: false)
        return .finishLogin
    }

    private mutating func drainingCheck(_ action: Action) -> Action {
        guard self.draining, case .ready(.none, _) = self.state else { return action }
        self.state = .closed
        switch action {
        case .releaseBackend:
            return .closeClient(ProxyErrors.shuttingDown, backend: .release)
        case .send, .sendAndCloseBackend:
            // Deliver the answer; the next event (or the shutdown deadline) closes the connection.
            self.state = .ready(.none, skipUntilSync: false)
            return action
        default:
            return action
        }
    }

    private mutating func protocolViolation(_ message: String) -> Action {
        let backend: BackendDisposition
        switch self.state {
        case .loggingIn(let b), .ready(let b, _):
            backend = Self.disposition(of: b) == .release ? .close : Self.disposition(of: b)
        case .awaitingStartup, .authenticating, .closed:
            backend = .none
        }
        self.state = .closed
        return .closeClient(ProxyErrors.protocolViolation(message), backend: backend)
    }

    private static func disposition(of backend: Backend) -> BackendDisposition {
        switch backend {
        case .none:
            return .none
        case .acquiring:
            return .cancelLease
        case .attached(let a):
            // Reusable only if nothing is in flight and no transaction or unsynced batch is open.
            return a.outstanding <= 0 && a.internalPending == 0 && a.transactionStatus == .idle && !a.batchOpen
                && !a.pinned ? .release : .close
        }
    }

    static func expectsReadyForQuery(_ id: FrontendMessageID) -> Bool {
        id == .query || id == .sync || id == .functionCall
    }

    /// Whether an extended-protocol batch is open after `id`: its messages open one, only Sync ends it.
    /// A Parse whose statement name (the payload's first C string) is not empty.
    static func namesStatement(_ parse: PGFrame) -> Bool {
        parse.payload.getInteger(at: parse.payload.readerIndex, as: UInt8.self).map { $0 != 0 } ?? false
    }

    static func batchOpen(_ open: Bool, after id: FrontendMessageID) -> Bool {
        switch id {
        case .parse, .bind, .describe, .execute, .close:
            return true
        case .sync:
            return false
        case .query, .functionCall, .flush, .copyData, .copyDone, .copyFail, .password, .terminate:
            return open
        }
    }


    static func name(_ id: UInt8) -> String {
        id >= 0x20 && id < 0x7F ? "\"\(Character(Unicode.Scalar(id)))\"" : "0x" + String(id, radix: 16)
    }
}
