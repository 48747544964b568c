import Foundation
import HummingbirdTesting
import Prometheus
import ProxyCore
import ShardMap
import Testing

/// Parses Prometheus text format 0.0.4 strictly enough to catch malformed output: every line is a
/// comment (`# TYPE name type`, `# HELP ...`) or `name{label="value",...} number`.
struct PrometheusText {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var samples: [Sample] = []
    var types: [String: String] = [:]

    init(_ text: String) throws {
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else {
                    throw ExpectationFailure("bad TYPE line: \(line)")
                }
                self.types[String(parts[2])] = String(parts[3])
                continue
            }
            if line.hasPrefix("#") { continue }
            guard let space = line.lastIndex(of: " ") else { throw ExpectationFailure("no value: \(line)") }
            let series = line[..<space]
            let valueText = line[line.index(after: space)...]
            guard let value = Double(valueText) ?? (valueText.lowercased() == "nan" ? .nan : nil) else {
                throw ExpectationFailure("bad value: \(line)")
            }
            var name = String(series)
            var labels: [String: String] = [:]
            if let open = series.firstIndex(of: "{") {
                guard series.hasSuffix("}") else { throw ExpectationFailure("unclosed labels: \(line)") }
                name = String(series[..<open])
                let inner = series[series.index(after: open)..<series.index(before: series.endIndex)]
                for pair in inner.split(separator: ",") {
                    guard let equals = pair.firstIndex(of: "="), pair[pair.index(after: equals)...].hasPrefix("\""),
                          pair.hasSuffix("\"") else { throw ExpectationFailure("bad label: \(pair) in \(line)") }
                    labels[String(pair[..<equals])] = String(pair[pair.index(equals, offsetBy: 2)..<pair.index(before: pair.endIndex)])
                }
            }
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }) else {
                throw ExpectationFailure("bad metric name: \(line)")
            }
            self.samples.append(Sample(name: name, labels: labels, value: value))
        }
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        self.samples.first { $0.name == name && $0.labels == labels }?.value
    }
}

@Suite("ProxyMetrics through swift-prometheus")
struct ProxyMetricsPrometheusTests {
    static func make() -> (ProxyMetrics, PrometheusCollectorRegistry) {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[ProxyMetrics.queryDurationLabel] = ProxyMetrics.queryDurationBuckets
        return (ProxyMetrics(map: AdminFixtures.map(), factory: factory), registry)
    }

    @Test func queriesAreCountedByRouteAndRoleWithLatencyHistograms() throws {
        let (metrics, registry) = Self.make()
        for _ in 0..<3 { metrics.queryFinished(route: .single, role: .replica, nanoseconds: 300_000) }
        metrics.queryFinished(route: .all, role: .primary, nanoseconds: 20_000_000)
        metrics.queryFailed(route: .all)
        let text = try PrometheusText(registry.emitToString())
        #expect(text.types["shardgate_queries_total"] == "counter")
        #expect(text.types["shardgate_query_duration_seconds"] == "histogram")
        #expect(text.value("shardgate_queries_total", ["route": "single", "role": "replica"]) == 3)
        #expect(text.value("shardgate_queries_total", ["route": "all", "role": "primary"]) == 1)
        #expect(text.value("shardgate_queries_total", ["route": "multi", "role": "primary"]) == 0, "pre-created")
        #expect(text.value("shardgate_query_errors_total", ["route": "all"]) == 1)
        let le = ["route": "single", "role": "replica"]
        #expect(text.value("shardgate_query_duration_seconds_bucket", le.merging(["le": "0.00025"]) { $1 }) == 0)
        #expect(text.value("shardgate_query_duration_seconds_bucket", le.merging(["le": "0.0005"]) { $1 }) == 3)
        #expect(text.value("shardgate_query_duration_seconds_count", le) == 3)

        let counters = metrics.counters()
        #expect(counters.queries[.single] == 3)
        #expect(counters.queries[.all] == 1)
        #expect(counters.queries[.multi] == 0)
        #expect(counters.totalQueries == 4)
        #expect(counters.errors == 1)
    }

    @Test func readsAreCountedPerShardAndFencedReadsSeparately() throws {
        let (metrics, registry) = Self.make()
        metrics.readRouted(shard: 0, role: .replica)
        metrics.readRouted(shard: 0, role: .primary, fenced: true)
        metrics.readRouted(shard: 1, role: .primary)
        metrics.readRouted(shard: 9, role: .primary)  // unknown shard: counted in totals only, never a crash
        let text = try PrometheusText(registry.emitToString())
        #expect(text.value("shardgate_reads_total", ["shard": "s0", "role": "replica"]) == 1)
        #expect(text.value("shardgate_reads_total", ["shard": "s0", "role": "primary"]) == 1)
        #expect(text.value("shardgate_fenced_reads_total", ["shard": "s0"]) == 1)
        #expect(text.value("shardgate_fenced_reads_total", ["shard": "s1"]) == 0)
        let counters = metrics.counters()
        #expect(counters.replicaReads == 1 && counters.primaryReads == 3 && counters.fencedReads == 1)
    }

    @Test func lagGaugesPerReplicaAndServersThatLeaveTheMapDisappear() throws {
        let (metrics, registry) = Self.make()
        let map = AdminFixtures.map()
        metrics.record(lag: AdminFixtures.lag(for: map))
        var text = try PrometheusText(registry.emitToString())
        let s0 = ["shard": "s0", "server": "postgresql://postgres@127.0.0.1:5501/app"]
        let s1 = ["shard": "s1", "server": "postgresql://postgres@127.0.0.1:5503/app"]
        #expect(text.types["shardgate_replica_lag_bytes"] == "gauge")
        #expect(text.value("shardgate_replica_lag_bytes", s0) == 0)
        #expect(text.value("shardgate_replica_lag_seconds", s0) == 0)
        #expect(text.value("shardgate_replica_in_rotation", s0) == 1)
        #expect(text.value("shardgate_replica_healthy", s1) == 0)
        #expect(text.value("shardgate_replica_lag_bytes", s1)?.isNaN == true, "unknown lag is NaN")
        #expect(text.value("shardgate_primary_healthy", ["shard": "s1", "server": "postgresql://postgres@127.0.0.1:5502/app"]) == 1)
        #expect(!registry.emitToString().contains("pw0"), "URLs without passwords")

        metrics.record(lag: AdminFixtures.lag(for: AdminFixtures.map()).dropping(shard: 1, replica: 0))
        text = try PrometheusText(registry.emitToString())
        #expect(text.value("shardgate_replica_lag_bytes", s1) == nil)
        #expect(text.value("shardgate_replica_lag_bytes", s0) == 0)
    }

    @Test func poolClientMapAndPauseGauges() throws {
        let (metrics, registry) = Self.make()
        let pools = [
            ProxyStatus.PoolInfo(shard: "s0", role: .replica, server: "r1", size: 10, busy: 2, idle: 1, waiting: 0),
            ProxyStatus.PoolInfo(shard: "s0", role: .replica, server: "r2", size: 10, busy: 3, idle: 0, waiting: 4),
            ProxyStatus.PoolInfo(shard: "s0", role: .primary, server: "p", size: 10, busy: 1, idle: 5, waiting: 0),
        ]
        metrics.record(status: ProxyStatus(map: AdminFixtures.map(), pools: pools, clients: 12, pausedSlots: [1, 2, 3]))
        let text = try PrometheusText(registry.emitToString())
        let replicas = ["shard": "s0", "role": "replica"]
        #expect(text.value("shardgate_pool_size", replicas) == 20)
        #expect(text.value("shardgate_pool_busy", replicas) == 5)
        #expect(text.value("shardgate_pool_idle", replicas) == 1)
        #expect(text.value("shardgate_pool_waiting", replicas) == 4)
        #expect(text.value("shardgate_pool_idle", ["shard": "s0", "role": "primary"]) == 5)
        #expect(text.value("shardgate_clients") == 12)
        #expect(text.value("shardgate_map_version") == 3)
        #expect(text.value("shardgate_paused_slots") == 3)
    }

    @Test func theMetricsEndpointServesPrometheusTextWithFreshGauges() async throws {
        let harness = await AdminHarness()
        harness.metrics.queryFinished(route: .any, role: .replica, nanoseconds: 1000)
        await harness.backend.set(
            pools: [ProxyStatus.PoolInfo(shard: "s1", role: .primary, server: "p", size: 4, busy: 1, idle: 2, waiting: 0)],
            clients: 2, counters: ProxyCounters())
        try await harness.test { client in
            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
            let text = try PrometheusText(String(buffer: response.body))
            #expect(text.value("shardgate_queries_total", ["route": "any", "role": "replica"]) == 1)
            #expect(text.value("shardgate_pool_busy", ["shard": "s1", "role": "primary"]) == 1, "refreshed at scrape")
            #expect(text.value("shardgate_clients") == 2)
            #expect(text.value("shardgate_replica_in_rotation",
                               ["shard": "s0", "server": "postgresql://postgres@127.0.0.1:5501/app"]) == 1)
        }
    }
}

extension LagSnapshot {
    /// The snapshot without one replica (as after a map change).
    func dropping(shard: Int, replica: Int) -> LagSnapshot {
        var copy = self
        copy.shards[shard].replicas.remove(at: replica)
        return copy
    }
}
