import NIOCore
import PGAuth
import PGWire
import Testing

@testable import ProxyCore

/// The proxy logging in to a backend, with the server's messages played by the test.
@Suite struct BackendStartupStateMachineTests {
    static let key = BackendKey(processID: 1234, secretKey: 5678)

    /// The server's messages after authentication, ending with ReadyForQuery.
    func finishStartup(_ machine: inout BackendStartupStateMachine, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(machine.receive(.parameterStatus(name: "server_version", value: "17.4")) == .none, sourceLocation: sourceLocation)
        #expect(machine.receive(.parameterStatus(name: "TimeZone", value: "UTC")) == .none, sourceLocation: sourceLocation)
        #expect(machine.receive(.backendKeyData(Self.key)) == .none, sourceLocation: sourceLocation)
        #expect(machine.receive(.noticeResponse(ErrorNoticeFields(severity: "NOTICE", sqlState: "00000", message: "hi"))) == .none,
                sourceLocation: sourceLocation)
        #expect(machine.receive(.readyForQuery(.idle))
                == .ready(parameters: ["server_version": "17.4", "TimeZone": "UTC"], key: Self.key), sourceLocation: sourceLocation)
        // Nothing after that concerns the startup.
        #expect(machine.receive(.readyForQuery(.idle)) == .none, sourceLocation: sourceLocation)
    }

    @Test func startupMessageNamesUserAndDatabaseOnly() {
        let machine = BackendStartupStateMachine(user: "proxy", database: "app", password: nil)
        #expect(machine.startupMessage == .startup(StartupMessage(parameters: [("user", "proxy"), ("database", "app")])))
    }

    @Test func trust() {
        var machine = BackendStartupStateMachine(user: "proxy", database: "app", password: nil)
        #expect(machine.receive(.authentication(.ok)) == .none)
        self.finishStartup(&machine)
    }

    @Test func readyWithoutBackendKeyData() {
        var machine = BackendStartupStateMachine(user: "proxy", database: "app", password: nil)
        #expect(machine.receive(.authentication(.ok)) == .none)
        #expect(machine.receive(.readyForQuery(.idle)) == .ready(parameters: [:], key: nil))
    }

    @Test func cleartextPassword() {
        var machine = BackendStartupStateMachine(user: "proxy", database: "app", password: "s3cret")
        var expected = ByteBuffer()
        expected.writeBytes(Array("s3cret\0".utf8))
        #expect(machine.receive(.authentication(.cleartextPassword)) == .send(.password(expected)))
        #expect(machine.receive(.authentication(.ok)) == .none)
        self.finishStartup(&machine)
    }

    @Test func md5PasswordSendsTheExactResponse() {
        var machine = BackendStartupStateMachine(user: "alice", database: "app", password: "secret")
        // "md5" + md5hex(md5hex("secret" + "alice") + salt), computed independently (Python hashlib).
        let expected = ByteBuffer(bytes: Array("md598a0412b9c31436fc53776e863350083\0".utf8))
        #expect(machine.receive(.authentication(.md5Password(salt: (1, 2, 3, 4)))) == .send(.password(expected)))
        #expect(machine.receive(.authentication(.ok)) == .none)
        self.finishStartup(&machine)
    }

    /// Plays PostgreSQL's side of SCRAM with PGAuth's server exchange; returns the machine after the server's
    /// final answer.
    func scram(clientPassword: String, serverPassword: String) throws -> (BackendStartupStateMachine, BackendStartupStateMachine.Action) {
        var machine = BackendStartupStateMachine(user: "proxy", database: "app", password: clientPassword)
        var server = SCRAMServerExchange(credentials: SCRAMServerCredentials(password: serverPassword, iterations: 4096))
        let initial = machine.receive(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])))
        guard case .send(.password(var payload)) = initial else {
            Issue.record("expected SASLInitialResponse, got \(initial)")
            return (machine, initial)
        }
        let response = try SASLInitialResponse.decode(from: &payload)
        #expect(response.mechanism == "SCRAM-SHA-256")
        let serverFirst = try server.receiveClientFirst(bytes(try #require(response.data)))
        let final = machine.receive(.authentication(.saslContinue(ByteBuffer(bytes: serverFirst))))
        guard case .send(.password(let clientFinal)) = final else {
            Issue.record("expected SASLResponse, got \(final)")
            return (machine, final)
        }
        do throws(SCRAMError) {
            let serverFinal = try server.receiveClientFinal(bytes(clientFinal))
            let action = machine.receive(.authentication(.saslFinal(ByteBuffer(bytes: serverFinal))))
            return (machine, action)
        } catch {
            #expect(error == .invalidProof)
            let refusal = ErrorNoticeFields(severity: "FATAL", sqlState: "28P01",
                                            message: "password authentication failed for user \"proxy\"")
            let action = machine.receive(.errorResponse(refusal))
            return (machine, action)
        }
    }

    @Test func scramWithARealServerExchange() throws {
        let result = try self.scram(clientPassword: "s3cret", serverPassword: "s3cret")
        var machine = result.0
        #expect(result.1 == .none)
        #expect(machine.receive(.authentication(.ok)) == .none)
        self.finishStartup(&machine)
    }

    @Test func scramWithAWrongPasswordFailsWithTheServersSQLSTATE() throws {
        let (_, refused) = try self.scram(clientPassword: "guess", serverPassword: "s3cret")
        guard case .fail(let text) = refused else {
            Issue.record("expected failure, got \(refused)")
            return
        }
        #expect(text.hasPrefix("28P01"))
    }

    @Test func scramServerSignatureIsVerified() throws {
        var machine = BackendStartupStateMachine(user: "proxy", database: "app", password: "s3cret")
        var server = SCRAMServerExchange(credentials: SCRAMServerCredentials(password: "s3cret"))
        guard case .send(.password(var payload)) = machine.receive(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256"]))) else {
            Issue.record("expected SASLInitialResponse")
            return
        }
        let response = try SASLInitialResponse.decode(from: &payload)
        let serverFirst = try server.receiveClientFirst(bytes(try #require(response.data)))
        _ = machine.receive(.authentication(.saslContinue(ByteBuffer(bytes: serverFirst))))
        // An impostor that does not know the keys signs with something else.
        let forged = "v=" + String(repeating: "A", count: 43) + "="
        guard case .fail(let text) = machine.receive(.authentication(.saslFinal(ByteBuffer(bytes: Array(forged.utf8))))) else {
            Issue.record("a forged server signature must fail")
            return
        }
        #expect(text.contains("signature"))
        #expect(machine.receive(.authentication(.ok)) == .none)
    }

    @Test func authenticationOkBeforeTheSCRAMSignatureFails() throws {
        var machine = BackendStartupStateMachine(user: "proxy", database: "app", password: "s3cret")
        var server = SCRAMServerExchange(credentials: SCRAMServerCredentials(password: "s3cret"))
        guard case .send(.password(var payload)) = machine.receive(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256"]))) else {
            Issue.record("expected SASLInitialResponse")
            return
        }
        let response = try SASLInitialResponse.decode(from: &payload)
        let serverFirst = try server.receiveClientFirst(bytes(try #require(response.data)))
        _ = machine.receive(.authentication(.saslContinue(ByteBuffer(bytes: serverFirst))))
        // Skipping SASLFinal would let anyone on the backend's address pose as it.
        guard case .fail = machine.receive(.authentication(.ok)) else {
            Issue.record("AuthenticationOk without a verified server signature must fail")
            return
        }
    }

    @Test func scramNotOffered() {
        var machine = BackendStartupStateMachine(user: "proxy", database: "app", password: "s3cret")
        guard case .fail(let text) = machine.receive(.authentication(.sasl(mechanisms: ["OAUTHBEARER"]))) else {
            Issue.record("expected failure")
            return
        }
        #expect(text.contains("OAUTHBEARER"))
    }

    @Test(arguments: [
        Authentication.cleartextPassword,
        .md5Password(salt: (1, 2, 3, 4)),
        .sasl(mechanisms: ["SCRAM-SHA-256"]),
    ])
    func missingPasswordFailsPointingAtPGPASSFILE(request: Authentication) {
        var machine = BackendStartupStateMachine(user: "proxy", database: "app", password: nil)
        guard case .fail(let text) = machine.receive(.authentication(request)) else {
            Issue.record("expected failure")
            return
        }
        #expect(text.contains("PGPASSFILE"))
        #expect(text.contains("\"proxy\""))
    }

    @Test func errorResponseFailsWithItsSQLSTATE() {
        var machine = BackendStartupStateMachine(user: "proxy", database: "nope", password: nil)
        let error = ErrorNoticeFields(severity: "FATAL", sqlState: "3D000", message: "database \"nope\" does not exist")
        #expect(machine.receive(.errorResponse(error)) == .fail("3D000 database \"nope\" does not exist"))
        // The machine is done.
        #expect(machine.receive(.authentication(.ok)) == .none)
    }

    @Test func errorResponseAfterAuthenticationFails() {
        var machine = BackendStartupStateMachine(user: "proxy", database: "app", password: nil)
        #expect(machine.receive(.authentication(.ok)) == .none)
        let error = ErrorNoticeFields(severity: "FATAL", sqlState: "53300", message: "sorry, too many clients already")
        #expect(machine.receive(.errorResponse(error)) == .fail("53300 sorry, too many clients already"))
    }

    @Test(arguments: [Authentication.gss, .sspi, .kerberosV5, .gssContinue(ByteBuffer())])
    func unsupportedMethodsFail(request: Authentication) {
        var machine = BackendStartupStateMachine(user: "proxy", database: "app", password: "s3cret")
        guard case .fail(let text) = machine.receive(.authentication(request)) else {
            Issue.record("expected failure")
            return
        }
        #expect(text.contains("does not support"))
    }

    @Test func messagesOutOfOrderFail() {
        var early = BackendStartupStateMachine(user: "proxy", database: "app", password: nil)
        guard case .fail = early.receive(.readyForQuery(.idle)) else {
            Issue.record("ReadyForQuery before authentication must fail")
            return
        }
        var stray = BackendStartupStateMachine(user: "proxy", database: "app", password: nil)
        #expect(stray.receive(.authentication(.ok)) == .none)
        guard case .fail = stray.receive(.dataRow(DataRow(columnCount: 0, bytes: ByteBuffer()))) else {
            Issue.record("a DataRow during startup must fail")
            return
        }
    }
}
