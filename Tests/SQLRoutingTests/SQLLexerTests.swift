@testable import SQLRouting
import Testing

@Suite("Lexer: statement shapes and literals")
struct SQLLexerTests {
    func lex(_ sql: String) -> LexedSQL {
        var text = sql
        return text.withUTF8 { SQLLexer.lex($0) }
    }

    func shape(_ sql: String) -> String {
        String(decoding: lex(sql).shape.map { $0 == SQLLexer.marker ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
    }

    func values(_ sql: String) -> [String?] {
        var text = sql
        let lexed = lex(sql)
        return text.withUTF8 { bytes in lexed.literals.map { $0.value(in: bytes) } }
    }

    @Test("literals are abstracted; case, whitespace and comments do not change the shape")
    func shapes() {
        let a = shape("SELECT abalance FROM pgbench_accounts WHERE aid = 12345")
        #expect(a == "select abalance from pgbench_accounts where aid = ?n")
        #expect(shape("select  abalance\n from PGBENCH_ACCOUNTS /* c */ where aid=  9") == "select abalance from pgbench_accounts where aid= ?n")
        #expect(shape("/* shard: s1 */ SELECT 1") == shape("SELECT 2"))
        #expect(shape("SELECT 'a'") != shape("SELECT 1"))
        #expect(shape(#"SELECT "Users""#) == #"select "Users""#)
        #expect(shape("SELECT $1, $2") == "select $1, $2")
        #expect(shape("SELECT E'x', $$y$$, B'01', X'1f', N'z', U&'w'") == "select ?e, ?d, ?b, ?x, ?N, ?u")
        #expect(shape("SELECT 1.5e3, .5, 7") == "select ?n, ?n, ?n")
        #expect(shape("SELECT a$b FROM t") == "select a$b from t")
    }

    @Test("literal values as PostgreSQL reads them")
    func literalValues() {
        #expect(values("SELECT 'it''s', E'a\\nb\\x41\\101\\u00e9', $q$x'y$q$, $$$$, 42, -7") ==
            ["it's", "a\nbAAé", "x'y", "", "42", "7"])
        #expect(values("SELECT U&'d\\0061t', B'01', N'x'") == [nil, nil, nil])
        #expect(values("SELECT 1..2") == ["1", ".2"])
        #expect(values("SELECT 1e5, 2e, 3.") == ["1e5", "2", "3."])
    }

    @Test("texts whose shape cannot stand for them are not cacheable")
    func uncacheable() {
        #expect(lex("SELECT 1").cacheable)
        #expect(!lex("SELECT 'a'\n'b'").cacheable)
        #expect(lex("SELECT 'a' -- x\n, 'b'").cacheable)
        #expect(!lex("SELECT 'unterminated").cacheable)
        #expect(!lex("SELECT /* open").cacheable)
        #expect(!lex("SELECT \u{01}n").cacheable)
        #expect(!lex("SELECT\u{0B}1").cacheable)
    }

    @Test("a string continued across a newline is one literal PostgreSQL concatenates")
    func continuation() throws {
        let analysis = try SQLAnalyzer.analyze("SELECT * FROM sessions WHERE token = 'user'\n'-1'",
                                               tables: RoutingFixtures.designMap.tables)
        // Its value is not decoded here, so routing falls back to every shard (never to a wrong one).
        #expect(try RoutePlanner.plan(analysis, map: RoutingFixtures.designMap).target == .allShards)
    }

    @Test("the leading region ends at the first token")
    func leadingRegion() {
        #expect(lex("/* a */ -- b\n SELECT 1").leadingEnd == 14)
        #expect(lex("SELECT 1").leadingEnd == 0)
        #expect(lex("").leadingEnd == 0)
    }
}
