import SQLRouting
import Testing

/// Multi-row INSERTs cut into one statement per shard at the rows' token boundaries.
@Suite struct InsertSplitterTests {
    @Test func aShardsPartIsRenumberedByFirstAppearance() {
        let part = "INSERT INTO t (a, b) VALUES ($3, $4), ($7, '$1'), ($8, $3) ON CONFLICT (a) DO UPDATE SET b = $9 -- $2"
        let (text, order) = InsertSplitter.renumberingParameters(part)
        #expect(text == "INSERT INTO t (a, b) VALUES ($1, $2), ($3, '$1'), ($4, $1) ON CONFLICT (a) DO UPDATE SET b = $5 -- $2")
        #expect(order == [3, 4, 7, 8, 9])
    }

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
        #expect(throws: RouteError.self) {
            try InsertSplitter.split("INSERT INTO t (a) VALUES (1), ('2)", rowsByShard: [0: [0], 1: [1]])
        }
    }
}

/// What the analysis says about COPY FROM into a sharded table.
@Suite struct CopyInFormatTests {
    static func format(_ sql: String) throws -> CopyInFormat? {
        try SQLAnalyzer.analyze(sql, tables: ["users": .sharded(key: "id", type: .bigint)]).statements.first?.copyIn
    }

    @Test func theDefaultsArePostgreSQLs() throws {
        let text = try #require(try Self.format("COPY users FROM STDIN"))
        #expect(text.format == .text && text.delimiter == UInt8(ascii: "\t") && text.null == "\\N" && !text.header)
        #expect(text.keyColumn == nil)
        let csv = try #require(try Self.format("COPY users (name, id) FROM STDIN CSV HEADER"))
        #expect(csv.format == .csv && csv.delimiter == UInt8(ascii: ",") && csv.null == "" && csv.header)
        #expect(csv.quote == UInt8(ascii: "\"") && csv.escape == UInt8(ascii: "\""))
        #expect(csv.keyColumn == 1)
    }

    @Test func optionsAreRead() throws {
        let f = try #require(try Self.format(
            "COPY users (id) FROM STDIN WITH (FORMAT csv, DELIMITER ';', NULL 'nil', QUOTE '''', ESCAPE '\\', HEADER false)"))
        #expect(f.delimiter == UInt8(ascii: ";") && f.null == "nil" && f.quote == UInt8(ascii: "'"))
        #expect(f.escape == UInt8(ascii: "\\") && !f.header && f.keyColumn == 0)
    }
}
