import Foundation
import ShardMap
@testable import SQLRouting
import Testing

@Suite("Analysis cache")
struct AnalysisCacheTests {
    @Test("one shape, different literals: one parse, each text routed by its own key")
    func sameShapeDifferentLiterals() throws {
        var router = SQLRouter(map: RoutingFixtures.designMap)
        #expect(try router.route("SELECT * FROM users WHERE id = 1").target == on(1))
        #expect(try router.route("SELECT * FROM users WHERE id = 2").target == on(2))
        #expect(try router.route("select *   from USERS where id = 42").target == on(42))
        #expect(try router.route("SELECT * FROM users WHERE id = -10").target == on(-10))
        #expect(try router.route("/* shard: s1 */ SELECT * FROM users WHERE id = 2").target == .shard(1))
        #expect(try router.route("INSERT INTO users (id) VALUES (1), (2)").insertRowsByShard == [1: [0], 0: [1]])
        #expect(try router.route("INSERT INTO users (id) VALUES (2), (1)").insertRowsByShard == [0: [0], 1: [1]])
        #expect(router.cache.count == 3)
        #expect(router.cache.misses == 3)
        #expect(router.cache.hits == 4)
    }

    @Test("cached analyses are re-evaluated with each text's parameters and literals")
    func parametersPerExecution() throws {
        var router = SQLRouter(map: RoutingFixtures.designMap)
        let sql = "UPDATE orders SET total = $1 WHERE user_id = $2"
        #expect(try router.route(sql, parameters: [.text("1"), .text("1")]).target == on(1))
        #expect(try router.route(sql, parameters: [.text("1"), .text("2")]).target == on(2))
        #expect(try router.route(sql, parameters: [.text("1"), Binary.int8(42)]).target == on(42))
        #expect(router.cache.hits == 2)
    }

    @Test("bounded by bytes: entries are evicted least recently used first")
    func byteBoundAndLRU() throws {
        var probe = SQLRouter(map: RoutingFixtures.designMap)
        _ = try probe.route("SELECT c0 FROM users WHERE id = 1")
        let entryBytes = probe.cache.byteCount
        #expect(entryBytes > 0)

        var router = SQLRouter(map: RoutingFixtures.designMap, cacheBytes: entryBytes * 3 + entryBytes / 2)
        for column in 0..<3 { _ = try router.route("SELECT c\(column) FROM users WHERE id = 1") }
        #expect(router.cache.count == 3)
        // Touch c0, so c1 is now the least recently used.
        _ = try router.route("SELECT c0 FROM users WHERE id = 2")
        _ = try router.route("SELECT c3 FROM users WHERE id = 1")
        #expect(router.cache.count == 3)
        #expect(router.cache.evictions == 1)
        #expect(router.cache.byteCount <= router.cache.byteLimit)
        let hits = router.cache.hits
        _ = try router.route("SELECT c0 FROM users WHERE id = 3")
        #expect(router.cache.hits == hits + 1)
        _ = try router.route("SELECT c1 FROM users WHERE id = 3")
        #expect(router.cache.hits == hits + 1, "c1 was evicted")

        for column in 0..<200 { _ = try router.route("SELECT c\(column) FROM users WHERE id = 1") }
        #expect(router.cache.byteCount <= router.cache.byteLimit)
        #expect(router.cache.count <= 3)
    }

    @Test("the bound counts bytes, not entries: long statements take more room")
    func bytesNotEntries() throws {
        var router = SQLRouter(map: RoutingFixtures.designMap, cacheBytes: 16 * 1024)
        let long = "SELECT " + (0..<400).map { "column_\($0)" }.joined(separator: ", ") + " FROM users WHERE id = 1"
        _ = try router.route(long)
        let longBytes = router.cache.byteCount
        router = SQLRouter(map: RoutingFixtures.designMap, cacheBytes: 16 * 1024)
        _ = try router.route("SELECT a FROM users WHERE id = 1")
        #expect(longBytes > 4 * router.cache.byteCount)
        // An entry larger than the whole cache is not kept.
        var tiny = SQLRouter(map: RoutingFixtures.designMap, cacheBytes: 256)
        _ = try tiny.route(long)
        #expect(tiny.cache.count == 0)
        #expect(tiny.cache.byteCount == 0)
    }

    @Test("errors and texts the shape cannot stand for are not cached")
    func notCached() throws {
        var router = SQLRouter(map: RoutingFixtures.designMap)
        #expect(throws: RouteError.self) { try router.route("SELEC 1") }
        #expect(throws: RouteError.self) { try router.route("SELEC 1") }
        _ = try router.route("PREPARE TRANSACTION 'a'")
        let plan = try router.route("PREPARE TRANSACTION 'b'")
        #expect(plan.kind == .transaction(.prepare(gid: "b")))
        _ = try router.route("SELECT * FROM sessions WHERE token = 'a'\n'b'")
        #expect(router.cache.count == 0)
    }

    @Test("a new map keeps the cache unless its tables changed")
    func mapUpdates() throws {
        var router = SQLRouter(map: RoutingFixtures.designMap)
        #expect(try router.route("SELECT * FROM users WHERE id = 1").target == .shard(1))
        var moved = RoutingFixtures.designMap
        moved.version = 2
        moved.slotOwners = moved.slotOwners.map { 1 - $0 }
        router.updateMap(moved)
        #expect(router.cache.count == 1)
        #expect(try router.route("SELECT * FROM users WHERE id = 1").target == .shard(0))

        var retyped = moved
        retyped.tables["users"] = .reference
        router.updateMap(retyped)
        #expect(router.cache.count == 0)
        #expect(try router.route("SELECT * FROM users WHERE id = 1").target == .anyShard)
    }

    @Test("LRU order and byte accounting of the cache itself")
    func cacheInternals() {
        var cache = AnalysisCache(byteLimit: 10_000)
        let analysis = [StatementAnalysis(kind: .read)]
        for name in ["a", "b", "c"] { cache.insert(Array(name.utf8), analysis) }
        #expect(cache.shapesByRecency == [Array("c".utf8), Array("b".utf8), Array("a".utf8)])
        _ = cache.lookup(Array("a".utf8))
        #expect(cache.shapesByRecency == [Array("a".utf8), Array("c".utf8), Array("b".utf8)])
        let each = AnalysisCache.estimatedBytes(shape: Array("a".utf8), statements: analysis)
        #expect(cache.byteCount == 3 * each)
        cache.removeAll()
        #expect(cache.count == 0)
        #expect(cache.byteCount == 0)
        #expect(cache.lookup(Array("a".utf8)) == nil)
    }
}

@Suite("Cache consistency")
struct CacheConsistencyTests {
    static let templates = [
        "SELECT * FROM users WHERE id = #",
        "SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = #",
        "SELECT * FROM users WHERE id IN (#, 2) AND name <> 'x'",
        "SELECT * FROM users WHERE id = '#'::bigint OR id = #",
        "UPDATE users SET name = 'n#' WHERE id = #",
        "DELETE FROM orders WHERE user_id = # RETURNING *",
        "INSERT INTO users (id, name) VALUES (#, 'a'), (2, 'b'), (#, E'c\\n')",
        "INSERT INTO orders (user_id, total) VALUES (#, #.5) ON CONFLICT DO NOTHING",
        "WITH x AS (SELECT * FROM orders WHERE user_id = #) SELECT * FROM x",
        "SELECT * FROM users WHERE id = ANY('{#,1}')",
        "SELECT * FROM users WHERE id = #; SELECT 1",
        "/* shard_key: # */ SELECT * FROM orders",
        "SELECT * FROM users WHERE id = -#",
        "SELECT * FROM users WHERE id = # FOR UPDATE",
        "SELECT * FROM users a, users b WHERE a.id = # AND b.id = 5",
    ]

    /// The route through the cache (warmed by another literal of the same shape) equals the route of a
    /// fresh analysis of the same text, for every value.
    @Test("a cached shape routes each literal as a fresh parse would", arguments: Self.templates)
    func cachedEqualsFresh(_ template: String) {
        let map = RoutingFixtures.designMap
        var router = SQLRouter(map: map)
        _ = try? router.route(template.replacingOccurrences(of: "#", with: "3"))
        for value in ["0", "1", "2", "4", "5", "7", "10", "11", "42", "100"] {
            let sql = template.replacingOccurrences(of: "#", with: value)
            let fresh = Result { () throws(RouteError) -> RoutePlan in
                try RoutePlanner.plan(SQLAnalyzer.analyze(sql, tables: map.tables), map: map)
            }
            let cached = Result { () throws(RouteError) -> RoutePlan in try router.route(sql) }
            #expect(fresh == cached, "\(sql)")
        }
        #expect(router.cache.hits >= 10)
    }
}
