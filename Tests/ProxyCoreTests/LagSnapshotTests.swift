import NIOCore
import ProxyCore
import Testing

@Suite("Lag snapshot: read-your-writes fences and replica choice")
struct LagSnapshotTests {
    @Test func aFenceIsTheFirstPrimaryPositionSampledAfterTheWriteCompleted() {
        var d = LagDriver()
        d.primary(1000)
        d.advance(ms: 10)
        let writeCompleted = d.now
        // No primary sample was sent after the write yet: the fence is pending (read from the primary).
        #expect(d.snapshot.fence(shard: 0, after: writeCompleted) == nil)
        d.advance(ms: 5)
        d.primary(1400)
        d.advance(ms: 50)
        d.primary(1900)
        #expect(d.snapshot.fence(shard: 0, after: writeCompleted) == LSN(1400), "the first sample after, not the latest")
        // A sample whose query was sent exactly at the completion instant does not count: it may have read
        // the position before the commit was visible to it.
        var e = LagDriver()
        let instant = e.now
        e.primary(10)
        #expect(e.snapshot.fence(shard: 0, after: instant) == nil)
        e.primary(20)
        #expect(e.snapshot.fence(shard: 0, after: instant) == LSN(20))
    }

    @Test func aFenceOlderThanTheRetainedHistoryUsesTheOldestRetainedPosition() {
        var d = LagDriver(policy: LagPolicy(maxLagBytes: 1000, maxLagMs: 1000, historyLength: 4))
        let longAgo = d.now
        d.advance(ms: 1)
        for lsn in 1...10 {
            d.primary(UInt64(lsn * 100))
        }
        #expect(d.snapshot.shards[0].primaryPositions.map(\.lsn.value) == [700, 800, 900, 1000])
        #expect(d.snapshot.fence(shard: 0, after: longAgo) == LSN(700))
    }

    @Test func failedPrimarySamplesNeverResolveAFence() {
        var d = LagDriver()
        d.primary(500)
        let completed = d.now
        d.advance(ms: 1)
        d.primary(nil)
        d.primary(nil, inRecovery: true)
        #expect(d.snapshot.fence(shard: 0, after: completed) == nil)
        d.primary(900)
        #expect(d.snapshot.fence(shard: 0, after: completed) == LSN(900))
    }

    @Test func aReplicaServesAFencedSessionOnlyOnceItHasReplayedTheFence() {
        var d = LagDriver(replicas: 2)
        d.primary(1000)
        d.replica(replay: 1000, replica: 0)
        d.replica(replay: 1000, replica: 1)
        let fence = LSN(1200)
        #expect(d.snapshot.replicaCanServe(shard: 0, replica: 0, fence: nil))
        #expect(!d.snapshot.replicaCanServe(shard: 0, replica: 0, fence: fence))
        #expect(d.snapshot.servingReplica(shard: 0, fence: fence) == nil, "read goes to the primary")
        d.primary(1200)
        d.replica(replay: 1200, replica: 1)
        #expect(d.snapshot.servingReplica(shard: 0, fence: fence) == 1)
        #expect(d.snapshot.servingReplica(shard: 0, fence: fence, startingAt: 0) == 1)
        #expect(d.snapshot.replicaCanServe(shard: 0, replica: 1, fence: fence))
        #expect(d.snapshot.replicaCanServe(shard: 0, replica: 1, fence: LSN(1200)), "equal is enough")
    }

    @Test func servingReplicaSpreadsReadsRoundRobinOverReplicasInRotation() {
        var d = LagDriver(replicas: 3)
        d.primary(50)
        for replica in 0..<3 { d.replica(replay: 50, replica: replica) }
        d.replica(nil, replica: 1)
        #expect(d.snapshot.shards[0].replicasInRotation == [0, 2])
        let picks = (0..<6).map { d.snapshot.servingReplica(shard: 0, fence: nil, startingAt: $0) }
        #expect(picks == [0, 2, 2, 0, 2, 2])
        #expect(d.snapshot.servingReplica(shard: 0, fence: nil, startingAt: -1) == 2, "negative counters are fine")
    }

    @Test func outOfRangeIndexesNeverServe() {
        var d = LagDriver()
        d.primary(1)
        d.replica(replay: 1)
        #expect(!d.snapshot.replicaCanServe(shard: 1, replica: 0, fence: nil))
        #expect(!d.snapshot.replicaCanServe(shard: 0, replica: 1, fence: nil))
        #expect(d.snapshot.servingReplica(shard: 7, fence: nil) == nil)
        #expect(d.snapshot.fence(shard: 3, after: d.now) == nil)
    }

    @Test func aLaggingReplicaDoesNotServeEvenWithoutAFence() {
        var d = LagDriver(policy: LagPolicy(maxLagBytes: 10, maxLagMs: 1000))
        d.primary(100)
        d.replica(replay: 100)
        d.primary(200)
        d.replica(replay: 100)
        #expect(!d.snapshot.replicaCanServe(shard: 0, replica: 0, fence: nil))
        #expect(d.snapshot.servingReplica(shard: 0, fence: nil) == nil)
    }

    @Test func shardsAreIndependent() {
        var d = LagDriver(shards: 2)
        d.primary(100, shard: 0)
        d.primary(900, shard: 1)
        d.replica(replay: 100, shard: 0)
        d.replica(replay: 100, shard: 1)
        #expect(d.snapshot.shards[0].replicas[0].lagBytes == 0)
        #expect(d.snapshot.shards[1].replicas[0].lagBytes == 800)
        #expect(d.snapshot.fence(shard: 1, after: .uptimeNanoseconds(0)) == LSN(900))
    }
}
