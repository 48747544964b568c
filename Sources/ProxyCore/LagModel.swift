import NIOCore
import ShardMap

/// The replication-lag state machine: fed with samples of every shard's primary and replicas, it
/// decides per replica whether it is healthy and in read rotation, and how far behind it is; it keeps
/// the `LagSnapshot` that the proxy routes by.
///
/// Pure logic with injected time (the samples carry their instants). The lag monitor in ProxyServer
/// takes the samples and publishes `snapshot` after each `record`.
///
/// How lag is measured:
/// - `lagBytes` = reference − `pg_last_wal_replay_lsn()`, where reference is the newer of the primary's
///   last `pg_current_wal_lsn()` and the replica's own `pg_last_wal_receive_lsn()` (so a replica that has
///   received but not replayed WAL shows lag even while the primary cannot be sampled). Never negative.
/// - `lagMs` is 0 when the replica has replayed up to the reference: a quiet primary never makes a
///   replica look late. Otherwise it is the smaller of two upper bounds on how old the replica's data is:
///   `now() - pg_last_xact_replay_timestamp()` on the replica, and the time since the last primary
///   sample whose position the replica had already replayed. (The first alone makes a replica of a primary
///   idle for an hour look an hour late during the milliseconds its first new commit takes to arrive.)
///
/// Rotation follows `LagPolicy` (leave at once, rejoin with hysteresis).
public struct LagModel: Sendable {
    /// What the model watches: per shard, a name and the redacted URLs of its servers.
    public struct ShardTopology: Sendable, Equatable {
        /// The shard's name in the map.
        public var name: String
        /// Its primary's URL without password.
        public var primary: String
        /// Its replicas' URLs without password, in map order.
        public var replicas: [String]

        /// A shard to watch.
        public init(name: String, primary: String, replicas: [String]) {
            self.name = name
            self.primary = primary
            self.replicas = replicas
        }
    }

    /// Hysteresis bookkeeping per replica (not part of the published snapshot).
    private struct ReplicaMemory: Sendable {
        /// Consecutive samples at or under half the thresholds while out of rotation.
        var goodStreak = 0
        /// Whether the replica has ever left rotation since the model started watching it.
        var hasLeft = false
    }

    /// When replicas leave and rejoin rotation.
    public let policy: LagPolicy
    /// The shards watched, in map order (the snapshot's indexes).
    public let topology: [ShardTopology]
    /// The state the proxy routes by.
    public private(set) var snapshot: LagSnapshot
    private var memory: [[ReplicaMemory]]
    /// Per shard, the newest WAL position any primary sample showed (kept across failed samples).
    private var lastPrimaryLSN: [LSN?]

    /// A model for the shards of `map`, with the thresholds of its `replicas` section.
    public init(map: ShardMap) {
        self.init(topology: map.shards.map {
            ShardTopology(name: $0.name, primary: $0.primary.redacted, replicas: $0.replicas.map(\.redacted))
        }, policy: LagPolicy(map.replicas))
    }

    /// A model for these shards. Every replica starts `unknown` and out of rotation.
    public init(topology: [ShardTopology], policy: LagPolicy) {
        self.policy = policy
        self.topology = topology
        self.snapshot = LagSnapshot(shards: topology.map { shard in
            ShardLag(name: shard.name, primary: PrimaryLag(url: shard.primary),
                     replicas: shard.replicas.map { ReplicaLag(url: $0) })
        })
        self.memory = topology.map { Array(repeating: ReplicaMemory(), count: $0.replicas.count) }
        self.lastPrimaryLSN = Array(repeating: nil, count: topology.count)
    }

    /// A model for a new map that keeps the state of every server that is still there (same shard name
    /// and URL), so a map change does not take healthy replicas out of rotation.
    public func reconfigured(for map: ShardMap) -> LagModel {
        var next = LagModel(map: map)
        for (newShard, shard) in next.topology.enumerated() {
            guard let oldShard = self.topology.firstIndex(where: { $0.name == shard.name }) else { continue }
            if self.topology[oldShard].primary == shard.primary {
                next.snapshot.shards[newShard].primary = self.snapshot.shards[oldShard].primary
                next.snapshot.shards[newShard].primaryPositions = self.snapshot.shards[oldShard].primaryPositions
                next.lastPrimaryLSN[newShard] = self.lastPrimaryLSN[oldShard]
            }
            for (newReplica, url) in shard.replicas.enumerated() {
                guard let oldReplica = self.topology[oldShard].replicas.firstIndex(of: url) else { continue }
                next.snapshot.shards[newShard].replicas[newReplica] = self.snapshot.shards[oldShard].replicas[oldReplica]
                next.memory[newShard][newReplica] = self.memory[oldShard][oldReplica]
            }
        }
        next.snapshot.sequence = self.snapshot.sequence + 1
        next.snapshot.sampledAtMillis = self.snapshot.sampledAtMillis
        return next
    }

    /// Records a sample of `shard`'s primary; returns what changed, for the log.
    @discardableResult
    public mutating func record(primary sample: PrimarySample, shard: Int) -> LagEvent? {
        precondition(self.topology.indices.contains(shard), "shard index \(shard) out of range")
        self.bump(sample.wallClockMillis)
        var state = self.snapshot.shards[shard].primary
        let wasHealthy = state.healthy
        state.samples += 1
        switch sample.result {
        case .success(let reading):
            if reading.inRecovery {
                state.healthy = false
                state.walLSN = nil
                state.problem = "is in recovery (pg_is_in_recovery() is true): it is a standby, not a primary"
            } else if let lsn = reading.walLSN {
                state.healthy = true
                state.walLSN = lsn
                state.problem = nil
                self.remember(PrimaryPosition(sentAt: sample.sentAt, lsn: lsn), shard: shard)
            } else {
                state.healthy = false
                state.walLSN = nil
                state.problem = "pg_current_wal_lsn() returned NULL"
            }
        case .failure(let failure):
            state.healthy = false
            state.walLSN = nil
            state.problem = "unreachable: \(failure.message)"
        }
        self.snapshot.shards[shard].primary = state
        let name = self.topology[shard].name
        let first = state.samples == 1
        switch (wasHealthy, state.healthy) {
        case (true, false):
            return .primaryUnhealthy(shard: name, url: state.url, problem: state.problem ?? "")
        case (false, false):
            return first ? .primaryUnhealthy(shard: name, url: state.url, problem: state.problem ?? "") : nil
        case (false, true):
            return first ? nil : .primaryRecovered(shard: name, url: state.url)
        case (true, true):
            return nil
        }
    }

    /// Records a sample of `shards[shard].replicas[replica]`; returns a rotation change, for the log.
    @discardableResult
    public mutating func record(replica sample: ReplicaSample, shard: Int, replica: Int) -> LagEvent? {
        precondition(self.topology.indices.contains(shard), "shard index \(shard) out of range")
        precondition(self.topology[shard].replicas.indices.contains(replica), "replica index \(replica) out of range")
        self.bump(sample.wallClockMillis)
        var state = self.snapshot.shards[shard].replicas[replica]
        var memory = self.memory[shard][replica]
        let wasInRotation = state.inRotation
        let previousHealth = state.health

        // What this sample says, and whether it allows staying in / rejoining rotation.
        var problem: String?
        var rejoinable = false
        switch sample.result {
        case .failure(let failure):
            state.health = .unreachable(failure.message)
            state.replayLSN = nil
            state.lagBytes = nil
            state.lagMs = nil
            problem = state.health.description
        case .success(let reading) where !reading.inRecovery:
            state.health = .promoted
            state.replayLSN = nil
            state.lagBytes = nil
            state.lagMs = nil
            problem = state.health.description
        case .success(let reading):
            guard let replay = reading.replayLSN else {
                state.health = .notReplaying
                state.replayLSN = nil
                state.lagBytes = nil
                state.lagMs = nil
                problem = state.health.description
                break
            }
            state.health = .healthy
            state.replayLSN = replay
            let (bytes, ms) = self.lag(of: reading, replay: replay, receivedAt: sample.receivedAt, shard: shard)
            state.lagBytes = bytes
            state.lagMs = ms
            if !self.policy.allowsStaying(lagBytes: bytes, lagMs: ms) {
                problem = ms.map { $0 > self.policy.maxLagMs } == true
                    ? "lagging: \(ms ?? 0) ms behind (max_lag_ms \(self.policy.maxLagMs))"
                    : "lagging: \(bytes) bytes behind (max_lag_bytes \(self.policy.maxLagBytes))"
            }
            rejoinable = self.policy.allowsRejoining(lagBytes: bytes, lagMs: ms)
        }

        // Rotation with hysteresis.
        if let problem {
            state.inRotation = false
            state.reason = problem
            memory.goodStreak = 0
            memory.hasLeft = true
        } else if state.inRotation {
            state.reason = nil
        } else if !memory.hasLeft {
            state.inRotation = true
            state.reason = nil
        } else if rejoinable {
            memory.goodStreak += 1
            if memory.goodStreak >= self.policy.rejoinSamples {
                state.inRotation = true
                state.reason = nil
                memory.goodStreak = 0
            } else {
                state.reason = "rejoining: \(memory.goodStreak) of \(self.policy.rejoinSamples) good samples"
            }
        } else {
            memory.goodStreak = 0
            state.reason = "rejoining: waiting for lag under half the thresholds"
        }
        self.snapshot.shards[shard].replicas[replica] = state
        self.memory[shard][replica] = memory
        let name = self.topology[shard].name
        switch (wasInRotation, state.inRotation) {
        case (true, false):
            return .replicaLeftRotation(shard: name, url: state.url, reason: state.reason ?? "")
        case (false, true):
            return .replicaJoinedRotation(shard: name, url: state.url)
        case (false, false) where problem != nil && !previousHealth.isSameKind(as: state.health):
            // Already out of rotation, but the trouble is new (first sample, or lagging → promoted).
            return .replicaUnhealthy(shard: name, url: state.url, problem: problem ?? "")
        case (true, true), (false, false):
            return nil
        }
    }

    /// The replica's lag in bytes and milliseconds (see the type's documentation).
    private func lag(of reading: ReplicaReading, replay: LSN, receivedAt: NIODeadline, shard: Int) -> (UInt64, Int64?) {
        let reference = max(self.lastPrimaryLSN[shard] ?? .zero, reading.receiveLSN ?? .zero)
        guard replay < reference else { return (0, 0) }
        let bytes = reference.bytes(after: replay)
        var bound = reading.replayAgeMs.map { max(0, $0) }
        // The last primary sample at or below `replay`: everything written before it was sent is replayed.
        let positions = self.snapshot.shards[shard].primaryPositions
        if let caughtUp = positions.last(where: { $0.lsn <= replay }), caughtUp.sentAt <= receivedAt {
            let ms = Int64((receivedAt - caughtUp.sentAt).nanoseconds / 1_000_000)
            bound = min(bound ?? ms, ms)
        }
        return (bytes, bound)
    }

    private mutating func remember(_ position: PrimaryPosition, shard: Int) {
        if let last = self.lastPrimaryLSN[shard], last > position.lsn {
            // The primary went back (replaced by another server): older positions are meaningless now.
            self.snapshot.shards[shard].primaryPositions.removeAll()
        }
        self.lastPrimaryLSN[shard] = position.lsn
        var positions = self.snapshot.shards[shard].primaryPositions
        self.snapshot.shards[shard].primaryPositions = []
        if positions.count >= self.policy.historyLength {
            positions.removeFirst(positions.count - self.policy.historyLength + 1)
        }
        positions.append(position)
        self.snapshot.shards[shard].primaryPositions = positions
    }

    private mutating func bump(_ wallClockMillis: Int64) {
        self.snapshot.sequence += 1
        self.snapshot.sampledAtMillis = max(self.snapshot.sampledAtMillis ?? wallClockMillis, wallClockMillis)
    }
}

/// A change worth a log line (and a metric), returned by `LagModel.record`.
public enum LagEvent: Sendable, Equatable, CustomStringConvertible {
    case replicaLeftRotation(shard: String, url: String, reason: String)
    case replicaJoinedRotation(shard: String, url: String)
    /// A replica out of rotation shows a new kind of trouble (unreachable, promoted, not replaying, lagging).
    case replicaUnhealthy(shard: String, url: String, problem: String)
    case primaryUnhealthy(shard: String, url: String, problem: String)
    case primaryRecovered(shard: String, url: String)

    public var description: String {
        switch self {
        case .replicaLeftRotation(let shard, let url, let reason):
            return "replica \(url) of shard \(shard) left read rotation: \(reason)"
        case .replicaJoinedRotation(let shard, let url):
            return "replica \(url) of shard \(shard) is in read rotation"
        case .replicaUnhealthy(let shard, let url, let problem):
            return "replica \(url) of shard \(shard) is out of read rotation: \(problem)"
        case .primaryUnhealthy(let shard, let url, let problem):
            return "primary \(url) of shard \(shard) \(problem)"
        case .primaryRecovered(let shard, let url):
            return "primary \(url) of shard \(shard) answers again"
        }
    }
}
