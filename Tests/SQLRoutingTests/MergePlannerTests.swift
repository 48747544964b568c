import ShardMap
@testable import SQLRouting
import Testing

@Suite("Merge planner")
struct MergePlannerTests {
    @Test("the table holds at least 80 statements")
    func tableSize() {
        #expect(MergeCases.all.count >= 80)
    }

    @Test("SQL → shard SQL and merge plan", arguments: MergeCases.all)
    func plan(_ testCase: MergeCase) throws {
        let result = Result { () throws(RouteError) -> MergePlan in try MergePlanner.plan(testCase.sql) }
        switch (testCase.expectation, result) {
        case (.plan(let expected), .success(let plan)):
            #expect(plan.shardSQL == expected.shardSQL)
            #expect(plan.hiddenColumnCount == expected.hiddenColumnCount, "hidden columns")
            #expect(plan.sortKeys == expected.sortKeys, "sort keys")
            #expect(plan.offset == expected.offset, "offset")
            #expect(plan.limit == expected.limit, "limit")
            #expect(plan.withTies == expected.withTies, "with ties")
            #expect(plan.distinct == expected.distinct, "distinct")
            #expect(plan.grouping == expected.grouping, "grouping")
            #expect((plan.unchangedPrefixCharacters == nil) == (plan.shardSQL == testCase.sql), "unchanged prefix")
            // Whatever the shards run is SQL PostgreSQL's parser accepts.
            _ = try SQLAnalyzer.analyze(plan.shardSQL, tables: [:])
        case (.refused(let state), .failure(let error)):
            #expect(error.sqlState == state, "\(error)")
            #expect(!error.message.isEmpty)
        case (.plan, .failure(let error)):
            Issue.record("expected a plan, got \(error)")
        case (.refused(let state), .success(let plan)):
            Issue.record("expected \(state), got a plan with shard SQL \(plan.shardSQL)")
        }
    }

    @Test("refusals name the construct")
    func refusalMessages() {
        func message(_ sql: String) -> String {
            do {
                _ = try MergePlanner.plan(sql)
                return ""
            } catch {
                return error.message
            }
        }
        #expect(message("SELECT string_agg(name, ',') FROM users").contains("string_agg()"))
        #expect(message("SELECT id, rank() OVER () FROM users").contains("window functions"))
        #expect(message("SELECT id FROM users ORDER BY random()").contains("random()"))
        #expect(message("SELECT count(*) * 2 FROM users").contains("count(*) * 2"))
        #expect(message("SELECT 1 FROM users UNION ALL SELECT 2 FROM users").contains("UNION"))
        #expect(message("SELECT id FROM users LIMIT -1") == "LIMIT must not be negative")
    }

    @Test("the unchanged prefix is counted in characters, up to the first rewrite")
    func unchangedPrefix() throws {
        let plan = try MergePlanner.plan("SELECT 'é', id FROM users ORDER BY name")
        // "SELECT 'é', id" is 14 characters (15 bytes); the hidden column follows it.
        #expect(plan.unchangedPrefixCharacters == 14)
        #expect(plan.shardSQL == "SELECT 'é', id, name AS \"?sg1\" FROM users ORDER BY name")
        #expect(try MergePlanner.plan("SELECT id FROM users ORDER BY id").unchangedPrefixCharacters == nil)
        let limited = try MergePlanner.plan("SELECT id FROM users ORDER BY id LIMIT 1 OFFSET 1")
        #expect(limited.unchangedPrefixCharacters == 32)
    }

    @Test("LIMIT and OFFSET bound to parameters, checked as PostgreSQL checks them")
    func bounds() throws {
        let plan = try MergePlanner.plan("SELECT id FROM users ORDER BY id LIMIT $1 OFFSET $2")
        let text = try plan.bounds(parameters: [.text("10"), .text("5")])
        #expect(text.offset == 5 && text.limit == 10)
        let binary = try plan.bounds(parameters: [.binary([0, 0, 0, 7]), .binary([0, 0, 0, 0, 0, 0, 0, 3])])
        #expect(binary.offset == 3 && binary.limit == 7)
        let nulls = try plan.bounds(parameters: [.null, .null])
        #expect(nulls.offset == 0 && nulls.limit == nil)
        #expect(throws: RouteError(sqlState: "2201W", message: "LIMIT must not be negative")) {
            try plan.bounds(parameters: [.text("-1"), .text("0")])
        }
        #expect(throws: RouteError(sqlState: "2201X", message: "OFFSET must not be negative")) {
            try plan.bounds(parameters: [.text("1"), .binary([0xFF, 0xFF])])
        }
        #expect(throws: RouteError.self) { try plan.bounds(parameters: [.text("x"), .text("0")]) }
        #expect(throws: RouteError.self) { try plan.bounds(parameters: [.text("1")]) }
        let constant = try MergePlanner.plan("SELECT id FROM users ORDER BY id LIMIT 3 OFFSET 4")
        #expect(try constant.bounds() == (4, 3))
        #expect(try MergePlanner.plan("SELECT id FROM users").bounds() == (0, nil))
    }

    @Test("a plain read is a concatenation with its SQL unchanged")
    func concatenation() throws {
        let plan = try MergePlanner.plan("SELECT * FROM users WHERE age > 3")
        #expect(plan.isConcatenation)
        #expect(try !MergePlanner.plan("SELECT * FROM users LIMIT 3").isConcatenation)
    }
}

@Suite("Merge plan cache")
struct MergePlanCacheTests {
    @Test("repeated texts hit; errors are not cached; the byte bound evicts the least recently used")
    func cache() throws {
        var cache = MergePlanCache(byteLimit: 2_000)
        let a = "SELECT id FROM users ORDER BY id LIMIT $1"
        let first = try cache.plan(a)
        #expect(try cache.plan(a) == first)
        #expect(cache.hits == 1 && cache.misses == 1)
        #expect(throws: RouteError.self) { try cache.plan("SELECT string_agg(name, ',') FROM users") }
        #expect(throws: RouteError.self) { try cache.plan("SELECT string_agg(name, ',') FROM users") }
        #expect(cache.count == 1)
        for i in 0..<20 { _ = try cache.plan("SELECT id FROM users ORDER BY id LIMIT \(i) OFFSET 1") }
        #expect(cache.byteCount <= 2_000)
        #expect(cache.count < 21)
        _ = try cache.plan("SELECT id FROM users ORDER BY id LIMIT 19 OFFSET 1")
        #expect(cache.hits == 2, "the most recent entry survived")
        cache.removeAll()
        #expect(cache.count == 0 && cache.byteCount == 0)
    }
}
