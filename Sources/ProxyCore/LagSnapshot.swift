import NIOCore

/// An immutable picture of every shard's replication state, published by the lag monitor after each
/// sample and read on the proxy's hot path.
///
/// Shards and replicas are indexed as in the `ShardMap` the monitor was built from (`shards[i]`,
/// `shards[i].replicas[j]`). The routing questions — `replicaCanServe(shard:replica:fence:)`,
/// `servingReplica(shard:fence:startingAt:)`, `fence(shard:after:)` — are array lookups and a short
/// scan; nothing allocates.
public struct LagSnapshot: Sendable, Equatable {
    /// Counts published snapshots; grows by one with every sample recorded.
    public var sequence: UInt64
    /// Wall-clock time of the newest sample in milliseconds since 1970; `nil` before the first.
    public var sampledAtMillis: Int64?
    /// Per shard, in map order.
    public var shards: [ShardLag]

    /// A snapshot.
    public init(sequence: UInt64 = 0, sampledAtMillis: Int64? = nil, shards: [ShardLag]) {
        self.sequence = sequence
        self.sampledAtMillis = sampledAtMillis
        self.shards = shards
    }

    /// Whether `shards[shard].replicas[replica]` may serve a read of a session whose fence on that shard
    /// is `fence` (`nil`: the session has no pending write there): it is in rotation and has replayed at
    /// least to the fence. Out-of-range indexes answer `false`.
    @inlinable
    public func replicaCanServe(shard: Int, replica: Int, fence: LSN?) -> Bool {
        guard self.shards.indices.contains(shard) else { return false }
        let replicas = self.shards[shard].replicas
        guard replicas.indices.contains(replica) else { return false }
        let state = replicas[replica]
        guard state.inRotation, let replay = state.replayLSN else { return false }
        guard let fence else { return true }
        return replay >= fence
    }

    /// A replica of `shard` that can serve a read with this fence, trying replicas in order from
    /// `startingAt` (modulo the replica count, so a caller's counter spreads reads round-robin); `nil` when
    /// none can, and the read goes to the primary.
    @inlinable
    public func servingReplica(shard: Int, fence: LSN?, startingAt: Int = 0) -> Int? {
        guard self.shards.indices.contains(shard) else { return nil }
        let count = self.shards[shard].replicas.count
        guard count > 0 else { return nil }
        let first = ((startingAt % count) + count) % count
        for offset in 0..<count {
            let replica = (first + offset) % count
            if self.replicaCanServe(shard: shard, replica: replica, fence: fence) {
                return replica
            }
        }
        return nil
    }

    /// The read-your-writes fence for a write on `shard` that completed at `instant`: the WAL position of
    /// the first primary sample sent after it. `nil` while no such sample exists yet — the session keeps
    /// "pending since `instant`" and reads from the primary meanwhile.
    ///
    /// When `instant` is older than every retained sample, the oldest retained one is used: its position is
    /// later than needed, which is still correct (only stricter).
    public func fence(shard: Int, after instant: NIODeadline) -> LSN? {
        guard self.shards.indices.contains(shard) else { return nil }
        let positions = self.shards[shard].primaryPositions
        // First position with sentAt > instant (positions are ascending by sentAt).
        var low = 0
        var high = positions.count
        while low < high {
            let mid = (low + high) / 2
            if positions[mid].sentAt > instant {
                high = mid
            } else {
                low = mid + 1
            }
        }
        return low < positions.count ? positions[low].lsn : nil
    }
}

/// One shard's replication state.
public struct ShardLag: Sendable, Equatable {
    /// The shard's name in the map.
    public var name: String
    /// Its primary.
    public var primary: PrimaryLag
    /// Its replicas, in map order.
    public var replicas: [ReplicaLag]
    /// Recent successful primary samples, oldest first (bounded by `LagPolicy.historyLength`).
    public var primaryPositions: [PrimaryPosition]

    /// A shard's state.
    public init(name: String, primary: PrimaryLag, replicas: [ReplicaLag], primaryPositions: [PrimaryPosition] = []) {
        self.name = name
        self.primary = primary
        self.replicas = replicas
        self.primaryPositions = primaryPositions
    }

    /// Indexes of the replicas in rotation.
    public var replicasInRotation: [Int] {
        self.replicas.indices.filter { self.replicas[$0].inRotation }
    }
}

/// A primary WAL position and the instant the query that read it was sent.
public struct PrimaryPosition: Sendable, Equatable {
    /// Monotonic instant the sampling query was sent.
    public var sentAt: NIODeadline
    /// `pg_current_wal_lsn()` it returned.
    public var lsn: LSN

    /// A position.
    public init(sentAt: NIODeadline, lsn: LSN) {
        self.sentAt = sentAt
        self.lsn = lsn
    }
}

/// A primary as the last sample saw it.
public struct PrimaryLag: Sendable, Equatable {
    /// The server's URL without password.
    public var url: String
    /// Reachable and not in recovery at the last sample.
    public var healthy: Bool
    /// `pg_current_wal_lsn()` of the last sample; `nil` when it failed or before the first.
    public var walLSN: LSN?
    /// Why it is not healthy (`nil` when healthy or not yet sampled).
    public var problem: String?
    /// Number of samples taken so far (answered or failed).
    public var samples: UInt64

    /// A primary's state.
    public init(url: String, healthy: Bool = false, walLSN: LSN? = nil, problem: String? = nil, samples: UInt64 = 0) {
        self.url = url
        self.healthy = healthy
        self.walLSN = walLSN
        self.problem = problem
        self.samples = samples
    }
}

/// What the last sample of a replica showed.
public enum ReplicaHealth: Sendable, Equatable, CustomStringConvertible {
    /// Not sampled yet.
    case unknown
    /// Answered, in recovery, replaying.
    case healthy
    /// Could not be reached, timed out, or failed the query.
    case unreachable(String)
    /// Answered `pg_is_in_recovery() = false`: it was promoted and no longer follows the primary.
    case promoted
    /// In recovery but `pg_last_wal_replay_lsn()` is NULL: it has not replayed anything yet.
    case notReplaying

    public var description: String {
        switch self {
        case .unknown: return "not sampled yet"
        case .healthy: return "healthy"
        case .unreachable(let message): return "unreachable: \(message)"
        case .promoted: return "promoted: pg_is_in_recovery() is false, it no longer replicates from the primary"
        case .notReplaying: return "not replaying: pg_last_wal_replay_lsn() is NULL"
        }
    }
}

/// A replica as the last samples saw it.
public struct ReplicaLag: Sendable, Equatable {
    /// The server's URL without password.
    public var url: String
    /// What its last sample showed.
    public var health: ReplicaHealth
    /// Whether reads may go to it.
    public var inRotation: Bool
    /// `pg_last_wal_replay_lsn()` of the last sample (`nil` when that failed).
    public var replayLSN: LSN?
    /// WAL bytes it has not replayed yet, measured against the newer of the primary's last position and
    /// what the replica has received (`nil` when the last sample failed).
    public var lagBytes: UInt64?
    /// An upper bound on how old its data is, in milliseconds; 0 when it has replayed everything known
    /// (`nil` when the last sample failed, or when it is behind and there is no way to tell for how long).
    public var lagMs: Int64?
    /// Why it is out of rotation (`nil` when in rotation).
    public var reason: String?

    /// A replica's state.
    public init(url: String, health: ReplicaHealth = .unknown, inRotation: Bool = false, replayLSN: LSN? = nil,
                lagBytes: UInt64? = nil, lagMs: Int64? = nil, reason: String? = nil) {
        self.url = url
        self.health = health
        self.inRotation = inRotation
        self.replayLSN = replayLSN
        self.lagBytes = lagBytes
        self.lagMs = lagMs
        self.reason = reason
    }

    /// Reachable, in recovery and replaying at the last sample (it may still lag too much to be in rotation).
    public var healthy: Bool {
        self.health == .healthy
    }
}

extension ReplicaHealth {
    /// Same case, whatever the message (`unreachable("a")` and `unreachable("b")` are the same kind).
    func isSameKind(as other: ReplicaHealth) -> Bool {
        switch (self, other) {
        case (.unknown, .unknown), (.healthy, .healthy), (.unreachable, .unreachable), (.promoted, .promoted),
             (.notReplaying, .notReplaying):
            return true
        case (.unknown, _), (.healthy, _), (.unreachable, _), (.promoted, _), (.notReplaying, _):
            return false
        }
    }
}
