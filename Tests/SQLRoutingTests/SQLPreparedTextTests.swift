import Testing

@testable import SQLRouting

/// Reading PREPARE and EXECUTE texts, and placing EXECUTE's arguments in the statement, by PostgreSQL's
/// token rules: what is inside strings, quoted names, dollar quotes and comments is never touched.
@Suite struct SQLPreparedTextTests {
    @Test func prepareGivesTheTypesAsWrittenAndTheStatement() throws {
        let plain = try #require(SQLPreparedText.prepare("PREPARE p AS SELECT $1 ;; "))
        #expect(plain.types == [] && plain.statement == "SELECT $1")
        let typed = try #require(SQLPreparedText.prepare(
            "-- c\nprepare \"Q\" ( numeric(10, 2), timestamp with time zone, int[] ) as\n INSERT INTO t VALUES ($1, $2, $3)"))
        #expect(typed.types == ["numeric(10, 2)", "timestamp with time zone", "int[]"])
        #expect(typed.statement == "INSERT INTO t VALUES ($1, $2, $3)")
        #expect(SQLPreparedText.prepare("PREPARE p (int AS SELECT 1") == nil)
    }

    @Test func executeSplitsArgumentsOnlyAtTheirOwnCommas() throws {
        let call = try #require(SQLPreparedText.execute(
            "/* shard_key: 1 */ EXECUTE p(1, 'a,b)', ARRAY[1, 2], f(3, 4), $$x,)$$, E'\\',', \"c,\", -5)"))
        #expect(call.leading == "/* shard_key: 1 */ ")
        #expect(call.arguments == ["1", "'a,b)'", "ARRAY[1, 2]", "f(3, 4)", "$$x,)$$", "E'\\','", "\"c,\"", "-5"])
        #expect(try #require(SQLPreparedText.execute("EXECUTE p")).arguments == [])
        #expect(SQLPreparedText.execute("EXECUTE p(1,)") == nil)
    }

    @Test func parametersAreCountedAndReplacedOutsideQuotedText() {
        let statement = "SELECT $2, '$1', \"$1\", $$ $1 $$, a$1, /* $1 */ $1 -- $3\n, $10"
        #expect(SQLPreparedText.parameterCount(statement) == 10)
        let arguments = (1...10).map { "v\($0)" }
        #expect(SQLPreparedText.substitute(statement, arguments: arguments, types: ["int"])
            == "SELECT (v2), '$1', \"$1\", $$ $1 $$, a$1, /* $1 */ CAST((v1) AS int) -- $3\n, (v10)")
    }

    @Test func theAnalyzerNamesTheCommandAndRefusesArgumentsThatAreNotConstants() throws {
        func command(_ sql: String) throws -> SQLPreparedCommand? {
            try SQLAnalyzer.analyze(sql, tables: [:]).statements.first?.preparedCommand
        }
        #expect(try command("PREPARE \"Mixed\" AS SELECT 1") == .prepare(name: "Mixed"))
        #expect(try command("DEALLOCATE ALL") == .deallocate(name: nil))
        #expect(try command("DEALLOCATE PREPARE Q") == .deallocate(name: "q"))
        #expect(try command("EXECUTE q(1, -2.5, 'x'::date, ARRAY[1], now(), lower('A'), NULL, 1 + 2)")
            == .execute(name: "q", argumentCount: 8, problem: nil))
        for bad in ["EXECUTE q(id)", "EXECUTE q((SELECT 1))", "EXECUTE q(sum(1))", "EXECUTE q(1 + x)"] {
            guard case .execute(_, _, let problem)? = try command(bad) else {
                Issue.record("\(bad): not an EXECUTE")
                continue
            }
            #expect(problem != nil, "\(bad)")
        }
        #expect(try command("EXPLAIN EXECUTE q(1)") == nil)
        #expect(try command("SELECT 1") == nil)
    }
}
