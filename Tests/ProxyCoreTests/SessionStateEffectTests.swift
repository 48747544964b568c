import PGWire
import ProxyCore
import SQLRouting
import Testing

@Suite struct SessionStateEffectTests {
    static let pinning: [String] = [
        "SET search_path = pg_catalog",
        "set statement_timeout to 1234",
        "SET ROLE sg_md5",
        "SET SESSION AUTHORIZATION sg_md5",
        "SET SESSION search_path TO app",
        "RESET search_path",
        "RESET ALL",
        "RESET ROLE",
        "SELECT set_config('search_path', 'x', false)",
        "select 1; select pg_catalog.set_config('role', 'sg_md5', false)",
        "DISCARD ALL",
        "LISTEN jobs",
        "PREPARE q AS SELECT 1",
        "LOAD 'auto_explain'",
        "SELECT 1; SET work_mem = '64MB'",
        "/* shard: s0 */ SET search_path = app",
        "CREATE TEMP TABLE scratch (a int)",
        "create temporary table scratch as select 1 as a",
        "SELECT 1 AS a INTO TEMP scratch",
        "CREATE TEMP VIEW v AS SELECT 1",
        "CREATE TEMP SEQUENCE s",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "SELECT pg_advisory_lock(42)",
        "select pg_try_advisory_lock_shared(7)",
    ]

    static let notPinning: [String] = [
        "SELECT 1",
        "SET application_name = 'reporting'",
        "SET TIME ZONE 'Asia/Tokyo'",
        "SET TimeZone = 'UTC'",
        "SET DateStyle = ISO",
        "SET client_encoding = 'LATIN1'",
        "RESET application_name",
        "SET LOCAL search_path = app",
        "SET LOCAL ROLE sg_md5",
        "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 7",
        "SELECT 'SET ROLE x'",
        "BEGIN",
        "SHOW search_path",
        "SELECT * FROM users WHERE id = 42",
        "this is not sql; SET ROLE x",
        "CREATE TABLE permanent (a int)",
        "DECLARE c CURSOR FOR SELECT 1",
        "SELECT pg_advisory_xact_lock(42)",
        "SELECT * FROM templates WHERE name = 'temp'",
        "SELECT 'hold on'",
    ]

    static func analysis(_ sql: String) throws -> SQLAnalysis {
        try SQLAnalyzer.analyze(sql, tables: [:])
    }

    @Test(arguments: pinning)
    func changesSessionState(sql: String) throws {
        #expect(SessionStateEffect.pinsBackend(try Self.analysis(sql)))
    }

    @Test(arguments: notPinning)
    func leavesSessionStateAlone(sql: String) throws {
        guard let analysis = try? Self.analysis(sql) else {
            // A syntax error: PostgreSQL refuses the whole string, so it changes nothing.
            return
        }
        #expect(!SessionStateEffect.pinsBackend(analysis))
    }

}
