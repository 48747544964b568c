import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
import ProxyCore
import ProxyServer
import ShardMap
import Testing

/// A LagMonitor running against the test cluster, with the snapshots it publishes.
final class RunningLagMonitor: Sendable {
    let monitor: LagMonitor
    let published = NIOLockedValueBox(0)
    private let task: Task<Void, Never>

    init(map: ShardMap, sampleTimeout: Duration? = nil) {
        let published = self.published
        var logger = Logger(label: "lag-monitor-tests")
        logger.logLevel = .critical
        let monitor = LagMonitor(map: map, environment: TestCluster.environment, sampleTimeout: sampleTimeout, logger: logger) { _ in
            published.withLockedValue { $0 += 1 }
        }
        self.monitor = monitor
        self.task = Task { await monitor.run() }
    }

    /// Polls `latest()` until `condition` holds; fails with `what` and the last snapshot after `seconds`.
    @discardableResult
    func wait(_ what: String, seconds: Double = 20, until condition: (LagSnapshot) -> Bool) async throws -> LagSnapshot {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let snapshot = self.monitor.latest()
            if condition(snapshot) { return snapshot }
            guard Date() < deadline else {
                throw MonitorTimeout(what: what, snapshot: snapshot)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func stop() async {
        self.monitor.shutdown()
        await self.task.value
    }

    struct MonitorTimeout: Error, CustomStringConvertible {
        var what: String
        var snapshot: LagSnapshot
        var description: String { "timed out waiting for \(self.what); last snapshot: \(self.snapshot)" }
    }
}

@Suite("LagMonitor against the test cluster", .serialized)
struct LagMonitorTests {
    /// The test cluster's map with these replica settings.
    static func map(maxLagBytes: Int = 16 << 20, maxLagMs: Int = 600_000, pollMs: Int = 50) throws -> ShardMap {
        var map = try TestCluster.map()
        map.replicas = ReplicaConfig(maxLagBytes: maxLagBytes, maxLagMs: maxLagMs, pollMs: pollMs)
        return map
    }

    static func connect(_ url: PostgresURL, id: Int) async throws -> PostgresConnection {
        let server = BackendServer(shard: "test", role: .primary, url: url, environment: TestCluster.environment)
        return try await TestCluster.connect(host: server.host, port: server.port, user: server.user, password: server.password,
                                             database: server.database, id: id)
    }

    static func lsn(_ connection: PostgresConnection, _ sql: PostgresQuery) async throws -> LSN {
        for try await text in try await connection.query(sql, logger: TestCluster.logger).decode(String.self) {
            return try #require(LSN(text))
        }
        throw ExpectationFailed("no row")
    }

    static func count(_ connection: PostgresConnection, _ sql: PostgresQuery) async throws -> Int {
        for try await value in try await connection.query(sql, logger: TestCluster.logger).decode(Int.self) {
            return value
        }
        throw ExpectationFailed("no row")
    }

    struct ExpectationFailed: Error, CustomStringConvertible {
        var message: String
        init(_ message: String) { self.message = message }
        var description: String { self.message }
    }

    /// Waits until the replica has replayed the creation of `table` (commits are asynchronous here).
    static func waitForTable(_ table: String, on replica: PostgresConnection) async throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let rows = try await replica.query("SELECT pg_catalog.to_regclass(\(table)) IS NOT NULL", logger: TestCluster.logger)
            for try await exists in rows.decode(Bool.self) where exists {
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ExpectationFailed("table \(table) did not reach the replica within 20 s")
    }

    @Test func everyServerOfTheClusterIsSampledAndReplicasJoinRotation() async throws {
        let map = try Self.map()
        let running = RunningLagMonitor(map: map)
        // While other tests write, a replica's first samples can be behind the primary with neither a
        // replayed commit's timestamp nor an earlier primary sample to bound its age (lagMs unknown); the
        // next samples give one.
        let snapshot = try await running.wait("every replica in rotation, its lag measured") { snapshot in
            snapshot.shards.allSatisfy { shard in
                shard.primary.healthy && shard.replicas.allSatisfy { $0.inRotation && $0.lagBytes != nil && $0.lagMs != nil }
            }
        }
        await running.stop()
        #expect(snapshot.shards.map(\.name) == map.shards.map(\.name))
        for (index, shard) in snapshot.shards.enumerated() {
            #expect(shard.primary.url == map.shards[index].primary.redacted)
            #expect(shard.primary.walLSN != nil)
            #expect(!shard.primaryPositions.isEmpty)
            for replica in shard.replicas {
                #expect(replica.health == .healthy)
                #expect(replica.replayLSN != nil)
                #expect(replica.lagBytes != nil && replica.lagMs != nil)
            }
        }
        #expect(snapshot.sampledAtMillis != nil)
        #expect(running.published.withLockedValue { $0 } >= 2 * map.shards.count)
    }

    @Test func aReplicaWithReplayPausedLeavesRotationByBytesAndRejoinsAfterResume() async throws {
        let map = try Self.map(maxLagBytes: 8192)
        let shardIndex = map.shards.count - 1
        let shard = map.shards[shardIndex]
        let replicaURL = try #require(shard.replicas.first, "the test cluster's shards have a replica")
        let primary = try await Self.connect(shard.primary, id: 1)
        let replica = try await Self.connect(replicaURL, id: 2)
        let table = "sg_lagmon_\(UInt32.random(in: 0...UInt32.max))"
        try await primary.query("CREATE TABLE \(unescaped: table) (id int PRIMARY KEY, pad text)", logger: TestCluster.logger)
        let running = RunningLagMonitor(map: map)
        var problem: (any Error)?
        do {
            try await Self.waitForTable(table, on: replica)
            try await running.wait("the replica in rotation") { $0.shards[shardIndex].replicas[0].inRotation }

            try await replica.query("SELECT pg_catalog.pg_wal_replay_pause()", logger: TestCluster.logger)
            let inserted = Date()
            try await primary.query("INSERT INTO \(unescaped: table) SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g",
                                    logger: TestCluster.logger)
            let written = NIODeadline.now()
            let out = try await running.wait("the paused replica out of rotation") { snapshot in
                let state = snapshot.shards[shardIndex].replicas[0]
                return !state.inRotation && (state.lagBytes ?? 0) > 8192
            }
            let state = out.shards[shardIndex].replicas[0]
            #expect(state.healthy, "a lagging replica is healthy, just out of rotation")
            #expect(state.reason?.contains("max_lag_bytes 8192") == true, "\(state.reason ?? "nil")")
            #expect(try await Self.count(replica, "SELECT count(*)::int8 FROM \(unescaped: table)") == 0,
                    "replay really is paused")
            // The write's fence is not reached by the paused replica.
            let withFence = try await running.wait("a primary sample after the write") { $0.fence(shard: shardIndex, after: written) != nil }
            let fence = try #require(withFence.fence(shard: shardIndex, after: written))
            #expect(!withFence.replicaCanServe(shard: shardIndex, replica: 0, fence: fence))
            #expect(withFence.servingReplica(shard: shardIndex, fence: nil) == nil)

            try await replica.query("SELECT pg_catalog.pg_wal_replay_resume()", logger: TestCluster.logger)
            let back = try await running.wait("the replica back in rotation") { snapshot in
                snapshot.replicaCanServe(shard: shardIndex, replica: 0, fence: fence)
            }
            #expect(back.shards[shardIndex].replicas[0].reason == nil)
            #expect(try await Self.count(replica, "SELECT count(*)::int8 FROM \(unescaped: table)") == 2000,
                    "a replica that reached the fence has the write")
            #expect(Date().timeIntervalSince(inserted) < 60)
        } catch {
            problem = error
        }
        _ = try? await replica.query("SELECT pg_catalog.pg_wal_replay_resume()", logger: TestCluster.logger)
        _ = try? await primary.query("DROP TABLE IF EXISTS \(unescaped: table)", logger: TestCluster.logger)
        try? await primary.close()
        try? await replica.close()
        await running.stop()
        if let problem { throw ExpectationFailed(String(reflecting: problem)) }
    }

    @Test func aReplicaThatReachedTheFenceOfAWriteHasThatWrite() async throws {
        // Read-your-writes, end to end: fence = first primary position sampled after the write returned;
        // once a replica's replayed position reaches it, a read there sees the row.
        let map = try Self.map(pollMs: 20)
        let shardIndex = 0
        let shard = map.shards[shardIndex]
        let primary = try await Self.connect(shard.primary, id: 3)
        let replica = try await Self.connect(try #require(shard.replicas.first), id: 4)
        let table = "sg_lagmon_ryw_\(UInt32.random(in: 0...UInt32.max))"
        try await primary.query("CREATE TABLE \(unescaped: table) (id int PRIMARY KEY)", logger: TestCluster.logger)
        let running = RunningLagMonitor(map: map)
        var problem: (any Error)?
        do {
            try await Self.waitForTable(table, on: replica)
            for key in 1...25 {
                let before = try await Self.lsn(primary, """
                    WITH ins AS (INSERT INTO \(unescaped: table) VALUES (\(key)) RETURNING 1)
                    SELECT pg_catalog.pg_current_wal_lsn()::text FROM ins
                    """)
                let completed = NIODeadline.now()
                let snapshot = try await running.wait("fence \(key) reached by the replica") { snapshot in
                    guard let fence = snapshot.fence(shard: shardIndex, after: completed) else { return false }
                    return snapshot.replicaCanServe(shard: shardIndex, replica: 0, fence: fence)
                }
                let fence = try #require(snapshot.fence(shard: shardIndex, after: completed))
                #expect(fence > before, "the fence is past the write's own WAL")
                #expect(try await Self.count(replica, "SELECT count(*)::int8 FROM \(unescaped: table) WHERE id = \(key)") == 1,
                        "row \(key) is on the replica once it replayed the fence")
            }
        } catch {
            problem = error
        }
        _ = try? await primary.query("DROP TABLE IF EXISTS \(unescaped: table)", logger: TestCluster.logger)
        try? await primary.close()
        try? await replica.close()
        await running.stop()
        if let problem { throw ExpectationFailed(String(reflecting: problem)) }
    }

    @Test func aReplicaNobodyListensForIsUnreachable() async throws {
        var map = try Self.map()
        let port = try TestCluster.unusedPort()
        map.shards[0].replicas = [PostgresURL(host: "127.0.0.1", port: port, database: "app")]
        let running = RunningLagMonitor(map: map)
        let snapshot = try await running.wait("the replica reported unreachable") { snapshot in
            if case .unreachable = snapshot.shards[0].replicas[0].health { return snapshot.shards[0].primary.healthy }
            return false
        }
        await running.stop()
        let state = snapshot.shards[0].replicas[0]
        #expect(!state.inRotation && !state.healthy)
        #expect(state.health == .unreachable("connection refused") || state.reason?.contains("connection refused") == true,
                "\(state.health)")
        #expect(snapshot.servingReplica(shard: 0, fence: nil) == nil, "reads go to the primary")
    }

    @Test func aServerThatAcceptsButNeverAnswersTimesOut() async throws {
        var map = try Self.map(pollMs: 50)
        let (socket, port) = try TestCluster.silentListener()
        defer { close(socket) }
        map.shards[0].replicas = [PostgresURL(host: "127.0.0.1", port: port, database: "app")]
        let running = RunningLagMonitor(map: map, sampleTimeout: .milliseconds(300))
        let snapshot = try await running.wait("the silent replica reported", seconds: 10) { snapshot in
            if case .unreachable = snapshot.shards[0].replicas[0].health { return true }
            return false
        }
        // Other servers keep being sampled meanwhile.
        let before = snapshot.shards[0].primary.samples
        try await running.wait("the primary sampled on", seconds: 5) { $0.shards[0].primary.samples >= before + 5 }
        await running.stop()
        #expect(!snapshot.shards[0].replicas[0].inRotation)
        let health = "\(snapshot.shards[0].replicas[0].health)"
        #expect(health.contains("timed out") || health.contains("no answer"), "\(health)")
    }

    @Test func aPrimaryListedAsAReplicaIsReportedPromoted() async throws {
        var map = try Self.map()
        map.shards[0].replicas = [map.shards[0].primary]
        let running = RunningLagMonitor(map: map)
        let snapshot = try await running.wait("the replica reported promoted") { $0.shards[0].replicas[0].health == .promoted }
        await running.stop()
        #expect(!snapshot.shards[0].replicas[0].inRotation)
        #expect(snapshot.shards[0].replicas[0].reason?.hasPrefix("promoted") == true)
    }

    @Test func reconfigureFollowsANewMap() async throws {
        let map = try Self.map()
        let running = RunningLagMonitor(map: map)
        try await running.wait("replicas in rotation") { $0.shards[0].replicas.allSatisfy(\.inRotation) }
        var smaller = map
        smaller.version += 1
        smaller.shards = [map.shards[0]]
        smaller.slotOwners = Array(repeating: 0, count: map.slotCount)
        running.monitor.reconfigure(smaller)
        let snapshot = running.monitor.latest()
        #expect(snapshot.shards.count == 1)
        #expect(snapshot.shards[0].replicas[0].inRotation, "known state is kept")
        let sequence = snapshot.sequence
        try await running.wait("samples of the new map") { $0.sequence > sequence + 4 }
        await running.stop()
    }
}
