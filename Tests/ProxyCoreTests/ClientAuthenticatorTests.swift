import NIOCore
import PGAuth
import PGWire
import ShardMap
import Testing

@testable import ProxyCore

/// The proxy as the server of client authentication, with PGAuth's real client side.
@Suite struct ClientAuthenticatorTests {
    static let scramSettings = ClientAuthSettings(method: .scram(credentials: [
        "alice": SCRAMServerCredentials(password: "correct horse"),
    ]))
    static let md5Settings = ClientAuthSettings(method: .md5(passwords: ["alice": "correct horse"]))
    static let salt: (UInt8, UInt8, UInt8, UInt8) = (0xDE, 0xAD, 0xBE, 0xEF)

    /// Payload of a 'p' message, as the session hands it over.
    func payload(_ frame: PGFrame) -> ByteBuffer { frame.payload }

    // MARK: trust

    @Test func trustSucceedsAtOnce() {
        let (_, step) = ClientAuthenticator.begin(user: "anyone", settings: ClientAuthSettings(method: .trust))
        #expect(step == .succeeded([.ok]))
        #expect(ClientAuthSettings(nil).method.isTrust)
    }

    @Test func passwordMessageAfterTrustIsAProtocolViolation() {
        var (authenticator, _) = ClientAuthenticator.begin(user: "anyone", settings: ClientAuthSettings(method: .trust))
        guard case .failed(let error) = authenticator.receive(self.payload(Frames.password("x"))) else {
            Issue.record("expected failure")
            return
        }
        #expect(error.sqlState == "08P01")
    }

    // MARK: md5

    @Test func md5ChallengeUsesTheInjectedSalt() {
        let (authenticator, step) = ClientAuthenticator.begin(user: "alice", settings: Self.md5Settings, random: { 0xDEAD_BEEF })
        #expect(step == .challenge(.md5Password(salt: Self.salt)))
        #expect(authenticator.user == "alice")
    }

    @Test func md5RightPassword() {
        var (authenticator, _) = ClientAuthenticator.begin(user: "alice", settings: Self.md5Settings, random: { 0xDEAD_BEEF })
        let response = MD5Password.response(user: "alice", password: "correct horse", salt: Self.salt)
        #expect(authenticator.receive(self.payload(Frames.password(response))) == .succeeded([.ok]))
        // The exchange is over.
        guard case .failed(let error) = authenticator.receive(self.payload(Frames.password(response))) else {
            Issue.record("a second password message must fail")
            return
        }
        #expect(error.sqlState == "08P01")
    }

    @Test func md5WrongPassword() {
        var (authenticator, _) = ClientAuthenticator.begin(user: "alice", settings: Self.md5Settings, random: { 0xDEAD_BEEF })
        let response = MD5Password.response(user: "alice", password: "battery staple", salt: Self.salt)
        #expect(authenticator.receive(self.payload(Frames.password(response))) == .failed(ProxyErrors.passwordFailed(user: "alice")))
    }

    @Test func md5ResponseForAnotherSaltIsRefused() {
        var (authenticator, _) = ClientAuthenticator.begin(user: "alice", settings: Self.md5Settings, random: { 0xDEAD_BEEF })
        let replayed = MD5Password.response(user: "alice", password: "correct horse", salt: (1, 2, 3, 4))
        #expect(authenticator.receive(self.payload(Frames.password(replayed))) == .failed(ProxyErrors.passwordFailed(user: "alice")))
    }

    @Test func md5UnknownUserIsChallengedAndThenRefusedLikeAWrongPassword() {
        let begun = ClientAuthenticator.begin(user: "mallory", settings: Self.md5Settings, random: { 0xDEAD_BEEF })
        var authenticator = begun.0
        #expect(begun.1 == .challenge(.md5Password(salt: Self.salt)))
        let response = MD5Password.response(user: "mallory", password: "correct horse", salt: Self.salt)
        #expect(authenticator.receive(self.payload(Frames.password(response))) == .failed(ProxyErrors.passwordFailed(user: "mallory")))
    }

    @Test func md5UnterminatedPasswordMessageIsMalformed() {
        var (authenticator, _) = ClientAuthenticator.begin(user: "alice", settings: Self.md5Settings, random: { 0xDEAD_BEEF })
        guard case .failed(let error) = authenticator.receive(ByteBuffer(bytes: Array("md5abc".utf8))) else {
            Issue.record("expected failure")
            return
        }
        #expect(error.sqlState == "08P01")
    }

    // MARK: SCRAM-SHA-256

    /// Runs the exchange with PGAuth's client; returns the last step and the client (to check the server).
    func runSCRAM(user: String, password: String) throws -> (ClientAuthenticator.Step, SCRAMClientExchange, serverFirst: [UInt8]) {
        let begun = ClientAuthenticator.begin(user: user, settings: Self.scramSettings)
        var authenticator = begun.0
        #expect(begun.1 == .challenge(.sasl(mechanisms: ["SCRAM-SHA-256"])))
        var client = SCRAMClientExchange(password: password)
        let first = authenticator.receive(self.payload(Frames.saslInitial(mechanism: "SCRAM-SHA-256", data: client.clientFirstMessage())))
        guard case .challenge(.saslContinue(let serverFirst)) = first else {
            Issue.record("expected AuthenticationSASLContinue, got \(first)")
            return (first, client, [])
        }
        let final = try client.receiveServerFirst(bytes(serverFirst))
        return (authenticator.receive(self.payload(Frames.saslResponse(final))), client, bytes(serverFirst))
    }

    @Test func scramRightPassword() throws {
        let (step, client, _) = try self.runSCRAM(user: "alice", password: "correct horse")
        guard case .succeeded(let messages) = step, messages.count == 2, case .saslFinal(let serverFinal) = messages[0] else {
            Issue.record("expected success, got \(step)")
            return
        }
        #expect(messages[1] == .ok)
        try client.verifyServerFinal(bytes(serverFinal))
    }

    @Test func scramWrongPassword() throws {
        let (step, _, _) = try self.runSCRAM(user: "alice", password: "battery staple")
        #expect(step == .failed(ProxyErrors.passwordFailed(user: "alice")))
    }

    @Test func scramUnknownUserGetsAChallengeAndThen28P01() throws {
        let (step, _, serverFirst) = try self.runSCRAM(user: "mallory", password: "correct horse")
        #expect(text(serverFirst).contains(",s="))
        #expect(text(serverFirst).contains(",i=4096"))
        #expect(step == .failed(ProxyErrors.passwordFailed(user: "mallory")))
    }

    @Test func scramUnknownUsersDoNotShareASalt() throws {
        // A salt shared by every unknown name would tell a prober which names exist. The same name must see the
        // same salt each time, as a real user does.
        let (_, _, mallory1) = try self.runSCRAM(user: "mallory", password: "x")
        let (_, _, mallory2) = try self.runSCRAM(user: "mallory", password: "x")
        let (_, _, eve) = try self.runSCRAM(user: "eve", password: "x")
        #expect(Self.salt(in: mallory1) == Self.salt(in: mallory2))
        #expect(Self.salt(in: mallory1) != Self.salt(in: eve))
        #expect(Self.salt(in: mallory1) != nil)
    }

    static func salt(in serverFirst: [UInt8]) -> String? {
        text(serverFirst).split(separator: ",").first(where: { $0.hasPrefix("s=") }).map(String.init)
    }

    @Test func scramWrongMechanismIsAProtocolViolation() {
        var (authenticator, _) = ClientAuthenticator.begin(user: "alice", settings: Self.scramSettings)
        let client = SCRAMClientExchange(password: "correct horse")
        let step = authenticator.receive(self.payload(Frames.saslInitial(mechanism: "SCRAM-SHA-256-PLUS", data: client.clientFirstMessage())))
        guard case .failed(let error) = step else {
            Issue.record("expected failure, got \(step)")
            return
        }
        #expect(error.sqlState == "08P01")
        #expect(error.severity == "FATAL")
        #expect(error.message?.contains("SCRAM-SHA-256-PLUS") == true)
    }

    @Test(arguments: [
        [UInt8](),                                            // nothing at all
        Array("SCRAM-SHA-256".utf8),                          // no terminator
        Array("SCRAM-SHA-256\0".utf8) + [0, 0],               // truncated length
        Array("SCRAM-SHA-256\0".utf8) + [0, 0, 0, 99, 0x6E],  // length overruns the message
    ])
    func malformedSASLInitialResponse(payload: [UInt8]) {
        var (authenticator, _) = ClientAuthenticator.begin(user: "alice", settings: Self.scramSettings)
        guard case .failed(let error) = authenticator.receive(ByteBuffer(bytes: payload)) else {
            Issue.record("expected failure")
            return
        }
        #expect(error.sqlState == "08P01")
    }

    @Test func saslInitialResponseWithoutDataIsAProtocolViolation() {
        var (authenticator, _) = ClientAuthenticator.begin(user: "alice", settings: Self.scramSettings)
        let step = authenticator.receive(self.payload(Frames.saslInitial(mechanism: "SCRAM-SHA-256", data: nil)))
        guard case .failed(let error) = step else {
            Issue.record("expected failure, got \(step)")
            return
        }
        #expect(error.sqlState == "08P01")
    }

    @Test func malformedClientFirstMessageIsAProtocolViolation() {
        var (authenticator, _) = ClientAuthenticator.begin(user: "alice", settings: Self.scramSettings)
        let step = authenticator.receive(self.payload(Frames.saslInitial(mechanism: "SCRAM-SHA-256", data: Array("hello".utf8))))
        guard case .failed(let error) = step else {
            Issue.record("expected failure, got \(step)")
            return
        }
        #expect(error.sqlState == "08P01")
    }

    @Test func malformedClientFinalMessageIsAProtocolViolation() {
        var (authenticator, _) = ClientAuthenticator.begin(user: "alice", settings: Self.scramSettings)
        let client = SCRAMClientExchange(password: "correct horse")
        _ = authenticator.receive(self.payload(Frames.saslInitial(mechanism: "SCRAM-SHA-256", data: client.clientFirstMessage())))
        let step = authenticator.receive(self.payload(Frames.saslResponse(Array("c=biws,r=wrong".utf8))))
        guard case .failed(let error) = step else {
            Issue.record("expected failure, got \(step)")
            return
        }
        #expect(error.sqlState == "08P01")
    }

    @Test func settingsFromTheMapsAuthSection() throws {
        let users = [AuthUser(name: "alice", password: "correct horse"), AuthUser(name: "bob", password: "pw")]
        guard case .md5(let passwords) = ClientAuthSettings(AuthConfig(method: .md5, users: users)).method else {
            Issue.record("expected md5")
            return
        }
        #expect(passwords == ["alice": "correct horse", "bob": "pw"])
        #expect(ClientAuthSettings(AuthConfig(method: .trust, users: [])).method.isTrust)

        // SCRAM credentials are derived once; a login with them works.
        let scram = ClientAuthSettings(AuthConfig(method: .scramSHA256, users: users))
        var (authenticator, _) = ClientAuthenticator.begin(user: "bob", settings: scram)
        var client = SCRAMClientExchange(password: "pw")
        guard case .challenge(.saslContinue(let serverFirst)) = authenticator.receive(
            self.payload(Frames.saslInitial(mechanism: "SCRAM-SHA-256", data: client.clientFirstMessage())))
        else {
            Issue.record("expected AuthenticationSASLContinue")
            return
        }
        let final = try client.receiveServerFirst(bytes(serverFirst))
        guard case .succeeded = authenticator.receive(self.payload(Frames.saslResponse(final))) else {
            Issue.record("expected success")
            return
        }
    }
}

extension ClientAuthSettings.Method {
    var isTrust: Bool {
        if case .trust = self { return true }
        return false
    }
}

func text(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}
