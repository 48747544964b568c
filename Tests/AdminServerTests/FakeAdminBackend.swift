import Foundation
import NIOCore
import ProxyCore
import ShardMap

/// An `AdminBackend` for testing the HTTP layer: holds a map, a lag snapshot and a status, records the
/// mutating calls.
actor FakeAdminBackend: AdminBackend {
    var map: ShardMap
    var lagSnapshot: LagSnapshot
    var pools: [ProxyStatus.PoolInfo] = []
    var clients = 0
    var counters = ProxyCounters()
    var paused: Set<Int> = []
    var pauseCalls: [(slots: [Int], timeout: Duration)] = []
    var resumeCalls: [[Int]] = []
    var replaced: [ShardMap] = []
    var fences: [[Int: LSN]] = []
    /// What the next pause reports as still in flight (0: drained).
    var inFlightOnPause = 0

    init(map: ShardMap = AdminFixtures.map(), lag: LagSnapshot? = nil) {
        self.map = map
        self.lagSnapshot = lag ?? AdminFixtures.lag(for: map)
    }

    func status() async -> ProxyStatus {
        ProxyStatus(map: self.map, pools: self.pools, clients: self.clients, pausedSlots: self.paused.sorted(),
                    counters: self.counters, startedAtMillis: 1_764_600_000_000)
    }

    func lag() async -> LagSnapshot { self.lagSnapshot }

    func shardMap() async -> ShardMap { self.map }

    func replaceShardMap(_ map: ShardMap, fences: [Int: LSN]) async throws -> ShardMap {
        guard map.version > self.map.version else { throw AdminError.conflict("version must grow") }
        self.replaced.append(map)
        self.fences.append(fences)
        self.map = map
        return map
    }

    func pause(slots: [Int], timeout: Duration) async throws -> PauseResult {
        self.pauseCalls.append((slots, timeout))
        self.paused.formUnion(slots)
        return PauseResult(pausedSlots: self.paused.sorted(), drained: self.inFlightOnPause == 0, waitedMs: 3,
                           inFlight: self.inFlightOnPause)
    }

    func resume(slots: [Int]) async throws -> [Int] {
        self.resumeCalls.append(slots)
        self.paused.subtract(slots)
        return self.paused.sorted()
    }

    func set(pools: [ProxyStatus.PoolInfo], clients: Int, counters: ProxyCounters) {
        self.pools = pools
        self.clients = clients
        self.counters = counters
    }

    func set(inFlightOnPause: Int) {
        self.inFlightOnPause = inFlightOnPause
    }
}

enum AdminFixtures {
    static let mapJSON = """
    {
      "version": 3,
      "shards": [
        {"name": "s0", "primary": "postgresql://postgres:pw0@127.0.0.1:5500/app",
         "replicas": ["postgresql://postgres:pw0@127.0.0.1:5501/app"]},
        {"name": "s1", "primary": "postgresql://postgres:pw1@127.0.0.1:5502/app",
         "replicas": ["postgresql://postgres:pw1@127.0.0.1:5503/app"]}
      ],
      "slots": {"s0": "0-511", "s1": "512-1023"},
      "tables": {"users": {"shard_key": "id", "type": "bigint"}},
      "auth": {"method": "scram-sha-256", "users": [{"name": "app", "password": "secret-app"}]}
    }
    """

    static func map(_ json: String = mapJSON) -> ShardMap {
        try! ShardMap.decode(Data(json.utf8), environment: [:])
    }

    /// s0's replica caught up and in rotation; s1's replica unreachable.
    static func lag(for map: ShardMap) -> LagSnapshot {
        var model = LagModel(map: map)
        let t = NIODeadline.uptimeNanoseconds(5_000_000_000)
        let wall: Int64 = 1_764_601_234_567
        model.record(primary: PrimarySample(sentAt: t, receivedAt: t, wallClockMillis: wall,
                                            result: .success(PrimaryReading(walLSN: LSN("0/3000060")!))), shard: 0)
        model.record(replica: ReplicaSample(sentAt: t, receivedAt: t, wallClockMillis: wall,
                                            result: .success(ReplicaReading(replayLSN: LSN("0/3000060")!,
                                                                            receiveLSN: LSN("0/3000060")!,
                                                                            replayAgeMs: 42))), shard: 0, replica: 0)
        model.record(primary: PrimarySample(sentAt: t, receivedAt: t, wallClockMillis: wall,
                                            result: .success(PrimaryReading(walLSN: LSN("0/5000000")!))), shard: 1)
        model.record(replica: ReplicaSample(sentAt: t, receivedAt: t, wallClockMillis: wall,
                                            result: .failure(LagProbeFailure("connection refused"))), shard: 1, replica: 0)
        return model.snapshot
    }
}
