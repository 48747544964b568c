import ShardMap
@testable import SQLRouting
import Testing

@Suite("Statement analysis")
struct StatementAnalysisTests {
    let tables = RoutingFixtures.designMap.tables

    func analyze(_ sql: String) throws -> SQLAnalysis {
        try SQLAnalyzer.analyze(sql, tables: tables)
    }

    @Test("statement kinds", arguments: [
        ("SELECT 1", StatementKind.read),
        ("INSERT INTO countries (code) VALUES ('FR')", .write),
        ("WITH d AS (DELETE FROM users WHERE id = 1 RETURNING id) SELECT * FROM d", .write),
        ("CREATE TABLE users (id bigint)", .ddl),
        ("BEGIN", .transaction(.begin(readOnly: false))),
        ("BEGIN READ ONLY", .transaction(.begin(readOnly: true))),
        ("START TRANSACTION READ ONLY, ISOLATION LEVEL SERIALIZABLE", .transaction(.begin(readOnly: true))),
        ("BEGIN READ WRITE", .transaction(.begin(readOnly: false))),
        ("COMMIT", .transaction(.commit)),
        ("ABORT", .transaction(.rollback)),
        ("SAVEPOINT a", .transaction(.savepoint("a"))),
        ("RELEASE a", .transaction(.release("a"))),
        ("ROLLBACK TO SAVEPOINT a", .transaction(.rollbackTo("a"))),
        ("PREPARE TRANSACTION 'g1'", .transaction(.prepare(gid: "g1"))),
        ("COMMIT PREPARED 'g1'", .transaction(.commitPrepared(gid: "g1"))),
        ("ROLLBACK PREPARED 'g1'", .transaction(.rollbackPrepared(gid: "g1"))),
        ("SET search_path TO app", .set(name: "search_path", isLocal: false)),
        ("SET LOCAL TimeZone = 'UTC'", .set(name: "timezone", isLocal: true)),
        ("SET TIME ZONE LOCAL", .set(name: "timezone", isLocal: false)),
        ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", .set(name: "session characteristics", isLocal: false)),
        ("RESET statement_timeout", .reset(name: "statement_timeout")),
        ("RESET ALL", .reset(name: nil)),
        ("SHOW DateStyle", .show(name: "datestyle")),
        ("LISTEN x", .utility("ListenStmt")),
        ("", .empty),
    ])
    func kind(_ sql: String, _ expected: StatementKind) throws {
        #expect(try analyze(sql).kind == expected)
    }

    @Test("tables with schemas and aliases; CTE names are not tables")
    func tablesAndAliases() throws {
        let analysis = try analyze("""
            WITH recent AS (SELECT * FROM public.orders o WHERE o.user_id = 1)
            SELECT * FROM "Users" u JOIN recent r ON r.user_id = u.id, app.Items, pg_catalog.pg_class
            """)
        let tables = analysis.statements[0].tables
        #expect(tables == [
            TableReference(name: "orders", alias: "o"),
            TableReference(name: "Users", alias: "u"),
            TableReference(schema: "app", name: "items"),
            TableReference(schema: "pg_catalog", name: "pg_class"),
        ])
        #expect(tables[2].mapName == "app.items")
        #expect(tables[3].isCatalog)
        let placements = analysis.statements[0].occurrences.map(\.placement)
        #expect(placements == [.sharded(key: "user_id", type: .bigint), .unlisted, .unlisted, .catalog])
    }

    @Test("shard-key predicates point at literals and parameters")
    func predicates() throws {
        let analysis = try analyze("SELECT * FROM users WHERE (id = 7 OR id IN ($1, -3)) AND name = 'x'")
        let occurrence = try #require(analysis.statements.first?.occurrences.first)
        #expect(occurrence.key == .any([
            .values([.literal(index: 0, negated: false)]),
            .values([.parameter(1), .literal(index: 1, negated: true)]),
        ]))
        #expect(analysis.literalValue(0) == "7")
        #expect(analysis.literalValue(2) == "x")
        #expect(analysis.statements[0].keyParameters == [1])
    }

    @Test("INSERT rows and the UPDATE-of-key flag")
    func insertRowsAndKeyUpdates() throws {
        let insert = try analyze("INSERT INTO orders (total, user_id) VALUES (1, 5), (2, $1), (3, DEFAULT)")
        #expect(insert.statements[0].occurrences[0].insertRows == [.literal(index: 1, negated: false), .parameter(1), nil])
        let update = try analyze("UPDATE orders SET user_id = 3 WHERE user_id = 2")
        #expect(update.statements[0].updatedShardKey == "orders")
        let fine = try analyze("UPDATE orders SET total = 3 WHERE user_id = 2")
        #expect(fine.statements[0].updatedShardKey == nil)
    }

    @Test("result shape of the top-level SELECT")
    func resultShape() throws {
        let shape = try analyze("""
            SELECT DISTINCT user_id, count(*), sum(total) OVER () FROM orders GROUP BY user_id ORDER BY 1 LIMIT 5
            """).statements[0].resultShape
        #expect(shape == [.distinct, .aggregate, .window, .groupBy, .orderBy, .limit])
        #expect(try analyze("SELECT 1 UNION SELECT 2").statements[0].resultShape == [.setOperation])
        #expect(try analyze("SELECT * FROM users WHERE id = 1").statements[0].resultShape == [])
        let plan = try RoutePlanner.plan(analyze("SELECT count(*) FROM users"), map: RoutingFixtures.designMap)
        #expect(plan.resultShape == [.aggregate])
        #expect(plan.target == .allShards)
    }

    @Test("syntax errors carry PostgreSQL's message and 1-based cursor position")
    func syntaxErrors() {
        #expect(throws: RouteError(sqlState: "42601", message: "syntax error at or near \"FORM\"", position: 10)) {
            try analyze("SELECT * FORM users")
        }
        #expect(throws: RouteError(sqlState: "42601", message: "syntax error at end of input", position: 27)) {
            try analyze("SELECT * FROM users WHERE ")
        }
        // The position counts characters, not bytes (`FORM` is taken as a column alias here).
        #expect(throws: RouteError(sqlState: "42601", message: "syntax error at or near \"users\"", position: 19)) {
            try analyze("SELECT 'äöü' FORM users")
        }
        #expect(throws: RouteError(sqlState: "42601", message: "unterminated quoted string at or near \"'abc\"",
                                   position: 8)) {
            try analyze("SELECT 'abc")
        }
    }

    @Test("leading comment overrides, not comments elsewhere")
    func overrides() throws {
        #expect(try analyze("/* shard: s1 */ SELECT 1").override == .shard("s1"))
        #expect(try analyze("  /* SHARD_KEY = 'a b' */\n-- note\nSELECT 1").override == .shardKey("a b"))
        #expect(try analyze("-- shard_key: 42\nSELECT 1").override == .shardKey("42"))
        #expect(try analyze("/* trace: 1 */ /* shard: s0 */ SELECT 1").override == .shard("s0"))
        #expect(try analyze("SELECT 1 /* shard: s1 */").override == nil)
        #expect(try analyze("/* shardy: s1 */ SELECT 1").override == nil)
    }

    @Test("unlisted tables go to the named shard, alone or with co-located keys")
    func unlistedTables() throws {
        let map = RoutingFixtures.extendedMap
        func route(_ sql: String) throws -> RoutePlan {
            try RoutePlanner.plan(SQLAnalyzer.analyze(sql, tables: map.tables), map: map)
        }
        #expect(try route("SELECT * FROM widgets").target == .shard(0))
        #expect(try route("INSERT INTO widgets (id) VALUES (1)").target == .shard(0))
        #expect(try route("CREATE TABLE widgets (id int)").target == .shard(0))
        #expect(try route("SELECT * FROM widgets w JOIN users u ON u.id = w.user_id WHERE u.id = 2").target == on(2))
        #expect(throws: RouteError.self) { try route("SELECT * FROM widgets w JOIN users u ON u.id = w.user_id") }
        #expect(throws: RouteError.self) { try route("DROP TABLE widgets, users") }
        #expect(try route("CREATE TABLE users (id bigint)").target == .allShards)
    }

    @Test("uuid keys from literals and binary parameters")
    func uuidKeys() throws {
        let map = RoutingFixtures.extendedMap
        for key in RoutingFixtures.uuidHashes.keys {
            let expected = RoutePlan.Target.shard(RoutingFixtures.shard(uuid: key))
            let literal = try RoutePlanner.plan(
                SQLAnalyzer.analyze("SELECT * FROM devices WHERE id = '\(key)'", tables: map.tables), map: map)
            #expect(literal.target == expected)
            let braced = try RoutePlanner.plan(SQLAnalyzer.analyze(
                "SELECT * FROM devices WHERE id = '{\(key.uppercased())}'::uuid", tables: map.tables), map: map)
            #expect(braced.target == expected)
            let bytes = try #require(SlotHash.parseUUID(key))
            let binary = try RoutePlanner.plan(
                SQLAnalyzer.analyze("SELECT * FROM devices WHERE id = $1", tables: map.tables), map: map,
                parameters: [.binary(bytes, typeOID: 2950)])
            #expect(binary.target == expected)
        }
        #expect(throws: RouteError.invalidKey("nope", type: "uuid")) {
            try RoutePlanner.plan(SQLAnalyzer.analyze("INSERT INTO devices (id) VALUES ('nope')", tables: map.tables),
                                  map: map)
        }
    }

    @Test("the reference hashes give DESIGN §3's and the golden data's slots")
    func fixtureSanity() {
        #expect(RoutingFixtures.slot(hash: RoutingFixtures.bigintHashes[1]!) == 952)
        #expect(RoutingFixtures.slot(hash: RoutingFixtures.bigintHashes[42]!) == 610)
        #expect(RoutingFixtures.slot(hash: RoutingFixtures.textHashes["user-1"]!) == 245)
        #expect(RoutingFixtures.shard(bigint: 1) == 1)
        #expect(RoutingFixtures.shard(bigint: 2) == 0)
    }
}
