import NIOCore
import PGWire
import ShardMap
import SQLRouting
import Testing

@testable import ProxyCore

/// COPY data split by key: rows found and keys read with PostgreSQL's COPY rules.
@Suite struct CopySplitterTests {
    typealias H = EngineHarness

    static func splitter(_ sql: String, keyField: Int? = nil) throws -> CopySplitter {
        let analysis = try SQLAnalyzer.analyze(sql, tables: H.map.tables)
        let format = try #require(analysis.statements.first?.copyIn)
        return CopySplitter(format: format, keyField: keyField ?? format.keyColumn ?? 0, map: H.map,
                            memberOfShard: [0: 0, 1: 1], memberCount: 2)
    }

    /// Feeds `data` in pieces of `piece` bytes; returns what each member got.
    static func run(_ splitter: inout CopySplitter, _ data: String, piece: Int) -> [String] {
        var got = ["", ""]
        let bytes = Array(data.utf8)
        var start = 0
        while start < bytes.count {
            let end = min(start + piece, bytes.count)
            for (member, chunk) in splitter.feed(ByteBuffer(bytes: bytes[start..<end])) {
                got[member] += String(buffer: chunk)
            }
            start = end
        }
        for (member, chunk) in splitter.finish() { got[member] += String(buffer: chunk) }
        return got
    }

    @Test(arguments: [1, 2, 3, 7, 1000])
    func textRowsGoToTheShardOfTheirKeyWhereverTheMessagesAreCut(piece: Int) throws {
        var s = try Self.splitter("COPY users (name, id) FROM STDIN")
        let data = "a\t\(H.keyOnS0)\nb\\tc\t\(H.keyOnS1)\r\nd\\\ne\t\(H.otherKeyOnS0)\n\\N\t\(H.otherKeyOnS1)\n\\.\nignored\t1\n"
        let got = Self.run(&s, data, piece: piece)
        #expect(got[0] == "a\t\(H.keyOnS0)\nd\\\ne\t\(H.otherKeyOnS0)\n\\.\n")
        #expect(got[1] == "b\\tc\t\(H.keyOnS1)\r\n\\N\t\(H.otherKeyOnS1)\n\\.\n")
    }

    @Test func textKeysAreUnescapedAndNullGoesToSlotZero() throws {
        let s = try Self.splitter("COPY users (id) FROM STDIN")
        #expect(s.field(0, of: Array("\\x34\\062".utf8)[...]) == "42")
        #expect(s.field(0, of: Array("\\N".utf8)[...]) == nil)
        #expect(s.field(1, of: Array("1".utf8)[...]) == nil)
    }

    @Test(arguments: [1, 4, 1000])
    func csvRowsMayHoldQuotedDelimitersAndNewlines(piece: Int) throws {
        var s = try Self.splitter("COPY users (name, id) FROM STDIN WITH (FORMAT csv, HEADER)")
        let data = "name,id\n\"x, \"\"y\"\"\n\",\(H.keyOnS1)\nplain,\"\(H.keyOnS0)\"\n,\(H.otherKeyOnS1)\n"
        let got = Self.run(&s, data, piece: piece)
        #expect(got[0] == "name,id\nplain,\"\(H.keyOnS0)\"\n")
        #expect(got[1] == "name,id\n\"x, \"\"y\"\"\n\",\(H.keyOnS1)\n,\(H.otherKeyOnS1)\n")
    }

    @Test func csvNullIsAnUnquotedEmptyField() throws {
        let s = try Self.splitter("COPY users (id, name) FROM STDIN CSV")
        #expect(s.field(0, of: Array(",x".utf8)[...]) == nil)
        #expect(s.field(0, of: Array("\"\",x".utf8)[...]) == "")
        #expect(s.field(1, of: Array("1,\"a\"\"b\"".utf8)[...]) == "a\"b")
    }

    @Test func aLastRowWithoutANewlineIsSentAtTheEnd() throws {
        var s = try Self.splitter("COPY users (id) FROM STDIN")
        #expect(Self.run(&s, "\(H.keyOnS1)", piece: 100) == ["", "\(H.keyOnS1)"])
    }

    // MARK: through the engine

    @Test func copyWithAColumnListSplitsTheDataOverEveryShard() throws {
        var h = H()
        let copy = Frames.query("COPY users (id, name) FROM STDIN")
        // One shard's backend first, the other's once the session holds it (acquireDeferred).
        var ids = h.client(copy).acquiredIDs
        ids += h.grant(ids[0]).acquiredIDs
        h.grant(ids[1])
        #expect(ids.map { h.targets[$0]! } == [.primary(0), .primary(1)])
        h.begun(ids)
        let response = BackendMessage.copyInResponse(CopyResponse(overallFormat: 0, columnFormats: [0, 0]))
        #expect(h.reply(ids[0], [response]).client == [response])
        #expect(h.reply(ids[1], [response]).client.isEmpty)
        h.client(frame(.copyData(ByteBuffer(string: "\(H.keyOnS0)\ta\n\(H.keyOnS1)\tb\n"))), Frames.copyDone)
        let toS0 = h.log.written(to: ids[0]).compactMap { if case .copyData(let d) = $0 { return String(buffer: d) } else { return nil } }
        let toS1 = h.log.written(to: ids[1]).compactMap { if case .copyData(let d) = $0 { return String(buffer: d) } else { return nil } }
        #expect(toS0 == ["\(H.keyOnS0)\ta\n"])
        #expect(toS1 == ["\(H.keyOnS1)\tb\n"])
        #expect(h.log.written(to: ids[1]).last == .copyDone)
        h.reply(ids[0], done("COPY 1", status: .inTransaction))
        #expect(h.reply(ids[1], done("COPY 1", status: .inTransaction)).client == [.commandComplete("COPY 2")])
        #expect(h.commitTwoPhase(ids) == [.readyForQuery(.idle)])
    }

    @Test func copyWithoutAColumnListFirstAsksWhereTheKeyIs() throws {
        var h = H()
        let ids = h.client(Frames.query("COPY users FROM STDIN")).acquiredIDs
        #expect(ids.count == 1)
        let question = h.grant(ids[0]).written(to: ids[0]).compactMap(\.queryText)
        #expect(question.first?.contains("pg_attribute") == true)
        // The answer (the key is the second column) is not shown; the COPY then starts on every shard.
        let answer = h.reply(ids[0], answer(["1"]))
        #expect(answer.relayed.isEmpty && answer.actions.sentToClient.isEmpty)
        // The question ran outside a transaction, so its lease goes back; the COPY runs in the transaction
        // ShardGate opens around it, on a lease per shard.
        #expect(h.log.released.contains(ids[0]))
        var both = answer.actions.acquiredIDs
        both += h.grant(both[0]).acquiredIDs
        h.grant(both[1])
        #expect(h.log.acquired.count == 3)
        #expect(both.map { h.targets[$0]! } == [.primary(0), .primary(1)])
        h.client(frame(.copyData(ByteBuffer(string: "a\t\(H.keyOnS1)\n"))), Frames.copyDone)
        let member = both.first { h.targets[$0]?.shard == 1 }!
        #expect(h.log.written(to: member).contains(.copyData(ByteBuffer(string: "a\t\(H.keyOnS1)\n"))))
        #expect(h.log.written(to: member).compactMap(\.queryText).contains("BEGIN"))
    }
}
