import NIOCore
import PGWire
import ShardMap
import Testing

@testable import ProxyCore

/// Simple-protocol routing: which backend each statement leases, when it goes back, what the client sees.
@Suite struct SessionEngineRoutingTests {
    typealias H = EngineHarness

    @Test func aKeyedReadRunsOnTheOwnersReplicaAndTheLeaseEndsAtReadyForQuery() {
        var h = H()
        let select = Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)")
        let actions = h.client(select)
        #expect(actions.acquired == [BackendTarget(shard: 1, replica: 0)])
        let id = actions.acquiredIDs[0]
        let granted = h.grant(id)
        #expect(granted.written(to: id).map(\.queryText) == [select.sql])
        let reply = h.reply(id, answer(["a"]))
        #expect(reply.relayed == answer(["a"]))
        #expect(reply.actions.released == [id])
        #expect(h.engine.isIdle)
    }

    @Test func aLeaseGrantedWhileItsFrameIsHandledForwardsTheFrameInsteadOfCopyingIt() {
        var h = H()
        let select = Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)")
        let actions = h.clientGrantingAtOnce(select)
        let id = actions.acquiredIDs[0]
        #expect(actions.forwarded == [id])
        #expect(actions.written(to: id, current: select).map(\.queryText) == [select.sql])
        #expect(!actions.contains { if case .write = $0 { return true } else { return false } })
        #expect(h.reply(id, answer(["a"])).relayed == answer(["a"]))
        // The next statement reuses the released lease's storage and is forwarded the same way.
        let next = Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS0)")
        let again = h.clientGrantingAtOnce(next)
        #expect(again.forwarded == again.acquiredIDs)
        #expect(h.reply(again.acquiredIDs[0], answer(["b"])).relayed == answer(["b"]))
        #expect(h.engine.isIdle)
    }

    @Test func aTransactionsFirstStatementGrantedAtOnceFollowsItsBegin() {
        var h = H()
        h.client(Frames.query("BEGIN"))
        let select = Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)")
        let actions = h.clientGrantingAtOnce(select)
        let id = actions.acquiredIDs[0]
        // The injected BEGIN is written first, then the client's frame is forwarded from its read.
        #expect(actions.written(to: id, current: select).compactMap(\.queryText) == ["BEGIN", select.sql])
        let order = actions.compactMap { action -> String? in
            switch action {
            case .write(let lease, _) where lease == id: return "write"
            case .forward(let lease) where lease == id: return "forward"
            default: return nil
            }
        }
        #expect(order == ["write", "forward"])
    }

    @Test func aKeyedWriteRunsOnTheOwnersPrimary() {
        var h = H()
        let actions = h.client(Frames.query("INSERT INTO users (id, name) VALUES (\(H.keyOnS0), 'x')"))
        #expect(actions.acquired == [.primary(0)])
    }

    @Test func readsWithoutATableRunOnShardZerosReplica() {
        var h = H()
        #expect(h.client(Frames.query("SELECT 1")).acquired == [BackendTarget(shard: 0, replica: 0)])
    }

    @Test func unlistedTablesGoToTheShardTheMapNames() {
        var h = H()
        #expect(h.client(Frames.query("UPDATE things SET a = 1")).acquired == [.primary(0)])
    }

    @Test func forUpdateRunsOnThePrimary() {
        var h = H()
        #expect(h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1) FOR UPDATE")).acquired == [.primary(1)])
    }

    @Test func syntaxErrorsAreAnsweredWithoutABackend() {
        var h = H()
        let actions = h.client(Frames.query("SELEC 1"))
        #expect(actions.acquired.isEmpty)
        guard case .errorResponse(let error)? = actions.sentToClient.first else {
            Issue.record("expected an ErrorResponse, got \(actions.sentToClient)")
            return
        }
        #expect(error.sqlState == "42601")
        #expect(error[.position] == "1")
        #expect(actions.sentToClient.last == .readyForQuery(.idle))
    }

    @Test func aTableMissingFromTheMapIsRefusedWhenThereIsNoUnlistedShard() {
        var map = H.map
        map.unlistedTables = nil
        var h = H(context: RoutingContext(map: map))
        let sent = h.client(Frames.query("SELECT * FROM nowhere")).sentToClient
        guard case .errorResponse(let error)? = sent.first else {
            Issue.record("expected an ErrorResponse, got \(sent)")
            return
        }
        #expect(error.sqlState == "42P01")
        #expect(error.message?.contains("\"nowhere\"") == true)
    }

    @Test func theEmptyQueryIsAnsweredLocally() {
        var h = H()
        #expect(h.client(Frames.query("")).sentToClient == [.emptyQueryResponse, .readyForQuery(.idle)])
    }

    @Test func pipelinedStatementsForTheSameBackendAreForwardedAtOnce() {
        var h = H()
        let first = Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)")
        let id = h.client(first).acquiredIDs[0]
        h.grant(id)
        let second = Frames.query("SELECT * FROM users WHERE id = \(H.otherKeyOnS1)")
        #expect(h.client(second).forwarded == [id])
        #expect(h.reply(id, answer(["a"])).actions.released.isEmpty)
        #expect(h.reply(id, answer(["b"])).actions.released == [id])
    }

    @Test func aStatementForAnotherShardWaitsForTheAnswersInFlight() {
        var h = H()
        let id = h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)")).acquiredIDs[0]
        h.grant(id)
        let other = Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS0)")
        #expect(h.client(other).isEmpty)
        let reply = h.reply(id, answer(["a"]))
        // Released, then the waiting statement leases its own backend.
        #expect(reply.actions.released == [id])
        #expect(reply.actions.acquired == [BackendTarget(shard: 0, replica: 0)])
        // The answers arrive in the client's order.
        #expect(reply.relayed == answer(["a"]))
    }

    @Test func aOverrideCommentPicksTheShard() {
        var h = H()
        #expect(h.client(Frames.query("/* shard: s1 */ SELECT 1")).acquired == [BackendTarget(shard: 1, replica: 0)])
        var k = H()
        #expect(k.client(Frames.query("/* shard_key: \(H.keyOnS1) */ UPDATE users SET name = 'a'")).acquired == [.primary(1)])
    }

    // MARK: read your writes

    @Test func afterAWriteTheSessionReadsThatShardFromThePrimaryUntilAReplicaHasReplayedIt() {
        var h = H()
        let write = h.client(Frames.query("INSERT INTO users (id, name) VALUES (\(H.keyOnS1), 'x')")).acquiredIDs[0]
        h.grant(write)
        h.clock.advance()
        h.reply(write, done("INSERT 0 1"))
        // Shard 1: the primary; shard 0 (never written): its replica.
        let read = h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)"))
        #expect(read.acquired == [.primary(1)])
        h.grant(read.acquiredIDs[0])
        h.reply(read.acquiredIDs[0], answer([]))
        let other = h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS0)"))
        #expect(other.acquired == [BackendTarget(shard: 0, replica: 0)])
        h.grant(other.acquiredIDs[0])
        h.reply(other.acquiredIDs[0], answer([]))

        // A primary sample taken after the write resolves the fence; a replica behind it still may not serve.
        let later = h.clock.now + .nanoseconds(1)
        h.context.lag = H.lag(replay: [[0], [499]], samples: [[], [(later, 500)]])
        let behind = h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)"))
        #expect(behind.acquired == [.primary(1)])
        h.grant(behind.acquiredIDs[0])
        h.reply(behind.acquiredIDs[0], answer([]))
        h.context.lag = H.lag(replay: [[0], [500]], samples: [[], [(later, 500)]])
        #expect(h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)")).acquired
                == [BackendTarget(shard: 1, replica: 0)])
    }

    @Test func aPrimarySampleSentBeforeTheWriteCompletedDoesNotResolveTheFence() {
        var h = H()
        let write = h.client(Frames.query("DELETE FROM users WHERE id = \(H.keyOnS0)")).acquiredIDs[0]
        h.grant(write)
        h.context.lag = H.lag(replay: [[100], [0]], samples: [[(h.clock.now, 100)], []])   // sent before completion
        h.clock.advance()
        h.reply(write, done("DELETE 1"))
        #expect(h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS0)")).acquired == [.primary(0)])
    }

    @Test func aShardsReplicaFenceHoldsEverySessionsReadsOnThePrimaryUntilReplayed() {
        var h = H()
        h.context.lag = H.lag(replay: [[700], [400]])
        // A rebalance cutover: rows reached s1's primary up to 500; its replica has replayed 400.
        h.context.addReplicaFences([1: LSN(500)])
        #expect(h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)")).acquired == [.primary(1)])
        #expect(h.context.replicaFences == [1: LSN(500)])
        // Other shards are not held back.
        var other = H(context: h.context)
        #expect(other.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS0)")).acquired
                == [BackendTarget(shard: 0, replica: 0)])
        // Replayed: the fence goes, and the replica serves again.
        h.context.updateLag(H.lag(replay: [[700], [500]]))
        #expect(h.context.replicaFences.isEmpty)
        var later = H(context: h.context)
        #expect(later.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)")).acquired
                == [BackendTarget(shard: 1, replica: 0)])
    }

    @Test func aReplicaOutOfRotationIsNotUsed() {
        var h = H()
        h.context.lag = H.lag(inRotation: [[true], [false]])
        #expect(h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)")).acquired == [.primary(1)])
    }

    // MARK: settings

    @Test func aSettingFollowsTheClientToTheNextBackendAndIsResetForTheNextClient() {
        var h = H()
        let set = h.client(Frames.query("SET search_path = app, public")).acquiredIDs[0]
        h.grant(set)
        h.reply(set, done("SET"))
        #expect(h.engine.settings.settings.map(\.sql) == ["SET search_path = app, public"])
        // The backend that ran it knows it has it.
        let backend = h.backends[set]!
        #expect(backend.parameters.replayed["search_path"] == "SET search_path = app, public")
        // A fresh backend for the next statement gets it first (its answer not shown).
        let next = h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)")).acquiredIDs[0]
        let fresh = h.grant(next)
        #expect(fresh.written(to: next).compactMap(\.queryText).first == "SET search_path = app, public")
        #expect(h.reply(next, done("SET")).relayed.isEmpty)
        #expect(h.reply(next, answer(["x"])).relayed == answer(["x"]))

        // Another client leasing the first backend resets it.
        var other = H(context: h.context)
        let otherID = other.client(Frames.query("SELECT 1")).acquiredIDs[0]
        let reset = other.grant(otherID, backend: backend)
        #expect(reset.written(to: otherID).compactMap(\.queryText).first == "RESET \"search_path\"")
    }

    @Test func aFailedSetChangesNothing() {
        var h = H()
        let id = h.client(Frames.query("SET statement_timeout = 'soon'")).acquiredIDs[0]
        h.grant(id)
        h.reply(id, [serverError("22023", "invalid value"), .readyForQuery(.idle)])
        #expect(h.engine.settings.isEmpty)
    }

    @Test func sessionObjectsPinTheirBackendAndItIsClosedWhenTheClientLeaves() {
        var h = H()
        let id = h.client(Frames.query("CREATE TEMP TABLE scratch (a int)")).acquiredIDs[0]
        h.grant(id)
        #expect(h.reply(id, done("CREATE TABLE")).actions.released.isEmpty)
        // Later statements that any shard may run reuse it.
        #expect(h.client(Frames.query("SELECT * FROM scratch")).forwarded == [id])
        h.reply(id, answer([]))
        h.engine.clientClosed(context: &h.context)
        #expect(h.drain().discarded == [id])
    }

    @Test func aPinnedBackendLostClosesTheSession() {
        var h = H()
        let id = h.client(Frames.query("LISTEN jobs")).acquiredIDs[0]
        h.grant(id)
        h.reply(id, done("LISTEN"))
        let (closed, error) = h.lost(id).closed
        #expect(closed)
        #expect(error?.sqlState == "08006")
        #expect(error?.severity == "FATAL")
    }

    // MARK: failures

    @Test func aBackendLostMidStatementFailsItAndTheSessionGoesOn() {
        var h = H()
        let id = h.client(Frames.query("SELECT pg_sleep(1)")).acquiredIDs[0]
        h.grant(id)
        let sent = h.lost(id).sentToClient
        #expect(sent.count == 2)
        if case .errorResponse(let error)? = sent.first { #expect(error.sqlState == "08006") }
        #expect(sent.last == .readyForQuery(.idle))
        #expect(h.client(Frames.query("SELECT 1")).acquired.count == 1)
    }

    @Test func noBackendToBeHadAnswersEveryStatementThatWaitedForIt() {
        var h = H()
        let id = h.client(Frames.query("SELECT 1")).acquiredIDs[0]
        h.client(Frames.query("SELECT 2"))
        // Both statements waited for the same lease: each gets the error, as if the server had failed it.
        let sent = h.fail(id, ProxyErrors.poolTimeout("s0 replica", waitedMs: 5000)).sentToClient
        #expect(sent.filter { if case .errorResponse = $0 { return true } else { return false } }.count == 2)
        #expect(sent.filter { $0 == .readyForQuery(.idle) }.count == 2)
        #expect(h.log.acquired.count == 1)
        #expect(h.engine.isIdle)
    }

    @Test func shutdownClosesAnIdleSession() {
        var h = H()
        h.engine.shutdown(context: &h.context)
        let (closed, error) = h.drain().closed
        #expect(closed)
        #expect(error?.sqlState == "57P01")
    }
}

extension PGFrame {
    /// The SQL of a Query frame.
    var sql: String { self.payload.getNullTerminatedString(at: self.payload.readerIndex) ?? "" }
}
