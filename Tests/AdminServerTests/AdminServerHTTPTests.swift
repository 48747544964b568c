import AdminServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import ProxyCore
import ShardMap
import Testing

/// A server over a fake backend, with its own registry (never the global metrics system).
struct AdminHarness {
    let backend: FakeAdminBackend
    let registry = PrometheusCollectorRegistry()
    let metrics: ProxyMetrics
    let server: AdminServer

    init(token: String? = nil, backend: FakeAdminBackend = FakeAdminBackend(), environment: [String: String] = [:]) async {
        self.backend = backend
        var factory = PrometheusMetricsFactory(registry: self.registry)
        factory.durationHistogramBuckets[ProxyMetrics.queryDurationLabel] = ProxyMetrics.queryDurationBuckets
        self.metrics = ProxyMetrics(map: await backend.shardMap(), factory: factory)
        var logger = Logger(label: "admin-tests")
        logger.logLevel = .critical
        self.server = AdminServer(configuration: .init(host: "127.0.0.1", port: 0, token: token, environment: environment),
                                  backend: backend, metrics: self.metrics, registry: self.registry, logger: logger)
    }

    func test<Value>(_ body: @Sendable (any TestClientProtocol) async throws -> Value) async throws -> Value {
        try await self.server.application().test(.router, body)
    }
}

func json(_ response: TestResponse) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))
    guard let dictionary = object as? [String: Any] else {
        throw ExpectationFailure("not a JSON object: \(String(buffer: response.body))")
    }
    return dictionary
}

struct ExpectationFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

@Suite("Admin port: reading endpoints")
struct AdminReadEndpointTests {
    @Test func healthIsOK() async throws {
        try await AdminHarness().test { client in
            let response = try await client.execute(uri: "/health", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            #expect(String(buffer: response.body) == #"{"status":"ok"}"#)
        }
    }

    @Test func lagHasExactlyTheFieldsOfTheDesign() async throws {
        try await AdminHarness().test { client in
            let response = try await client.execute(uri: "/lag", method: .get)
            #expect(response.status == .ok)
            let object = try json(response)
            #expect(Set(object.keys) == ["replicas", "primaries", "sampled_at"])
            #expect(object["sampled_at"] as? String == "2025-12-01T15:00:34.567Z")
            let replicas = try #require(object["replicas"] as? [[String: Any]])
            #expect(replicas.count == 2)
            for replica in replicas {
                #expect(Set(replica.keys) == ["shard", "url", "healthy", "in_rotation", "replay_lsn", "lag_bytes", "lag_ms"])
            }
            #expect(replicas[0]["shard"] as? String == "s0")
            #expect(replicas[0]["url"] as? String == "postgresql://postgres@127.0.0.1:5501/app", "no password")
            #expect(replicas[0]["healthy"] as? Bool == true)
            #expect(replicas[0]["in_rotation"] as? Bool == true)
            #expect(replicas[0]["replay_lsn"] as? String == "0/3000060")
            #expect(replicas[0]["lag_bytes"] as? Int == 0)
            #expect(replicas[0]["lag_ms"] as? Int == 0)
            #expect(replicas[1]["healthy"] as? Bool == false)
            #expect(replicas[1]["in_rotation"] as? Bool == false)
            #expect(replicas[1]["replay_lsn"] is NSNull, "unknown values are null, not missing")
            #expect(replicas[1]["lag_bytes"] is NSNull)
            let primaries = try #require(object["primaries"] as? [[String: Any]])
            #expect(primaries.map { Set($0.keys) } == [["shard", "url", "healthy", "wal_lsn"], ["shard", "url", "healthy", "wal_lsn"]])
            #expect(primaries[1]["wal_lsn"] as? String == "0/5000000")
            #expect(primaries[1]["url"] as? String == "postgresql://postgres@127.0.0.1:5502/app")
            #expect(!String(buffer: response.body).contains("pw1"))
        }
    }

    @Test func lagBeforeTheFirstSampleHasNullSampledAt() async throws {
        let map = AdminFixtures.map()
        let harness = await AdminHarness(backend: FakeAdminBackend(map: map, lag: LagModel(map: map).snapshot))
        try await harness.test { client in
            let object = try json(try await client.execute(uri: "/lag", method: .get))
            #expect(object["sampled_at"] is NSNull)
        }
    }

    @Test func statusShowsMapPoolsClientsPausedSlotsCountersAndReasons() async throws {
        let harness = await AdminHarness()
        await harness.backend.set(
            pools: [ProxyStatus.PoolInfo(shard: "s0", role: .primary, server: "postgresql://postgres@127.0.0.1:5500/app",
                                         size: 20, busy: 2, idle: 3, waiting: 1)],
            clients: 7, counters: ProxyCounters(queries: [.single: 10, .all: 2], errors: 1, replicaReads: 6, primaryReads: 4,
                                                fencedReads: 3))
        _ = try await harness.backend.pause(slots: [0, 1, 2, 300], timeout: .seconds(1))
        try await harness.test { client in
            let object = try json(try await client.execute(uri: "/status", method: .get))
            #expect(object["map_version"] as? Int == 3)
            #expect(object["slot_count"] as? Int == 1024)
            #expect(object["clients"] as? Int == 7)
            #expect(object["paused_slots"] as? String == "0-2,300")
            #expect(object["paused_slot_count"] as? Int == 4)
            #expect(object["started_at"] as? String == "2025-12-01T14:40:00.000Z")
            let shards = try #require(object["shards"] as? [[String: Any]])
            #expect(shards.map { $0["name"] as? String } == ["s0", "s1"])
            #expect(shards[1]["slots"] as? String == "512-1023")
            #expect(shards[1]["slot_count"] as? Int == 512)
            #expect(shards[0]["replicas"] as? [String] == ["postgresql://postgres@127.0.0.1:5501/app"])
            let pools = try #require(object["pools"] as? [[String: Any]])
            #expect(pools.count == 1)
            #expect(pools[0]["role"] as? String == "primary")
            #expect(pools[0]["busy"] as? Int == 2 && pools[0]["waiting"] as? Int == 1)
            let counters = try #require(object["counters"] as? [String: Any])
            #expect(counters["queries_total"] as? Int == 12)
            #expect((counters["queries"] as? [String: Int]) == ["single": 10, "multi": 0, "all": 2, "any": 0, "local": 0])
            #expect(counters["fenced_reads"] as? Int == 3)
            let replicas = try #require(object["replicas"] as? [[String: Any]])
            #expect(replicas[1]["reason"] as? String == "unreachable: connection refused")
            #expect(replicas[0]["reason"] is NSNull)
            let text = String(buffer: try await client.execute(uri: "/status", method: .get).body)
            #expect(!text.contains("pw0") && !text.contains("secret-app"))
        }
    }

    @Test func shardMapIsShownWithSecretsRedacted() async throws {
        try await AdminHarness().test { client in
            let response = try await client.execute(uri: "/shardmap", method: .get)
            #expect(response.status == .ok)
            let text = String(buffer: response.body)
            #expect(!text.contains("pw0") && !text.contains("pw1") && !text.contains("secret-app"))
            #expect(text.contains("postgresql://postgres:***@127.0.0.1:5500/app"))
            let map = try ShardMap.decode(Data(response.body.readableBytesView), environment: [:])
            #expect(map.version == 3)
            #expect(map.shards.map(\.name) == ["s0", "s1"])
        }
    }

    @Test func unknownPathsAre404JSONAndWrongMethods405() async throws {
        try await AdminHarness().test { client in
            let missing = try await client.execute(uri: "/nope", method: .get)
            #expect(missing.status == .notFound)
            #expect((try json(missing)["error"] as? String)?.contains("no such endpoint: GET /nope") == true)
            let wrong = try await client.execute(uri: "/slots/pause", method: .get)
            #expect(wrong.status == .methodNotAllowed)
            #expect(wrong.headers[.allow] == "POST")
            #expect(try json(wrong)["error"] as? String != nil)
        }
    }

    @Test func theDashboardIsSelfContainedHTML() async throws {
        try await AdminHarness().test { client in
            let response = try await client.execute(uri: "/", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/html; charset=utf-8")
            let html = String(buffer: response.body)
            #expect(html.hasPrefix("<!DOCTYPE html>"))
            #expect(!html.contains("http://") && !html.contains("https://"), "no external assets")
            #expect(!html.contains("<link") && !html.contains("src="))
            for id in ["shards", "replicas", "strip", "pools", "traffic"] {
                #expect(html.contains("id=\"\(id)\""), "\(id)")
            }
            #expect(html.contains("fetch(path"))
            #expect(html.contains("get(\"status\"), get(\"lag\")"))
            #expect(html.contains("setTimeout(refresh, 1000)"))
        }
    }
}
