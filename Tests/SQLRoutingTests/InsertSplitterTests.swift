import SQLRouting
import Testing

/// Multi-row INSERTs cut into one statement per shard at the rows' token boundaries.
@Suite struct InsertSplitterTests {
    @Test func rowsAreCutAtTheirParenthesesAndTheRestIsKept() throws {
        let sql = "INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b, (c)'), (3, $$x)$$) ON CONFLICT (id) DO NOTHING RETURNING id"
        let split = try InsertSplitter.split(sql, rowsByShard: [0: [0, 2], 1: [1]])
        #expect(split[0] == "INSERT INTO users (id, name) VALUES (1, 'a'), (3, $$x)$$) ON CONFLICT (id) DO NOTHING RETURNING id")
        #expect(split[1] == "INSERT INTO users (id, name) VALUES (2, 'b, (c)') ON CONFLICT (id) DO NOTHING RETURNING id")
    }

    @Test func commentsQuotedIdentifiersAndNestedParenthesesDoNotConfuseIt() throws {
        let sql = """
            WITH x AS (SELECT 1) INSERT INTO "Users" ("id", "v") /* VALUES (9) */ VALUES -- (0)
            ((1 + 2), E'\\')'), (lower('A'), ARRAY[(1), 2]);
            """
        let split = try InsertSplitter.split(sql, rowsByShard: [1: [1], 0: [0]])
        #expect(split[0] == """
            WITH x AS (SELECT 1) INSERT INTO "Users" ("id", "v") /* VALUES (9) */ VALUES -- (0)
            ((1 + 2), E'\\')');
            """)
        #expect(split[1] == """
            WITH x AS (SELECT 1) INSERT INTO "Users" ("id", "v") /* VALUES (9) */ VALUES -- (0)
            (lower('A'), ARRAY[(1), 2]);
            """)
    }

    @Test func aTextWithOtherRowsThanThePlanSaysIsRefused() {
        #expect(throws: RouteError.self) {
            try InsertSplitter.split("INSERT INTO t (a) VALUES (1), (2)", rowsByShard: [0: [0], 1: [1], 2: [2]])
        }
        #expect(throws: RouteError.self) {
            try InsertSplitter.split("INSERT INTO t (a) SELECT 1", rowsByShard: [0: [0], 1: [1]])
        }
    }
}
