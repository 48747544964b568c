import Foundation
import ShardMap

/// The body of `PUT /shardmap` a cutover sends: the new map and, for the target shard, the WAL position
/// its replicas must have replayed before they serve reads again (the read fence), as
/// `{"map": {...}, "fences": {"s2": "0/3000060"}}`; without fences, the plain map.
public struct ShardMapUpdate: Sendable {
    /// The new map (passwords are sent as `***`, which the proxy reads as "keep the live one").
    public var map: ShardMap
    /// Shard name → WAL position of its primary.
    public var fences: [String: LSN]

    public init(map: ShardMap, fences: [String: LSN] = [:]) {
        self.map = map
        self.fences = fences
    }

    /// The JSON body.
    public var body: Data {
        let mapJSON = self.map.jsonData(redactingSecrets: true)
        guard !self.fences.isEmpty else { return mapJSON }
        let fences = self.fences.sorted { $0.key < $1.key }.map { "\(Self.jsonString($0.key)):\(Self.jsonString($0.value.description))" }
        return Data("{\"map\":".utf8) + mapJSON + Data(",\"fences\":{\(fences.joined(separator: ","))}}".utf8)
    }

    static func jsonString(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }
}

/// A proxy's answer to `POST /slots/pause`.
public struct PauseAnswer: Sendable, Equatable, Decodable {
    public var pausedSlots: String
    public var drained: Bool
    public var waitedMs: Int
    public var inFlight: Int?
}

extension AdminClient {
    /// `GET /shardmap`, decoded (passwords stay `***`; connections then let libpq find them).
    public func liveMap() async throws -> ShardMap {
        let response = try await self.get("/shardmap")
        do {
            return try ShardMap.decode(response.body, environment: [:], baseDirectory: nil)
        } catch {
            throw AdminClientError.malformedResponse(self.proxy, "/shardmap is not a valid map: \(error)")
        }
    }

    /// `POST /slots/pause`: returns once in-flight transactions on the slots ended (the proxy answers 504,
    /// thrown as `.http`, when they did not within `timeoutMs`; the slots then stay paused).
    public func pause(slots: [Int], timeoutMs: Int) async throws -> PauseAnswer {
        let body = #"{"slots":"\#(SlotRanges.format(slots))","timeout_ms":\#(timeoutMs)}"#
        let response = try await self.post("/slots/pause", json: Data(body.utf8))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try decoder.decode(PauseAnswer.self, from: response.body)
        } catch {
            throw AdminClientError.malformedResponse(self.proxy, "/slots/pause answered \(response.text)")
        }
    }

    /// `POST /slots/resume`.
    public func resume(slots: [Int]) async throws {
        _ = try await self.post("/slots/resume", json: Data(#"{"slots":"\#(SlotRanges.format(slots))"}"#.utf8))
    }

    /// `PUT /shardmap` with `update`.
    public func push(_ update: ShardMapUpdate) async throws {
        _ = try await self.put("/shardmap", json: update.body)
    }
}
