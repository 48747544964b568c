import Metrics
import NIOConcurrencyHelpers
import ShardMap

/// The proxy's metrics, through the swift-metrics API (the executable bootstraps swift-prometheus behind
/// it; tests pass a factory of their own). Created once; every label is bounded (route kind, role, shard,
/// server URL without password — never query text).
///
/// The per-statement calls (`queryFinished`, `queryFailed`, `readRouted`) use handlers built at init and
/// one short lock for the counters `/status` reports; the rest (`record(status:)`, `record(lag:)`) run
/// when the admin port is scraped or the lag monitor publishes.
///
/// Metric names (Prometheus):
/// - `shardgate_queries_total{route,role}` counter, `shardgate_query_errors_total{route}` counter,
///   `shardgate_query_duration_seconds{route,role}` histogram (buckets: `queryDurationBuckets`)
/// - `shardgate_reads_total{shard,role}` counter (where reads went), `shardgate_fenced_reads_total{shard}`
///   counter (reads sent to the primary because a replica had not replayed the session's own write)
/// - `shardgate_pool_size|busy|idle|waiting{shard,role}` gauges, `shardgate_clients` gauge
/// - `shardgate_replica_lag_bytes|lag_seconds|in_rotation|healthy{shard,server}` gauges,
///   `shardgate_primary_healthy{shard,server}` gauge
/// - `shardgate_map_version`, `shardgate_paused_slots` gauges
public final class ProxyMetrics: Sendable {
    /// The label of the query-duration timer, for configuring its histogram buckets.
    public static let queryDurationLabel = "shardgate_query_duration_seconds"
    /// Histogram buckets suited to a proxy (most statements take well under a millisecond). Give them to
    /// `PrometheusMetricsFactory.durationHistogramBuckets[ProxyMetrics.queryDurationLabel]` before
    /// creating the metrics; swift-prometheus's defaults start at 5 ms.
    public static let queryDurationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    private struct ShardHandlers: Sendable {
        var name: String
        var reads: [Counter]  // by ServerRole.index
        var fenced: Counter
    }

    private struct LagGauges: Sendable {
        var gauges: [Gauge]
    }

    private struct State: Sendable {
        var queries = Array(repeating: 0, count: RouteKind.allCases.count)
        var errors = 0
        var reads = Array(repeating: 0, count: ServerRole.allCases.count)
        var fencedReads = 0
        var shards: [ShardHandlers] = []
        /// Per-server gauges by "shard|url" (replicas and primaries), made when first seen.
        var serverGauges: [String: LagGauges] = [:]
        /// Pool gauges by "shard|role".
        var poolGauges: [String: [Gauge]] = [:]
    }

    private let factory: any MetricsFactory
    private let queries: [Counter]  // [route.index * roles + role.index]
    private let durations: [Metrics.Timer]
    private let errors: [Counter]  // by route
    private let clients: Gauge
    private let mapVersion: Gauge
    private let pausedSlots: Gauge
    private let state: NIOLockedValueBox<State>

    /// Metrics for a proxy serving `map`, made with `factory` (the bootstrapped one unless given).
    public init(map: ShardMap, factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        var queries: [Counter] = []
        var durations: [Metrics.Timer] = []
        for route in RouteKind.allCases {
            for role in ServerRole.allCases {
                let dimensions = [("route", route.rawValue), ("role", role.rawValue)]
                queries.append(Counter(label: "shardgate_queries_total", dimensions: dimensions, factory: factory))
                durations.append(Metrics.Timer(label: Self.queryDurationLabel, dimensions: dimensions, factory: factory))
            }
        }
        self.queries = queries
        self.durations = durations
        self.errors = RouteKind.allCases.map {
            Counter(label: "shardgate_query_errors_total", dimensions: [("route", $0.rawValue)], factory: factory)
        }
        self.clients = Gauge(label: "shardgate_clients", factory: factory)
        self.mapVersion = Gauge(label: "shardgate_map_version", factory: factory)
        self.pausedSlots = Gauge(label: "shardgate_paused_slots", factory: factory)
        self.state = NIOLockedValueBox(State())
        self.update(map: map)
    }

    // MARK: Per statement

    /// A statement finished (its result reached the client) after `nanoseconds`.
    public func queryFinished(route: RouteKind, role: ServerRole, nanoseconds: Int64) {
        let index = route.index * ServerRole.allCases.count + role.index
        self.state.withLockedValue { $0.queries[route.index] += 1 }
        self.queries[index].increment()
        self.durations[index].recordNanoseconds(nanoseconds)
    }

    /// A statement ended in an ErrorResponse to the client.
    public func queryFailed(route: RouteKind) {
        self.state.withLockedValue { $0.errors += 1 }
        self.errors[route.index].increment()
    }

    /// A read of `shards[shard]` went to a server of `role`; `fenced`: it went to the primary only because
    /// no replica had replayed the session's own latest write yet.
    public func readRouted(shard: Int, role: ServerRole, fenced: Bool = false) {
        let handlers: ShardHandlers? = self.state.withLockedValue { state in
            state.reads[role.index] += 1
            if fenced { state.fencedReads += 1 }
            return state.shards.indices.contains(shard) ? state.shards[shard] : nil
        }
        guard let handlers else { return }
        handlers.reads[role.index].increment()
        if fenced { handlers.fenced.increment() }
    }

    /// The counters `/status` shows (totals since start).
    public func counters() -> ProxyCounters {
        self.state.withLockedValue { state in
            var queries: [RouteKind: Int] = [:]
            for route in RouteKind.allCases { queries[route] = state.queries[route.index] }
            return ProxyCounters(queries: queries, errors: state.errors,
                                 replicaReads: state.reads[ServerRole.replica.index],
                                 primaryReads: state.reads[ServerRole.primary.index], fencedReads: state.fencedReads)
        }
    }

    // MARK: Occasional

    /// The map changed: per-shard handlers follow its shard order (`readRouted(shard:)` indexes).
    public func update(map: ShardMap) {
        self.mapVersion.record(map.version)
        let factory = self.factory
        self.state.withLockedValue { state in
            state.shards = map.shards.map { shard in
                ShardHandlers(
                    name: shard.name,
                    reads: ServerRole.allCases.map {
                        Counter(label: "shardgate_reads_total", dimensions: [("shard", shard.name), ("role", $0.rawValue)],
                                factory: factory)
                    },
                    fenced: Counter(label: "shardgate_fenced_reads_total", dimensions: [("shard", shard.name)], factory: factory))
            }
        }
    }

    /// Sets the gauges of pools, clients, map version and paused slots from a status report.
    public func record(status: ProxyStatus) {
        self.clients.record(status.clients)
        self.mapVersion.record(status.mapVersion)
        self.pausedSlots.record(status.pausedSlots.count)
        var sums: [String: (shard: String, role: ServerRole, values: [Int])] = [:]
        for pool in status.pools {
            let key = "\(pool.shard)|\(pool.role.rawValue)"
            var entry = sums[key] ?? (pool.shard, pool.role, [0, 0, 0, 0])
            entry.values[0] += pool.size
            entry.values[1] += pool.busy
            entry.values[2] += pool.idle
            entry.values[3] += pool.waiting
            sums[key] = entry
        }
        let factory = self.factory
        let gauges: [(gauges: [Gauge], values: [Int])] = self.state.withLockedValue { state in
            sums.map { key, entry in
                let gauges = state.poolGauges[key] ?? ["size", "busy", "idle", "waiting"].map {
                    Gauge(label: "shardgate_pool_\($0)", dimensions: [("shard", entry.shard), ("role", entry.role.rawValue)],
                          factory: factory)
                }
                state.poolGauges[key] = gauges
                return (gauges, entry.values)
            }
        }
        for (gauges, values) in gauges {
            for (gauge, value) in zip(gauges, values) { gauge.record(value) }
        }
    }

    /// Sets the per-server replication gauges from a lag snapshot; servers no longer in it are removed.
    public func record(lag: LagSnapshot) {
        let factory = self.factory
        let updates: [(gauges: [Gauge], values: [Double])] = self.state.withLockedValue { state in
            var seen: Set<String> = []
            var updates: [([Gauge], [Double])] = []
            func gauges(_ key: String, _ names: [String], _ shard: String, _ url: String) -> [Gauge] {
                seen.insert(key)
                if let existing = state.serverGauges[key] { return existing.gauges }
                let made = names.map {
                    Gauge(label: $0, dimensions: [("shard", shard), ("server", url)], factory: factory)
                }
                state.serverGauges[key] = LagGauges(gauges: made)
                return made
            }
            for shard in lag.shards {
                let primary = shard.primary
                updates.append((gauges("\(shard.name)|\(primary.url)", ["shardgate_primary_healthy"], shard.name, primary.url),
                                [primary.healthy ? 1 : 0]))
                for replica in shard.replicas {
                    let names = ["shardgate_replica_lag_bytes", "shardgate_replica_lag_seconds",
                                 "shardgate_replica_in_rotation", "shardgate_replica_healthy"]
                    // Unknown lag (failed sample) is reported as NaN, which Prometheus shows as a gap.
                    let values: [Double] = [
                        replica.lagBytes.map { Double($0) } ?? .nan,
                        replica.lagMs.map { Double($0) / 1000 } ?? .nan,
                        replica.inRotation ? 1 : 0,
                        replica.healthy ? 1 : 0,
                    ]
                    updates.append((gauges("\(shard.name)|\(replica.url)", names, shard.name, replica.url), values))
                }
            }
            for (key, stale) in state.serverGauges where !seen.contains(key) {
                stale.gauges.forEach { $0.destroy() }
                state.serverGauges[key] = nil
            }
            return updates
        }
        for (gauges, values) in updates {
            for (gauge, value) in zip(gauges, values) { gauge.record(value) }
        }
    }
}

extension RouteKind {
    /// Position in `allCases`, for the handler arrays.
    var index: Int {
        switch self {
        case .single: return 0
        case .multi: return 1
        case .all: return 2
        case .any: return 3
        case .local: return 4
        }
    }
}

extension ServerRole {
    /// Position in `allCases`, for the handler arrays.
    var index: Int {
        switch self {
        case .primary: return 0
        case .replica: return 1
        }
    }
}
