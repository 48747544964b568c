import NIOCore
import PGWire

/// The protocol logic of one client connection from its startup packet to the end of its login: TLS and
/// GSS negotiation, cancel requests, authentication, and the login that leases a backend once to learn the
/// server's parameters and to validate the client's. Once `isReady`, the session's queries are the
/// `SessionEngine`'s; this machine only closes and shuts down.
///
/// The handler (ProxyServer's `ClientChannelHandler`) performs the returned actions.
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
        /// Send `sync` (an internal statement whose results the client never sees) to the login backend.
        case startBackend(sync: String?, frames: [PGFrame])
        /// Login done: send ParameterStatus for the backend's reported parameters, BackendKeyData and
        /// ReadyForQuery, then release the backend; the session is ready.
        case finishLogin
        /// The client left while the login lease was in flight: return the backend to the pool.
        case releaseBackend
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
        /// ReadyForQuery answers still due for internal statements (not shown to the client).
        var internalPending: Int
        var internalError: ErrorNoticeFields?
        var transactionStatus: BackendMessage.TransactionStatus
    }

    enum Backend {
        case acquiring
        case attached(Attached)
    }

    enum State {
        /// `sslAnswered`: an SSLRequest was answered ('S' or 'N'); PostgreSQL accepts only one.
        case awaitingStartup(sslAnswered: Bool)
        case authenticating(ClientAuthenticator, user: String)
        case loggingIn(Backend)
        /// Logged in: queries belong to the session engine.
        case ready
        case closed
    }

    /// Internal, not private: the backend events live in ClientSessionStateMachine+Backend.swift.
    var state: State
    private let tlsAvailable: Bool
    var draining = false
    public internal(set) var parameters = SessionParameters()
    public private(set) var user: String = ""

    public init(tlsAvailable: Bool) {
        self.state = .awaitingStartup(sslAnswered: false)
        self.tlsAvailable = tlsAvailable
    }

    /// True while the login backend is answering an internal statement: its frames are not relayed.
    public var isSwallowingBackendOutput: Bool {
        if case .loggingIn(.attached(let a)) = self.state { return a.internalPending > 0 }
        return false
    }

    /// True once the login is complete: client messages go to the session engine.
    public var isReady: Bool {
        if case .ready = self.state { return true }
        return false
    }

    /// True when the login holds a backend.
    public var hasBackend: Bool {
        if case .loggingIn(.attached) = self.state { return true }
        return false
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
            self.state = .loggingIn(.acquiring)
            return .sendAuthentication(messages, acquireBackend: true)
        case .failed(let error):
            self.state = .closed
            return .closeClient(error, backend: .none)
        }
    }

    // MARK: client frames

    /// A client message before the session is ready (after it, messages go to the `SessionEngine`).
    public mutating func clientFrameReceived(_ frame: PGFrame) -> Action {
        switch self.state {
        case .awaitingStartup, .closed, .ready:
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
        }
    }

    // MARK: close and shutdown

    /// The client connection closed (or failed). Says what to do with the login backend.
    public mutating func clientClosed() -> BackendDisposition {
        defer { self.state = .closed }
        if case .loggingIn(let backend) = self.state { return Self.disposition(of: backend) }
        return .none
    }

    /// Proxy shutdown before the session is ready: close now.
    public mutating func shutdown() -> Action {
        self.draining = true
        switch self.state {
        case .awaitingStartup, .authenticating:
            self.state = .closed
            return .closeClient(ProxyErrors.shuttingDown, backend: .none)
        case .loggingIn(let backend):
            self.state = .closed
            return .closeClient(ProxyErrors.shuttingDown, backend: Self.disposition(of: backend))
        case .ready, .closed:
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
        // finishLogin releases the backend; the session is then ready.
        self.state = .ready
        return .finishLogin
    }

    private mutating func protocolViolation(_ message: String) -> Action {
        let backend: BackendDisposition
        switch self.state {
        case .loggingIn(let b):
            backend = Self.disposition(of: b) == .release ? .close : Self.disposition(of: b)
        case .awaitingStartup, .authenticating, .closed, .ready:
            backend = .none
        }
        self.state = .closed
        return .closeClient(ProxyErrors.protocolViolation(message), backend: backend)
    }

    static func disposition(of backend: Backend) -> BackendDisposition {
        switch backend {
        case .acquiring:
            return .cancelLease
        case .attached(let a):
            return a.internalPending == 0 && a.transactionStatus == .idle ? .release : .close
        }
    }

    static func name(_ id: UInt8) -> String {
        id >= 0x20 && id < 0x7F ? "\"\(Character(Unicode.Scalar(id)))\"" : "0x" + String(id, radix: 16)
    }
}
