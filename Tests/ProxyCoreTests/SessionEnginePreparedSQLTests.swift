import NIOCore
import PGWire
import ShardMap
import Testing

@testable import ProxyCore

/// SQL-level PREPARE, EXECUTE and DEALLOCATE: kept by the session, EXECUTE routed by its arguments.
@Suite struct SessionEnginePreparedSQLTests {
    typealias H = EngineHarness

    static func sqlState(_ messages: [BackendMessage]) -> String? {
        for message in messages { if case .errorResponse(let fields) = message { return fields.sqlState } }
        return nil
    }

    @Test func prepareIsAnsweredHereAndExecuteRunsTheTextWithItsArgumentsOnTheKeysShard() {
        var h = H()
        let prepare = h.client(Frames.query("PREPARE byid AS SELECT name FROM users WHERE id = $1;"))
        #expect(prepare.acquired.isEmpty)
        #expect(prepare.sentToClient == [.commandComplete("PREPARE"), .readyForQuery(.idle)])

        let execute = h.client(Frames.query("EXECUTE byid(\(H.keyOnS1))"))
        #expect(execute.acquired == [BackendTarget(shard: 1, replica: 0)])
        let id = execute.acquiredIDs[0]
        let written = h.grant(id).written(to: id)
        #expect(written.map(\.queryText) == ["SELECT name FROM users WHERE id = (\(H.keyOnS1))"])
        let reply = h.reply(id, answer(["a"]))
        #expect(reply.relayed == answer(["a"]))

        // Another key, another shard; the statement is still there. The server's cursor position points
        // into the substituted text, which the client never wrote: it is dropped, the rest is relayed.
        let again = h.client(Frames.query("execute BYID ( \(H.keyOnS0) )"))
        #expect(again.acquired == [BackendTarget(shard: 0, replica: 0)])
        let otherID = again.acquiredIDs[0]
        h.grant(otherID)
        let located = ErrorNoticeFields(severity: "ERROR", sqlState: "42P01", message: "relation \"users\" does not exist",
                                        position: 18)
        let failed = h.reply(otherID, [.errorResponse(located), .readyForQuery(.idle)])
        #expect(failed.actions.sentToClient == [.errorResponse(ErrorNoticeFields(
            severity: "ERROR", sqlState: "42P01", message: "relation \"users\" does not exist"))])
        #expect(failed.relayed == [.readyForQuery(.idle)])
    }

    @Test func declaredTypesCastTheArgumentsAndWritesGoToThePrimary() {
        var h = H()
        h.client(Frames.query("PREPARE ins (bigint, text) AS INSERT INTO users (id, name) VALUES ($1, $2)"))
        let execute = h.client(Frames.query("/* app */ EXECUTE ins(\(H.keyOnS1), 'it''s, (really) $1')"))
        #expect(execute.acquired == [.primary(1)])
        let id = execute.acquiredIDs[0]
        let written = h.grant(id).written(to: id)
        #expect(written.map(\.queryText) == [
            "/* app */ INSERT INTO users (id, name) VALUES (CAST((\(H.keyOnS1)) AS bigint), CAST(('it''s, (really) $1') AS text))",
        ])
    }

    @Test func mistakesGetPostgreSQLsErrorsWithoutABackend() {
        var h = H()
        h.client(Frames.query("PREPARE p (int) AS SELECT * FROM users WHERE id = $1"))
        let cases: [(String, String)] = [
            ("PREPARE p AS SELECT 1", "42P05"),
            ("EXECUTE nope(1)", "26000"),
            ("EXECUTE p", "42601"),
            ("EXECUTE p(1, 2)", "42601"),
            ("EXECUTE p(id)", "0A000"),            // a column would make the substituted text mean another thing
            ("EXECUTE p((SELECT 1))", "0A000"),
            ("EXECUTE p(count(*))", "0A000"),
            ("DEALLOCATE nope", "26000"),
            ("SELECT 1; EXECUTE p(1)", "0A000"),   // not alone in its query string
        ]
        for (sql, state) in cases {
            let actions = h.client(Frames.query(sql))
            #expect(actions.acquired.isEmpty, "\(sql)")
            #expect(Self.sqlState(actions.sentToClient) == state, "\(sql): \(actions.sentToClient)")
            #expect(actions.sentToClient.last == .readyForQuery(.idle), "\(sql)")
        }
        #expect(h.client(Frames.query("DEALLOCATE PREPARE p")).sentToClient == [.commandComplete("DEALLOCATE"), .readyForQuery(.idle)])
        #expect(Self.sqlState(h.client(Frames.query("EXECUTE p(1)")).sentToClient) == "26000")
    }

    @Test func inAFailedTransactionTheyAreRefusedLikeEveryOtherStatement() {
        var h = H()
        h.client(Frames.query("BEGIN"))
        h.client(Frames.query("SELECT nonsense"))
        let id = h.log.acquiredIDs[0]
        h.grant(id)
        h.begun([id])
        h.reply(id, [serverError("42703", "column \"nonsense\" does not exist"), .readyForQuery(.failedTransaction)])
        let prepare = h.client(Frames.query("PREPARE p AS SELECT 1"))
        #expect(prepare.sentToClient == [.errorResponse(ProxyErrors.transactionAborted), .readyForQuery(.failedTransaction)])
    }

    /// PostgreSQL keeps both kinds under one set of names: DEALLOCATE drops protocol-level statements too,
    /// so a driver that deallocates and prepares the same name again (psycopg does) gets no 42P05.
    @Test func deallocateDropsProtocolLevelStatementsAndTheNameCanBeParsedAgain() {
        var h = H()
        let parse = h.client(Frames.parse("SELECT 1", name: "_pg3_0"), Frames.sync)
        let id = parse.acquiredIDs[0]
        h.grant(id)
        h.reply(id, [.parseComplete, .readyForQuery(.idle)])
        #expect(Self.sqlState(h.client(Frames.query("PREPARE _pg3_0 AS SELECT 2")).sentToClient) == "42P05")
        #expect(Self.sqlState(h.client(Frames.query("EXECUTE _pg3_0")).sentToClient) == "0A000")
        #expect(h.client(Frames.query("DEALLOCATE _pg3_0")).sentToClient == [.commandComplete("DEALLOCATE"), .readyForQuery(.idle)])
        #expect(h.context.catalog.count == 0)
        let again = h.client(Frames.parse("SELECT 2", name: "_pg3_0"), Frames.sync)
        #expect(Self.sqlState(again.sentToClient) == nil)
        let againID = again.acquiredIDs[0]
        h.grant(againID)
        h.reply(againID, [.parseComplete, .readyForQuery(.idle)])

        #expect(h.client(Frames.query("DEALLOCATE ALL")).sentToClient == [.commandComplete("DEALLOCATE ALL"), .readyForQuery(.idle)])
        let bind = h.client(Frames.bind(statement: "_pg3_0"), Frames.execute(), Frames.sync)
        #expect(Self.sqlState(bind.sentToClient) == "26000")
    }

    /// psycopg sends DEALLOCATE ALL through the extended protocol in pipeline mode.
    @Test func deallocateThroughTheExtendedProtocolIsAnsweredHere() {
        var h = H()
        h.client(Frames.query("PREPARE p AS SELECT 1"))
        let actions = h.client(Frames.parse("DEALLOCATE ALL"), Frames.bind(), Frames.describe(), Frames.execute(), Frames.sync)
        #expect(actions.acquired.isEmpty)
        #expect(actions.sentToClient == [.parseComplete, .bindComplete, .noData, .commandComplete("DEALLOCATE ALL"),
                                         .readyForQuery(.idle)])
        #expect(Self.sqlState(h.client(Frames.query("EXECUTE p")).sentToClient) == "26000")
    }

    /// DISCARD ALL deallocates the backend's statements: a statement prepared there before must be prepared
    /// again, not assumed.
    @Test func discardAllMakesTheBackendPrepareStatementsAgain() {
        var h = H()
        let keyed = "SELECT name FROM users WHERE id = $1"
        h.client(Frames.parse(keyed, name: "q"), SessionEngineExtendedTests.bind("\(H.keyOnS0)", statement: "q"),
                 Frames.execute(), Frames.sync)
        let first = h.log.acquiredIDs[0]
        h.grant(first)
        h.reply(first, [.parseComplete, .bindComplete] + Array(answer(["a"]).dropFirst()))
        let backend = h.backends[first]!
        #expect(backend.statements.count == 1)

        h.log = []
        let discard = h.client(Frames.query("DISCARD ALL"))
        let id = discard.acquiredIDs[0]
        h.grant(id, backend: backend)
        #expect(backend.statements.count == 0)
        h.reply(id, done("DISCARD ALL"))
        // The client's name is gone too, as in PostgreSQL.
        let bind = h.client(SessionEngineExtendedTests.bind("\(H.keyOnS0)", statement: "q"), Frames.execute(), Frames.sync)
        #expect(Self.sqlState(bind.sentToClient) == "26000")
    }
}
