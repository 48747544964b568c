import Foundation
@testable import ShardCtlKit
import ShardMap
import Testing

/// The rebalance steps against real PostgreSQL 15 primaries: publication with row filters, subscription
/// copy and streaming, cutover (against fake admin ports: the real proxies are in tests/test_rebalance.py),
/// cleanup, resume after an interrupted run, abort, preflight refusals and verify.
@Suite("Rebalance against real PostgreSQL", .serialized)
struct RebalancePostgresTests {
    /// The test's tables: accounts (bigint key = primary key), events (key in a two-column primary key,
    /// missing on the target so the schema is copied), tokens (text key), and a reference table.
    struct Fixture {
        let cluster: PostgresTestCluster
        let map: ShardMap
        var accounts: String { self.cluster.prefix + "_accounts" }
        var events: String { self.cluster.prefix + "_events" }
        var tokens: String { self.cluster.prefix + "_tokens" }
        var countries: String { self.cluster.prefix + "_countries" }
        var all: [String] { [self.accounts, self.events, self.tokens, self.countries] }

        init() throws {
            let cluster = try PostgresTestCluster.load()
            self.cluster = cluster
            let p = cluster.prefix
            self.map = try cluster.mapWith([
                p + "_accounts": .sharded(key: "id", type: .bigint),
                p + "_events": .sharded(key: "account_id", type: .bigint),
                p + "_tokens": .sharded(key: "token", type: .text),
                p + "_countries": .reference,
            ])
        }

        /// Creates the tables (events only on s0) and fills each shard with the rows it owns.
        func create(accounts count: Int = 3000) throws {
            for index in self.map.shards.indices {
                let db = try self.cluster.connect(index)
                let owned = self.map.slots(of: index)
                let byID = SlotExpression(column: "id", type: .bigint).filter(slots: owned)
                let byToken = SlotExpression(column: "token", type: .text).filter(slots: owned)
                try db.execute("""
                    CREATE TABLE \(SQLText.identifier(self.accounts)) (id bigint PRIMARY KEY, v text);
                    CREATE TABLE \(SQLText.identifier(self.tokens)) (token varchar(40) PRIMARY KEY, v text);
                    CREATE TABLE \(SQLText.identifier(self.countries)) (code text PRIMARY KEY, name text);
                    INSERT INTO \(SQLText.identifier(self.countries)) VALUES ('fr', 'France'), ('de', 'Germany');
                    INSERT INTO \(SQLText.identifier(self.accounts)) SELECT id, 'a' || id FROM generate_series(1, \(count)) AS s(id) WHERE \(byID);
                    INSERT INTO \(SQLText.identifier(self.tokens)) SELECT token, 't' FROM (SELECT 'tok-' || g AS token FROM generate_series(1, 1000) g) s WHERE \(byToken);
                    """)
                if index == 0 {
                    try db.execute("""
                        CREATE TABLE \(SQLText.identifier(self.events)) (id bigserial, account_id bigint NOT NULL, v text, PRIMARY KEY (account_id, id));
                        INSERT INTO \(SQLText.identifier(self.events)) (account_id, v) SELECT account_id, 'e' FROM generate_series(1, \(count)) AS s(account_id) WHERE \(SlotExpression(column: "account_id", type: .bigint).filter(slots: owned));
                        """)
                }
            }
        }

        /// The planned move: the 40 highest slots of s0 to s1.
        var plan: RebalancePlan {
            get throws { try RebalancePlanner.plan(from: "s0", count: 40, to: "s1", map: self.map) }
        }

        func journalPath() -> String {
            let dir = NSTemporaryDirectory() + "rebalance-pg-test-\(UUID().uuidString)"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            return dir + "/shardgate-rebalance.journal"
        }

        /// Every row on the shard that owns its slot under `map`, none elsewhere, and exactly `expected`.
        func expectPlacement(_ table: String, key: String, keyType: ShardKeyType, value: String,
                             expected: [String], map: ShardMap) throws {
            let rows = try self.cluster.rows(table, key: key, value: value)
            var union: [String] = []
            for (shard, list) in rows {
                for row in list {
                    let keyText = String(row.split(separator: "|", maxSplits: 1)[0])
                    let slot = keyType == .bigint ? SlotHash.slot(bigint: Int64(keyText)!) : SlotHash.slot(text: keyText)
                    #expect(map.shardIndex(ofSlot: slot) == shard, "\(table) row \(row) is on shard \(shard), slot \(slot) belongs to \(map.shardIndex(ofSlot: slot))")
                }
                union += list
            }
            #expect(union.count == Set(union).count, "\(table): no row twice")
        let missing = Set(expected).subtracting(union).sorted().prefix(20)
        let extra = Set(union).subtracting(expected).sorted().prefix(20)
        #expect(missing.isEmpty && extra.isEmpty, "\(table): missing \(Array(missing)), unexpected \(Array(extra))")
        }
    }

    @Test func theSlotExpressionEqualsSwiftsSlotFunctionOnARealServer() throws {
        let cluster = try PostgresTestCluster.load()
        let db = try cluster.connect(0)
        var keys: [Int64] = [0, 1, -1, 42, .max, .min, .max - 1, .min + 1, 1 << 32, -(1 << 32)]
        var generator = SystemRandomNumberGenerator()
        keys += (0..<3000).map { _ in Int64(bitPattern: generator.next()) }
        keys += (0..<1000).map { Int64($0) - 500 }
        for slotCount in [1024, 1000, 7, 65536] {
            let expression = SlotExpression(column: "k", type: .bigint, slotCount: slotCount)
            let rows = try db.query("SELECT k::text, (\(expression.sql))::text FROM unnest($1::bigint[]) AS u(k)",
                                    ["{" + keys.map(String.init).joined(separator: ",") + "}"]).rows
            #expect(rows.count == keys.count)
            for row in rows {
                let key = Int64(row[0]!)!
                #expect(Int(row[1]!) == SlotHash.slot(bigint: key, slotCount: slotCount), "bigint \(key), \(slotCount) slots")
            }
        }
        let texts = (0..<1500).map { "user-\($0)" } + ["", "é", "日本語", "a b c", String(repeating: "x", count: 300)]
        let textRows = try db.query("SELECT k, (\(SlotExpression(column: "k", type: .text).sql))::text FROM unnest($1::text[]) AS u(k)",
                                    ["{" + texts.map { "\"\($0)\"" }.joined(separator: ",") + "}"]).rows
        #expect(textRows.count == texts.count)
        for row in textRows {
            #expect(Int(row[1]!) == SlotHash.slot(text: row[0]!), "text \(row[0]!)")
        }
        let uuids = (0..<1000).map { _ in UUID() }
        let uuidRows = try db.query("SELECT k::text, (\(SlotExpression(column: "k", type: .uuid, slotCount: 1000).sql))::text FROM unnest($1::uuid[]) AS u(k)",
                                    ["{" + uuids.map(\.uuidString).joined(separator: ",") + "}"]).rows
        for row in uuidRows {
            #expect(Int(row[1]!) == SlotHash.slot(uuid: UUID(uuidString: row[0]!)!, slotCount: 1000))
        }
    }

    @Test func aMoveCopiesStreamsChangesFlipsAndCleansUpAfterAResume() async throws {
        let f = try Fixture()
        defer { f.cluster.cleanUp(tables: f.all) }
        try f.create()
        let plan = try f.plan
        let move = plan.moves[0]
        let fakes = try await FakeFleet(map: f.map)
        let path = f.journalPath()
        let console = RecordingConsole()

        // First run: up to the subscription, then "killed" (its locks and sessions released).
        do {
            let first = try await Rebalancer.begin(plan: plan, map: f.map, fleet: fakes.fleet,
                                                   file: RebalanceJournalFile(path: path), console: console.console)
            try first.prepareSchema(0)
            try first.publish(0)
            try await first.subscribe(0)
            #expect(first.journal.moves[0].phase == .subscribed)
            #expect(first.journal.moves[0].createdTables == ["\"public\".\"\(f.events)\""])
            first.sessions.closeAll()
        }
        // Writes on the source while PostgreSQL copies: they must reach the target.
        let source = try f.cluster.connect(0)
        let accounts = SQLText.identifier(f.accounts)
        try source.execute("""
            UPDATE \(accounts) SET v = 'u' || id WHERE id % 3 = 0;
            DELETE FROM \(accounts) WHERE id % 5 = 0;
            INSERT INTO \(accounts) SELECT id, 'n' || id FROM generate_series(3001, 3600) AS s(id) WHERE \(SlotExpression(column: "id", type: .bigint).filter(slots: f.map.slots(of: 0)));
            """)

        let resumed = try await Rebalancer.open(file: RebalanceJournalFile(path: path), fleet: fakes.fleet, console: console.console)
        #expect(resumed.journal.nextStep() == .catchUp(move: 0))
        let summary = try await resumed.run()
        #expect(summary.moves == 1)
        // Three versions: copies on the target, the cutover, copies withdrawn after the cleanup.
        #expect(summary.mapVersion == f.map.version + 3)
        #expect(resumed.journal.state == .done)
        #expect((resumed.journal.moves[0].pauseMs ?? -1) >= 0)
        #expect((resumed.journal.moves[0].rowsDeleted ?? 0) > 0)
        await fakes.stop()

        let newMap = try f.map.moving(move.slots, to: "s1")
        #expect(fakes.proxies.allSatisfy { $0.mapVersion == f.map.version + 3 })
        #expect(fakes.proxies.allSatisfy { $0.map?.slotOwners == newMap.slotOwners && $0.map?.copies == [:] })
        let requests = fakes.log.withLockedValue { $0 }
        #expect(requests.filter { $0.hasSuffix("POST /slots/pause") }.count == 2)
        #expect(requests.filter { $0.hasSuffix("POST /slots/resume") }.count == 2)
        let bodies = fakes.proxies[0].state.withLockedValue { $0.putBodies }
        #expect(bodies.count == 3)
        #expect(bodies.count > 1 && bodies[1].contains("\"fences\":{\"s1\":\""), "the target's WAL position goes along as the fence")
        let announced = try bodies.first.map { try ShardMap.decode(Data($0.utf8), environment: [:]) }
        #expect(announced?.copies == [1: Set(move.slots)], "the target's copies are announced before the copy")

        // Every acknowledged change is on the new owner exactly once; nothing of the moved slots stays behind.
        let s0 = Set(f.map.slots(of: 0))
        var expectedAccounts: [String] = []
        for id in 1...3600 {
            let slot = SlotHash.slot(bigint: Int64(id))
            let onS0 = s0.contains(slot)
            if id > 3000 && !onS0 { continue }
            if onS0 && id <= 3000 && id % 5 == 0 { continue }
            expectedAccounts.append("\(id)|\(id > 3000 ? "n" : (onS0 && id % 3 == 0 ? "u" : "a"))\(id)")
        }
        try f.expectPlacement(f.accounts, key: "id", keyType: .bigint, value: "v", expected: expectedAccounts, map: newMap)
        let expectedTokens = (1...1000).map { "tok-\($0)|t" }
        try f.expectPlacement(f.tokens, key: "token", keyType: .text, value: "v", expected: expectedTokens, map: newMap)
        #expect(try f.cluster.leftovers() == [])
        // The schema of events was copied to s1 and its moved rows with it.
        let target = try f.cluster.connect(1)
        let moved = SlotExpression(column: "account_id", type: .bigint).filter(slots: move.slots)
        let onTarget = try target.query("SELECT count(*) FROM \(SQLText.identifier(f.events)) WHERE \(moved)").value()
        let expectedEvents = (1...3000).filter { Set(move.slots).contains(SlotHash.slot(bigint: Int64($0))) }.count
        #expect(onTarget == String(expectedEvents))
        #expect(try source.query("SELECT count(*) FROM \(SQLText.identifier(f.events)) WHERE \(moved)").value() == "0")
        // The reference table is untouched on both.
        for db in [source, target] {
            #expect(try db.query("SELECT string_agg(code, ',' ORDER BY code) FROM \(SQLText.identifier(f.countries))").value() == "de,fr")
        }
        // verify with the new map is clean; with the old map it reports the moved rows.
        let sessions = ShardSessions(map: newMap)
        defer { sessions.closeAll() }
        let report = try SlotVerifier(map: newMap, sessions: sessions).run()
        #expect(report.isClean, "\(report.render())")
        let oldSessions = ShardSessions(map: f.map)
        defer { oldSessions.closeAll() }
        let stale = try SlotVerifier(map: f.map, sessions: oldSessions, slots: move.slots).run()
        #expect(!stale.isClean)
        #expect(stale.findings.allSatisfy { $0.holder == "s1" && $0.owner == "s0" && !$0.identical })
    }

    @Test func abortDuringTheCopyLeavesNothingBehind() async throws {
        let f = try Fixture()
        defer { f.cluster.cleanUp(tables: f.all) }
        try f.create()
        let plan = try f.plan
        let fakes = try await FakeFleet(map: f.map)
        let path = f.journalPath()
        do {
            let first = try await Rebalancer.begin(plan: plan, map: f.map, fleet: fakes.fleet, file: RebalanceJournalFile(path: path),
                                                   console: RecordingConsole().console)
            try first.prepareSchema(0)
            try first.publish(0)
            try await first.subscribe(0)
            try await first.catchUp(0)
            first.sessions.closeAll()
        }
        let target = try f.cluster.connect(1)
        let moved = SlotExpression(column: "id", type: .bigint).filter(slots: plan.moves[0].slots)
        #expect(try target.query("SELECT count(*) > 0 FROM \(SQLText.identifier(f.accounts)) WHERE \(moved)").value() == "t", "rows were copied")

        do {
            let aborting = try await Rebalancer.open(file: RebalanceJournalFile(path: path), fleet: fakes.fleet, console: RecordingConsole().console)
            try await aborting.abort()
            #expect(aborting.journal.state == .aborted)
            #expect(aborting.journal.moves[0].phase == .aborted)
        }
        #expect(try f.cluster.leftovers() == [])
        #expect(try target.query("SELECT count(*) FROM \(SQLText.identifier(f.accounts)) WHERE \(moved)").value() == "0")
        #expect(try target.query("SELECT to_regclass($1) IS NULL", [SQLText.identifier(f.events)]).value() == "t",
                "the table the rebalance created on the target is gone")
        // Copies announced, then withdrawn by the abort: the old slots, no copies, two versions later.
        #expect(fakes.proxies.allSatisfy { $0.mapVersion == f.map.version + 2 }, "the old map serves")
        #expect(fakes.proxies.allSatisfy { $0.map?.slotOwners == f.map.slotOwners && $0.map?.copies == [:] })
        let sessions = ShardSessions(map: f.map)
        defer { sessions.closeAll() }
        #expect(try SlotVerifier(map: f.map, sessions: sessions).run().isClean)
        // A second abort has nothing to do; resume refuses an aborted run.
        let again = try await Rebalancer.open(file: RebalanceJournalFile(path: path), fleet: fakes.fleet, console: RecordingConsole().console)
        await #expect(throws: RebalanceError.self) { try await again.abort() }
        await fakes.stop()
    }

    @Test func aCutoverThatCannotPauseLeavesTheOldMapAndResumeFinishesLater() async throws {
        let f = try Fixture()
        defer { f.cluster.cleanUp(tables: f.all) }
        try f.create(accounts: 500)
        let fakes = try await FakeFleet(map: f.map, pause: .timeout504)
        let path = f.journalPath()
        do {
            let first = try await Rebalancer.begin(plan: try f.plan, map: f.map, fleet: fakes.fleet,
                                                   file: RebalanceJournalFile(path: path), console: RecordingConsole().console)
            await #expect {
                try await first.run()
            } throws: { error in
                guard case RebalanceError.cutoverAborted = error else { return false }
                return true
            }
            #expect(first.journal.moves[0].phase == .caughtUp)
            #expect(first.journal.lastError?.contains("old map keeps serving") == true)
        }
        #expect(fakes.proxies.allSatisfy { $0.map?.slotOwners == f.map.slotOwners }, "the old map serves")
        for proxy in fakes.proxies { proxy.state.withLockedValue { $0.pause = .drain } }
        let resumed = try await Rebalancer.open(file: RebalanceJournalFile(path: path), fleet: fakes.fleet, console: RecordingConsole().console)
        try await resumed.run()
        await fakes.stop()
        #expect(fakes.proxies.allSatisfy { $0.mapVersion == f.map.version + 3 && $0.map?.copies == [:] })
        #expect(try f.cluster.leftovers() == [])
        let newMap = try f.map.moving(try f.plan.moves[0].slots, to: "s1")
        let sessions = ShardSessions(map: newMap)
        defer { sessions.closeAll() }
        #expect(try SlotVerifier(map: newMap, sessions: sessions).run().isClean)
    }

    @Test func preflightRefusesWhatWouldBreakAndChangesNothing() async throws {
        let f = try Fixture()
        defer { f.cluster.cleanUp(tables: f.all + [f.cluster.prefix + "_bad"]) }
        try f.create(accounts: 200)
        let bad = f.cluster.prefix + "_bad"
        var map = f.map
        map.tables[bad] = .sharded(key: "account_id", type: .bigint)
        let source = try f.cluster.connect(0)
        try source.execute("CREATE TABLE \(SQLText.identifier(bad)) (id bigint PRIMARY KEY, account_id bigint)")
        // The target already holds a row of a moving slot.
        let plan = try RebalancePlanner.plan(from: "s0", count: 40, to: "s1", map: map)
        let slot = plan.moves[0].slots[0]
        let stray = (1...100_000).first { SlotHash.slot(bigint: Int64($0)) == slot }!
        let target = try f.cluster.connect(1)
        try target.execute("INSERT INTO \(SQLText.identifier(f.accounts)) VALUES (\(stray), 'stray')")

        let fakes = try await FakeFleet(map: map)
        defer { Task { await fakes.stop() } }
        await #expect {
            try await Rebalancer.begin(plan: plan, map: map, fleet: fakes.fleet, file: RebalanceJournalFile(path: f.journalPath()),
                                       console: RecordingConsole().console)
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("preflight failed, nothing was changed")
                && text.contains("the shard key \"account_id\" is not part of its replica identity")
                && text.contains("already holds 1 row(s) of the moving slots")
        }
        #expect(try f.cluster.leftovers() == [])

        // Another rebalance holding the lock on a shard.
        try target.execute("DELETE FROM \(SQLText.identifier(f.accounts)) WHERE id = \(stray)")
        try source.execute("DROP TABLE \(SQLText.identifier(bad))")
        let holder = try f.cluster.connect(1)
        #expect(try holder.query(RebalanceSQL.tryLock).value() == "t")
        await #expect {
            try await Rebalancer.begin(plan: try f.plan, map: f.map, fleet: fakes.fleet, file: RebalanceJournalFile(path: f.journalPath()),
                                       console: RecordingConsole().console)
        } throws: { error in
            "\(error)".contains("another rebalance is running on s1")
        }
        holder.close()
        // A leftover publication of another rebalance.
        try source.execute("CREATE PUBLICATION shardgate_rb_deadbeef_1")
        await #expect {
            try await Rebalancer.begin(plan: try f.plan, map: f.map, fleet: fakes.fleet, file: RebalanceJournalFile(path: f.journalPath()),
                                       console: RecordingConsole().console)
        } throws: { error in
            "\(error)".contains("s0 has objects of another rebalance: publication shardgate_rb_deadbeef_1")
        }
        try source.execute("DROP PUBLICATION shardgate_rb_deadbeef_1")
    }
}
