import Foundation
import ShardMap
import SQLRouting
import Testing

/// A rebalance's copies are filtered out of reads on the shard that holds them; see the pytest
/// `test_rebalance.py` for the same against real servers.
@Suite struct CopyFilterTests {
    static let map: ShardMap = {
        var map = RoutingFixtures.designMap
        map.copies = [1: [5, 9]]
        return map
    }()

    static let filter = #"COALESCE((((hashint8extended("sg_rows"."id", 8816678312871386365) & 1023) + 227) & 1023) <> ALL ('{5,9}'::int[]), true)"#

    @Test func shardsWithoutCopiesRunTheTextUnchanged() throws {
        let sql = "SELECT count(*) FROM users"
        #expect(try CopyFilter.rewrite(sql, map: Self.map, shard: 0) == sql)
        #expect(try CopyFilter.rewrite(sql, map: RoutingFixtures.designMap, shard: 1) == sql)
    }

    @Test func aTableWithoutAliasKeepsItsName() throws {
        let out = try CopyFilter.rewrite("SELECT count(*) FROM users WHERE users.age > 3", map: Self.map, shard: 1)
        #expect(out == "SELECT count(*) FROM (SELECT * FROM users AS sg_rows WHERE \(Self.filter)) AS \"users\" WHERE users.age > 3")
    }

    @Test func aliasesQualifiedNamesJoinsAndSubqueries() throws {
        let sql = "SELECT u.id FROM public . users u JOIN orders AS o ON o.user_id = u.id WHERE u.id IN (SELECT user_id FROM \"orders\") ORDER BY 1"
        let out = try CopyFilter.rewrite(sql, map: Self.map, shard: 1)
        #expect(out.contains("FROM (SELECT * FROM public . users AS sg_rows WHERE \(Self.filter)) u JOIN"))
        #expect(out.contains("JOIN (SELECT * FROM orders AS sg_rows WHERE COALESCE((((hashint8extended(\"sg_rows\".\"user_id\""))
        #expect(out.contains("FROM (SELECT * FROM \"orders\" AS sg_rows WHERE"))
        #expect(out.hasSuffix(") AS \"orders\") ORDER BY 1"))
    }

    @Test func referenceTablesCatalogsAndDDLAreUntouched() throws {
        for sql in ["SELECT * FROM countries", "SELECT relname FROM pg_class", "CREATE VIEW v AS SELECT * FROM users",
                    "CREATE INDEX ON users (age)", "INSERT INTO users (id) VALUES (1), (2)"] {
            #expect(try CopyFilter.rewrite(sql, map: Self.map, shard: 1) == sql)
        }
    }

    @Test func textKeysAndMultiByteText() throws {
        let out = try CopyFilter.rewrite("SELECT 'ü€' AS x, token FROM sessions", map: Self.map, shard: 1)
        #expect(out == "SELECT 'ü€' AS x, token FROM (SELECT * FROM sessions AS sg_rows WHERE COALESCE((((hashtextextended(\"sg_rows\".\"token\", 8816678312871386365) & 1023) + 227) & 1023) <> ALL ('{5,9}'::int[]), true)) AS \"sessions\"")
    }

    @Test func whatCannotBeFilteredIsRefused() {
        for sql in ["UPDATE users SET age = 1", "DELETE FROM orders", "COPY users TO STDOUT", "SELECT * FROM ONLY users",
                    "SELECT * FROM users TABLESAMPLE SYSTEM (10)", "WITH users AS (SELECT 1) SELECT * FROM users"] {
            #expect("\(sql)") { try CopyFilter.rewrite(sql, map: Self.map, shard: 1) } throws: { error in
                (error as? RouteError)?.sqlState == "0A000"
            }
        }
    }

    @Test func keylessStatementsSkipAShardWithoutSlotsUntilItHoldsCopies() throws {
        var map = RoutingFixtures.designMap
        map.shards.append(map.shards[1])
        map.shards[2].name = "s2"
        var router = SQLRouter(map: map)
        #expect(try router.route("SELECT count(*) FROM users").shardIndexes(shardCount: 3) == [0, 1])
        #expect(try router.route("UPDATE users SET age = 1").shardIndexes(shardCount: 3) == [0, 1])
        #expect(try router.route("CREATE INDEX ON users (age)").shardIndexes(shardCount: 3) == [0, 1, 2], "DDL goes everywhere")
        map.copies = [2: [5]]
        router.updateMap(map)
        #expect(try router.route("SELECT count(*) FROM users").shardIndexes(shardCount: 3) == [0, 1, 2])
    }

    @Test func mapsRoundTripTheirCopies() throws {
        let json = Self.map.jsonData(redactingSecrets: false)
        let decoded = try ShardMap.decode(json, environment: [:])
        #expect(decoded.copies == [1: [5, 9]])
        var invalid = Self.map
        invalid.copies = [1: [600]]  // s1 owns 600 itself
        #expect(throws: ShardMapError.self) { try invalid.validate() }
    }
}
