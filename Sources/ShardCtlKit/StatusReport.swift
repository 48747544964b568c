import Foundation

/// A proxy's `GET /status` answer, as the admin port writes it: every field is the JSON field of the same
/// name in camelCase (`map_version` → `mapVersion`, `replay_lsn` → `replayLsn`); see AdminServer's
/// `AdminJSON.Status` for their meaning. Optional fields are `null` in the JSON when unknown.
public struct StatusReport: Decodable, Sendable, Equatable {
    public struct Shard: Decodable, Sendable, Equatable {
        public var name: String
        public var primary: String
        public var replicas: [String]
        public var slots: String
        public var slotCount: Int
    }

    public struct Pool: Decodable, Sendable, Equatable {
        public var shard: String
        public var role: String
        public var server: String
        public var size: Int
        public var busy: Int
        public var idle: Int
        public var waiting: Int
    }

    public struct Counters: Decodable, Sendable, Equatable {
        public var queries: [String: Int]
        public var queriesTotal: Int
        public var errors: Int
        public var replicaReads: Int
        public var primaryReads: Int
        public var fencedReads: Int
    }

    public struct Replica: Decodable, Sendable, Equatable {
        public var shard: String
        public var url: String
        public var healthy: Bool
        public var inRotation: Bool
        public var replayLsn: String?
        public var lagBytes: Int64?
        public var lagMs: Int64?
        public var health: String?
        public var reason: String?
    }

    public struct Primary: Decodable, Sendable, Equatable {
        public var shard: String
        public var url: String
        public var healthy: Bool
        public var walLsn: String?
        public var problem: String?
    }

    public var mapVersion: Int
    public var slotCount: Int
    public var shards: [Shard]
    public var pools: [Pool]
    public var clients: Int
    public var pausedSlots: String
    public var pausedSlotCount: Int
    public var counters: Counters
    public var startedAt: String?
    public var replicas: [Replica]
    public var primaries: [Primary]
    public var sampledAt: String?

    /// Decodes a `/status` body.
    public static func decode(_ data: Data) throws -> StatusReport {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(StatusReport.self, from: data)
    }
}

extension AdminClient {
    /// `GET /status`, decoded.
    public func status() async throws -> StatusReport {
        let response = try await self.get("/status")
        do {
            return try StatusReport.decode(response.body)
        } catch {
            throw AdminClientError.malformedResponse(self.proxy, "/status is not the expected JSON: \(error)")
        }
    }

    /// `GET /shardmap`: the live map as JSON text (secrets redacted by the proxy).
    public func shardMapJSON() async throws -> String {
        try await self.get("/shardmap").text
    }
}
