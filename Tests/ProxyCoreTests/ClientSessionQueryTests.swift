import NIOCore
import PGWire
import Testing

@testable import ProxyCore

/// Transaction pooling after login: when a backend is leased, how answers are counted, when it goes back.
@Suite struct ClientSessionQueryTests {
    // MARK: leasing and releasing

    @Test func queryWhileIdleLeasesABackendAndReleasesItAtReadyForQueryIdle() {
        var session = idleSession()
        let select = Frames.query("SELECT 1")
        #expect(session.clientFrameReceived(select) == .acquireBackend)
        #expect(!session.hasBackend)
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults)
                == .startBackend(sync: nil, frames: [select]))
        #expect(session.hasBackend)
        #expect(!session.isSwallowingBackendOutput)
        #expect(session.backendReadyForQuery(.idle) == .releaseBackend)
        #expect(!session.hasBackend)
        // The next statement leases again.
        #expect(session.clientFrameReceived(Frames.query("SELECT 2")) == .acquireBackend)
    }

    @Test func framesArrivingWhileAcquiringAreAllSentInStartBackend() {
        var session = idleSession()
        let frames = [Frames.query("SELECT 1")] + Frames.extendedBatch("SELECT $1") + [Frames.query("SELECT 3")]
        #expect(session.clientFrameReceived(frames[0]) == .acquireBackend)
        for frame in frames.dropFirst() {
            #expect(session.clientFrameReceived(frame) == .none)
        }
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults)
                == .startBackend(sync: nil, frames: frames))
        // Three answers are due: Query, Sync, Query.
        #expect(session.backendReadyForQuery(.idle) == .none)
        #expect(session.backendReadyForQuery(.idle) == .none)
        #expect(session.backendReadyForQuery(.idle) == .releaseBackend)
    }

    @Test func pipelinedQueriesReleaseOnlyAfterTheLastReadyForQuery() {
        var session = attachedSession(after: [Frames.query("SELECT 1")])
        #expect(session.clientFrameReceived(Frames.query("SELECT 2")) == .forward(Frames.query("SELECT 2")))
        #expect(session.backendReadyForQuery(.idle) == .none)
        #expect(session.hasBackend)
        #expect(session.backendReadyForQuery(.idle) == .releaseBackend)
        #expect(!session.hasBackend)
    }

    @Test func extendedProtocolBatchIsReleasedByTheOneReadyForQueryAfterSync() {
        var session = idleSession()
        let batch = Frames.extendedBatch("SELECT $1::int")
        #expect(session.clientFrameReceived(batch[0]) == .acquireBackend)
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults)
                == .startBackend(sync: nil, frames: [batch[0]]))
        // Frames arriving after the lease are forwarded one by one.
        for frame in batch.dropFirst() {
            #expect(session.clientFrameReceived(frame) == .forward(frame))
        }
        #expect(session.backendReadyForQuery(.idle) == .releaseBackend)
    }

    @Test func extendedProtocolWithoutSyncKeepsTheBackend() {
        // A driver preparing a statement: Parse, Describe, Flush, and it waits for the answers.
        var session = attachedSession(after: [Frames.parse("SELECT $1")])
        #expect(session.clientFrameReceived(Frames.describe(statement: "")) == .forward(Frames.describe(statement: "")))
        #expect(session.clientFrameReceived(Frames.flush) == .forward(Frames.flush))
        #expect(session.hasBackend)
        #expect(session.clientFrameReceived(Frames.sync) == .forward(Frames.sync))
        #expect(session.backendReadyForQuery(.idle) == .releaseBackend)
    }

    @Test func batchSentBeforeTheLastReadyForQueryKeepsTheBackend() {
        // The driver prepares its next statement (Parse/Describe/Flush) while the previous answer is on its way.
        var session = attachedSession(after: Frames.extendedBatch("SELECT 1"))
        #expect(session.clientFrameReceived(Frames.parse("SELECT $1")) == .forward(Frames.parse("SELECT $1")))
        #expect(session.clientFrameReceived(Frames.describe(statement: "")) == .forward(Frames.describe(statement: "")))
        #expect(session.clientFrameReceived(Frames.flush) == .forward(Frames.flush))
        #expect(session.backendReadyForQuery(.idle) == .none)
        #expect(session.hasBackend)
        #expect(session.clientFrameReceived(Frames.sync) == .forward(Frames.sync))
        #expect(session.backendReadyForQuery(.idle) == .releaseBackend)
    }

    @Test func aNamedPreparedStatementPinsTheBackendToItsClient() {
        // Until statements are multiplexed (issue 4), a statement name must keep meaning this client's statement.
        var session = attachedSession(after: [Frames.parse("SELECT $1", name: "_pg3_0"), Frames.sync])
        #expect(session.backendReadyForQuery(.idle) == .none)
        #expect(session.hasBackend)
        let batch = [Frames.bind(statement: "_pg3_0"), Frames.execute(), Frames.sync]
        for frame in batch {
            #expect(session.clientFrameReceived(frame) == .forward(frame))
        }
        #expect(session.backendReadyForQuery(.idle) == .none)
        #expect(session.hasBackend)
        // When the client leaves, its statements must not reach another client: the backend is closed.
        #expect(session.clientClosed() == .close)
    }

    @Test func aNamedStatementParsedBeforeTheLeasePinsToo() {
        var session = idleSession()
        let parse = Frames.parse("SELECT 1", name: "stmt")
        #expect(session.clientFrameReceived(parse) == .acquireBackend)
        #expect(session.clientFrameReceived(Frames.sync) == .none)
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults)
                == .startBackend(sync: nil, frames: [parse, Frames.sync]))
        #expect(session.backendReadyForQuery(.idle) == .none)
        #expect(session.clientFrameReceived(Frames.terminate) == .closeClient(nil, backend: .close))
    }

    @Test func transactionKeepsTheBackendUntilCommit() {
        var session = attachedSession(after: [Frames.query("BEGIN")])
        #expect(session.backendReadyForQuery(.inTransaction) == .none)
        #expect(session.hasBackend)
        let insert = Frames.query("INSERT INTO t VALUES (1)")
        #expect(session.clientFrameReceived(insert) == .forward(insert))
        #expect(session.backendReadyForQuery(.inTransaction) == .none)
        // A failed statement leaves the transaction open (status E) until ROLLBACK.
        #expect(session.clientFrameReceived(Frames.query("SELECT 1/0")) == .forward(Frames.query("SELECT 1/0")))
        #expect(session.backendReadyForQuery(.failedTransaction) == .none)
        #expect(session.hasBackend)
        #expect(session.clientFrameReceived(Frames.query("COMMIT")) == .forward(Frames.query("COMMIT")))
        #expect(session.backendReadyForQuery(.idle) == .releaseBackend)
        #expect(!session.hasBackend)
    }

    @Test func copyMessagesWithoutABackendAreIgnoredAsPostgreSQLDoes() {
        var session = idleSession()
        #expect(session.clientFrameReceived(frame(.copyData(ByteBuffer(bytes: [1, 2, 3])))) == .none)
        #expect(session.clientFrameReceived(Frames.copyDone) == .none)
        #expect(session.clientFrameReceived(frame(.copyFail("oops"))) == .none)
        #expect(!session.hasBackend)
    }

    @Test func copyFromStdinIsForwardedAndCountedOnce() {
        var session = attachedSession(after: [Frames.query("COPY t FROM STDIN")])
        let data = frame(.copyData(ByteBuffer(bytes: Array("1\n".utf8))))
        #expect(session.clientFrameReceived(data) == .forward(data))
        #expect(session.clientFrameReceived(Frames.copyDone) == .forward(Frames.copyDone))
        #expect(session.backendReadyForQuery(.idle) == .releaseBackend)
    }

    // MARK: parameters following the client

    @Test func parameterStatusObservedIsCarriedToTheNextBackend() {
        var session = attachedSession(after: [Frames.query("SET application_name = 'reporting'")])
        session.backendParameterStatus(name: "application_name", value: "reporting")
        // Parameters the client cannot set are not carried.
        session.backendParameterStatus(name: "server_version", value: "17.4")
        #expect(session.backendReadyForQuery(.idle) == .releaseBackend)
        #expect(session.parameters.values == ["application_name": "reporting"])

        // The next lease gets a backend that served someone else and still has the defaults.
        let select = Frames.query("SELECT 1")
        #expect(session.clientFrameReceived(select) == .acquireBackend)
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults)
                == .startBackend(sync: "SELECT pg_catalog.set_config('application_name', 'reporting', false)", frames: [select]))
        #expect(session.isSwallowingBackendOutput)
        #expect(session.backendReadyForQuery(.idle) == .none)  // the SET
        #expect(!session.isSwallowingBackendOutput)
        #expect(session.backendReadyForQuery(.idle) == .releaseBackend)  // the SELECT
    }

    @Test func parametersAPreviousClientChangedAreReset() {
        var session = idleSession()
        var current = Fixture.backendDefaults
        current["DateStyle"] = "German, DMY"
        let select = Frames.query("SELECT now()")
        #expect(session.clientFrameReceived(select) == .acquireBackend)
        #expect(session.backendAttached(current: current, defaults: Fixture.backendDefaults)
                == .startBackend(sync: "RESET \"DateStyle\"", frames: [select]))
    }

    @Test func failedParameterSyncAfterLoginBecomesAWarningAndTheSessionGoesOn() {
        var session = idleSession(parameters: [("TimeZone", "Europe/Paris")])
        var current = Fixture.backendDefaults
        current["TimeZone"] = "UTC"
        let select = Frames.query("SELECT now()")
        #expect(session.clientFrameReceived(select) == .acquireBackend)
        #expect(session.backendAttached(current: current, defaults: Fixture.backendDefaults)
                == .startBackend(sync: "SELECT pg_catalog.set_config('TimeZone', 'Europe/Paris', false)", frames: [select]))
        session.internalStatementFailed(ProxyErrors.error("22023", "invalid value for parameter \"TimeZone\""))
        let warning = session.backendReadyForQuery(.idle)
        guard case .send(let messages) = warning, case .noticeResponse(let notice)? = messages.first, messages.count == 1 else {
            Issue.record("expected one NoticeResponse, got \(warning)")
            return
        }
        #expect(notice.severity == "WARNING")
        #expect(notice.sqlState == "22023")
        #expect(session.backendReadyForQuery(.idle) == .releaseBackend)
    }

    // MARK: no backend to be had

    @Test func backendUnavailableAnswersEveryQueuedQuery() {
        var session = idleSession()
        let frames = [Frames.query("SELECT 1"), Frames.query("INSERT INTO t VALUES (1)")]
        #expect(session.clientFrameReceived(frames[0]) == .acquireBackend)
        #expect(session.clientFrameReceived(frames[1]) == .none)
        let error = ProxyErrors.poolTimeout("db1:5432", waitedMs: 5000)
        // Each statement fails on its own, as PostgreSQL would answer it: none looks executed.
        #expect(session.backendUnavailable(error)
                == .send([.errorResponse(error), .readyForQuery(.idle), .errorResponse(error), .readyForQuery(.idle)]))
        #expect(!session.hasBackend)
        // The session is usable again.
        #expect(session.clientFrameReceived(Frames.query("SELECT 1")) == .acquireBackend)
    }

    @Test func backendUnavailableAnswersASyncedExtendedBatch() {
        var session = idleSession()
        let batch = Frames.extendedBatch("SELECT 1")
        #expect(session.clientFrameReceived(batch[0]) == .acquireBackend)
        for frame in batch.dropFirst() { _ = session.clientFrameReceived(frame) }
        let error = ProxyErrors.backendUnavailable("db1:5432", reason: "connection refused")
        #expect(session.backendUnavailable(error) == .send([.errorResponse(error), .readyForQuery(.idle)]))
        #expect(session.clientFrameReceived(Frames.query("SELECT 1")) == .acquireBackend)
    }

    @Test func backendUnavailableForAnUnsyncedBatchSkipsUntilSync() {
        var session = idleSession()
        #expect(session.clientFrameReceived(Frames.parse("SELECT 1")) == .acquireBackend)
        #expect(session.clientFrameReceived(Frames.bind()) == .none)
        #expect(session.clientFrameReceived(Frames.execute()) == .none)
        let error = ProxyErrors.backendUnavailable("db1:5432", reason: "connection refused")
        #expect(session.backendUnavailable(error) == .send([.errorResponse(error)]))
        // As PostgreSQL after an error: the rest of the batch is discarded up to Sync, which gets ReadyForQuery.
        #expect(session.clientFrameReceived(Frames.describe()) == .none)
        #expect(session.clientFrameReceived(Frames.execute()) == .none)
        #expect(session.clientFrameReceived(Frames.sync) == .send([.readyForQuery(.idle)]))
        #expect(session.clientFrameReceived(Frames.parse("SELECT 2")) == .acquireBackend)
    }

    @Test func backendUnavailableAfterAQueryAndAnUnsyncedBatch() {
        var session = idleSession()
        #expect(session.clientFrameReceived(Frames.query("SELECT 1")) == .acquireBackend)
        #expect(session.clientFrameReceived(Frames.parse("SELECT 2")) == .none)
        #expect(session.clientFrameReceived(Frames.bind()) == .none)
        let error = ProxyErrors.backendUnavailable("db1:5432", reason: "connection refused")
        #expect(session.backendUnavailable(error)
                == .send([.errorResponse(error), .readyForQuery(.idle), .errorResponse(error)]))
        #expect(session.clientFrameReceived(Frames.sync) == .send([.readyForQuery(.idle)]))
    }

    // MARK: backend lost

    @Test func backendLostOutsideATransactionFailsTheStatement() {
        var session = attachedSession(after: [Frames.query("SELECT pg_sleep(10)")])
        let action = session.backendLost(server: "db1:5432", reason: "connection reset by peer")
        guard case .sendAndCloseBackend(let messages) = action, messages.count == 2,
              case .errorResponse(let error) = messages[0], messages[1] == .readyForQuery(.idle)
        else {
            Issue.record("expected ErrorResponse + ReadyForQuery, got \(action)")
            return
        }
        #expect(error.sqlState == "08006")
        #expect(error.severity == "ERROR")
        #expect(error.message?.contains("db1:5432") == true)
        #expect(!session.hasBackend)
        #expect(session.clientFrameReceived(Frames.query("SELECT 1")) == .acquireBackend)
    }

    @Test func backendLostWithPipelinedQueriesFailsEachOfThem() {
        var session = attachedSession(after: [Frames.query("SELECT 1"), Frames.query("SELECT 2")])
        let action = session.backendLost(server: "db1:5432", reason: "EOF")
        let error = ProxyErrors.backendUnavailable("db1:5432", reason: "EOF")
        #expect(action == .sendAndCloseBackend([.errorResponse(error), .readyForQuery(.idle),
                                                .errorResponse(error), .readyForQuery(.idle)]))
    }

    @Test func backendLostWithNothingOwedSendsNothing() {
        // A lone Flush leased a backend; no answer is due and no batch is open.
        var session = attachedSession(after: [Frames.flush])
        #expect(session.backendLost(server: "db1:5432", reason: "EOF") == .sendAndCloseBackend([]))
        #expect(!session.hasBackend)
        #expect(session.clientFrameReceived(Frames.query("SELECT 1")) == .acquireBackend)
    }

    @Test func backendLostAfterItWasReleasedIsNotTheSessionsConcern() {
        var session = attachedSession(after: [Frames.query("SELECT 1")])
        #expect(session.backendReadyForQuery(.idle) == .releaseBackend)
        #expect(session.backendLost(server: "db1:5432", reason: "EOF") == .none)
    }

    @Test func backendLostDuringAnUnsyncedBatchFailsItAndSkipsToSync() {
        // asyncpg prepares with Parse/Describe/Flush and waits: it must get an answer, not silence.
        // (Unnamed statement: a named one pins the backend, and losing it closes the client.)
        var session = attachedSession(after: [Frames.parse("SELECT $1")])
        _ = session.clientFrameReceived(Frames.describe(statement: ""))
        _ = session.clientFrameReceived(Frames.flush)
        let error = ProxyErrors.backendUnavailable("db1:5432", reason: "EOF")
        #expect(session.backendLost(server: "db1:5432", reason: "EOF") == .sendAndCloseBackend([.errorResponse(error)]))
        #expect(session.clientFrameReceived(Frames.sync) == .send([.readyForQuery(.idle)]))
        #expect(session.clientFrameReceived(Frames.query("SELECT 1")) == .acquireBackend)
    }

    @Test func backendLostInsideATransactionClosesTheClient() {
        var session = attachedSession(after: [Frames.query("BEGIN")])
        #expect(session.backendReadyForQuery(.inTransaction) == .none)
        _ = session.clientFrameReceived(Frames.query("UPDATE t SET x = 1"))
        let close = session.backendLost(server: "db1:5432", reason: "EOF").closeClient
        #expect(close?.error?.sqlState == "08006")
        #expect(close?.error?.severity == "FATAL")
        #expect(close?.backend == .close)
        #expect(session.clientClosed() == .none)
    }

    // MARK: the client leaves

    @Test func clientClosedReleasesACleanBackend() {
        // A lone Flush leased it: nothing in flight, no batch open, no transaction.
        var session = attachedSession(after: [Frames.flush])
        #expect(session.clientClosed() == .release)
    }

    @Test func clientClosedInsideAnUnsyncedBatchClosesTheBackend() {
        // Without its Sync the batch's implicit transaction is still open on the backend (and after an error
        // the backend would ignore the next client's messages until a Sync).
        var session = attachedSession(after: [Frames.parse("INSERT INTO t VALUES (1)"), Frames.bind(), Frames.execute()])
        #expect(session.clientClosed() == .close)
    }

    @Test func clientClosedMidStatementClosesTheBackend() {
        var session = attachedSession(after: [Frames.query("SELECT pg_sleep(10)")])
        #expect(session.clientClosed() == .close)
    }

    @Test func clientClosedInsideATransactionClosesTheBackend() {
        var session = attachedSession(after: [Frames.query("BEGIN")])
        #expect(session.backendReadyForQuery(.inTransaction) == .none)
        #expect(session.clientClosed() == .close)
    }

    @Test func clientClosedWhileAcquiringCancelsTheLease() {
        var session = idleSession()
        #expect(session.clientFrameReceived(Frames.query("SELECT 1")) == .acquireBackend)
        #expect(session.clientClosed() == .cancelLease)
        // If the pool hands a connection over anyway, it goes back.
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults) == .releaseBackend)
        #expect(session.backendUnavailable(ProxyErrors.poolTimeout("db1", waitedMs: 1)) == .none)
    }

    @Test func clientClosedWhileIdle() {
        var session = idleSession()
        #expect(session.clientClosed() == .none)
        // Late events for a closed session are ignored.
        #expect(session.backendReadyForQuery(.idle) == .none)
        #expect(session.backendLost(server: "db1", reason: "EOF") == .none)
    }

    @Test func terminateWhileIdleOrWithABackend() {
        var idle = idleSession()
        #expect(idle.clientFrameReceived(Frames.terminate) == .closeClient(nil, backend: .none))

        var clean = attachedSession(after: [Frames.query("SELECT 1")])
        #expect(clean.backendReadyForQuery(.idle) == .releaseBackend)
        #expect(clean.clientFrameReceived(Frames.terminate) == .closeClient(nil, backend: .none))

        var inTransaction = attachedSession(after: [Frames.query("BEGIN")])
        #expect(inTransaction.backendReadyForQuery(.inTransaction) == .none)
        #expect(inTransaction.clientFrameReceived(Frames.terminate) == .closeClient(nil, backend: .close))

        var acquiring = idleSession()
        _ = acquiring.clientFrameReceived(Frames.query("SELECT 1"))
        #expect(acquiring.clientFrameReceived(Frames.terminate) == .closeClient(nil, backend: .cancelLease))
    }

    // MARK: protocol violations

    @Test(arguments: [UInt8(ascii: "?"), 0x00, UInt8(ascii: "Z")])
    func unknownMessageTypeIsAFatalProtocolViolation(id: UInt8) {
        var session = idleSession()
        let close = session.clientFrameReceived(PGFrame(id: id, payload: ByteBuffer())).closeClient
        #expect(close?.error?.sqlState == "08P01")
        #expect(close?.error?.severity == "FATAL")
        #expect(close?.backend == ClientSessionStateMachine.BackendDisposition.none)
    }

    @Test func protocolViolationWithABackendNeverReturnsItToThePool() {
        var session = attachedSession(after: [Frames.query("SELECT 1")])
        #expect(session.backendReadyForQuery(.inTransaction) == .none)
        let close = session.clientFrameReceived(PGFrame(id: UInt8(ascii: "?"), payload: ByteBuffer())).closeClient
        #expect(close?.error?.sqlState == "08P01")
        #expect(close?.backend == .close)
    }

    @Test func passwordMessageAfterLoginIsAProtocolViolation() {
        var session = idleSession()
        let close = session.clientFrameReceived(Frames.password("late")).closeClient
        #expect(close?.error?.sqlState == "08P01")
    }

    // MARK: shutdown

    @Test func shutdownWhileIdleClosesAtOnce() {
        var session = idleSession()
        let close = session.shutdown().closeClient
        #expect(close?.error?.sqlState == "57P01")
        #expect(close?.error?.severity == "FATAL")
        #expect(close?.backend == ClientSessionStateMachine.BackendDisposition.none)
    }

    @Test func shutdownInsideATransactionWaitsForItsEnd() {
        var session = attachedSession(after: [Frames.query("BEGIN")])
        #expect(session.backendReadyForQuery(.inTransaction) == .none)
        #expect(session.shutdown() == .none)
        // The transaction goes on.
        #expect(session.clientFrameReceived(Frames.query("UPDATE t SET x = 1")) == .forward(Frames.query("UPDATE t SET x = 1")))
        #expect(session.backendReadyForQuery(.inTransaction) == .none)
        #expect(session.clientFrameReceived(Frames.query("COMMIT")) == .forward(Frames.query("COMMIT")))
        #expect(session.backendReadyForQuery(.idle) == .closeClient(ProxyErrors.shuttingDown, backend: .release))
    }

    @Test func shutdownWhileAcquiringClosesAfterTheStatement() {
        var session = idleSession()
        #expect(session.clientFrameReceived(Frames.query("SELECT 1")) == .acquireBackend)
        #expect(session.shutdown() == .none)
        #expect(session.backendAttached(current: Fixture.backendDefaults, defaults: Fixture.backendDefaults)
                == .startBackend(sync: nil, frames: [Frames.query("SELECT 1")]))
        #expect(session.backendReadyForQuery(.idle) == .closeClient(ProxyErrors.shuttingDown, backend: .release))
    }

    @Test func shutdownThenBackendUnavailableAnswersAndTheNextMessageCloses() {
        var session = idleSession()
        #expect(session.clientFrameReceived(Frames.query("SELECT 1")) == .acquireBackend)
        #expect(session.shutdown() == .none)
        let error = ProxyErrors.poolTimeout("db1", waitedMs: 10)
        #expect(session.backendUnavailable(error) == .send([.errorResponse(error), .readyForQuery(.idle)]))
        // No new statement starts while the proxy drains.
        #expect(session.clientFrameReceived(Frames.query("SELECT 2")) == .closeClient(ProxyErrors.shuttingDown, backend: .none))
    }

    @Test func forceCloseDuringAStatementClosesTheBackend() {
        var session = attachedSession(after: [Frames.query("SELECT pg_sleep(60)")])
        #expect(session.shutdown() == .none)
        #expect(session.forceClose() == .closeClient(ProxyErrors.shuttingDown, backend: .close))
    }
}
