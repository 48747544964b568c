import Foundation
import NIOConcurrencyHelpers
import ShardCtlKit
import ShardMap
import Testing

/// The real PostgreSQL cluster these tests run against: the one `scripts/test` starts (its map in
/// `SHARDGATE_TEST_MAP`), or any started with `scripts/pgcluster` (at least 2 shards, wal_level=logical).
/// Without it the tests FAIL and say how to run them; they never skip.
struct PostgresTestCluster {
    let map: ShardMap
    /// Prefix of this test's tables, so that tests never see each other's rows.
    let prefix: String

    static func load() throws -> PostgresTestCluster {
        guard let path = ProcessInfo.processInfo.environment["SHARDGATE_TEST_MAP"], !path.isEmpty else {
            Issue.record("""
                SHARDGATE_TEST_MAP is not set: these tests need a running cluster. Run scripts/test, or \
                scripts/pgcluster start --dir /tmp/rb-pg --shards 3 --base-port 37500 and export \
                SHARDGATE_TEST_MAP=/tmp/rb-pg/shardmap.json
                """)
            throw RebalanceError.invalidRequest("no test cluster")
        }
        let map = try ShardMap.load(path: path)
        guard map.shards.count >= 2 else {
            Issue.record("the cluster in \(path) has \(map.shards.count) shard(s); the rebalance tests need at least 2")
            throw RebalanceError.invalidRequest("too few shards")
        }
        return PostgresTestCluster(map: map, prefix: "rbt\(RebalanceJournal.makeID())")
    }

    func connect(_ shard: Int) throws -> PGConnection {
        let db = try PGConnection.connect(to: self.map.shards[shard].primary, label: self.map.shards[shard].name,
                                          applicationName: "shardctl-tests")
        try db.execute("SET client_min_messages = warning")
        return db
    }

    /// The cluster's map with only `tables` (and a bumped version so the fakes start from it).
    func mapWith(_ tables: [String: TableRule]) throws -> ShardMap {
        var map = self.map
        map.tables = tables
        map.unlistedTables = nil
        try map.validate()
        return map
    }

    /// Drops every table of this test on every shard, and anything a failed rebalance left.
    func cleanUp(tables: [String]) {
        for index in self.map.shards.indices {
            guard let db = try? self.connect(index) else { continue }
            for row in (try? db.query("SELECT subname FROM pg_subscription WHERE subname LIKE 'shardgate\\_rb\\_%'").rows) ?? [] {
                _ = try? db.execute("DROP SUBSCRIPTION IF EXISTS \(SQLText.identifier(row[0] ?? ""))")
            }
            for row in (try? db.query("SELECT pubname FROM pg_publication WHERE pubname LIKE 'shardgate\\_rb\\_%'").rows) ?? [] {
                _ = try? db.execute("DROP PUBLICATION IF EXISTS \(SQLText.identifier(row[0] ?? ""))")
            }
            _ = try? db.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'shardgate\\_rb\\_%' AND NOT active")
            for table in tables {
                _ = try? db.execute("DROP TABLE IF EXISTS \(SQLText.identifier(table)) CASCADE")
            }
        }
    }

    /// Objects named like a rebalance's on any shard (must be none after a finished or aborted run).
    func leftovers() throws -> [String] {
        var found: [String] = []
        for index in self.map.shards.indices {
            let db = try self.connect(index)
            found += try db.query("""
                SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE 'shardgate\\_rb\\_%'
                UNION ALL SELECT 'subscription ' || subname FROM pg_subscription WHERE subname LIKE 'shardgate\\_rb\\_%'
                UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE 'shardgate\\_rb\\_%' OR slot_name LIKE 'pg\\_%\\_sync\\_%'
                """).rows.map { "\(self.map.shards[index].name): \($0[0] ?? "")" }
        }
        return found
    }

    /// Every row of `table` on every shard: shard index → rows as text (`id|value`).
    func rows(_ table: String, key: String, value: String) throws -> [Int: [String]] {
        var result: [Int: [String]] = [:]
        for index in self.map.shards.indices {
            let db = try self.connect(index)
            guard try db.query("SELECT to_regclass($1) IS NOT NULL", [SQLText.identifier(table)]).value() == "t" else { continue }
            result[index] = try db.query("SELECT \(SQLText.identifier(key))::text || '|' || coalesce(\(SQLText.identifier(value))::text, '') FROM \(SQLText.identifier(table)) ORDER BY 1").rows.compactMap { $0[0] ?? nil }
        }
        return result
    }
}

/// Fake admin ports for a rebalance driven in-process (HTTP sequencing only; see FakeAdminProxy).
struct FakeFleet {
    let log = NIOLockedValueBox<[String]>([])
    let proxies: [FakeAdminProxy]
    let fleet: ProxyFleet

    init(map: ShardMap, count: Int = 2, pause: FakeAdminProxy.PauseBehavior = .drain) async throws {
        var proxies: [FakeAdminProxy] = []
        for index in 0..<count {
            proxies.append(try await FakeAdminProxy(name: "p\(index)", map: map, log: self.log, pause: pause))
        }
        self.proxies = proxies
        self.fleet = try ProxyFleet(proxies: proxies.map(\.url), token: "tok", timeout: .seconds(5))
    }

    func stop() async {
        for proxy in self.proxies { await proxy.stop() }
    }
}

/// A console that keeps what it printed.
final class RecordingConsole: @unchecked Sendable {
    let lines = NIOLockedValueBox<[String]>([])
    var console: RebalanceConsole {
        RebalanceConsole(live: false, quietInterval: 0) { text, _ in self.lines.withLockedValue { $0.append(text) } }
    }
    var text: String { self.lines.withLockedValue { $0.joined() } }
}
