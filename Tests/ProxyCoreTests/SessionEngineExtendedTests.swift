import NIOCore
import PGWire
import ShardMap
import Testing

@testable import ProxyCore

/// The extended protocol: Parse waits for its Bind, each Bind is routed by its values, named statements
/// are prepared per backend as sg_<id> and shared, errors skip to Sync.
@Suite struct SessionEngineExtendedTests {
    typealias H = EngineHarness
    static let keyed = "SELECT name FROM users WHERE id = $1"

    static func bind(_ value: String, statement: String = "", portal: String = "") -> PGFrame {
        frame(.bind(Bind(portal: portal, statement: statement, parameters: [ByteBuffer(string: value)])))
    }

    @Test func anUnnamedBatchIsRoutedByItsBindValue() {
        var h = H()
        let parse = Frames.parse(Self.keyed)
        #expect(h.client(parse).isEmpty)   // held until its Bind says where it goes
        let actions = h.client(Self.bind("\(H.keyOnS1)"), Frames.describe(), Frames.execute(), Frames.sync)
        #expect(actions.acquired == [BackendTarget(shard: 1, replica: 0)])
        let id = actions.acquiredIDs[0]
        let written = h.grant(id).written(to: id)
        #expect(written.count == 5)
        if case .parse(let p)? = written.first { #expect(p.name == "" && p.query == Self.keyed) } else { Issue.record("\(written)") }
        let reply = h.reply(id, [.parseComplete, .bindComplete] + answer(["a"]))
        #expect(reply.relayed == [.parseComplete, .bindComplete] + answer(["a"]))
        #expect(reply.actions.released == [id])
    }

    /// The key may be any parameter: found among the first 64 by bits, beyond them by a set.
    @Test(arguments: [(2, H.keyOnS0, 0), (2, H.keyOnS1, 1), (70, H.keyOnS0, 0), (70, H.keyOnS1, 1)])
    func aBindIsRoutedByItsKeyParameterWhereverItIs(keyNumber: Int, key: Int, shard: Int) {
        var h = H()
        let others = (1..<keyNumber).map { "$\($0)" }.joined(separator: ", ")
        let sql = "SELECT name FROM users WHERE name IN (\(others)) AND id = $\(keyNumber)"
        var values = (1..<keyNumber).map { ByteBuffer(string: "n\($0)") }
        values.append(ByteBuffer(string: "\(key)"))
        let bind = frame(.bind(Bind(portal: "", statement: "", parameters: values)))
        h.client(Frames.parse(sql))
        let actions = h.client(bind, Frames.execute(), Frames.sync)
        #expect(actions.acquired == [BackendTarget(shard: shard, replica: 0)])
    }

    /// libpq's PQprepare (Parse + Sync) in a transaction that has not reached a shard: answered without a
    /// backend; the statement goes to the shard of its first Bind, which is the transaction's only one.
    @Test func aPrepareInATransactionWithoutShardsIsAnsweredHere() {
        var h = H()
        h.client(Frames.query("BEGIN"))
        let prepare = h.client(Frames.parse(Self.keyed, name: "q1"), Frames.sync)
        #expect(prepare.acquired.isEmpty)
        #expect(prepare.sentToClient == [.parseComplete, .readyForQuery(.inTransaction)])
        let actions = h.client(Self.bind("\(H.keyOnS1)", statement: "q1"), Frames.execute(), Frames.sync)
        #expect(actions.acquired == [.primary(1)])
        #expect(actions.claims == [.opening])
        let id = actions.acquiredIDs[0]
        let written = h.grant(id).written(to: id)
        guard case .parse(let p)? = written.dropFirst().first else {
            Issue.record("expected BEGIN then Parse, got \(written)")
            return
        }
        #expect(p.query == Self.keyed)
    }

    @Test func aNamedStatementIsPreparedOnceAndSharedByClientsWithTheSameText() {
        var h = H()
        let parse = Frames.parse(Self.keyed, name: "q1")
        h.client(parse, Self.bind("\(H.keyOnS0)", statement: "q1"), Frames.execute(), Frames.sync)
        let id = h.log.acquiredIDs[0]
        let written = h.grant(id).written(to: id)
        guard case .parse(let p)? = written.first, case .bind(let b)? = written.dropFirst().first else {
            Issue.record("expected Parse then Bind, got \(written)")
            return
        }
        #expect(p.name == b.statement && p.name.hasPrefix("sg_"))
        h.reply(id, [.parseComplete, .bindComplete] + Array(answer(["a"]).dropFirst()))
        let backend = h.backends[id]!

        // A second client, same text under another name, on the same backend: no Parse is sent; its
        // ParseComplete comes from ShardGate in the right place.
        var other = H(context: h.context)
        other.client(Frames.parse(Self.keyed, name: "mine"), Self.bind("\(H.otherKeyOnS0)", statement: "mine"),
                     Frames.execute(), Frames.sync)
        let otherID = other.log.acquiredIDs[0]
        let granted = other.grant(otherID, backend: backend)
        let otherWritten = granted.written(to: otherID)
        #expect(!otherWritten.contains { if case .parse = $0 { return true } else { return false } })
        #expect(granted.sentToClient == [.parseComplete])
        if case .bind(let rebound)? = otherWritten.first { #expect(rebound.statement == p.name) }
    }

    @Test func aBackendWithoutTheStatementGetsItBeforeTheBindAndTheClientDoesNotSeeThatParse() {
        var h = H()
        h.client(Frames.parse(Self.keyed, name: "q"), Frames.sync)
        let first = h.log.acquiredIDs[0]
        h.grant(first)
        h.reply(first, [.parseComplete, .readyForQuery(.idle)])
        // Now a Bind for shard 1: another backend, which lacks it.
        h.client(Self.bind("\(H.keyOnS1)", statement: "q"), Frames.execute(), Frames.sync)
        let second = h.log.acquiredIDs[1]
        #expect(h.targets[second]?.shard == 1)
        let written = h.grant(second).written(to: second)
        guard case .parse(let p)? = written.first else {
            Issue.record("expected the statement to be prepared first, got \(written)")
            return
        }
        #expect(p.name.hasPrefix("sg_"))
        let reply = h.reply(second, [.parseComplete, .bindComplete, .commandComplete("SELECT 0"), .readyForQuery(.idle)])
        #expect(reply.relayed == [.bindComplete, .commandComplete("SELECT 0"), .readyForQuery(.idle)])
    }

    @Test func aBindOfAnUnknownStatementFailsAndTheRestOfTheBatchIsSkipped() {
        var h = H()
        let sent = h.client(Self.bind("1", statement: "nope"), Frames.execute(), Frames.sync).sentToClient
        guard case .errorResponse(let error)? = sent.first else {
            Issue.record("expected an error, got \(sent)")
            return
        }
        #expect(error.sqlState == "26000")
        #expect(sent.dropFirst() == [.readyForQuery(.idle)])
        #expect(h.log.acquired.isEmpty)
    }

    @Test func anErrorFromTheBackendSkipsTheClientsMessagesUpToSync() {
        var h = H()
        h.client(Frames.parse("SELECT 1/$1::int"), Self.bind("0"), Frames.execute())
        let id = h.log.acquiredIDs[0]
        h.grant(id)
        h.client(Frames.flush)
        #expect(h.reply(id, [.parseComplete, .bindComplete, serverError("22012", "division by zero")]).relayed.count == 3)
        // Messages up to Sync are dropped; Sync is answered by the backend.
        #expect(h.client(Self.bind("1"), Frames.execute()).isEmpty)
        #expect(h.client(Frames.sync).forwarded == [id])
        #expect(h.reply(id, [.readyForQuery(.idle)]).actions.released == [id])
    }

    @Test func aPipelineOverTwoShardsRunsEachPartOnItsShardInOrder() {
        var h = H()
        h.client(Frames.parse("INSERT INTO users (id, name) VALUES ($1, 'x')", name: "ins"))
        h.client(Self.bind("\(H.keyOnS0)", statement: "ins"), Frames.execute())
        let a = h.log.acquiredIDs[0]
        h.grant(a)
        // The next Bind goes to shard 1: it waits while shard 0's part is closed with a Sync of ShardGate's.
        #expect(h.client(Self.bind("\(H.keyOnS1)", statement: "ins"), Frames.execute(), Frames.sync).acquired.isEmpty)
        #expect(h.log.written(to: a).last.map { if case .sync = $0 { return true } else { return false } } == true)
        let first = h.reply(a, [.parseComplete, .bindComplete, .commandComplete("INSERT 0 1"), .readyForQuery(.idle)])
        #expect(first.relayed == [.parseComplete, .bindComplete, .commandComplete("INSERT 0 1")])
        let b = first.actions.acquiredIDs[0]
        #expect(h.targets[b] == .primary(1))
        h.grant(b)
        let second = h.reply(b, [.parseComplete, .bindComplete, .commandComplete("INSERT 0 1"), .readyForQuery(.idle)])
        #expect(second.relayed == [.bindComplete, .commandComplete("INSERT 0 1"), .readyForQuery(.idle)])
    }

    @Test func closeOfAStatementIsAnsweredInOrderAndForgetsTheName() {
        var h = H()
        h.client(Frames.parse("SELECT 1", name: "s"), Frames.sync)
        let id = h.log.acquiredIDs[0]
        h.grant(id)
        h.reply(id, [.parseComplete, .readyForQuery(.idle)])
        let close = h.client(frame(.close(.statement("s"))), Frames.sync)
        #expect(close.sentToClient == [.closeComplete, .readyForQuery(.idle)])
        let refused = h.client(Self.bind("", statement: "s"), Frames.sync).sentToClient
        if case .errorResponse(let e)? = refused.first { #expect(e.sqlState == "26000") } else { Issue.record("\(refused)") }
    }

    @Test func beginAndCommitThroughTheExtendedProtocol() {
        var h = H()
        let begin = h.client(Frames.parse("BEGIN"), frame(.bind(Bind(portal: "", statement: ""))), Frames.execute(), Frames.sync)
        #expect(begin.acquired.isEmpty)
        #expect(begin.sentToClient == [.parseComplete, .bindComplete, .commandComplete("BEGIN"), .readyForQuery(.inTransaction)])
        h.client(Frames.parse("INSERT INTO users (id, name) VALUES ($1, 'x')"), Self.bind("\(H.keyOnS1)"), Frames.execute(),
                 Frames.sync)
        let id = h.log.acquiredIDs[0]
        #expect(h.targets[id] == .primary(1))
        h.grant(id)
        h.reply(id, [.commandComplete("BEGIN"), .readyForQuery(.inTransaction)])
        h.reply(id, [.parseComplete, .bindComplete, .commandComplete("INSERT 0 1"), .readyForQuery(.inTransaction)])
        h.client(Frames.parse("COMMIT"), frame(.bind(Bind(portal: "", statement: ""))), Frames.execute(), Frames.sync)
        let reply = h.reply(id, [.parseComplete, .bindComplete, .commandComplete("COMMIT"), .readyForQuery(.idle)])
        #expect(reply.relayed.last == .readyForQuery(.idle))
        #expect(reply.actions.released == [id])
        #expect(h.engine.transaction == nil)
    }
}
