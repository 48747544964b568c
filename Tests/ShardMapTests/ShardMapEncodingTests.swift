import Foundation
import ShardMap
import Testing

@Suite("Shard map encoding")
struct ShardMapEncodingTests {
    /// A map that uses every feature, with secrets that need escaping.
    static func fullMap() throws -> ShardMap {
        let json = Fixtures.map(
            top: #"""
                "slot_count": 64,
                "auth": {"method": "scram-sha-256", "users": [{"name": "app", "password": "${APP_PW}"},
                                                              {"name": "ro", "password": "lit$${x}"}]},
                "pool": {"size": 7, "checkout_timeout_ms": 1500, "idle_timeout_ms": 30000},
                "replicas": {"max_lag_bytes": 1024, "max_lag_ms": 250, "poll_ms": 50},
                "tls": {"cert": "server.crt", "key": "/etc/ssl/server.key"},
                "unlisted_tables": "s2",
                "merge": {"max_bytes": 1048576}
                """#,
            shards: #"""
                [{"name": "s0", "primary": "postgresql://admin:p%40ss%3Aw%2Frd@db0.example.com:5500/app?sslmode=require",
                  "replicas": ["postgresql://admin:p%40ss%3Aw%2Frd@[::1]:5501/app", "postgres:///app?host=/tmp&port=5505"]},
                 {"name": "s1", "primary": "postgresql://postgres:${PG_PW}@127.0.0.1:5502/app"},
                 {"name": "s2", "primary": "postgresql://127.0.0.1:5504/app"}]
                """#,
            slots: #"{"s0": "0-9,20-29", "s1": "10-19,30-63"}"#,
            tables: #"""
                {"users": {"shard_key": "id", "type": "bigint"}, "sessions": {"shard_key": "token", "type": "varchar"},
                 "devices": {"shard_key": "uuid", "type": "uuid"}, "countries": {"reference": true}}
                """#)
        return try Fixtures.decode(
            json, environment: ["APP_PW": "sécret ${NOT_EXPANDED} \"q\"", "PG_PW": "x:y@z"], baseDirectory: "/etc/sg")
    }

    @Test("decode(jsonData(redactingSecrets: false)) == original")
    func roundTrip() throws {
        let map = try Self.fullMap()
        #expect(map.auth?.users.first?.password == "sécret ${NOT_EXPANDED} \"q\"")
        #expect(map.auth?.users.last?.password == "lit${x}")
        let data = map.jsonData(redactingSecrets: false)
        let again = try ShardMap.decode(data, environment: [:])
        #expect(again == map)
        #expect(again.jsonData(redactingSecrets: false) == data)

        let design = try Fixtures.decode(Fixtures.designExample)
        #expect(try ShardMap.decode(design.jsonData(redactingSecrets: false), environment: [:]) == design)
    }

    @Test("redaction hides URL and auth passwords but keeps a valid map")
    func redaction() throws {
        let map = try Self.fullMap()
        let text = String(decoding: map.jsonData(redactingSecrets: true), as: UTF8.self)
        for secret in ["p%40ss", "p@ss", "sécret", "x:y@z", "x%3Ay", "lit"] {
            #expect(!text.contains(secret), "redacted output contains \(secret)")
        }
        #expect(text.contains("postgresql://admin:***@db0.example.com:5500/app?sslmode=require"))
        #expect(text.contains(#""password": "***""#))
        #expect(text.contains("postgresql://postgres@127.0.0.1:5504/app"))

        let redacted = try ShardMap.decode(Data(text.utf8), environment: [:])
        #expect(redacted.shards[0].primary.password == "***")
        #expect(redacted.auth?.users.map(\.password) == ["***", "***"])
        #expect(redacted.slotOwners == map.slotOwners)
    }

    @Test("writes DESIGN §2's layout and key order")
    func layout() throws {
        let map = try Fixtures.decode(Fixtures.designExample)
        let text = String(decoding: map.jsonData(redactingSecrets: false), as: UTF8.self)
        let expected = """
            {
              "version": 1,
              "slot_count": 1024,
              "shards": [
                {
                  "name": "s0",
                  "primary": "postgresql://postgres@127.0.0.1:5500/app",
                  "replicas": [
                    "postgresql://postgres@127.0.0.1:5501/app"
                  ]
                },
                {
                  "name": "s1",
                  "primary": "postgresql://postgres@127.0.0.1:5502/app",
                  "replicas": [
                    "postgresql://postgres@127.0.0.1:5503/app"
                  ]
                }
              ],
              "slots": {
                "s0": "0-511",
                "s1": "512-1023"
              },
              "tables": {
                "countries": {
                  "reference": true
                },
                "orders": {
                  "shard_key": "user_id",
                  "type": "bigint"
                },
                "sessions": {
                  "shard_key": "token",
                  "type": "text"
                },
                "users": {
                  "shard_key": "id",
                  "type": "bigint"
                }
              },
              "pool": {
                "size": 20,
                "checkout_timeout_ms": 5000,
                "idle_timeout_ms": 60000
              },
              "replicas": {
                "max_lag_bytes": 16777216,
                "max_lag_ms": 5000,
                "poll_ms": 100
              },
              "merge": {
                "max_bytes": 268435456
              }
            }

            """
        #expect(text == expected)
    }

    @Test("maps built in code encode too")
    func builtInCode() throws {
        let primary = PostgresURL(host: "db", port: 5432, user: "u", password: "pw", database: "app")
        let map = ShardMap(
            version: 3, slotCount: 4, shards: [Shard(name: "only", primary: primary)], slotOwners: [0, 0, 0, 0],
            tables: ["t": .sharded(key: "id", type: .uuid)], unlistedTables: "only")
        try map.validate()
        #expect(try ShardMap.decode(map.jsonData(redactingSecrets: false), environment: [:]) == map)
        #expect(map.databaseName == "app")
    }
}
