import Foundation
import ProxyCore
import ShardMap

/// The JSON bodies of the admin port. Field names are the contract (DESIGN §7 for `/lag`); optional
/// values are written as `null`, never left out.
enum AdminJSON {
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// `2026-12-01T19:41:00.123Z`.
    static func timestamp(millis: Int64) -> String {
        // Whole seconds through the formatter, milliseconds by hand: a Double of millis / 1000 is not
        // exact and the formatter truncates (…34.566Z for …34567).
        let (seconds, remainder) = millis.quotientAndRemainder(dividingBy: 1000)
        let whole = Date(timeIntervalSince1970: Double(remainder < 0 ? seconds - 1 : seconds))
            .formatted(Date.ISO8601FormatStyle())
        let ms = remainder < 0 ? remainder + 1000 : remainder
        let digits = String(ms)
        return whole.dropLast() + "." + String(repeating: "0", count: 3 - digits.count) + digits + "Z"
    }

    // MARK: /lag

    struct Lag: Encodable {
        var replicas: [Replica]
        var primaries: [Primary]
        var sampledAt: String?

        enum CodingKeys: String, CodingKey {
            case replicas, primaries
            case sampledAt = "sampled_at"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.replicas, forKey: .replicas)
            try c.encode(self.primaries, forKey: .primaries)
            try c.encode(self.sampledAt, forKey: .sampledAt)
        }

        init(_ snapshot: LagSnapshot) {
            self.replicas = snapshot.shards.flatMap { shard in shard.replicas.map { Replica(shard: shard.name, $0) } }
            self.primaries = snapshot.shards.map { Primary(shard: $0.name, $0.primary) }
            self.sampledAt = snapshot.sampledAtMillis.map(AdminJSON.timestamp(millis:))
        }
    }

    struct Replica: Encodable {
        var shard: String
        var url: String
        var healthy: Bool
        var inRotation: Bool
        var replayLSN: String?
        var lagBytes: UInt64?
        var lagMs: Int64?
        /// Only in `/status`: the health in words and why it is out of rotation.
        var detail: (health: String, reason: String?)?

        init(shard: String, _ replica: ReplicaLag, detailed: Bool = false) {
            self.shard = shard
            self.url = replica.url
            self.healthy = replica.healthy
            self.inRotation = replica.inRotation
            self.replayLSN = replica.replayLSN?.description
            self.lagBytes = replica.lagBytes
            self.lagMs = replica.lagMs
            self.detail = detailed ? (replica.health.description, replica.reason) : nil
        }

        enum CodingKeys: String, CodingKey {
            case shard, url, healthy, health, reason
            case inRotation = "in_rotation"
            case replayLSN = "replay_lsn"
            case lagBytes = "lag_bytes"
            case lagMs = "lag_ms"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.shard, forKey: .shard)
            try c.encode(self.url, forKey: .url)
            try c.encode(self.healthy, forKey: .healthy)
            try c.encode(self.inRotation, forKey: .inRotation)
            try c.encode(self.replayLSN, forKey: .replayLSN)
            try c.encode(self.lagBytes, forKey: .lagBytes)
            try c.encode(self.lagMs, forKey: .lagMs)
            if let detail = self.detail {
                try c.encode(detail.health, forKey: .health)
                try c.encode(detail.reason, forKey: .reason)
            }
        }
    }

    struct Primary: Encodable {
        var shard: String
        var url: String
        var healthy: Bool
        var walLSN: String?
        /// Only in `/status`: why it is not healthy.
        var problem: String?
        var detailed: Bool

        init(shard: String, _ primary: PrimaryLag, detailed: Bool = false) {
            self.shard = shard
            self.url = primary.url
            self.healthy = primary.healthy
            self.walLSN = primary.walLSN?.description
            self.problem = primary.problem
            self.detailed = detailed
        }

        enum CodingKeys: String, CodingKey {
            case shard, url, healthy, problem
            case walLSN = "wal_lsn"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.shard, forKey: .shard)
            try c.encode(self.url, forKey: .url)
            try c.encode(self.healthy, forKey: .healthy)
            try c.encode(self.walLSN, forKey: .walLSN)
            if self.detailed {
                try c.encode(self.problem, forKey: .problem)
            }
        }
    }

    // MARK: /status

    struct Status: Encodable {
        var status: ProxyStatus
        var lag: LagSnapshot

        enum CodingKeys: String, CodingKey {
            case mapVersion = "map_version"
            case slotCount = "slot_count"
            case shards, pools, clients, counters, replicas, primaries
            case pausedSlots = "paused_slots"
            case pausedSlotCount = "paused_slot_count"
            case startedAt = "started_at"
            case sampledAt = "sampled_at"
        }

        enum ShardKeys: String, CodingKey {
            case name, primary, replicas, slots
            case slotCount = "slot_count"
        }

        enum PoolKeys: String, CodingKey {
            case shard, role, server, size, busy, idle, waiting
        }

        enum CounterKeys: String, CodingKey {
            case queries, errors
            case queriesTotal = "queries_total"
            case replicaReads = "replica_reads"
            case primaryReads = "primary_reads"
            case fencedReads = "fenced_reads"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.status.mapVersion, forKey: .mapVersion)
            try c.encode(self.status.slotCount, forKey: .slotCount)
            var shards = c.nestedUnkeyedContainer(forKey: .shards)
            for shard in self.status.shards {
                var s = shards.nestedContainer(keyedBy: ShardKeys.self)
                try s.encode(shard.name, forKey: .name)
                try s.encode(shard.primary, forKey: .primary)
                try s.encode(shard.replicas, forKey: .replicas)
                try s.encode(shard.slots, forKey: .slots)
                try s.encode(shard.slotCount, forKey: .slotCount)
            }
            var pools = c.nestedUnkeyedContainer(forKey: .pools)
            for pool in self.status.pools {
                var p = pools.nestedContainer(keyedBy: PoolKeys.self)
                try p.encode(pool.shard, forKey: .shard)
                try p.encode(pool.role.rawValue, forKey: .role)
                try p.encode(pool.server, forKey: .server)
                try p.encode(pool.size, forKey: .size)
                try p.encode(pool.busy, forKey: .busy)
                try p.encode(pool.idle, forKey: .idle)
                try p.encode(pool.waiting, forKey: .waiting)
            }
            try c.encode(self.status.clients, forKey: .clients)
            try c.encode(SlotRanges.format(self.status.pausedSlots), forKey: .pausedSlots)
            try c.encode(self.status.pausedSlots.count, forKey: .pausedSlotCount)
            var counters = c.nestedContainer(keyedBy: CounterKeys.self, forKey: .counters)
            let queries = Dictionary(uniqueKeysWithValues: self.status.counters.queries.map { ($0.key.rawValue, $0.value) })
            try counters.encode(queries, forKey: .queries)
            try counters.encode(self.status.counters.totalQueries, forKey: .queriesTotal)
            try counters.encode(self.status.counters.errors, forKey: .errors)
            try counters.encode(self.status.counters.replicaReads, forKey: .replicaReads)
            try counters.encode(self.status.counters.primaryReads, forKey: .primaryReads)
            try counters.encode(self.status.counters.fencedReads, forKey: .fencedReads)
            try c.encode(self.status.startedAtMillis.map(AdminJSON.timestamp(millis:)), forKey: .startedAt)
            // Replication as in /lag, with the health in words and the reason a server is out.
            try c.encode(self.lag.shards.flatMap { shard in
                shard.replicas.map { Replica(shard: shard.name, $0, detailed: true) }
            }, forKey: .replicas)
            try c.encode(self.lag.shards.map { Primary(shard: $0.name, $0.primary, detailed: true) }, forKey: .primaries)
            try c.encode(self.lag.sampledAtMillis.map(AdminJSON.timestamp(millis:)), forKey: .sampledAt)
        }
    }

    // MARK: slots

    struct Paused: Encodable {
        var result: PauseResult
        var error: String?

        enum CodingKeys: String, CodingKey {
            case drained, error
            case pausedSlots = "paused_slots"
            case waitedMs = "waited_ms"
            case inFlight = "in_flight"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(SlotRanges.format(self.result.pausedSlots), forKey: .pausedSlots)
            try c.encode(self.result.drained, forKey: .drained)
            try c.encode(self.result.waitedMs, forKey: .waitedMs)
            try c.encode(self.result.inFlight, forKey: .inFlight)
            if let error = self.error {
                try c.encode(error, forKey: .error)
            }
        }
    }

    struct Resumed: Encodable {
        var pausedSlots: [Int]

        enum CodingKeys: String, CodingKey {
            case pausedSlots = "paused_slots"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(SlotRanges.format(self.pausedSlots), forKey: .pausedSlots)
        }
    }

    struct Message: Encodable {
        var status: String?
        var error: String?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(self.status, forKey: .status)
            try c.encodeIfPresent(self.error, forKey: .error)
        }

        enum CodingKeys: String, CodingKey {
            case status, error
        }
    }
}
