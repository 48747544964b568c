import Foundation
import NIOConcurrencyHelpers
import NIOHTTP1
import ShardMap

/// A stand-in for a proxy's admin port, for testing the HTTP sequencing of a cutover only (the real
/// proxy is exercised by tests/test_rebalance.py): it serves a map, takes PUTs of newer versions, and
/// answers pause/resume the way it is told. Every request lands in a log shared by the fakes of a test.
final class FakeAdminProxy: Sendable {
    enum PauseBehavior: Sendable { case drain, timeout504, hang }
    enum PutBehavior: Sendable { case accept, fail, failOnce }

    struct State: Sendable {
        var mapJSON: String
        var pause: PauseBehavior = .drain
        var put: PutBehavior = .accept
        var puts = 0
        var putBodies: [String] = []
        var paused: Set<Int> = []
    }

    let name: String
    let server: AdminTestHTTPServer
    let state: NIOLockedValueBox<State>

    var url: String { "http://127.0.0.1:\(self.server.port)" }
    var mapVersion: Int { self.map?.version ?? -1 }
    /// The map it serves now.
    var map: ShardMap? { try? ShardMap.decode(Data(self.state.withLockedValue { $0.mapJSON }.utf8)) }

    init(name: String, map: ShardMap, log: NIOLockedValueBox<[String]>,
         pause: PauseBehavior = .drain, put: PutBehavior = .accept) async throws {
        let state = NIOLockedValueBox(State(mapJSON: String(decoding: map.jsonData(redactingSecrets: true), as: UTF8.self),
                                            pause: pause, put: put))
        self.name = name
        self.state = state
        self.server = try await AdminTestHTTPServer { request in
            log.withLockedValue { $0.append("\(name) \(request.method) \(request.uri)") }
            return state.withLockedValue { state in Self.answer(request, &state) }
        }
    }

    func stop() async {
        await self.server.stop()
    }

    static func answer(_ request: AdminTestHTTPServer.Received, _ state: inout State) -> AdminTestHTTPServer.Reply? {
        switch (request.method, request.uri) {
        case (.GET, "/shardmap"):
            return .init(status: .ok, body: state.mapJSON)
        case (.PUT, "/shardmap"):
            state.putBodies.append(request.body)
            guard let object = try? JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any] else {
                return .init(status: .badRequest, body: #"{"error":"not JSON"}"#)
            }
            let wrapped = object["map"] != nil
            let version = ((wrapped ? object["map"] : object) as? [String: Any])?["version"] as? Int ?? 0
            let live = (try? JSONSerialization.jsonObject(with: Data(state.mapJSON.utf8)) as? [String: Any])?["version"] as? Int ?? 0
            guard version > live else {
                return .init(status: .conflict, body: #"{"error":"version \#(version) is not higher than the live map's version \#(live)"}"#)
            }
            state.puts += 1
            switch state.put {
            case .fail:
                return .init(status: .serviceUnavailable, body: #"{"error":"cannot write the map file"}"#)
            case .failOnce where state.puts == 1:
                return .init(status: .serviceUnavailable, body: #"{"error":"cannot write the map file"}"#)
            default:
                break
            }
            let mapObject = wrapped ? object["map"]! : object
            let data = (try? JSONSerialization.data(withJSONObject: mapObject)) ?? Data()
            state.mapJSON = String(decoding: data, as: UTF8.self)
            return .init(status: .ok, body: state.mapJSON)
        case (.POST, "/slots/pause"):
            switch state.pause {
            case .hang:
                return nil
            case .timeout504:
                return .init(status: .gatewayTimeout, body: #"{"error":"1 transaction(s) still running after 100 ms; the slots stay paused","drained":false,"paused_slots":"","waited_ms":100,"in_flight":1}"#)
            case .drain:
                let slots = Self.slots(request.body)
                state.paused.formUnion(slots)
                return .init(status: .ok, body: #"{"paused_slots":"\#(SlotRanges.format(Array(state.paused)))","drained":true,"waited_ms":1,"in_flight":0}"#)
            }
        case (.POST, "/slots/resume"):
            state.paused.subtract(Self.slots(request.body))
            return .init(status: .ok, body: #"{"paused_slots":"\#(SlotRanges.format(Array(state.paused)))"}"#)
        default:
            return .init(status: .notFound, body: #"{"error":"no such endpoint"}"#)
        }
    }

    static func slots(_ body: String) -> [Int] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
              let text = object["slots"] as? String,
              let ranges = try? SlotRanges.parse(text, slotCount: 1024) else { return [] }
        return SlotRanges.slots(in: ranges)
    }
}
