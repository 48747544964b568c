import NIOCore
import PGWire
import ShardMap
import Testing

@testable import ProxyCore

/// Statements over several shards: one answer made of every shard's.
@Suite struct SessionEngineScatterTests {
    typealias H = EngineHarness

    /// Sends `sql`, grants every lease it asks for, returns the lease ids in shard order.
    static func scatter(_ h: inout H, _ sql: String) -> [Int] {
        let first = h.client(Frames.query(sql)).acquiredIDs
        return grantInTurn(&h, first)
    }

    /// Grants `first` and every lease the grants go on to ask for; the lease ids in shard order. (Members are
    /// asked of their pools one at a time until the session holds a backend, then the rest.)
    static func grantInTurn(_ h: inout H, _ first: [Int]) -> [Int] {
        var pending = first
        var ids: [Int] = []
        while let id = pending.first {
            pending.removeFirst()
            ids.append(id)
            pending += h.grant(id).acquiredIDs
        }
        return ids.sorted { h.targets[$0]!.shard < h.targets[$1]!.shard }
    }

    @Test func aReadWithoutAKeyRunsOnEveryShardAndTheRowsAreConcatenated() {
        var h = H()
        let ids = Self.scatter(&h, "SELECT name FROM users")
        #expect(ids.map { h.targets[$0]! } == [BackendTarget(shard: 0, replica: 0), BackendTarget(shard: 1, replica: 0)])
        let description = answer([])[0]
        // Shard 1 answers first: its rows go out as they come, after one RowDescription.
        let first = h.reply(ids[1], answer(["b", "c"]).dropLast(2) + [])
        #expect(first.client == [description, .dataRow(DataRow(values: [ByteBuffer(string: "b")])),
                                 .dataRow(DataRow(values: [ByteBuffer(string: "c")]))])
        #expect(h.reply(ids[1], [.commandComplete("SELECT 2"), .readyForQuery(.idle)]).client.isEmpty)
        let last = h.reply(ids[0], answer(["a"]))
        #expect(last.client == [.dataRow(DataRow(values: [ByteBuffer(string: "a")])), .commandComplete("SELECT 3"),
                                .readyForQuery(.idle)])
        #expect(Set(h.log.released) == Set(ids))
    }

    @Test func anInListAcrossShardsGoesToTheOwnersOnly() {
        var h = H()
        let ids = h.client(Frames.query("SELECT * FROM users WHERE id IN (\(H.keyOnS0), \(H.otherKeyOnS0))")).acquired
        #expect(ids == [BackendTarget(shard: 0, replica: 0)])
        var k = H()
        let both = Self.scatter(&k, "SELECT * FROM users WHERE id IN (\(H.keyOnS0), \(H.keyOnS1))")
        #expect(Set(both.map { k.targets[$0]!.shard }) == [0, 1])
    }

    @Test func ddlRunsOnEveryPrimaryAtomicallyAndIsAnsweredOnce() {
        var h = H()
        let ids = Self.scatter(&h, "CREATE TABLE users (id bigint primary key)")
        #expect(ids.map { h.targets[$0]! } == [.primary(0), .primary(1)])
        // Each shard runs it inside a transaction ShardGate opened.
        #expect(h.log.written(to: ids[0]).compactMap(\.queryText).first == "BEGIN")
        h.begun(ids)
        #expect(h.reply(ids[0], done("CREATE TABLE", status: .inTransaction)).client.isEmpty)
        #expect(h.reply(ids[1], done("CREATE TABLE", status: .inTransaction)).client == [.commandComplete("CREATE TABLE")])
        #expect(h.commitTwoPhase(ids) == [.readyForQuery(.idle)])
        #expect(Set(h.log.released) == Set(ids))
    }

    @Test func aReferenceTableWriteRunsEverywhereAndCountsOnce() {
        var h = H()
        let ids = Self.scatter(&h, "INSERT INTO countries VALUES ('fr', 'France')")
        #expect(ids.count == 2)
        h.begun(ids)
        h.reply(ids[0], done("INSERT 0 1", status: .inTransaction))
        #expect(h.reply(ids[1], done("INSERT 0 1", status: .inTransaction)).client == [.commandComplete("INSERT 0 1")])
        #expect(h.commitTwoPhase(ids) == [.readyForQuery(.idle)])
    }

    @Test func aKeylessUpdateAddsUpTheCounts() {
        var h = H()
        let ids = Self.scatter(&h, "UPDATE users SET name = 'x'")
        h.begun(ids)
        h.reply(ids[0], done("UPDATE 3", status: .inTransaction))
        #expect(h.reply(ids[1], done("UPDATE 4", status: .inTransaction)).client == [.commandComplete("UPDATE 7")])
        #expect(h.commitTwoPhase(ids) == [.readyForQuery(.idle)])
    }

    @Test func aMultiRowInsertIsSplitPerShard() {
        var h = H()
        let sql = "INSERT INTO users (id, name) VALUES (\(H.keyOnS0), 'a'), (\(H.keyOnS1), 'b'), (\(H.otherKeyOnS0), 'c') RETURNING id"
        let ids = Self.scatter(&h, sql)
        #expect(h.log.written(to: ids[0]).map(\.queryText)
                == ["BEGIN", "INSERT INTO users (id, name) VALUES (\(H.keyOnS0), 'a'), (\(H.otherKeyOnS0), 'c') RETURNING id"])
        // Writes take the shards in order: s1 gets its rows once s0 has answered (row locks in shard order).
        #expect(h.log.written(to: ids[1]).map(\.queryText) == ["BEGIN"])
        h.begun(ids)
        h.reply(ids[0], answer(["2", "3"], tag: "INSERT 0 2", status: .inTransaction))
        #expect(h.log.written(to: ids[1]).map(\.queryText)
                == ["BEGIN", "INSERT INTO users (id, name) VALUES (\(H.keyOnS1), 'b') RETURNING id"])
        let last = h.reply(ids[1], answer(["1"], tag: "INSERT 0 1", status: .inTransaction))
        #expect(last.client.suffix(1) == [.commandComplete("INSERT 0 3")])
        #expect(h.commitTwoPhase(ids) == [.readyForQuery(.idle)])
    }

    @Test func aWriteThatFailsOnOneShardIsRolledBackOnEvery() {
        var h = H()
        let ids = Self.scatter(&h, "DELETE FROM users")
        h.begun(ids)
        h.reply(ids[0], done("DELETE 2", status: .inTransaction))
        let last = h.reply(ids[1], [serverError("23503", "violates foreign key"), .readyForQuery(.failedTransaction)]).client
        guard case .errorResponse(let error)? = last.first else {
            Issue.record("expected one error, got \(last)")
            return
        }
        #expect(error.sqlState == "23503")
        #expect(error.detail?.contains("s1") == true)
        // Every shard rolls back; then the client gets ReadyForQuery.
        for id in ids { #expect(h.log.written(to: id).compactMap(\.queryText).last == "ROLLBACK") }
        h.reply(ids[0], done("ROLLBACK"))
        #expect(h.reply(ids[1], done("ROLLBACK")).client == [.readyForQuery(.idle)])
    }

    @Test func aStatementPostgreSQLRunsOnlyOutsideTransactionsIsNotWrapped() {
        var h = H()
        let ids = Self.scatter(&h, "VACUUM users")
        #expect(h.log.written(to: ids[0]).compactMap(\.queryText) == ["VACUUM users"])
    }

    @Test func anOrderedReadOverShardsIsMergedInOrderWithItsLimit() {
        var h = H()
        h.context.collation = .c
        let ids = Self.scatter(&h, "SELECT name FROM users ORDER BY name LIMIT 3")
        // Each shard runs the rewritten statement (LIMIT pushed down).
        let sent = h.log.written(to: ids[0]).compactMap(\.queryText)
        #expect(sent.count == 1 && sent[0].uppercased().contains("LIMIT"))
        h.reply(ids[0], answer(["a", "c", "e"]))
        let last = h.reply(ids[1], answer(["b", "d"]))
        let rows = h.log.sentToClient.compactMap { message -> String? in
            if case .dataRow(let row) = message, let value = row.column(0) { return String(buffer: value) }
            return nil
        }
        #expect(rows == ["a", "b", "c"])
        #expect(h.log.sentToClient.suffix(2) == [.commandComplete("SELECT 3"), .readyForQuery(.idle)])
        #expect(!last.actions.released.isEmpty)
    }

    @Test func aShapeThatCannotBeMergedExactlyIsRefused() {
        var h = H()
        let sent = h.client(Frames.query("SELECT row_number() OVER () FROM users")).sentToClient
        if case .errorResponse(let e)? = sent.first { #expect(e.sqlState == "0A000") } else { Issue.record("\(sent)") }
    }

    @Test func severalDDLStatementsInOneStringAreCombinedStatementByStatement() {
        var h = H()
        let ids = Self.scatter(&h, "CREATE TABLE users (id bigint); CREATE INDEX ON users (id)")
        h.begun(ids)
        // Shard 0 runs ahead: its second result waits for shard 1's first.
        #expect(h.reply(ids[0], [.commandComplete("CREATE TABLE"), .commandComplete("CREATE INDEX"),
                                 .readyForQuery(.inTransaction)]).client.isEmpty)
        #expect(h.reply(ids[1], [.commandComplete("CREATE TABLE")]).client == [.commandComplete("CREATE TABLE")])
        #expect(h.reply(ids[1], [.commandComplete("CREATE INDEX"), .readyForQuery(.inTransaction)]).client
                == [.commandComplete("CREATE INDEX")])
        #expect(h.commitTwoPhase(ids) == [.readyForQuery(.idle)])
    }

    @Test func aScatteredBindCombinesEveryExtendedAnswer() {
        var h = H()
        let bind = frame(.bind(Bind(portal: "", statement: "", parameters: [ByteBuffer(string: "{\(H.keyOnS0),\(H.keyOnS1)}")])))
        let actions = h.client(Frames.parse("SELECT name FROM users WHERE id = ANY($1::bigint[])"), bind, Frames.describe(),
                               Frames.execute(), Frames.sync)
        var ids = actions.acquiredIDs
        #expect(ids.count == 1)
        ids += h.grant(ids[0]).acquiredIDs
        #expect(ids.count == 2)
        h.grant(ids[1])
        ids.sort { h.targets[$0]!.shard < h.targets[$1]!.shard }
        let rows = answer(["x"])
        h.reply(ids[0], [.parseComplete, .bindComplete, rows[0], rows[1], .commandComplete("SELECT 1"), .readyForQuery(.idle)])
        let last = h.reply(ids[1], [.parseComplete, .bindComplete, rows[0], rows[1], .commandComplete("SELECT 1"), .readyForQuery(.idle)])
        let all = h.log.sentToClient
        #expect(all == [.parseComplete, .bindComplete, rows[0], rows[1], rows[1], .commandComplete("SELECT 2"), .readyForQuery(.idle)])
        #expect(!last.actions.released.isEmpty)
    }
}

/// Writes over several shards through the extended protocol outside a transaction: ShardGate wraps them in a
/// transaction and commits it (two-phase) when the batch ends.
@Suite struct SessionEngineExtendedScatterWriteTests {
    typealias H = EngineHarness

    /// Parse/Bind/Execute … and grants every lease the batch asks for; the lease ids in shard order.
    static func batch(_ h: inout H, _ frames: [PGFrame]) -> [Int] {
        var first: [Int] = []
        for frame in frames { first += h.client(frame).acquiredIDs }
        return SessionEngineScatterTests.grantInTurn(&h, first)
    }

    static func bind(_ value: String) -> PGFrame {
        frame(.bind(Bind(portal: "", statement: "", parameters: [ByteBuffer(string: value)])))
    }

    @Test func aKeylessUpdateCommitsOnEveryShardInTwoPhasesAtTheSync() {
        var h = H()
        let ids = Self.batch(&h, [Frames.parse("UPDATE users SET name = $1"), Self.bind("x"), Frames.execute(), Frames.sync])
        #expect(ids.map { h.targets[$0]! } == [.primary(0), .primary(1)])
        #expect(h.log.written(to: ids[0]).first?.queryText == "BEGIN")
        h.begun(ids)
        h.reply(ids[0], [.parseComplete, .bindComplete, .commandComplete("UPDATE 3"), .readyForQuery(.inTransaction)])
        let second = h.reply(ids[1], [.parseComplete, .bindComplete, .commandComplete("UPDATE 4"),
                                      .readyForQuery(.inTransaction)])
        // The members' "in transaction" ReadyForQuery is not the client's: that comes after the commit.
        #expect(second.client == [.parseComplete, .bindComplete, .commandComplete("UPDATE 7")])
        #expect(h.commitTwoPhase(ids) == [.readyForQuery(.idle)])
        #expect(Set(h.log.released) == Set(ids))
    }

    @Test func aFailureOnOneShardRollsBackEveryShard() {
        var h = H()
        let ids = Self.batch(&h, [Frames.parse("UPDATE users SET name = $1"), Self.bind("x"), Frames.execute(), Frames.sync])
        h.begun(ids)
        h.reply(ids[0], [.parseComplete, .bindComplete, .commandComplete("UPDATE 3"), .readyForQuery(.inTransaction)])
        let failed = h.reply(ids[1], [.parseComplete, .bindComplete, serverError("23514", "check violated"),
                                      .readyForQuery(.failedTransaction)])
        #expect(failed.client.contains { if case .errorResponse = $0 { true } else { false } })
        for id in ids {
            #expect(h.log.written(to: id).compactMap(\.queryText).last == "ROLLBACK")
        }
        #expect(h.reply(ids[0], done("ROLLBACK")).client.isEmpty)
        #expect(h.reply(ids[1], done("ROLLBACK")).client == [.readyForQuery(.idle)])
        #expect(!h.log.contains { if case .logCommitDecision = $0 { true } else { false } })
    }

    /// The batch moves on to one shard before its Sync: the write over both commits first (the client sees no
    /// ReadyForQuery for it), then the next statement runs outside any transaction.
    @Test func aBatchThatMovesOnCommitsTheWriteFirst() {
        var h = H()
        let ids = Self.batch(&h, [Frames.parse("UPDATE users SET name = $1"), Self.bind("x"), Frames.execute()])
        h.begun(ids)
        h.log = []
        let next = h.client(Frames.parse("SELECT name FROM users WHERE id = $1"), Self.bind("\(H.keyOnS1)"),
                            Frames.execute(), Frames.sync)
        #expect(next.acquired.isEmpty)   // waits for the write's commit
        func endsWithSync(_ written: [FrontendMessage]) -> Bool {
            if case .sync? = written.last { return true }
            return false
        }
        #expect(endsWithSync(next.written(to: ids[0])))
        let first = h.reply(ids[0], [.parseComplete, .bindComplete, .commandComplete("UPDATE 3"),
                                     .readyForQuery(.inTransaction)])
        #expect(endsWithSync(first.actions.written(to: ids[1])))   // s1 takes the write after s0 (row locks in order)
        // s1 was written after the client's next Parse replaced the unnamed statement: ShardGate parses the
        // UPDATE there again before its Bind (a second ParseComplete, not the client's).
        let second = h.reply(ids[1], [.parseComplete, .parseComplete, .bindComplete, .commandComplete("UPDATE 4"),
                                      .readyForQuery(.inTransaction)])
        #expect(first.client + second.client == [.parseComplete, .bindComplete, .commandComplete("UPDATE 7")])
        let committed = h.commitTwoPhase(ids)
        #expect(committed.isEmpty, "\(committed)")
        // The read goes on, outside a transaction: to shard 1's primary, which the session just wrote.
        #expect(h.engine.transaction == nil)
        #expect(h.log.acquired.last == .primary(1))
    }
}

extension SessionEngineExtendedScatterWriteTests {
    /// A multi-row INSERT of bind parameters: each shard's part binds only its rows' values, renumbered.
    @Test func aMultiRowInsertOfParametersBindsEachShardItsOwnValues() {
        var h = H()
        let sql = "INSERT INTO users (id, name) VALUES ($1, $2), ($3, $4), ($5, $6)"
        let values = ["\(H.keyOnS0)", "a", "\(H.keyOnS1)", "b", "\(H.otherKeyOnS0)", "c"]
        let bind = frame(.bind(Bind(portal: "", statement: "", parameters: values.map { ByteBuffer(string: $0) })))
        let ids = Self.batch(&h, [Frames.parse(sql), bind, Frames.execute(), Frames.sync])
        h.begun(ids)
        let s0 = h.log.written(to: ids[0])
        let parses = s0.compactMap { if case .parse(let p) = $0 { return p.query } else { return nil } }
        #expect(parses == [sql, "INSERT INTO users (id, name) VALUES ($1, $2), ($3, $4)"])
        let binds = s0.compactMap { if case .bind(let b) = $0 { return b } else { return nil } }
        #expect(binds.map { $0.parameters.map { String(buffer: $0!) } } == [["\(H.keyOnS0)", "a", "\(H.otherKeyOnS0)", "c"]])
        h.reply(ids[0], [.parseComplete, .parseComplete, .bindComplete, .commandComplete("INSERT 0 2"),
                         .readyForQuery(.inTransaction)])
        let s1 = h.log.written(to: ids[1])
        #expect(s1.compactMap { if case .bind(let b) = $0 { return b.parameters.map { String(buffer: $0!) } } else { return nil } }
                == [["\(H.keyOnS1)", "b"]])
        let last = h.reply(ids[1], [.parseComplete, .parseComplete, .bindComplete, .commandComplete("INSERT 0 1"),
                                    .readyForQuery(.inTransaction)])
        #expect(last.client == [.parseComplete, .bindComplete, .commandComplete("INSERT 0 3")])
        #expect(h.commitTwoPhase(ids) == [.readyForQuery(.idle)])
    }
}

/// The client goes away in the middle of a two-phase commit: the session never commits or rolls back on
/// its own after that; the commit's id is handed to recovery (`twoPhaseFinished(complete: false)`) exactly
/// once, so the log's decision (or its absence) settles the prepared transactions.
@Suite struct SessionEngineTwoPhaseDisconnectTests {
    typealias H = EngineHarness

    /// A keyless UPDATE over both shards answered, up to its PREPARE TRANSACTIONs being written.
    static func preparing(_ h: inout H) -> [Int] {
        let ids = SessionEngineScatterTests.scatter(&h, "UPDATE users SET name = 'x'")
        h.begun(ids)
        h.reply(ids[0], done("UPDATE 1", status: .inTransaction))
        h.reply(ids[1], done("UPDATE 1", status: .inTransaction))
        for id in ids {
            #expect(h.log.written(to: id).compactMap(\.queryText).last?.hasPrefix("PREPARE TRANSACTION") == true)
        }
        return ids
    }

    static func handedToRecovery(_ actions: [SessionEngine.Action]) -> [String] {
        actions.compactMap { if case .twoPhaseFinished(let id, complete: false) = $0 { return id } else { return nil } }
    }

    @Test func goneWhilePreparingTheIdGoesToRecoveryAndTheBackendsAreClosed() {
        var h = H()
        let ids = Self.preparing(&h)
        h.log = []
        h.engine.clientClosed(context: &h.context)
        let actions = h.drain()
        #expect(Self.handedToRecovery(actions).count == 1)
        #expect(Set(actions.discarded) == Set(ids))   // PREPARE TRANSACTION still in flight there
    }

    @Test func goneWhileTheDecisionIsWrittenRecoveryCommitsAndTheSessionSendsNothing() {
        var h = H()
        let ids = Self.preparing(&h)
        for id in ids { h.reply(id, done("PREPARE TRANSACTION")) }
        #expect(h.log.contains { if case .logCommitDecision = $0 { true } else { false } })
        h.log = []
        h.engine.clientClosed(context: &h.context)
        let closing = h.drain()
        #expect(Self.handedToRecovery(closing).isEmpty)   // not yet: the decision is being written
        h.engine.decisionLogged(context: &h.context)
        let after = h.drain()
        #expect(Self.handedToRecovery(after).count == 1)
        for id in ids { #expect(after.written(to: id).isEmpty) }   // no COMMIT PREPARED from a closed session
    }

    @Test func goneWhileCommittingTheIdGoesToRecoveryOnce() {
        var h = H()
        let ids = Self.preparing(&h)
        for id in ids { h.reply(id, done("PREPARE TRANSACTION")) }
        h.engine.decisionLogged(context: &h.context)
        h.reply(ids[0], done("COMMIT PREPARED"))
        h.log = []
        h.engine.clientClosed(context: &h.context)
        let actions = h.drain()
        #expect(Self.handedToRecovery(actions).count == 1)
        #expect(actions.discarded == [ids[1]])   // its COMMIT PREPARED is still in flight
        h.reply(ids[1], done("COMMIT PREPARED"))
        #expect(Self.handedToRecovery(h.drain()).isEmpty)
    }
}
