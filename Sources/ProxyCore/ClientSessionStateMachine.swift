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

    /// Internal, not private: the backend events live in ClientSessionStateMachine+Backend.swift.
    var state: State
    private let tlsAvailable: Bool
    var draining = false
    /// The client ran SQL whose effect stays on its backend: pin the backend that runs (or ran) it.
    var pinRequested = false
    public internal(set) var parameters = SessionParameters()
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

    mutating func completeLogin() -> Action {
        // finishLogin releases the backend; the session is then idle.
        self.state = .ready(.none, skipUntilSync: false)
        return .finishLogin
    }

    mutating func drainingCheck(_ action: Action) -> Action {
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

    static func disposition(of backend: Backend) -> BackendDisposition {
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
