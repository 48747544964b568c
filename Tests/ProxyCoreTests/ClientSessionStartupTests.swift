import NIOCore
import PGAuth
import PGWire
import Testing

@testable import ProxyCore

/// Startup packet, TLS negotiation, refusals and the login that follows authentication.
@Suite struct ClientSessionStartupTests {
    let alice = startup([("user", "alice"), ("database", Fixture.database)])

    // MARK: SSLRequest, GSSENCRequest, CancelRequest

    @Test func sslRequestIsAcceptedWhenTLSIsConfigured() {
        var session = ClientSessionStateMachine(tlsAvailable: true)
        #expect(session.startupPacketReceived(.sslRequest, settings: Fixture.trust, databaseName: Fixture.database)
                == .answerSSLRequest(accept: true))
        // Inside TLS the client sends its StartupMessage.
        #expect(session.startupPacketReceived(self.alice, settings: Fixture.trust, databaseName: Fixture.database)
                == .sendAuthentication([.ok], acquireBackend: true))
    }

    @Test func sslRequestIsRefusedWithoutTLSAndTheClientMayContinueInClearText() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        #expect(session.startupPacketReceived(.sslRequest, settings: Fixture.trust, databaseName: Fixture.database)
                == .answerSSLRequest(accept: false))
        #expect(session.startupPacketReceived(self.alice, settings: Fixture.trust, databaseName: Fixture.database)
                == .sendAuthentication([.ok], acquireBackend: true))
    }

    @Test(arguments: [true, false])
    func aSecondSSLRequestIsAProtocolViolation(tlsAvailable: Bool) {
        var session = ClientSessionStateMachine(tlsAvailable: tlsAvailable)
        #expect(session.startupPacketReceived(.sslRequest, settings: Fixture.trust, databaseName: Fixture.database)
                == .answerSSLRequest(accept: tlsAvailable))
        let close = session.startupPacketReceived(.sslRequest, settings: Fixture.trust, databaseName: Fixture.database).closeClient
        #expect(close?.error?.sqlState == "08P01")
        #expect(close?.error?.severity == "FATAL")
        #expect(close?.backend == ClientSessionStateMachine.BackendDisposition.none)
    }

    @Test func gssEncryptionIsRefusedAndTLSMayBeRequestedAfterwards() {
        var session = ClientSessionStateMachine(tlsAvailable: true)
        #expect(session.startupPacketReceived(.gssEncRequest, settings: Fixture.trust, databaseName: Fixture.database)
                == .refuseGSSEncryption)
        #expect(session.startupPacketReceived(.sslRequest, settings: Fixture.trust, databaseName: Fixture.database)
                == .answerSSLRequest(accept: true))
        #expect(session.startupPacketReceived(self.alice, settings: Fixture.trust, databaseName: Fixture.database)
                == .sendAuthentication([.ok], acquireBackend: true))
    }

    @Test func cancelRequestIsForwardedAndEndsTheConnection() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        let key = BackendKey(processID: 4242, secretKey: -17)
        #expect(session.startupPacketReceived(.cancel(key), settings: Fixture.trust, databaseName: Fixture.database)
                == .forwardCancel(key))
        #expect(session.clientClosed() == .none)
    }

    // MARK: refused startups

    @Test(arguments: [
        [("database", Fixture.database)],
        [("user", ""), ("database", Fixture.database)],
    ])
    func startupWithoutUserIsRefused(parameters: [(String, String)]) {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        let close = session.startupPacketReceived(startup(parameters), settings: Fixture.trust, databaseName: Fixture.database).closeClient
        #expect(close?.error?.sqlState == "28000")
        #expect(close?.error?.severity == "FATAL")
        #expect(close?.backend == ClientSessionStateMachine.BackendDisposition.none)
    }

    @Test func wrongDatabaseIsRefusedNamingTheServedDatabase() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        let action = session.startupPacketReceived(startup([("user", "alice"), ("database", "other")]),
                                                   settings: Fixture.trust, databaseName: Fixture.database)
        let error = action.closeClient?.error
        #expect(error?.sqlState == "3D000")
        #expect(error?.severity == "FATAL")
        #expect(error?.message == "database \"other\" does not exist")
        #expect(error?[.hint]?.contains("\"app\"") == true)
    }

    @Test func databaseDefaultsToTheUserName() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        let action = session.startupPacketReceived(startup([("user", "bob")]), settings: Fixture.trust, databaseName: Fixture.database)
        #expect(action.closeClient?.error?.sqlState == "3D000")
        #expect(action.closeClient?.error?.message == "database \"bob\" does not exist")

        var named = ClientSessionStateMachine(tlsAvailable: false)
        #expect(named.startupPacketReceived(startup([("user", "app")]), settings: Fixture.trust, databaseName: Fixture.database)
                == .sendAuthentication([.ok], acquireBackend: true))
    }

    @Test(arguments: ["true", "database", "on", "1"])
    func replicationConnectionsAreRefused(value: String) {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        let action = session.startupPacketReceived(
            startup([("user", "alice"), ("database", Fixture.database), ("replication", value)]),
            settings: Fixture.trust, databaseName: Fixture.database)
        #expect(action.closeClient?.error?.sqlState == "0A000")
        #expect(action.closeClient?.error?.severity == "FATAL")
    }

    @Test(arguments: ["false", "off"])
    func replicationOffIsAnOrdinaryConnection(value: String) {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        let action = session.startupPacketReceived(
            startup([("user", "alice"), ("database", Fixture.database), ("replication", value)]),
            settings: Fixture.trust, databaseName: Fixture.database)
        #expect(action == .sendAuthentication([.ok], acquireBackend: true))
        #expect(session.parameters.values["replication"] == nil)
    }

    @Test func messagesBeforeStartupAreAProtocolViolation() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        let close = session.clientFrameReceived(Frames.query("SELECT 1")).closeClient
        #expect(close?.error?.sqlState == "08P01")
    }

    @Test func aSecondStartupPacketIsAProtocolViolation() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        let md5 = ClientAuthSettings(method: .md5(passwords: ["alice": "pw"]))
        #expect(session.startupPacketReceived(self.alice, settings: md5, databaseName: Fixture.database).authentication != nil)
        let close = session.startupPacketReceived(self.alice, settings: md5, databaseName: Fixture.database).closeClient
        #expect(close?.error?.sqlState == "08P01")
    }

    // MARK: trust login

    @Test func trustLoginWithoutParameterSyncFinishesWhenTheBackendIsAttached() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        #expect(session.startupPacketReceived(self.alice, settings: Fixture.trust, databaseName: Fixture.database)
                == .sendAuthentication([.ok], acquireBackend: true))
        #expect(session.user == "alice")
        #expect(!session.hasBackend)
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults) == .finishLogin)
        // finishLogin releases the backend: the session is idle without one.
        #expect(!session.hasBackend)
        #expect(!session.isSwallowingBackendOutput)
        // From now on queries are the session engine's.
        #expect(session.isReady)
    }

    @Test func trustLoginSynchronizesStartupParametersBeforeFinishing() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        let packet = startup([("user", "alice"), ("database", Fixture.database), ("application_name", "psql"),
                              ("client_encoding", "UTF8")])
        #expect(session.startupPacketReceived(packet, settings: Fixture.trust, databaseName: Fixture.database)
                == .sendAuthentication([.ok], acquireBackend: true))
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults)
                == .startBackend(sync: "SELECT pg_catalog.set_config('application_name', 'psql', false)", frames: []))
        #expect(session.hasBackend)
        // The SET's output is the proxy's, not the client's.
        #expect(session.isSwallowingBackendOutput)
        session.backendParameterStatus(name: "application_name", value: "psql")
        #expect(session.backendReadyForQuery(.idle) == .finishLogin)
        #expect(!session.isSwallowingBackendOutput)
        #expect(!session.hasBackend)
    }

    @Test func errorDuringTheLoginSyncClosesTheClientWithAFatalError() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        let packet = startup([("user", "alice"), ("database", Fixture.database), ("TimeZone", "Mars/Olympus")])
        _ = session.startupPacketReceived(packet, settings: Fixture.trust, databaseName: Fixture.database)
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults)
                == .startBackend(sync: "SELECT pg_catalog.set_config('TimeZone', 'Mars/Olympus', false)", frames: []))
        let backendError = ProxyErrors.error("22023", "invalid value for parameter \"TimeZone\": \"Mars/Olympus\"")
        session.internalStatementFailed(backendError)
        let close = session.backendReadyForQuery(.idle).closeClient
        #expect(close?.error?.severity == "FATAL")
        #expect(close?.error?[.severity] == "FATAL")
        #expect(close?.error?.sqlState == "22023")
        #expect(close?.error?.message == backendError.message)
        // The backend answered ReadyForQuery idle: it is clean and goes back to the pool.
        #expect(close?.backend == .release)
    }

    @Test func terminateDuringLoginCancelsTheLeaseOrClosesTheBusyBackend() {
        var acquiring = ClientSessionStateMachine(tlsAvailable: false)
        _ = acquiring.startupPacketReceived(self.alice, settings: Fixture.trust, databaseName: Fixture.database)
        #expect(acquiring.clientFrameReceived(Frames.terminate) == .closeClient(nil, backend: .cancelLease))

        var syncing = ClientSessionStateMachine(tlsAvailable: false)
        _ = syncing.startupPacketReceived(startup([("user", "alice"), ("database", Fixture.database), ("application_name", "x")]),
                                          settings: Fixture.trust, databaseName: Fixture.database)
        _ = syncing.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults)
        #expect(syncing.clientFrameReceived(Frames.terminate) == .closeClient(nil, backend: .close))
    }

    @Test func queryBeforeLoginFinishedIsAProtocolViolation() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        _ = session.startupPacketReceived(self.alice, settings: Fixture.trust, databaseName: Fixture.database)
        let close = session.clientFrameReceived(Frames.query("SELECT 1")).closeClient
        #expect(close?.error?.sqlState == "08P01")
        #expect(close?.backend == .cancelLease)
    }

    @Test func backendUnavailableDuringLoginIsFatal() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        _ = session.startupPacketReceived(self.alice, settings: Fixture.trust, databaseName: Fixture.database)
        let close = session.backendUnavailable(ProxyErrors.poolTimeout("db1:5432", waitedMs: 5000)).closeClient
        #expect(close?.error?.sqlState == "53300")
        #expect(close?.error?.severity == "FATAL")
        #expect(close?.error?[.severity] == "FATAL")
        #expect(close?.backend == ClientSessionStateMachine.BackendDisposition.none)
        // A lease that completes afterwards goes straight back.
        #expect(session.backendAttached(current: [:], defaults: [:]) == .releaseBackend)
    }

    @Test func backendLostDuringLoginSyncIsFatal() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        _ = session.startupPacketReceived(startup([("user", "alice"), ("database", Fixture.database), ("application_name", "x")]),
                                          settings: Fixture.trust, databaseName: Fixture.database)
        _ = session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults)
        let close = session.backendLost(server: "db1:5432", reason: "connection reset").closeClient
        #expect(close?.error?.sqlState == "08006")
        #expect(close?.error?.severity == "FATAL")
        #expect(close?.backend == .close)
    }

    @Test func shutdownDuringLoginClosesWith57P01() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        _ = session.startupPacketReceived(self.alice, settings: Fixture.trust, databaseName: Fixture.database)
        #expect(session.shutdown() == .closeClient(ProxyErrors.shuttingDown, backend: .cancelLease))
    }

    @Test func clientLeavingWhileTheLoginLeaseIsInFlight() {
        var session = ClientSessionStateMachine(tlsAvailable: false)
        _ = session.startupPacketReceived(self.alice, settings: Fixture.trust, databaseName: Fixture.database)
        #expect(session.clientClosed() == .cancelLease)
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults) == .releaseBackend)
    }

    // MARK: password logins end to end

    @Test func scramLoginEndToEnd() throws {
        let settings = ClientAuthSettings(method: .scram(credentials: ["alice": SCRAMServerCredentials(password: "s3cret")]))
        var session = ClientSessionStateMachine(tlsAvailable: false)
        #expect(session.startupPacketReceived(self.alice, settings: settings, databaseName: Fixture.database)
                == .sendAuthentication([.sasl(mechanisms: ["SCRAM-SHA-256"])], acquireBackend: false))

        var client = SCRAMClientExchange(password: "s3cret")
        let continueAction = session.clientFrameReceived(Frames.saslInitial(mechanism: "SCRAM-SHA-256", data: client.clientFirstMessage()))
        guard case .sendAuthentication(let requests, acquireBackend: false) = continueAction,
              requests.count == 1, case .saslContinue(let serverFirst) = requests[0]
        else {
            Issue.record("expected AuthenticationSASLContinue, got \(continueAction)")
            return
        }
        let clientFinal = try client.receiveServerFirst(bytes(serverFirst))
        let finalAction = session.clientFrameReceived(Frames.saslResponse(clientFinal))
        guard case .sendAuthentication(let finals, acquireBackend: true) = finalAction,
              finals.count == 2, case .saslFinal(let serverFinal) = finals[0], finals[1] == .ok
        else {
            Issue.record("expected AuthenticationSASLFinal + AuthenticationOk, got \(finalAction)")
            return
        }
        // The client checks that the proxy knows the password's keys.
        try client.verifyServerFinal(bytes(serverFinal))
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults) == .finishLogin)
    }

    @Test func scramLoginWithAWrongPasswordFailsWith28P01() throws {
        let settings = ClientAuthSettings(method: .scram(credentials: ["alice": SCRAMServerCredentials(password: "s3cret")]))
        var session = ClientSessionStateMachine(tlsAvailable: false)
        _ = session.startupPacketReceived(self.alice, settings: settings, databaseName: Fixture.database)
        var client = SCRAMClientExchange(password: "guess")
        let continueAction = session.clientFrameReceived(Frames.saslInitial(mechanism: "SCRAM-SHA-256", data: client.clientFirstMessage()))
        guard case .sendAuthentication(let requests, _) = continueAction, case .saslContinue(let serverFirst)? = requests.first else {
            Issue.record("expected AuthenticationSASLContinue, got \(continueAction)")
            return
        }
        let close = session.clientFrameReceived(Frames.saslResponse(try client.receiveServerFirst(bytes(serverFirst))))
        #expect(close == .closeClient(ProxyErrors.passwordFailed(user: "alice"), backend: .none))
    }

    @Test func md5LoginEndToEnd() {
        let settings = ClientAuthSettings(method: .md5(passwords: ["alice": "s3cret"]))
        var session = ClientSessionStateMachine(tlsAvailable: false)
        let challenge = session.startupPacketReceived(self.alice, settings: settings, databaseName: Fixture.database)
        guard case .sendAuthentication(let requests, acquireBackend: false) = challenge, case .md5Password(let salt)? = requests.first else {
            Issue.record("expected AuthenticationMD5Password, got \(challenge)")
            return
        }
        let response = MD5Password.response(user: "alice", password: "s3cret", salt: salt)
        #expect(session.clientFrameReceived(Frames.password(response)) == .sendAuthentication([.ok], acquireBackend: true))
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults) == .finishLogin)
    }

    @Test func md5LoginWithAWrongPasswordFailsWith28P01() {
        let settings = ClientAuthSettings(method: .md5(passwords: ["alice": "s3cret"]))
        var session = ClientSessionStateMachine(tlsAvailable: false)
        let challenge = session.startupPacketReceived(self.alice, settings: settings, databaseName: Fixture.database)
        guard case .sendAuthentication(let requests, _) = challenge, case .md5Password(let salt)? = requests.first else {
            Issue.record("expected AuthenticationMD5Password, got \(challenge)")
            return
        }
        let response = MD5Password.response(user: "alice", password: "wrong", salt: salt)
        #expect(session.clientFrameReceived(Frames.password(response))
                == .closeClient(ProxyErrors.passwordFailed(user: "alice"), backend: .none))
    }

    @Test func terminateOrAnotherMessageWhileAuthenticating() {
        let settings = ClientAuthSettings(method: .md5(passwords: ["alice": "s3cret"]))
        var leaving = ClientSessionStateMachine(tlsAvailable: false)
        _ = leaving.startupPacketReceived(self.alice, settings: settings, databaseName: Fixture.database)
        #expect(leaving.clientFrameReceived(Frames.terminate) == .closeClient(nil, backend: .none))

        var confused = ClientSessionStateMachine(tlsAvailable: false)
        _ = confused.startupPacketReceived(self.alice, settings: settings, databaseName: Fixture.database)
        let close = confused.clientFrameReceived(Frames.query("SELECT 1")).closeClient
        #expect(close?.error?.sqlState == "08P01")
        #expect(close?.backend == ClientSessionStateMachine.BackendDisposition.none)

        var gone = ClientSessionStateMachine(tlsAvailable: false)
        _ = gone.startupPacketReceived(self.alice, settings: settings, databaseName: Fixture.database)
        #expect(gone.clientClosed() == .none)
    }
}
