import struct Foundation.Data
import NIOCore
import ProxyCore
import ShardMap
import Testing

/// Drives a `LagModel` with synthetic samples on an injected monotonic clock (no sleeping).
struct LagDriver {
    var model: LagModel
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    var wallClock: Int64 = 1_764_000_000_000

    init(replicas: Int = 1, shards: Int = 1, policy: LagPolicy = LagPolicy(maxLagBytes: 1000, maxLagMs: 1000)) {
        let topology = (0..<shards).map { shard in
            LagModel.ShardTopology(name: "s\(shard)", primary: "postgresql://postgres@127.0.0.1:\(5500 + 10 * shard)/app",
                                   replicas: (0..<replicas).map { "postgresql://postgres@127.0.0.1:\(5501 + 10 * shard + $0)/app" })
        }
        self.model = LagModel(topology: topology, policy: policy)
    }

    mutating func advance(ms: Int64) {
        self.now = self.now + .milliseconds(ms)
        self.wallClock += ms
    }

    /// A primary sample sent now, answered 1 ms later (the clock moves on by that millisecond).
    @discardableResult
    mutating func primary(_ lsn: UInt64?, shard: Int = 0, inRecovery: Bool = false) -> LagEvent? {
        let sent = self.now
        self.advance(ms: 1)
        let result: Result<PrimaryReading, LagProbeFailure> = lsn.map { .success(PrimaryReading(walLSN: LSN($0), inRecovery: inRecovery)) }
            ?? (inRecovery ? .success(PrimaryReading(walLSN: nil, inRecovery: true)) : .failure(LagProbeFailure("connection refused")))
        return self.model.record(primary: PrimarySample(sentAt: sent, receivedAt: self.now, wallClockMillis: self.wallClock,
                                                        result: result), shard: shard)
    }

    @discardableResult
    mutating func replica(_ reading: ReplicaReading?, shard: Int = 0, replica: Int = 0,
                          failure: String = "connection refused") -> LagEvent? {
        let sent = self.now
        self.advance(ms: 1)
        let result: Result<ReplicaReading, LagProbeFailure> = reading.map { .success($0) } ?? .failure(LagProbeFailure(failure))
        return self.model.record(replica: ReplicaSample(sentAt: sent, receivedAt: self.now, wallClockMillis: self.wallClock,
                                                        result: result), shard: shard, replica: replica)
    }

    /// A healthy replica reading at `replay` (received as far as replayed unless told otherwise).
    @discardableResult
    mutating func replica(replay: UInt64, receive: UInt64? = nil, ageMs: Int64? = 10, shard: Int = 0,
                          replica: Int = 0) -> LagEvent? {
        self.replica(ReplicaReading(inRecovery: true, replayLSN: LSN(replay), receiveLSN: LSN(receive ?? replay),
                                    replayAgeMs: ageMs), shard: shard, replica: replica)
    }

    var state: ReplicaLag { self.model.snapshot.shards[0].replicas[0] }
    var snapshot: LagSnapshot { self.model.snapshot }
}

@Suite("Lag model: health, lag and rotation")
struct LagModelTests {
    @Test func replicasStartUnknownAndOutOfRotationThenJoinOnTheirFirstGoodSample() {
        var d = LagDriver()
        #expect(d.state.health == .unknown)
        #expect(!d.state.inRotation)
        #expect(d.snapshot.sampledAtMillis == nil)
        d.primary(5000)
        #expect(d.snapshot.shards[0].primary.healthy)
        #expect(d.snapshot.shards[0].primary.walLSN == LSN(5000))
        let event = d.replica(replay: 5000)
        #expect(event == .replicaJoinedRotation(shard: "s0", url: "postgresql://postgres@127.0.0.1:5501/app"))
        #expect(d.state.inRotation)
        #expect(d.state.healthy)
        #expect(d.state.lagBytes == 0)
        #expect(d.state.lagMs == 0)
        #expect(d.snapshot.sampledAtMillis == d.wallClock)
        #expect(d.snapshot.sequence == 2)
    }

    @Test func aQuietPrimaryNeverMakesAReplicaLookLate() {
        var d = LagDriver()
        d.primary(5000)
        // The last transaction was replayed an hour ago, but nothing happened since: caught up.
        d.replica(replay: 5000, ageMs: 3_600_000)
        #expect(d.state.lagMs == 0)
        #expect(d.state.lagBytes == 0)
        #expect(d.state.inRotation)
    }

    @Test func aReplicaAheadOfTheLastPrimarySampleIsNotLagging() {
        var d = LagDriver()
        d.primary(5000)
        d.replica(replay: 5200)
        #expect(d.state.lagBytes == 0)
        #expect(d.state.lagMs == 0)
    }

    @Test func overMaxLagBytesLeavesRotationAtOnce() {
        var d = LagDriver(policy: LagPolicy(maxLagBytes: 1000, maxLagMs: 100_000))
        d.primary(5000)
        d.replica(replay: 5000)
        d.primary(6001)
        let event = d.replica(replay: 5000)
        #expect(d.state.lagBytes == 1001)
        #expect(!d.state.inRotation)
        #expect(d.state.healthy, "lagging is not unhealthy")
        guard case .replicaLeftRotation(let shard, _, let reason) = event else {
            Issue.record("expected a left-rotation event, got \(String(describing: event))")
            return
        }
        #expect(shard == "s0")
        #expect(reason.contains("1001 bytes"))
        #expect(reason.contains("max_lag_bytes 1000"))
    }

    @Test func overMaxLagMsLeavesRotation() {
        var d = LagDriver(policy: LagPolicy(maxLagBytes: 1 << 40, maxLagMs: 1000))
        d.primary(5000)
        d.replica(replay: 5000)
        d.primary(9000)
        // Replay is stuck at 5000 and its last transaction is 2.5 s old; the history bound (time since
        // the last primary sample at or below 5000) is only ~3 ms, so the smaller bound wins and it stays.
        d.replica(replay: 5000, ageMs: 2500)
        #expect(d.state.inRotation)
        #expect((d.state.lagMs ?? -1) <= 5)
        // Time passes with the primary moving on and the replica stuck.
        for step in 1...15 {
            d.advance(ms: 100)
            d.primary(9000 + UInt64(step))
            d.replica(replay: 5000, ageMs: 2500 + Int64(step) * 100)
        }
        #expect(!d.state.inRotation)
        #expect((d.state.lagMs ?? 0) > 1000)
        #expect(d.state.reason?.contains("max_lag_ms 1000") == true)
    }

    @Test func afterAnHourOfSilenceTheFirstNewCommitDoesNotLookAnHourLate() {
        var d = LagDriver(policy: LagPolicy(maxLagBytes: 1 << 40, maxLagMs: 5000))
        d.primary(5000)
        d.replica(replay: 5000, ageMs: 3_600_000)
        d.advance(ms: 100)
        d.primary(5400)  // a commit arrives on the primary
        d.replica(replay: 5000, receive: 5000, ageMs: 3_600_100)  // not yet streamed
        #expect(d.state.inRotation)
        let lag = d.state.lagMs ?? -1
        #expect(lag >= 100 && lag < 200, "bounded by the time since the caught-up primary sample, got \(lag)")
        #expect(d.state.lagBytes == 400)
    }

    @Test func hysteresisNeedsConsecutiveSamplesUnderHalfTheThreshold() {
        var d = LagDriver(policy: LagPolicy(maxLagBytes: 1000, maxLagMs: 100_000, rejoinSamples: 3))
        d.primary(10_000)
        d.replica(replay: 10_000)
        d.primary(20_000)
        d.replica(replay: 10_000)
        #expect(!d.state.inRotation)
        // Under the threshold but over half of it: stays out.
        d.primary(20_000)
        for _ in 0..<5 { d.replica(replay: 19_300) }
        #expect(!d.state.inRotation)
        #expect(d.state.reason?.contains("half") == true)
        // Two good samples, then a bad one: the streak starts again.
        d.replica(replay: 19_600)
        d.replica(replay: 19_700)
        #expect(!d.state.inRotation)
        #expect(d.state.reason == "rejoining: 2 of 3 good samples")
        d.replica(replay: 19_300)
        d.replica(replay: 19_600)
        d.replica(replay: 19_700)
        #expect(!d.state.inRotation)
        let event = d.replica(replay: 20_000)
        #expect(d.state.inRotation)
        #expect(d.state.reason == nil)
        #expect(event == .replicaJoinedRotation(shard: "s0", url: d.state.url))
    }

    @Test func anUnreachableReplicaIsUnhealthyAndOutThenRejoinsWithHysteresis() {
        var d = LagDriver()
        d.primary(100)
        d.replica(replay: 100)
        let event = d.replica(nil, failure: "connection refused")
        #expect(d.state.health == .unreachable("connection refused"))
        #expect(!d.state.healthy)
        #expect(!d.state.inRotation)
        #expect(d.state.replayLSN == nil && d.state.lagBytes == nil && d.state.lagMs == nil)
        #expect(event == .replicaLeftRotation(shard: "s0", url: d.state.url,
                                              reason: "unreachable: connection refused"))
        // A second failure of the same kind is not news.
        #expect(d.replica(nil, failure: "no answer within 500 ms") == nil)
        d.replica(replay: 100)
        d.replica(replay: 100)
        #expect(!d.state.inRotation)
        d.replica(replay: 100)
        #expect(d.state.inRotation)
    }

    @Test func aReplicaThatNeverAnsweredIsReported() {
        var d = LagDriver()
        let event = d.replica(nil, failure: "connection refused")
        #expect(event == .replicaUnhealthy(shard: "s0", url: d.state.url, problem: "unreachable: connection refused"))
    }

    @Test func aPromotedReplicaIsReportedAndNeverServes() {
        var d = LagDriver()
        d.primary(100)
        d.replica(replay: 100)
        let event = d.replica(ReplicaReading(inRecovery: false, replayLSN: nil))
        #expect(d.state.health == .promoted)
        #expect(!d.state.inRotation)
        guard case .replicaLeftRotation(_, _, let reason) = event else {
            Issue.record("expected left rotation, got \(String(describing: event))")
            return
        }
        #expect(reason.hasPrefix("promoted"))
        #expect(!d.snapshot.replicaCanServe(shard: 0, replica: 0, fence: nil))
    }

    @Test func aReplicaWithoutAReplayPositionIsNotReplaying() {
        var d = LagDriver()
        d.replica(ReplicaReading(inRecovery: true, replayLSN: nil))
        #expect(d.state.health == .notReplaying)
        #expect(!d.state.inRotation)
    }

    @Test func receivedButUnreplayedWALCountsWhileThePrimaryIsUnreachable() {
        var d = LagDriver(policy: LagPolicy(maxLagBytes: 1000, maxLagMs: 100_000))
        d.primary(1000)
        d.replica(replay: 1000)
        let event = d.primary(nil)
        #expect(event == .primaryUnhealthy(shard: "s0", url: "postgresql://postgres@127.0.0.1:5500/app",
                                           problem: "unreachable: connection refused"))
        #expect(!d.snapshot.shards[0].primary.healthy)
        #expect(d.snapshot.shards[0].primary.walLSN == nil)
        d.replica(replay: 1000, receive: 5000, ageMs: 50)
        #expect(d.state.lagBytes == 4000)
        #expect(!d.state.inRotation)
        #expect(d.primary(6000) == .primaryRecovered(shard: "s0", url: "postgresql://postgres@127.0.0.1:5500/app"))
    }

    @Test func aPrimaryInRecoveryIsUnhealthy() {
        var d = LagDriver()
        let event = d.primary(nil, inRecovery: true)
        #expect(!d.snapshot.shards[0].primary.healthy)
        #expect(d.snapshot.shards[0].primary.problem?.contains("standby") == true)
        #expect(event != nil)
        #expect(d.snapshot.shards[0].primaryPositions.isEmpty)
    }

    @Test func unknownTimeLagDoesNotBlockWhileBytesAreWithinLimits() {
        var d = LagDriver(policy: LagPolicy(maxLagBytes: 1000, maxLagMs: 10))
        // No transaction replayed yet (no replay timestamp) and no primary sample at or below replay.
        d.primary(1500)
        d.replica(replay: 1200, ageMs: nil)
        #expect(d.state.lagMs == nil)
        #expect(d.state.lagBytes == 300)
        #expect(d.state.inRotation)
    }

    @Test func reconfiguringKeepsTheStateOfServersThatStay() throws {
        let json = """
        {"version": 1, "shards": [
          {"name": "s0", "primary": "postgresql://postgres@127.0.0.1:5500/app",
           "replicas": ["postgresql://postgres@127.0.0.1:5501/app"]}],
         "slots": {"s0": "0-1023"}}
        """
        let map = try ShardMap.decode(Data(json.utf8), environment: [:])
        var model = LagModel(map: map)
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000)
        model.record(primary: PrimarySample(sentAt: t0, receivedAt: t0, wallClockMillis: 1,
                                            result: .success(PrimaryReading(walLSN: LSN(10)))), shard: 0)
        model.record(replica: ReplicaSample(sentAt: t0, receivedAt: t0, wallClockMillis: 1,
                                            result: .success(ReplicaReading(replayLSN: LSN(10)))), shard: 0, replica: 0)
        #expect(model.snapshot.shards[0].replicas[0].inRotation)

        var grown = map
        grown.version = 2
        grown.shards.append(Shard(name: "s1", primary: PostgresURL(host: "127.0.0.1", port: 5502, database: "app"),
                                  replicas: [PostgresURL(host: "127.0.0.1", port: 5503, database: "app")]))
        grown.slotOwners = Array(repeating: 0, count: 512) + Array(repeating: 1, count: 512)
        let next = model.reconfigured(for: grown)
        #expect(next.snapshot.shards.map(\.name) == ["s0", "s1"])
        #expect(next.snapshot.shards[0].replicas[0].inRotation, "kept")
        #expect(next.snapshot.shards[0].primaryPositions == model.snapshot.shards[0].primaryPositions)
        #expect(next.snapshot.shards[1].replicas[0].health == .unknown)
        #expect(next.snapshot.sequence > model.snapshot.sequence)
    }

    @Test func thePolicyComesFromTheMapsReplicasSection() {
        let policy = LagPolicy(ReplicaConfig(maxLagBytes: 4096, maxLagMs: 250, pollMs: 50))
        #expect(policy.maxLagBytes == 4096)
        #expect(policy.maxLagMs == 250)
        #expect(policy.rejoinSamples == LagPolicy.defaultRejoinSamples)
    }
}
