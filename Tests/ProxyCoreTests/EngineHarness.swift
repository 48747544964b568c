import Foundation
import NIOConcurrencyHelpers
import NIOCore
import PGWire
import ShardMap
import SQLRouting
import Testing

@testable import ProxyCore

/// A SessionEngine driven without sockets: client frames in, fake backends answering with the messages a
/// test gives, every action recorded.
struct EngineHarness {
    /// A monotonic clock the test moves.
    final class Clock: Sendable {
        let value = NIOLockedValueBox<NIODeadline>(.uptimeNanoseconds(1_000_000))
        func advance(_ by: TimeAmount = .milliseconds(1)) { self.value.withLockedValue { $0 = $0 + by } }
        var now: NIODeadline { self.value.withLockedValue { $0 } }
    }

    static let mapJSON = #"""
        {
          "version": 1,
          "slot_count": 1024,
          "shards": [
            {"name": "s0", "primary": "postgresql://postgres@127.0.0.1:5500/app",
             "replicas": ["postgresql://postgres@127.0.0.1:5501/app"]},
            {"name": "s1", "primary": "postgresql://postgres@127.0.0.1:5502/app",
             "replicas": ["postgresql://postgres@127.0.0.1:5503/app"]}
          ],
          "slots": {"s0": "0-511", "s1": "512-1023"},
          "tables": {
            "users":     {"shard_key": "id", "type": "bigint"},
            "orders":    {"shard_key": "user_id", "type": "bigint"},
            "sessions":  {"shard_key": "token", "type": "text"},
            "countries": {"reference": true}
          },
          "unlisted_tables": "s0"
        }
        """#
    // swiftlint:disable:next force_try
    static let map = try! ShardMap.decode(Data(mapJSON.utf8), environment: [:])

    /// Keys and their shard under `map` (from PostgreSQL's hashint8extended; see ShardMapTests' golden data).
    static let keyOnS0 = 2    // slot 378
    static let otherKeyOnS0 = 3  // slot 185
    static let keyOnS1 = 1    // slot 952
    static let otherKeyOnS1 = 42 // slot 610

    var engine: SessionEngine
    var context: RoutingContext
    let clock: Clock
    /// Every action, in order.
    var log: [SessionEngine.Action] = []
    /// Backend state per lease (set when granted).
    var backends: [Int: BackendState] = [:]
    /// Lease targets as acquired.
    var targets: [Int: BackendTarget] = [:]

    init(parameters: [(String, String)] = [], clock: Clock = Clock(), context: RoutingContext? = nil) {
        self.clock = clock
        self.context = context ?? RoutingContext(map: Self.map, clock: { clock.now })
        if context == nil {
            self.context.lag = Self.lag()
            self.context.twoPhase = TwoPhaseRegistry(instance: "test", boot: 1)
        }
        self.engine = SessionEngine(parameters: SessionParameters(startup: parameters), shardNames: ["s0", "s1"])
    }

    /// A lag snapshot of the test map: every replica in rotation with `replay`, primaries sampled at `samples`.
    static func lag(inRotation: [[Bool]] = [[true], [true]], replay: [[UInt64]] = [[0], [0]],
                    samples: [[(sentAt: NIODeadline, lsn: UInt64)]] = [[], []]) -> LagSnapshot {
        LagSnapshot(shards: (0..<2).map { shard in
            ShardLag(name: "s\(shard)", primary: PrimaryLag(url: "p\(shard)", healthy: true),
                     replicas: (0..<inRotation[shard].count).map { r in
                         ReplicaLag(url: "r\(shard)", health: .healthy, inRotation: inRotation[shard][r],
                                    replayLSN: LSN(replay[shard][r]))
                     },
                     primaryPositions: samples[shard].map { PrimaryPosition(sentAt: $0.sentAt, lsn: LSN($0.lsn)) })
        })
    }

    // MARK: events

    @discardableResult
    mutating func client(_ frames: PGFrame...) -> [SessionEngine.Action] {
        var out: [SessionEngine.Action] = []
        for frame in frames {
            self.engine.clientFrame(frame, context: &self.context)
            out += self.drain()
            self.engine.clientFrameHandled()
        }
        return out
    }

    /// `frame` from the client, with every lease it asks for granted while it is still being handled, as
    /// a pool with an idle connection does: the actions of both.
    mutating func clientGrantingAtOnce(_ frame: PGFrame) -> [SessionEngine.Action] {
        self.engine.clientFrame(frame, context: &self.context)
        var out = self.drain()
        for id in out.acquiredIDs {
            let state = BackendState(server: "fake \(id)", parameters: BackendParameters(defaults: Fixture.backendDefaults))
            self.backends[id] = state
            self.engine.leaseGranted(id, backend: state, context: &self.context)
            out += self.drain()
        }
        self.engine.clientFrameHandled()
        return out
    }

    @discardableResult
    mutating func grant(_ id: Int, backend: BackendState? = nil) -> [SessionEngine.Action] {
        let state = backend ?? BackendState(server: "fake \(id)", parameters: BackendParameters(defaults: Fixture.backendDefaults))
        self.backends[id] = state
        self.engine.leaseGranted(id, backend: state, context: &self.context)
        return self.drain()
    }

    @discardableResult
    mutating func fail(_ id: Int, _ error: ErrorNoticeFields) -> [SessionEngine.Action] {
        self.engine.leaseFailed(id, error: error, context: &self.context)
        return self.drain()
    }

    /// Backend `id` answers with `messages`: what the engine relays, and what it does.
    @discardableResult
    mutating func reply(_ id: Int, _ messages: [BackendMessage]) -> Reply {
        var reply = Reply()
        for message in messages {
            var encoded = ByteBuffer()
            message.encode(into: &encoded)
            let payload = encoded.getSlice(at: 5, length: encoded.readableBytes - 5)!
            let step = self.engine.backendMessage(id, type: message.id.rawValue, payload: payload, context: &self.context)
            if step.disposition == .relay { reply.relayed.append(message) }
            reply.actions += self.drain()
        }
        return reply
    }

    /// Members of a statement ShardGate wrapped in a transaction (autocommit writes on several shards):
    /// each answers the BEGIN ShardGate sent first.
    mutating func begun(_ ids: [Int]) {
        for id in ids { self.reply(id, done("BEGIN", status: .inTransaction)) }
    }

    /// The two-phase commit after everything is answered: each prepares, the decision is logged, each commits.
    /// Returns what the client got at the end.
    @discardableResult
    mutating func commitTwoPhase(_ ids: [Int]) -> [BackendMessage] {
        for id in ids {
            let written = self.log.written(to: id).compactMap(\.queryText)
            #expect(written.last?.hasPrefix("PREPARE TRANSACTION 'sg_test_") == true, "\(written)")
            self.reply(id, done("PREPARE TRANSACTION"))
        }
        #expect(self.log.contains { if case .logCommitDecision = $0 { true } else { false } })
        self.engine.decisionLogged(context: &self.context)
        var client = self.drain().sentToClient
        for id in ids {
            #expect(self.log.written(to: id).compactMap(\.queryText).last?.hasPrefix("COMMIT PREPARED") == true)
            client += self.reply(id, done("COMMIT PREPARED")).client
        }
        return client
    }

    @discardableResult
    mutating func lost(_ id: Int, midMessage: Bool = false) -> [SessionEngine.Action] {
        self.engine.backendLost(id, server: "fake \(id)", reason: "gone", midMessage: midMessage, context: &self.context)
        return self.drain()
    }

    mutating func drain() -> [SessionEngine.Action] {
        var out: [SessionEngine.Action] = []
        while let action = self.engine.nextAction() {
            if case .acquire(let id, let target, _) = action { self.targets[id] = target }
            out.append(action)
        }
        self.log += out
        return out
    }

    struct Reply {
        var relayed: [BackendMessage] = []
        var actions: [SessionEngine.Action] = []
        /// Relayed messages plus what the engine sent the client itself, in order.
        var client: [BackendMessage] {
            self.relayed + self.actions.sentToClient
        }
    }
}

// MARK: reading actions

extension Array where Element == SessionEngine.Action {
    var acquired: [BackendTarget] {
        self.compactMap { if case .acquire(_, let target, _) = $0 { return target } else { return nil } }
    }

    var claims: [BackendClaim] {
        self.compactMap { if case .acquire(_, _, let claim) = $0 { return claim } else { return nil } }
    }

    var acquiredIDs: [Int] {
        self.compactMap { if case .acquire(let id, _, _) = $0 { return id } else { return nil } }
    }

    var released: [Int] {
        self.compactMap { if case .release(let id) = $0 { return id } else { return nil } }
    }

    var discarded: [Int] {
        self.compactMap { if case .discard(let id) = $0 { return id } else { return nil } }
    }

    /// Messages the engine sent the client itself.
    var sentToClient: [BackendMessage] {
        self.flatMap { action -> [BackendMessage] in
            guard case .send(var bytes) = action else { return [] }
            var messages: [BackendMessage] = []
            while let frame = try? PGFrame.decode(from: &bytes, limits: .default), let message = try? BackendMessage.decode(frame) {
                messages.append(message)
            }
            return messages
        }
    }

    /// Frames written to lease `id` (`.forward` counts as `current`, the client frame being processed).
    func written(to id: Int, current: PGFrame? = nil) -> [FrontendMessage] {
        self.flatMap { action -> [FrontendMessage] in
            switch action {
            case .forward(let lease) where lease == id:
                return current.flatMap { try? FrontendMessage.decode($0) }.map { [$0] } ?? []
            case .write(let lease, var bytes) where lease == id:
                var messages: [FrontendMessage] = []
                while let frame = try? PGFrame.decode(from: &bytes, limits: .default), let message = try? FrontendMessage.decode(frame) {
                    messages.append(message)
                }
                return messages
            default:
                return []
            }
        }
    }

    var forwarded: [Int] {
        self.compactMap { if case .forward(let id) = $0 { return id } else { return nil } }
    }

    var closed: (Bool, ErrorNoticeFields?) {
        for action in self { if case .closeClient(let error) = action { return (true, error) } }
        return (false, nil)
    }
}

extension FrontendMessage {
    var queryText: String? { if case .query(let sql) = self { return sql } else { return nil } }
}

/// The answers of a simple query returning `rows` of one text column.
func answer(_ rows: [String], tag: String? = nil, status: BackendMessage.TransactionStatus = .idle) -> [BackendMessage] {
    let description = RowDescription(columns: [.init(name: "v", dataTypeOID: 25, dataTypeSize: -1)])
    return [.rowDescription(description)] + rows.map { .dataRow(DataRow(values: [ByteBuffer(string: $0)])) }
        + [.commandComplete(tag ?? "SELECT \(rows.count)"), .readyForQuery(status)]
}

func done(_ tag: String, status: BackendMessage.TransactionStatus = .idle) -> [BackendMessage] {
    [.commandComplete(tag), .readyForQuery(status)]
}

func serverError(_ sqlState: String, _ message: String) -> BackendMessage {
    .errorResponse(ProxyErrors.error(sqlState, message))
}
