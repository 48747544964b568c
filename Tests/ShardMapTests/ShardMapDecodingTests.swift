import Foundation
import ShardMap
import Testing

@Suite("Shard map decoding")
struct ShardMapDecodingTests {
    @Test("decodes the DESIGN example with defaults for absent sections")
    func designExample() throws {
        let map = try Fixtures.decode(Fixtures.designExample)
        #expect(map.version == 1)
        #expect(map.slotCount == 1024)
        #expect(map.shards.map(\.name) == ["s0", "s1"])
        #expect(map.shards[0].primary.port == 5500)
        #expect(map.shards[1].replicas.map(\.port) == [5503])
        #expect(map.slotOwners.count == 1024)
        #expect(map.slotOwners[0] == 0 && map.slotOwners[511] == 0 && map.slotOwners[512] == 1)
        #expect(map.slotRanges(of: 0) == "0-511")
        #expect(map.slotRanges(of: 1) == "512-1023")
        #expect(map.tables["users"] == .sharded(key: "id", type: .bigint))
        #expect(map.tables["sessions"] == .sharded(key: "token", type: .text))
        #expect(map.tables["countries"] == .reference)
        #expect(map.auth == nil && map.authMethod == .trust)
        #expect(map.pool == PoolConfig(size: 20, checkoutTimeoutMs: 5000, idleTimeoutMs: 60000))
        #expect(map.replicas == ReplicaConfig(maxLagBytes: 16_777_216, maxLagMs: 5000, pollMs: 100))
        #expect(map.merge == MergeConfig(maxBytes: 268_435_456))
        #expect(map.tls == nil && map.unlistedTables == nil)
        #expect(map.databaseName == "app")
        #expect(map.shard(named: "s1")?.primary.port == 5502)
        #expect(map.shard(named: "s9") == nil)
        #expect(map.shardIndex(ofSlot: SlotHash.slot(bigint: 1)) == (SlotHash.slot(bigint: 1) < 512 ? 0 : 1))
    }

    @Test("decodes every optional section")
    func optionalSections() throws {
        let json = Fixtures.map(top: #"""
            "slot_count": 16,
            "auth": {"method": "md5", "users": [{"name": "app", "password": "pw"}]},
            "pool": {"size": 5, "checkout_timeout_ms": 100, "idle_timeout_ms": 200},
            "replicas": {"max_lag_bytes": 0, "max_lag_ms": 0, "poll_ms": 10},
            "tls": {"cert": "certs/server.crt", "key": "/abs/server.key"},
            "unlisted_tables": "s1",
            "merge": {"max_bytes": 1024}
            """#, slots: #"{"s1": "8-15", "s0": "0-7"}"#,
            tables: #"{"a": {"shard_key": "id", "type": "integer"}, "b": {"shard_key": "k", "type": "UUID"}}"#)
        let map = try Fixtures.decode(json, baseDirectory: "/etc/shardgate")
        #expect(map.slotCount == 16 && map.slotRanges(of: 0) == "0-7" && map.slotRanges(of: 1) == "8-15")
        #expect(map.auth == AuthConfig(method: .md5, users: [AuthUser(name: "app", password: "pw")]))
        #expect(map.pool == PoolConfig(size: 5, checkoutTimeoutMs: 100, idleTimeoutMs: 200))
        #expect(map.replicas == ReplicaConfig(maxLagBytes: 0, maxLagMs: 0, pollMs: 10))
        #expect(map.tls == TLSConfig(certPath: "/etc/shardgate/certs/server.crt", keyPath: "/abs/server.key"))
        #expect(map.unlistedTables == "s1")
        #expect(map.merge.maxBytes == 1024)
        #expect(map.tables["a"] == .sharded(key: "id", type: .bigint))
        #expect(map.tables["b"] == .sharded(key: "k", type: .uuid))
    }

    @Test("partial sections keep the other defaults; auth defaults to scram-sha-256")
    func partialSections() throws {
        let map = try Fixtures.decode(Fixtures.map(top: #"""
            "pool": {"size": 3}, "auth": {"users": [{"name": "u", "password": "p"}]}, "replicas": {}
            """#))
        #expect(map.pool == PoolConfig(size: 3))
        #expect(map.replicas == ReplicaConfig())
        #expect(map.auth?.method == .scramSHA256)
        let trust = try Fixtures.decode(Fixtures.map(top: #""auth": {"method": "trust", "users": [{"name": "u"}]}"#))
        #expect(trust.auth == AuthConfig(method: .trust, users: [AuthUser(name: "u", password: "")]))
    }

    @Test("a shard may own no slots")
    func shardWithoutSlots() throws {
        let shards = #"""
            [{"name": "s0", "primary": "postgresql://h/a"}, {"name": "s1", "primary": "postgresql://h/b"},
             {"name": "s2", "primary": "postgresql://h/c"}]
            """#
        let map = try Fixtures.decode(Fixtures.map(shards: shards, slots: #"{"s0": "0-511", "s1": "512-1023", "s2": ""}"#))
        #expect(map.slotRanges(of: 2) == "")
        #expect(map.slots(of: 2).isEmpty)
    }

    @Test("${ENV} is expanded in every string value")
    func environmentExpansion() throws {
        let json = Fixtures.map(
            top: #""auth": {"users": [{"name": "${APP_USER}", "password": "${APP_PW}"}]}, "unlisted_tables": "s${N}""#,
            shards: #"""
                [{"name": "s0", "primary": "postgresql://postgres:${PG_PW}@${PG_HOST}:5500/app"},
                 {"name": "s1", "primary": "${S1_URL}", "replicas": ["postgresql://${PG_HOST}/app?host=${SOCK}"]}]
                """#)
        let environment = [
            "APP_USER": "app", "APP_PW": "s3cret", "PG_PW": "p@ss:/%41", "PG_HOST": "db1", "N": "1",
            "S1_URL": "postgresql://u:p%40ss@db2:5502/app", "SOCK": "/tmp/pg sock",
        ]
        let map = try Fixtures.decode(json, environment: environment)
        #expect(map.auth?.users == [AuthUser(name: "app", password: "s3cret")])
        // Inside a URL a substituted value is the literal text (it is percent-encoded on the way in) ...
        #expect(map.shards[0].primary.password == "p@ss:/%41")
        #expect(map.shards[0].primary.host == "db1")
        #expect(map.shards[1].replicas[0].host == "/tmp/pg sock")
        // ... while a URL that is one whole ${VAR} is used as written.
        #expect(map.shards[1].primary.password == "p@ss")
        #expect(map.shards[1].primary.host == "db2")
        #expect(map.unlistedTables == "s1")
    }

    @Test("$${ is a literal ${, and a lone $ stays")
    func literalDollar() throws {
        let json = Fixtures.map(top: #""auth": {"users": [{"name": "app", "password": "a$b$${NOT_A_VAR}$"}]}"#)
        let map = try Fixtures.decode(json)
        #expect(map.auth?.users.first?.password == "a$b${NOT_A_VAR}$")
    }

    @Test("load resolves relative tls paths against the map's directory")
    func load() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("shardmap-load-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("shardmap.json")
        try Data(Fixtures.map(top: #""tls": {"cert": "server.crt", "key": "../keys/server.key"}"#).utf8).write(to: file)

        let map = try ShardMap.load(path: file.path, environment: [:])
        #expect(map.tls?.certPath == directory.appendingPathComponent("server.crt").standardizedFileURL.path)
        #expect(map.tls?.keyPath == directory.deletingLastPathComponent()
            .appendingPathComponent("keys/server.key").standardizedFileURL.path)

        let missing = directory.appendingPathComponent("nope.json").path
        do {
            _ = try ShardMap.load(path: missing, environment: [:])
            Issue.record("expected an error")
        } catch let error as ShardMapError {
            #expect(error.description.hasPrefix("shardmap: cannot read \(missing)"))
        }
    }

    @Test("validate() checks maps built in code")
    func validateInCode() throws {
        var map = try Fixtures.decode(Fixtures.designExample)
        try map.validate()
        map.slotOwners[7] = 5
        #expect(throws: ShardMapError(field: "slots", problem: "slot 7 is owned by shard #5, which does not exist")) {
            try map.validate()
        }
        map.slotOwners.removeLast()
        #expect(throws: ShardMapError(field: "slots", problem: "1023 slot owners for a slot_count of 1024")) {
            try map.validate()
        }
    }

    @Test("error descriptions read shardmap: <field>: <problem>")
    func errorDescription() {
        #expect(ShardMapError(field: "poool", problem: "unknown key").description == "shardmap: poool: unknown key")
        #expect(ShardMapError(field: "", problem: "x").description == "shardmap: x")
    }
}
