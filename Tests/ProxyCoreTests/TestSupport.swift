import NIOCore
import PGWire
import Testing

@testable import ProxyCore

// MARK: frames a client sends

/// A typed client message as the frame the handler would hand to the machine.
func frame(_ message: FrontendMessage) -> PGFrame {
    var buffer = ByteBuffer()
    message.encode(into: &buffer)
    return try! PGFrame.decode(from: &buffer, limits: .default)!
}

enum Frames {
    static func query(_ sql: String) -> PGFrame { frame(.query(sql)) }
    static func parse(_ sql: String, name: String = "") -> PGFrame { frame(.parse(Parse(name: name, query: sql))) }
    static func bind(portal: String = "", statement: String = "") -> PGFrame {
        frame(.bind(Bind(portal: portal, statement: statement)))
    }
    static func describe(portal: String = "") -> PGFrame { frame(.describe(.portal(portal))) }
    static func describe(statement: String) -> PGFrame { frame(.describe(.statement(statement))) }
    static func execute(portal: String = "") -> PGFrame { frame(.execute(Execute(portal: portal))) }
    static let sync = frame(.sync)
    static let flush = frame(.flush)
    static let terminate = frame(.terminate)
    static let copyDone = frame(.copyDone)

    /// A PasswordMessage carrying a NUL-terminated string (cleartext or md5 response).
    static func password(_ text: String) -> PGFrame {
        var payload = ByteBuffer()
        payload.writeNullTerminatedString(text)
        return frame(.password(payload))
    }

    /// A SASLInitialResponse.
    static func saslInitial(mechanism: String, data: [UInt8]?) -> PGFrame {
        var payload = ByteBuffer()
        SASLInitialResponse(mechanism: mechanism, data: data.map { ByteBuffer(bytes: $0) }).encode(into: &payload)
        return frame(.password(payload))
    }

    /// A SASLResponse.
    static func saslResponse(_ data: [UInt8]) -> PGFrame {
        frame(.password(ByteBuffer(bytes: data)))
    }

    /// The extended-protocol batch P/B/D/E/S.
    static func extendedBatch(_ sql: String) -> [PGFrame] {
        [parse(sql), bind(), describe(), execute(), sync]
    }
}

func startup(_ parameters: [(String, String)]) -> StartupPacket {
    .startup(StartupMessage(parameters: parameters))
}

// MARK: comparing actions

extension ClientSessionStateMachine.Action: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        // One switch over `lhs`, then a pattern on `rhs`: a switch over the pair is too big to check.
        switch lhs {
        case .none:
            if case .none = rhs { return true }
        case .answerSSLRequest(let l):
            if case .answerSSLRequest(let r) = rhs { return l == r }
        case .refuseGSSEncryption:
            if case .refuseGSSEncryption = rhs { return true }
        case .forwardCancel(let l):
            if case .forwardCancel(let r) = rhs { return l == r }
        case .sendAuthentication(let l, let lAcquire):
            if case .sendAuthentication(let r, let rAcquire) = rhs { return l == r && lAcquire == rAcquire }
        case .startBackend(let lSync, let lFrames):
            if case .startBackend(let rSync, let rFrames) = rhs { return lSync == rSync && lFrames == rFrames }
        case .finishLogin:
            if case .finishLogin = rhs { return true }
        case .releaseBackend:
            if case .releaseBackend = rhs { return true }
        case .closeClient(let l, let lBackend):
            if case .closeClient(let r, let rBackend) = rhs { return l == r && lBackend == rBackend }
        }
        return false
    }
}

extension ClientSessionStateMachine.Action {
    /// The error and backend disposition of `.closeClient`, nil for any other action.
    var closeClient: (error: ErrorNoticeFields?, backend: ClientSessionStateMachine.BackendDisposition)? {
        guard case .closeClient(let error, let backend) = self else { return nil }
        return (error, backend)
    }

    /// The Authentication requests of `.sendAuthentication`.
    var authentication: (requests: [Authentication], acquireBackend: Bool)? {
        guard case .sendAuthentication(let requests, let acquire) = self else { return nil }
        return (requests, acquire)
    }

}

/// The bytes of a ByteBuffer.
func bytes(_ buffer: ByteBuffer) -> [UInt8] {
    Array(buffer.readableBytesView)
}

func bytes(_ text: String) -> [UInt8] {
    Array(text.utf8)
}

// MARK: sessions in a known state

/// Settings and names most tests share.
enum Fixture {
    static let database = "app"
    static let trust = ClientAuthSettings(method: .trust)
    /// Parameters a freshly started backend reports.
    static let backendDefaults: [String: String] = [
        "application_name": "", "client_encoding": "UTF8", "DateStyle": "ISO, MDY", "IntervalStyle": "postgres",
        "TimeZone": "UTC", "standard_conforming_strings": "on", "default_transaction_read_only": "off",
        "server_version": "17.4", "is_superuser": "off", "integer_datetimes": "on",
    ]
}

/// A session that logged in with trust and whose parameters match the backend defaults: it is ready.
func idleSession(parameters: [(String, String)] = [], sourceLocation: SourceLocation = #_sourceLocation) -> ClientSessionStateMachine {
    var session = ClientSessionStateMachine(tlsAvailable: false)
    var startupParameters = [("user", "alice"), ("database", Fixture.database)]
    startupParameters += parameters
    let first = session.startupPacketReceived(startup(startupParameters), settings: Fixture.trust, databaseName: Fixture.database)
    #expect(first == .sendAuthentication([.ok], acquireBackend: true), sourceLocation: sourceLocation)
    // A backend whose values already equal the client's: login finishes at once.
    var current = Fixture.backendDefaults
    for (name, value) in session.parameters.values { current[name] = value }
    #expect(session.backendAttached(current: current, defaults: Fixture.backendDefaults) == .finishLogin,
            sourceLocation: sourceLocation)
    #expect(!session.hasBackend, sourceLocation: sourceLocation)
    #expect(session.isReady, sourceLocation: sourceLocation)
    return session
}
