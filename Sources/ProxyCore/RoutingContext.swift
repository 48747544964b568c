import ShardMap
import SQLRouting

/// A backend server a session can lease: a shard's primary or one of its replicas (indexes into the map).
public struct BackendTarget: Hashable, Sendable, CustomStringConvertible {
    public var shard: Int
    /// Index into the shard's `replicas`; nil for the primary.
    public var replica: Int?

    public init(shard: Int, replica: Int? = nil) {
        self.shard = shard
        self.replica = replica
    }

    public static func primary(_ shard: Int) -> BackendTarget { BackendTarget(shard: shard) }

    public var isPrimary: Bool { self.replica == nil }

    public var description: String {
        self.replica.map { "shard \(self.shard) replica \($0)" } ?? "shard \(self.shard) primary"
    }
}

/// What routing knows about replicas: which may serve reads and how far each has replayed, plus the
/// primaries' WAL positions — a snapshot from the lag monitor, copied into every event loop.
public struct ReplicaRouting: Sendable, Equatable {
    public struct Replica: Sendable, Equatable {
        public var inRotation: Bool
        public var replayLSN: UInt64

        public init(inRotation: Bool, replayLSN: UInt64) {
            self.inRotation = inRotation
            self.replayLSN = replayLSN
        }
    }

    public struct Primary: Sendable, Equatable {
        /// `pg_current_wal_lsn()`.
        public var lsn: UInt64
        /// When the query that read it was sent (monotonic nanoseconds): the position is at least what the
        /// primary had written by then.
        public var sentAt: UInt64

        public init(lsn: UInt64, sentAt: UInt64) {
            self.lsn = lsn
            self.sentAt = sentAt
        }
    }

    /// `replicas[shard][replica]`.
    public var replicas: [[Replica]]
    /// `primaries[shard]`, nil until sampled.
    public var primaries: [Primary?]

    public init(replicas: [[Replica]], primaries: [Primary?]) {
        self.replicas = replicas
        self.primaries = primaries
    }

    /// Before the first sample: every replica of the map in rotation, nothing known of positions.
    public static func unsampled(_ map: ShardMap) -> ReplicaRouting {
        ReplicaRouting(
            replicas: map.shards.map { shard in shard.replicas.map { _ in Replica(inRotation: true, replayLSN: 0) } },
            primaries: map.shards.map { _ in nil })
    }
}

/// A session's read-your-writes fence on one shard (DESIGN §4): its reads there may use a replica only
/// once the replica has replayed `lsn`, the first primary position sampled after the session's write.
public enum ReadFence: Sendable, Equatable {
    /// The write completed at this monotonic instant; no primary sample taken after it is known yet.
    case pending(since: UInt64)
    /// Replicas must have replayed this position.
    case lsn(UInt64)
}

/// The routing state one event loop shares among its sessions: the SQL router (map and analysis cache),
/// the named-statement catalog, the replica snapshot and the round-robin position. Only touched on its
/// loop, so it needs no locks.
public struct RoutingContext {
    public var router: SQLRouter
    public var catalog = StatementCatalog()
    public var replicaRouting: ReplicaRouting
    /// Monotonic nanoseconds (injected for tests).
    public var clock: @Sendable () -> UInt64
    private var roundRobin = 0

    public init(map: ShardMap, clock: @escaping @Sendable () -> UInt64) {
        self.router = SQLRouter(map: map)
        self.replicaRouting = .unsampled(map)
        self.clock = clock
    }

    public var map: ShardMap { self.router.map }

    /// Replaces the map (a new version pushed by the admin port); positions are kept for shards that stay.
    public mutating func updateMap(_ map: ShardMap) {
        self.router.updateMap(map)
        let fresh = ReplicaRouting.unsampled(map)
        if fresh.replicas.map(\.count) != self.replicaRouting.replicas.map(\.count) {
            self.replicaRouting = fresh
        }
    }

    /// The fence after resolving it with the newest primary sample, if one was taken after the write.
    public func resolve(_ fence: ReadFence, shard: Int) -> ReadFence {
        guard case .pending(let since) = fence, shard < self.replicaRouting.primaries.count,
              let sample = self.replicaRouting.primaries[shard], sample.sentAt > since
        else { return fence }
        return .lsn(sample.lsn)
    }

    /// A replica of `shard` that may serve a read under `fence` (round-robin among those that may), or nil
    /// for the primary.
    public mutating func chooseReplica(shard: Int, fence: ReadFence?) -> Int? {
        guard shard < self.replicaRouting.replicas.count else { return nil }
        let replicas = self.replicaRouting.replicas[shard]
        guard !replicas.isEmpty else { return nil }
        var required: UInt64 = 0
        switch fence {
        case .pending?: return nil
        case .lsn(let lsn)?: required = lsn
        case nil: break
        }
        self.roundRobin &+= 1
        for offset in 0..<replicas.count {
            let index = (self.roundRobin &+ offset) % replicas.count
            let replica = replicas[index]
            if replica.inRotation, replica.replayLSN >= required { return index }
        }
        return nil
    }

    /// Whether replica `replica` of `shard` may still serve a read under `fence`.
    public func replicaMayServe(shard: Int, replica: Int, fence: ReadFence?) -> Bool {
        guard shard < self.replicaRouting.replicas.count, replica < self.replicaRouting.replicas[shard].count else {
            return false
        }
        let state = self.replicaRouting.replicas[shard][replica]
        switch fence {
        case .pending?: return false
        case .lsn(let lsn)?: return state.inRotation && state.replayLSN >= lsn
        case nil: return state.inRotation
        }
    }
}
