import NIOCore
import ResultMerge
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

/// A session's read-your-writes fence on one shard (DESIGN §4): its reads there may use a replica only
/// once the replica has replayed `lsn`, the first primary position sampled after the session's write.
public enum ReadFence: Sendable, Equatable {
    /// The write completed at this instant; no primary sample taken after it is known yet.
    case pending(since: NIODeadline)
    /// Replicas must have replayed this position.
    case lsn(LSN)
}

/// The routing state one event loop shares among its sessions: the SQL router (map and analysis cache),
/// the named-statement catalog, the lag monitor's latest snapshot, paused slots, and the round-robin
/// position. Only touched on its loop, so it needs no locks.
public struct RoutingContext {
    public var router: SQLRouter
    public var catalog = StatementCatalog()
    /// Merge plans of reads over several shards, by statement text.
    public var mergePlans = MergePlanCache()
    /// The databases' collation (`datcollate`), for ordering text in merges; nil until read from a shard.
    public var collation: TextCollation?
    /// Replicas' rotation and replay positions, primaries' sampled positions (`LagMonitor`). Before the
    /// first sample no replica is in rotation: reads go to primaries.
    public var lag: LagSnapshot
    /// Slots whose statements wait (a rebalance's cutover); empty almost always.
    public private(set) var pausedSlots: Set<Int> = []
    /// Per shard, a WAL position its replicas must have replayed before they serve any read (a rebalance
    /// cutover's fence: the moved rows reached that shard's primary by logical replication). Dropped once
    /// every replica of the shard is past it.
    public private(set) var replicaFences: [Int: LSN] = [:]
    /// The monotonic clock (injected for tests).
    public var clock: @Sendable () -> NIODeadline
    /// This proxy's two-phase commits (nil: commits over several shards are refused).
    public var twoPhase: TwoPhaseRegistry?
    /// Where statements' routes and durations are counted (nil in tests that do not look).
    public var metrics: ProxyMetrics?
    private var roundRobin = 0

    public init(map: ShardMap, clock: @escaping @Sendable () -> NIODeadline = { .now() }) {
        self.router = SQLRouter(map: map)
        self.lag = LagModel(map: map).snapshot
        self.clock = clock
    }

    public var map: ShardMap { self.router.map }

    /// Replaces the map (a new version pushed by the admin port). The lag snapshot is kept when the shards
    /// are the same (the monitor publishes one for the new map soon).
    public mutating func updateMap(_ map: ShardMap) {
        let sameShards = map.shards.map(\.name) == self.router.map.shards.map(\.name)
            && map.shards.map(\.replicas.count) == self.router.map.shards.map(\.replicas.count)
        if map.tables != self.router.map.tables { self.mergePlans.removeAll() }
        self.router.updateMap(map)
        if !sameShards { self.lag = LagModel(map: map).snapshot }
    }

    /// Adds fences (keeping the later position where a shard has one already).
    public mutating func addReplicaFences(_ fences: [Int: LSN]) {
        for (shard, lsn) in fences where shard < self.map.shards.count {
            self.replicaFences[shard] = max(lsn, self.replicaFences[shard] ?? lsn)
        }
        self.pruneReplicaFences()
    }

    /// A new lag snapshot; fences every replica of their shard has passed are dropped.
    public mutating func updateLag(_ lag: LagSnapshot) {
        self.lag = lag
        self.pruneReplicaFences()
    }

    private mutating func pruneReplicaFences() {
        guard !self.replicaFences.isEmpty else { return }
        for (shard, lsn) in self.replicaFences where shard < self.lag.shards.count {
            let replicas = self.lag.shards[shard].replicas
            if replicas.allSatisfy({ ($0.replayLSN ?? .zero) >= lsn }) { self.replicaFences[shard] = nil }
        }
    }

    public mutating func setPausedSlots(_ slots: Set<Int>) {
        self.pausedSlots = slots
    }

    /// Whether a statement over `slots` (nil: every slot) must wait for a pause to end.
    public func isPaused(_ slots: Set<Int>?) -> Bool {
        guard !self.pausedSlots.isEmpty else { return false }
        guard let slots else { return true }
        return !slots.isDisjoint(with: self.pausedSlots)
    }

    /// The fence after resolving it with the lag snapshot, if a primary sample was sent after the write.
    public func resolve(_ fence: ReadFence, shard: Int) -> ReadFence {
        guard case .pending(let since) = fence, let lsn = self.lag.fence(shard: shard, after: since) else { return fence }
        return .lsn(lsn)
    }

    /// A replica of `shard` that may serve a read under `fence` (round-robin among those that may), or nil
    /// for the primary.
    public mutating func chooseReplica(shard: Int, fence: ReadFence?) -> Int? {
        let needed = self.replayNeeded(shard: shard, fence: fence)
        guard needed.replicaAllowed else { return nil }
        self.roundRobin &+= 1
        return self.lag.servingReplica(shard: shard, fence: needed.lsn, startingAt: self.roundRobin)
    }

    /// Whether replica `replica` of `shard` may still serve a read under `fence`.
    public func replicaMayServe(shard: Int, replica: Int, fence: ReadFence?) -> Bool {
        let needed = self.replayNeeded(shard: shard, fence: fence)
        return needed.replicaAllowed && self.lag.replicaCanServe(shard: shard, replica: replica, fence: needed.lsn)
    }

    /// What a replica of `shard` must have replayed under the session's `fence` and the shard's replica
    /// fence (`lsn` nil: nothing); no replica is allowed while the session's fence is pending.
    private func replayNeeded(shard: Int, fence: ReadFence?) -> (replicaAllowed: Bool, lsn: LSN?) {
        let shardFence = self.replicaFences.isEmpty ? nil : self.replicaFences[shard]
        switch fence {
        case .pending?: return (false, nil)
        case .lsn(let session)?: return (true, max(session, shardFence ?? session))
        case nil: return (true, shardFence)
        }
    }
}
