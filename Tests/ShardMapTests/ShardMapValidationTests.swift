import Foundation
import ShardMap
import Testing

@Suite("Shard map validation errors")
struct ShardMapValidationTests {
    /// One refused map; shown in test output by its expected message rather than its JSON.
    struct InvalidMap: Sendable, CustomTestStringConvertible {
        var json: String
        var message: String
        var testDescription: String { message }
    }

    static let twoShardsSameName = #"""
        [{"name": "s0", "primary": "postgresql://h/a"}, {"name": "s0", "primary": "postgresql://h/b"}]
        """#

    static let cases: [InvalidMap] = table.map { InvalidMap(json: $0.0, message: $0.1) }

    static let table: [(String, String)] = [
        // Slot ownership.
        (Fixtures.map(slots: #"{"s0": "0-511", "s1": "512-1000"}"#),
         "shardmap: slots: slots 1001-1023 are not owned by any shard"),
        (Fixtures.map(slots: #"{"s0": "0-511", "s1": "512-1022"}"#),
         "shardmap: slots: slot 1023 is not owned by any shard"),
        (Fixtures.map(slots: #"{"s0": "0-512", "s1": "512-1023"}"#),
         #"shardmap: slots.s1: slot 512 is owned by both "s0" and "s1""#),
        (Fixtures.map(slots: #"{"s0": "0-511", "s9": "512-1023"}"#),
         #"shardmap: slots.s9: unknown shard "s9"; shards are "s0", "s1""#),
        (Fixtures.map(slots: #"{"s0": "0-511", "s1": "512-1024"}"#),
         "shardmap: slots.s1: slot 1024 is out of range 0-1023"),
        (Fixtures.map(slots: #"{"s0": "0-511", "s1": "1023-512"}"#),
         #"shardmap: slots.s1: range "1023-512" is reversed; write "512-1023""#),
        (Fixtures.map(slots: #"{"s0": "0-511", "s1": 512}"#),
         "shardmap: slots.s1: expected a string, got a number"),
        // Shards.
        (Fixtures.map(shards: #"[{"name": "s0", "primary": "mysql://h/db"}]"#),
         "shardmap: shards[0].primary: not a connection URL; it must start with postgresql:// or postgres://"),
        (Fixtures.map(shards: #"""
            [{"name": "s0", "primary": "postgresql://h/a"},
             {"name": "s1", "primary": "postgresql://h/b", "replicas": ["postgresql://h:99999/b"]}]
            """#),
         #"shardmap: shards[1].replicas[0]: port "99999" is not a number in 1-65535"#),
        (Fixtures.map(shards: twoShardsSameName, slots: #"{"s0": "0-1023"}"#),
         #"shardmap: shards[1].name: duplicate shard name "s0""#),
        (Fixtures.map(shards: #"""
            [{"name": "s0", "primary": "postgresql://h/a"}, {"name": "s1", "primary": "postgresql://u:x@h:5432/a"}]
            """#),
         #"shardmap: shards[1].primary: same server and database as shard "s0""#),
        (Fixtures.map(shards: #"[{"name": "s 0", "primary": "postgresql://h/a"}]"#, slots: #"{"s 0": "0-1023"}"#),
         #"shardmap: shards[0].name: "s 0" is not a valid shard name; use 1-63 of A-Z a-z 0-9 _ - ."#),
        (Fixtures.map(shards: "[]", slots: "{}"), "shardmap: shards: at least one shard is needed"),
        (Fixtures.map(shards: #"[{"name": "s0"}]"#), "shardmap: shards[0].primary: required key is missing"),
        // Tables.
        (Fixtures.map(tables: #"{"orders": {"shard_key": "user_id", "type": "int32"}}"#),
         #"shardmap: tables.orders.type: unknown key type "int32"; use bigint, text or uuid"#),
        (Fixtures.map(tables: #"{"orders": {"shard_key": "user_id"}}"#),
         "shardmap: tables.orders.type: required key is missing"),
        (Fixtures.map(tables: #"{"orders": {}}"#),
         #"shardmap: tables.orders: give "shard_key" and "type", or "reference": true"#),
        (Fixtures.map(tables: #"{"c": {"reference": false}}"#),
         #"shardmap: tables.c.reference: must be true; a sharded table gives "shard_key" and "type" instead"#),
        (Fixtures.map(tables: #"{"c": {"reference": true, "shard_key": "id"}}"#),
         #"shardmap: tables.c.shard_key: a reference table has no shard key; remove "shard_key""#),
        (Fixtures.map(tables: #"{"c": {"reference": "yes"}}"#),
         "shardmap: tables.c.reference: expected true or false, got a string"),
        (Fixtures.map(tables: #"{"orders": {"shard_key": "", "type": "bigint"}}"#),
         "shardmap: tables.orders.shard_key: empty column name"),
        // Unknown and duplicate keys, at every level.
        (Fixtures.map(top: #""poool": {"size": 1}"#), "shardmap: poool: unknown key"),
        (Fixtures.map(top: #""pool": {"sise": 1}"#), "shardmap: pool.sise: unknown key"),
        (Fixtures.map(shards: #"[{"name": "s0", "primary": "postgresql://h/a", "replica": []}]"#),
         "shardmap: shards[0].replica: unknown key"),
        (Fixtures.map(tables: #"{"users": {"shardkey": "id", "type": "bigint"}}"#),
         "shardmap: tables.users.shardkey: unknown key"),
        (Fixtures.map(top: #""auth": {"users": [{"name": "a", "password": "b", "role": "x"}]}"#),
         "shardmap: auth.users[0].role: unknown key"),
        (Fixtures.map(top: #""tls": {"cert": "a", "key": "b", "ca": "c"}"#), "shardmap: tls.ca: unknown key"),
        (Fixtures.map(top: #""merge": {"max_rows": 1}"#), "shardmap: merge.max_rows: unknown key"),
        (Fixtures.map(top: #""replicas": {"max_lag": 1}"#), "shardmap: replicas.max_lag: unknown key"),
        (Fixtures.map(top: #""version": 2"#), "shardmap: version: duplicate key"),
        // Wrong JSON types.
        (Fixtures.map(version: #""1""#), "shardmap: version: expected an integer, got a string"),
        (Fixtures.map(version: "1.5"), "shardmap: version: expected an integer, got 1.5"),
        (Fixtures.map(version: "1e3"), "shardmap: version: expected an integer, got 1e3"),
        (Fixtures.map(version: "99999999999999999999"), "shardmap: version: 99999999999999999999 is too large"),
        (Fixtures.map(top: #""pool": {"size": "20"}"#), "shardmap: pool.size: expected an integer, got a string"),
        (Fixtures.map(top: #""pool": []"#), "shardmap: pool: expected an object, got an array"),
        (Fixtures.map(shards: "{}"), "shardmap: shards: expected an array, got an object"),
        (Fixtures.map(shards: #"[{"name": "s0", "primary": "postgresql://h/a", "replicas": "x"}]"#),
         "shardmap: shards[0].replicas: expected an array, got a string"),
        (Fixtures.map(shards: #"[{"name": 0, "primary": "postgresql://h/a"}]"#),
         "shardmap: shards[0].name: expected a string, got a number"),
        (Fixtures.map(top: #""unlisted_tables": null"#), "shardmap: unlisted_tables: expected a string, got null"),
        (Fixtures.map(tables: "true"), "shardmap: tables: expected an object, got true/false"),
        ("[]", "shardmap: expected an object, got an array"),
        // Ranges of numbers and names.
        (Fixtures.map(version: "0"), "shardmap: version: must be 1 or more, got 0"),
        (Fixtures.map(top: #""slot_count": 0"#), "shardmap: slot_count: must be in 1-65536, got 0"),
        (Fixtures.map(top: #""pool": {"size": 0}"#), "shardmap: pool.size: must be 1 or more, got 0"),
        (Fixtures.map(top: #""pool": {"checkout_timeout_ms": -5}"#),
         "shardmap: pool.checkout_timeout_ms: must be 1 or more, got -5"),
        (Fixtures.map(top: #""replicas": {"max_lag_bytes": -1}"#),
         "shardmap: replicas.max_lag_bytes: must be 0 or more, got -1"),
        (Fixtures.map(top: #""replicas": {"poll_ms": 0}"#), "shardmap: replicas.poll_ms: must be 1 or more, got 0"),
        (Fixtures.map(top: #""merge": {"max_bytes": 0}"#), "shardmap: merge.max_bytes: must be 1 or more, got 0"),
        (Fixtures.map(top: #""unlisted_tables": "s9""#),
         #"shardmap: unlisted_tables: unknown shard "s9"; shards are "s0", "s1""#),
        (Fixtures.map(top: #""tls": {"cert": "", "key": "k"}"#), "shardmap: tls.cert: empty file path"),
        (Fixtures.map(top: #""tls": {"cert": "c"}"#), "shardmap: tls.key: required key is missing"),
        // Auth.
        (Fixtures.map(top: #""auth": {"method": "plain", "users": []}"#),
         #"shardmap: auth.method: unknown method "plain"; use scram-sha-256, md5 or trust"#),
        (Fixtures.map(top: #""auth": {"method": "scram-sha-256"}"#),
         "shardmap: auth.users: at least one user is needed for scram-sha-256"),
        (Fixtures.map(top: #""auth": {"users": [{"name": "a", "password": "x"}, {"name": "a", "password": "y"}]}"#),
         #"shardmap: auth.users[1].name: duplicate user "a""#),
        (Fixtures.map(top: #""auth": {"users": [{"name": "a", "password": ""}]}"#),
         "shardmap: auth.users[0].password: empty password"),
        (Fixtures.map(top: #""auth": {"users": [{"name": "a"}]}"#),
         "shardmap: auth.users[0].password: required key is missing"),
        // Environment variables.
        (Fixtures.map(top: #""auth": {"users": [{"name": "app", "password": "${APP_PW}"}]}"#),
         "shardmap: auth.users[0].password: environment variable APP_PW is not set"),
        (Fixtures.map(shards: #"[{"name": "s0", "primary": "postgresql://u:${PG_PW@h/a"}]"#),
         #"shardmap: shards[0].primary: "${" without a closing "}"; write $${ for a literal ${"#),
        (Fixtures.map(top: #""unlisted_tables": "${1X}""#),
         #"shardmap: unlisted_tables: "${1X}" is not a valid environment variable reference"#),
        // Required keys and JSON syntax.
        (#"{"shards": [], "slots": {}}"#, "shardmap: version: required key is missing"),
        (#"{"version": 1, "shards": [{"name": "s0", "primary": "postgresql://h/a"}]}"#,
         "shardmap: slots: required key is missing"),
        ("{\"version\": 1,\n  \"shards\": [}", "shardmap: invalid JSON at line 2, column 14: unexpected character; expected a JSON value"),
        (#"{"version": 1,}"#, "shardmap: invalid JSON at line 1, column 15: expected a quoted key"),
        (#"{"version": 01}"#, "shardmap: invalid JSON at line 1, column 14: expected ',' or '}'"),
        (#"{"a": "\x"}"#, "shardmap: invalid JSON at line 1, column 9: invalid escape sequence"),
        (#"{"a": "\ud800"}"#, "shardmap: invalid JSON at line 1, column 14: unpaired UTF-16 surrogate in \\u escape"),
        ("{\"a\": \"tab\there\"}", "shardmap: invalid JSON at line 1, column 11: control character inside a string; escape it"),
        ("{} x", "shardmap: invalid JSON at line 1, column 4: unexpected text after the end of the document"),
        ("", "shardmap: invalid JSON at line 1, column 1: unexpected end of the document"),
        (String(repeating: "[", count: 300), "shardmap: invalid JSON at line 1, column 257: the document is nested too deeply"),
    ]

    @Test("refuses invalid maps, naming the field", arguments: cases)
    func refuses(_ invalid: InvalidMap) {
        do {
            let map = try Fixtures.decode(invalid.json)
            Issue.record("expected \(invalid.message), decoded \(map.version)")
        } catch let error as ShardMapError {
            #expect(error.description == invalid.message)
        } catch {
            Issue.record("unexpected error type \(error)")
        }
    }

    @Test("refuses a document that is not UTF-8")
    func notUTF8() {
        #expect(throws: ShardMapError(field: "", problem: "invalid JSON at line 1, column 1: the document is not valid UTF-8")) {
            try ShardMap.decode(Data([0x7B, 0xFF, 0x7D]), environment: [:])
        }
    }

    @Test("accepts a byte order mark, escapes and surrogate pairs")
    func jsonDetails() throws {
        let json = Fixtures.map(top: #""auth": {"users": [{"name": "\u00e9\ud83d\ude42\/\"", "password": "p\n"}]}"#)
        let map = try ShardMap.decode(Data([0xEF, 0xBB, 0xBF] + Array(json.utf8)), environment: [:])
        #expect(map.auth?.users.first == AuthUser(name: "é🙂/\"", password: "p\n"))
    }
}
