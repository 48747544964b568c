import NIOCore
import PGWire
import ShardMap
import Testing

@testable import ProxyCore

/// Explicit transactions: BEGIN answered by ShardGate, participants per shard, COMMIT over them.
@Suite struct SessionEngineTransactionTests {
    typealias H = EngineHarness

    @Test func beginIsAnsweredWithoutABackendAndReplayedOnTheFirstShardUsed() {
        var h = H()
        let begin = h.client(Frames.query("BEGIN ISOLATION LEVEL REPEATABLE READ"))
        #expect(begin.acquired.isEmpty)
        #expect(begin.sentToClient == [.commandComplete("BEGIN"), .readyForQuery(.inTransaction)])
        // A read in a transaction runs on the primary, after the BEGIN (whose answer is not shown).
        let select = Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)")
        let id = h.client(select).acquiredIDs[0]
        #expect(h.targets[id] == .primary(1))
        let written = h.grant(id).written(to: id).compactMap(\.queryText)
        #expect(written == ["BEGIN ISOLATION LEVEL REPEATABLE READ", select.sql])
        #expect(h.reply(id, done("BEGIN", status: .inTransaction)).relayed.isEmpty)
        #expect(h.reply(id, answer(["a"], status: .inTransaction)).relayed == answer(["a"], status: .inTransaction))
        // The participant stays until COMMIT, which it answers itself.
        #expect(h.log.released.isEmpty)
        let commit = Frames.query("COMMIT")
        #expect(h.client(commit).forwarded == [id])
        let reply = h.reply(id, done("COMMIT"))
        #expect(reply.relayed == done("COMMIT"))
        #expect(reply.actions.released == [id])
        #expect(h.engine.transaction == nil)
    }

    @Test func beginReadOnlyMayUseReplicas() {
        var h = H()
        h.client(Frames.query("BEGIN READ ONLY"))
        #expect(h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS0)")).acquired == [BackendTarget(shard: 0, replica: 0)])
    }

    @Test func aTransactionMayReadOnSeveralShardsAndCommitsOnEach() {
        var h = H()
        h.client(Frames.query("BEGIN"))
        let a = h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS0)")).acquiredIDs[0]
        h.grant(a)
        h.reply(a, done("BEGIN", status: .inTransaction))
        h.reply(a, answer(["a"], status: .inTransaction))
        let b = h.client(Frames.query("INSERT INTO users (id, name) VALUES (\(H.keyOnS1), 'b')")).acquiredIDs[0]
        h.grant(b)
        h.reply(b, done("BEGIN", status: .inTransaction))
        h.reply(b, done("INSERT 0 1", status: .inTransaction))
        // COMMIT goes to both; the client sees one COMMIT.
        let commit = h.client(Frames.query("COMMIT"))
        #expect(commit.written(to: a).map(\.queryText) == ["COMMIT"])
        #expect(commit.written(to: b).map(\.queryText) == ["COMMIT"])
        #expect(h.reply(a, done("COMMIT")).client.isEmpty)
        let last = h.reply(b, done("COMMIT"))
        #expect(last.client == [.commandComplete("COMMIT"), .readyForQuery(.idle)])
        #expect(Set(h.log.released) == [a, b])
        #expect(h.engine.transaction == nil)
    }

    /// What each lease asks of its pool (see PoolStateMachine): a transaction's first backend leaves the
    /// pool's reserve alone, its second (while it holds the first) may take it.
    @Test func leasesClaimWhatTheyMayHoldWhileWaiting() {
        var h = H()
        let single = h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS0)"))
        #expect(single.claims == [.single])
        h.grant(single.acquiredIDs[0])
        h.reply(single.acquiredIDs[0], answer(["a"]))
        h.client(Frames.query("BEGIN"))
        let first = h.client(Frames.query("UPDATE users SET name = 'x' WHERE id = \(H.keyOnS0)"))
        #expect(first.claims == [.opening])
        let a = first.acquiredIDs[0]
        h.grant(a)
        h.reply(a, done("BEGIN", status: .inTransaction))
        h.reply(a, done("UPDATE 1", status: .inTransaction))
        let second = h.client(Frames.query("UPDATE users SET name = 'y' WHERE id = \(H.keyOnS1)"))
        #expect(second.claims == [.holding])
    }

    /// A write over several shards takes no row lock on the first before the session holds every backend
    /// it needs: waiting for a pool slot while holding a lock others wait for could never end.
    @Test func aWriteOverSeveralShardsStartsOnceEveryMemberHasItsBackend() {
        var h = H()
        h.client(Frames.query("BEGIN"))
        let a = h.client(Frames.query("UPDATE users SET name = 'x' WHERE id = \(H.keyOnS0)")).acquiredIDs[0]
        h.grant(a)
        h.reply(a, done("BEGIN", status: .inTransaction))
        h.reply(a, done("UPDATE 1", status: .inTransaction))
        let insert = h.client(Frames.query("INSERT INTO countries VALUES ('fr', 'France')"))
        #expect(insert.claims == [.holding])
        #expect(insert.written(to: a).isEmpty)
        let b = insert.acquiredIDs[0]
        let granted = h.grant(b)
        #expect(granted.written(to: a).compactMap(\.queryText) == ["INSERT INTO countries VALUES ('fr', 'France')"])
    }

    /// A statement over several shards by a session holding no backend asks for one member, then (holding
    /// it) for the others, so two such statements never hold one shard each while waiting for the other.
    @Test func membersOfAStatementOverSeveralShardsAreAcquiredOneThenTheRest() {
        var h = H()
        let first = h.client(Frames.query("SELECT * FROM users"))
        #expect(first.claims == [.opening])
        let second = h.grant(first.acquiredIDs[0])
        #expect(second.claims == [.holding])
        #expect(Set([first.acquiredIDs[0], second.acquiredIDs[0]].map { h.targets[$0]!.shard }) == [0, 1])
    }

    @Test func aTransactionWritingTwoShardsCommitsInTwoPhases() {
        var h = H()
        h.client(Frames.query("BEGIN"))
        let a = h.client(Frames.query("UPDATE users SET name = 'x' WHERE id = \(H.keyOnS0)")).acquiredIDs[0]
        h.grant(a)
        h.reply(a, done("BEGIN", status: .inTransaction))
        h.reply(a, done("UPDATE 1", status: .inTransaction))
        let b = h.client(Frames.query("UPDATE users SET name = 'y' WHERE id = \(H.keyOnS1)")).acquiredIDs[0]
        h.grant(b)
        h.reply(b, done("BEGIN", status: .inTransaction))
        h.reply(b, done("UPDATE 1", status: .inTransaction))
        h.client(Frames.query("COMMIT"))
        #expect(h.commitTwoPhase([a, b]) == [.commandComplete("COMMIT"), .readyForQuery(.idle)])
        #expect(h.engine.transaction == nil)
        #expect(Set(h.log.released) == [a, b])
    }

    @Test func aPrepareThatFailsRollsBackThePreparedShards() {
        var h = H()
        h.client(Frames.query("BEGIN"))
        var ids: [Int] = []
        for key in [H.keyOnS0, H.keyOnS1] {
            let id = h.client(Frames.query("UPDATE users SET name = 'x' WHERE id = \(key)")).acquiredIDs[0]
            h.grant(id)
            h.reply(id, done("BEGIN", status: .inTransaction))
            h.reply(id, done("UPDATE 1", status: .inTransaction))
            ids.append(id)
        }
        h.client(Frames.query("COMMIT"))
        h.reply(ids[0], done("PREPARE TRANSACTION"))
        h.reply(ids[1], [serverError("23505", "duplicate key (deferred)"), .readyForQuery(.idle)])
        // No decision is logged; the shard that prepared rolls back.
        #expect(!h.log.contains { if case .logCommitDecision = $0 { true } else { false } })
        #expect(h.log.written(to: ids[0]).compactMap(\.queryText).last?.hasPrefix("ROLLBACK PREPARED") == true)
        let end = h.reply(ids[0], done("ROLLBACK PREPARED")).client
        guard case .errorResponse(let error)? = end.first else {
            Issue.record("expected the error, got \(end)")
            return
        }
        #expect(error.sqlState == "23505")
        #expect(end.last == .readyForQuery(.idle))
        #expect(h.engine.transaction == nil)
    }

    @Test func commitWithoutAnythingInTheTransactionIsAnsweredLocally() {
        var h = H()
        h.client(Frames.query("BEGIN"))
        #expect(h.client(Frames.query("COMMIT")).sentToClient == [.commandComplete("COMMIT"), .readyForQuery(.idle)])
        #expect(h.log.acquired.isEmpty)
    }

    @Test func commitOutsideATransactionWarnsAsPostgreSQLDoes() {
        var h = H()
        let sent = h.client(Frames.query("COMMIT")).sentToClient
        guard case .noticeResponse(let notice)? = sent.first else {
            Issue.record("expected a warning, got \(sent)")
            return
        }
        #expect(notice.sqlState == "25P01")
        #expect(sent.dropFirst() == [.commandComplete("COMMIT"), .readyForQuery(.idle)])
    }

    @Test func savepointsAreReplayedOnShardsThatJoinLater() {
        var h = H()
        h.client(Frames.query("BEGIN"))
        #expect(h.client(Frames.query("SAVEPOINT a")).sentToClient == [.commandComplete("SAVEPOINT"), .readyForQuery(.inTransaction)])
        h.client(Frames.query("SET LOCAL statement_timeout = 1000"))
        let first = h.log.acquiredIDs.last!
        let prefix = h.grant(first).written(to: first).compactMap(\.queryText)
        #expect(prefix.first == "BEGIN\n;\nSAVEPOINT a")
        h.reply(first, done("BEGIN", status: .inTransaction))
        h.reply(first, done("SET", status: .inTransaction))
        // A second shard gets the BEGIN, the savepoint and the SET LOCAL, in order.
        let second = h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS1)")).acquiredIDs[0]
        #expect(h.grant(second).written(to: second).compactMap(\.queryText).first
                == "BEGIN\n;\nSAVEPOINT a\n;\nSET LOCAL statement_timeout = 1000")
        // RELEASE of an unknown savepoint is refused as PostgreSQL refuses it.
        h.reply(second, done("BEGIN", status: .inTransaction))
        h.reply(second, answer([], status: .inTransaction))
        let refused = h.client(Frames.query("RELEASE nope")).sentToClient
        if case .errorResponse(let e)? = refused.first { #expect(e.sqlState == "3B001") } else { Issue.record("\(refused)") }
    }

    @Test func aTransactionStartedInsideAQueryStringIsFollowed() {
        var h = H()
        let id = h.client(Frames.query("BEGIN; INSERT INTO users (id, name) VALUES (\(H.keyOnS1), 'x')")).acquiredIDs[0]
        #expect(h.targets[id] == .primary(1))
        h.grant(id)
        h.reply(id, [.commandComplete("BEGIN"), .commandComplete("INSERT 0 1"), .readyForQuery(.inTransaction)])
        #expect(h.engine.transaction != nil)
        #expect(h.log.released.isEmpty)
        #expect(h.client(Frames.query("SELECT * FROM users WHERE id = \(H.otherKeyOnS1)")).forwarded == [id])
        h.reply(id, answer([], status: .inTransaction))
        h.client(Frames.query("COMMIT"))
        #expect(h.reply(id, done("COMMIT")).actions.released == [id])
        #expect(h.engine.transaction == nil)
    }

    @Test func aSessionLevelSetInARolledBackTransactionIsForgotten() {
        var h = H()
        h.client(Frames.query("BEGIN"))
        let id = h.client(Frames.query("SET search_path = x")).acquiredIDs[0]
        h.grant(id)
        h.reply(id, done("BEGIN", status: .inTransaction))
        h.reply(id, done("SET", status: .inTransaction))
        h.client(Frames.query("ROLLBACK"))
        h.reply(id, done("ROLLBACK"))
        #expect(h.engine.settings.isEmpty)
        #expect(h.backends[id]?.parameters.replayed.isEmpty == true)

        h.client(Frames.query("BEGIN"))
        let again = h.client(Frames.query("SET search_path = y")).acquiredIDs[0]
        h.grant(again)
        h.reply(again, done("BEGIN", status: .inTransaction))
        h.reply(again, done("SET", status: .inTransaction))
        h.client(Frames.query("COMMIT"))
        h.reply(again, done("COMMIT"))
        #expect(h.engine.settings.settings.map(\.sql) == ["SET search_path = y"])
        #expect(h.backends[again]?.parameters.replayed["search_path"] == "SET search_path = y")
    }

    @Test func losingAParticipantClosesTheClient() {
        var h = H()
        h.client(Frames.query("BEGIN"))
        let id = h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS0)")).acquiredIDs[0]
        h.grant(id)
        let (closed, error) = h.lost(id).closed
        #expect(closed)
        #expect(error?.sqlState == "08006")
        #expect(error?.severity == "FATAL")
    }

    @Test func shutdownWaitsForTheTransactionToEnd() {
        var h = H()
        h.client(Frames.query("BEGIN"))
        let id = h.client(Frames.query("SELECT * FROM users WHERE id = \(H.keyOnS0)")).acquiredIDs[0]
        h.grant(id)
        h.reply(id, done("BEGIN", status: .inTransaction))
        h.reply(id, answer([], status: .inTransaction))
        h.engine.shutdown(context: &h.context)
        #expect(!h.drain().closed.0)
        h.client(Frames.query("COMMIT"))
        let reply = h.reply(id, done("COMMIT"))
        #expect(reply.relayed == done("COMMIT"))
        #expect(reply.actions.closed.0)
    }
}
