import NIOCore
import Testing

@testable import ProxyCore

/// Drives a pool and a model of it side by side, checking the counters after every step.
///
/// Connections are `Int`s, waiters `String`s; time is a base deadline plus offsets, never the clock.
struct PoolHarness {
    typealias Pool = PoolStateMachine<Int, String>

    var pool: Pool
    /// Connections the model believes are handed out.
    var leased: Set<Int> = []
    let sourceLocation: SourceLocation

    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    init(max: Int, checkout: TimeAmount = .seconds(5), idle: TimeAmount = .seconds(60),
         sourceLocation: SourceLocation = #_sourceLocation) {
        self.pool = Pool(maxConnections: max, checkoutTimeout: checkout, idleTimeout: idle)
        self.sourceLocation = sourceLocation
        self.check()
    }

    /// The counters agree with each other and with the model.
    func check(sourceLocation: SourceLocation? = nil) {
        let at = sourceLocation ?? self.sourceLocation
        let pool = self.pool
        #expect(pool.total == pool.connecting + pool.idleCount + pool.leasedCount, sourceLocation: at)
        #expect(pool.total <= pool.maxConnections, sourceLocation: at)
        #expect(pool.connecting >= 0, sourceLocation: at)
        #expect(pool.leasedCount >= 0, sourceLocation: at)
        #expect(pool.idleCount >= 0 && pool.waitingCount >= 0, sourceLocation: at)
        // Nobody waits while a connection sits idle.
        #expect(pool.idleCount == 0 || pool.waitingCount == 0, sourceLocation: at)
        #expect(pool.leasedCount == self.leased.count, "leased \(pool.leasedCount), model \(self.leased.sorted())", sourceLocation: at)
    }

    mutating func lease(_ waiter: String, at offset: TimeAmount = .zero) -> Pool.LeaseAction {
        let action = self.pool.lease(for: waiter, now: Self.t0 + offset)
        if case .use(let connection) = action { self.leased.insert(connection) }
        self.check()
        return action
    }

    mutating func connected(_ connection: Int, at offset: TimeAmount = .zero) -> Pool.HandOff {
        let handOff = self.pool.connected(connection, now: Self.t0 + offset)
        if case .lease = handOff { self.leased.insert(connection) }
        self.check()
        return handOff
    }

    mutating func release(_ connection: Int, at offset: TimeAmount = .zero) -> Pool.HandOff {
        let wasLeased = self.leased.remove(connection) != nil
        #expect(wasLeased, "released \(connection), which was not leased", sourceLocation: self.sourceLocation)
        let handOff = self.pool.release(connection, now: Self.t0 + offset)
        if case .lease = handOff { self.leased.insert(connection) }
        self.check()
        return handOff
    }

    mutating func connectFailed() -> (failed: String?, retry: Bool) {
        let result = self.pool.connectFailed()
        self.check()
        return result
    }

    mutating func closed(_ connection: Int) -> Bool {
        self.leased.remove(connection)
        let replace = self.pool.closed(connection)
        self.check()
        return replace
    }

    mutating func cancel(_ waiter: String) {
        self.pool.cancel(waiter)
        self.check()
    }

    mutating func expireWaiters(at offset: TimeAmount) -> [String] {
        let expired = self.pool.expireWaiters(now: Self.t0 + offset)
        self.check()
        return expired
    }

    /// Reaped connections are closed by the caller, which then reports `closed`.
    mutating func reapIdle(at offset: TimeAmount) -> [Int] {
        let idleBefore = self.pool.idleCount
        let stale = self.pool.reapIdle(now: Self.t0 + offset)
        #expect(self.pool.idleCount == idleBefore - stale.count, sourceLocation: self.sourceLocation)
        for connection in stale {
            let replace = self.pool.closed(connection)
            #expect(!replace, "no waiter can exist while connections idle", sourceLocation: self.sourceLocation)
        }
        self.check()
        return stale
    }

    mutating func drainIdle() -> [Int] {
        let drained = self.pool.drainIdle()
        #expect(self.pool.idleCount == 0, sourceLocation: self.sourceLocation)
        for connection in drained {
            _ = self.pool.closed(connection)
        }
        self.check()
        return drained
    }
}

@Suite struct PoolStateMachineTests {
    static let checkout = TimeAmount.seconds(5)

    func deadline(_ offset: TimeAmount) -> NIODeadline { PoolHarness.t0 + offset }

    @Test func connectsUpToTheMaximumThenQueues() {
        var h = PoolHarness(max: 2)
        #expect(h.lease("a") == .queueAndConnect(deadline: self.deadline(Self.checkout)))
        #expect(h.lease("b", at: .milliseconds(10)) == .queueAndConnect(deadline: self.deadline(.milliseconds(5_010))))
        #expect(h.lease("c", at: .milliseconds(20)) == .queue(deadline: self.deadline(.milliseconds(5_020))))
        #expect(h.pool.total == 2)
        #expect(h.pool.connecting == 2)
        #expect(h.pool.waitingCount == 3)
        #expect(h.connected(1) == .lease(1, to: "a"))
        #expect(h.connected(2) == .lease(2, to: "b"))
        #expect(h.pool.waitingCount == 1)
        #expect(h.pool.leasedCount == 2)
    }

    @Test func idleConnectionsAreReusedLastInFirstOut() {
        var h = PoolHarness(max: 3)
        for waiter in ["a", "b", "c"] { _ = h.lease(waiter) }
        #expect(h.connected(1) == .lease(1, to: "a"))
        #expect(h.connected(2) == .lease(2, to: "b"))
        #expect(h.connected(3) == .lease(3, to: "c"))
        #expect(h.release(1, at: .seconds(1)) == .parked)
        #expect(h.release(2, at: .seconds(2)) == .parked)
        #expect(h.release(3, at: .seconds(3)) == .parked)
        #expect(h.pool.idleCount == 3)
        // The most recently used connection is the warmest.
        #expect(h.lease("d", at: .seconds(4)) == .use(3))
        #expect(h.lease("e", at: .seconds(4)) == .use(2))
        #expect(h.release(3, at: .seconds(5)) == .parked)
        #expect(h.lease("f", at: .seconds(6)) == .use(3))
        #expect(h.pool.total == 3)
    }

    @Test func releaseHandsTheConnectionToTheOldestWaiter() {
        var h = PoolHarness(max: 1)
        #expect(h.lease("a") == .queueAndConnect(deadline: self.deadline(Self.checkout)))
        #expect(h.lease("b", at: .milliseconds(1)) == .queue(deadline: self.deadline(.milliseconds(5_001))))
        #expect(h.lease("c", at: .milliseconds(2)) == .queue(deadline: self.deadline(.milliseconds(5_002))))
        #expect(h.connected(1) == .lease(1, to: "a"))
        #expect(h.release(1) == .lease(1, to: "b"))
        #expect(h.release(1) == .lease(1, to: "c"))
        #expect(h.release(1) == .parked)
        #expect(h.pool.idleCount == 1)
    }

    @Test func cancelledWaiterIsSkipped() {
        var h = PoolHarness(max: 1)
        _ = h.lease("a")
        _ = h.lease("b")
        _ = h.lease("c")
        h.cancel("b")
        #expect(h.pool.waitingCount == 2)
        h.cancel("nobody")
        #expect(h.pool.waitingCount == 2)
        #expect(h.connected(1) == .lease(1, to: "a"))
        #expect(h.release(1) == .lease(1, to: "c"))
    }

    @Test func connectionOpenedForACancelledWaiterIsParked() {
        var h = PoolHarness(max: 2)
        _ = h.lease("a")
        h.cancel("a")
        #expect(h.connected(1) == .parked)
        #expect(h.lease("b") == .use(1))
    }

    @Test func connectFailedFailsTheOldestWaiterAndRetriesForTheRest() {
        var h = PoolHarness(max: 2)
        _ = h.lease("a")
        _ = h.lease("b")
        _ = h.lease("c")
        // a fails; b and c wait on one attempt in flight, so another one is made.
        let first = h.connectFailed()
        #expect(first.failed == "a")
        #expect(first.retry)
        #expect(h.pool.connecting == 2)
        // b fails; c is covered by the attempt still in flight.
        let second = h.connectFailed()
        #expect(second.failed == "b")
        #expect(!second.retry)
        #expect(h.pool.connecting == 1)
        #expect(h.connected(7) == .lease(7, to: "c"))
        #expect(h.pool.total == 1)
    }

    @Test func connectFailedWithNobodyWaiting() {
        var h = PoolHarness(max: 2)
        _ = h.lease("a")
        h.cancel("a")
        let result = h.connectFailed()
        #expect(result.failed == nil)
        #expect(!result.retry)
        #expect(h.pool.total == 0)
        // Capacity is free again.
        #expect(h.lease("b") == .queueAndConnect(deadline: self.deadline(Self.checkout)))
    }

    @Test func closedFreesCapacityAndAsksForAReplacementWhenSomeoneWaits() {
        var h = PoolHarness(max: 1)
        _ = h.lease("a")
        #expect(h.connected(1) == .lease(1, to: "a"))
        _ = h.lease("b")
        // The leased connection broke; b needs a new one.
        let replaced1 = h.closed(1)
        #expect(replaced1)
        #expect(h.pool.connecting == 1)
        #expect(h.connected(2) == .lease(2, to: "b"))
        // Nobody waits: no replacement.
        let replaced2 = h.closed(2)
        #expect(!replaced2)
        #expect(h.pool.total == 0)
        #expect(h.lease("c") == .queueAndConnect(deadline: self.deadline(Self.checkout)))
    }

    @Test func closedIdleConnectionLeavesTheIdleList() {
        var h = PoolHarness(max: 2)
        _ = h.lease("a")
        _ = h.lease("b")
        _ = h.connected(1)
        _ = h.connected(2)
        _ = h.release(1)
        _ = h.release(2)
        let replaced2 = h.closed(2)
        #expect(!replaced2)
        #expect(h.pool.idleCount == 1)
        #expect(h.lease("c") == .use(1))
        #expect(h.lease("d") == .queueAndConnect(deadline: self.deadline(Self.checkout)))
    }

    @Test func waitersExpireByDeadline() {
        var h = PoolHarness(max: 1, checkout: .seconds(5))
        _ = h.lease("a")
        _ = h.lease("b", at: .seconds(1))
        _ = h.lease("c", at: .seconds(2))
        #expect(h.expireWaiters(at: .milliseconds(4_999)) == [])
        #expect(h.expireWaiters(at: .seconds(5)) == ["a"])
        #expect(h.expireWaiters(at: .milliseconds(6_500)) == ["b"])
        #expect(h.pool.waitingCount == 1)
        // The connection opened for a is still coming; c gets it.
        #expect(h.pool.connecting == 1)
        #expect(h.connected(1, at: .seconds(7)) == .lease(1, to: "c"))
        #expect(h.expireWaiters(at: .seconds(100)) == [])
    }

    @Test func allWaitersPastTheirDeadlineExpireAtOnce() {
        var h = PoolHarness(max: 1)
        for (index, waiter) in ["a", "b", "c", "d"].enumerated() {
            _ = h.lease(waiter, at: .seconds(Int64(index)))
        }
        #expect(h.expireWaiters(at: .seconds(7)) == ["a", "b", "c"])
        #expect(h.pool.waitingCount == 1)
    }

    @Test func idleConnectionsAreReapedAfterTheIdleTimeout() {
        var h = PoolHarness(max: 3, idle: .seconds(60))
        for waiter in ["a", "b", "c"] { _ = h.lease(waiter) }
        _ = h.connected(1)
        _ = h.connected(2)
        _ = h.connected(3)
        #expect(h.release(1, at: .seconds(0)) == .parked)
        #expect(h.release(2, at: .seconds(30)) == .parked)
        #expect(h.release(3, at: .seconds(50)) == .parked)
        #expect(h.reapIdle(at: .seconds(59)) == [])
        #expect(h.reapIdle(at: .seconds(60)) == [1])
        #expect(h.pool.total == 2)
        #expect(h.reapIdle(at: .seconds(95)) == [2])
        #expect(h.pool.idleCount == 1)
        // A connection used again starts a new idle period.
        #expect(h.lease("d", at: .seconds(100)) == .use(3))
        #expect(h.release(3, at: .seconds(100)) == .parked)
        #expect(h.reapIdle(at: .seconds(159)) == [])
        #expect(h.reapIdle(at: .seconds(160)) == [3])
        #expect(h.pool.total == 0)
    }

    @Test func drainIdleEmptiesTheIdleListButLeavesLeasedConnections() {
        var h = PoolHarness(max: 3)
        for waiter in ["a", "b", "c"] { _ = h.lease(waiter) }
        _ = h.connected(1)
        _ = h.connected(2)
        _ = h.connected(3)
        _ = h.release(1)
        _ = h.release(3)
        #expect(Set(h.drainIdle()) == [1, 3])
        #expect(h.pool.total == 1)
        #expect(h.pool.leasedCount == 1)
        #expect(h.drainIdle() == [])
        // The leased one comes back later and is parked (the caller closes it during shutdown).
        #expect(h.release(2) == .parked)
        #expect(h.drainIdle() == [2])
        #expect(h.pool.total == 0)
    }

    @Test func aLongRandomWalkKeepsTheCountersConsistent() {
        var h = PoolHarness(max: 4, checkout: .seconds(5), idle: .seconds(30))
        var generator = SplitMix64(seed: 0x5EED)
        var nextConnection = 100
        var waiterNumber = 0
        var connectingForWaiters = 0
        for step in 0..<2_000 {
            let now = TimeAmount.milliseconds(Int64(step * 100))
            switch generator.next() % 7 {
            case 0, 1:
                waiterNumber += 1
                if case .queueAndConnect = h.lease("w\(waiterNumber)", at: now) { connectingForWaiters += 1 }
            case 2:
                if connectingForWaiters > 0 {
                    connectingForWaiters -= 1
                    nextConnection += 1
                    _ = h.connected(nextConnection, at: now)
                }
            case 3:
                if let connection = h.leased.sorted().randomElement(using: &generator) {
                    _ = h.release(connection, at: now)
                }
            case 4:
                if let connection = h.leased.sorted().randomElement(using: &generator) {
                    if h.closed(connection) { connectingForWaiters += 1 }
                }
            case 5:
                if connectingForWaiters > 0 {
                    connectingForWaiters -= 1
                    if h.connectFailed().retry { connectingForWaiters += 1 }
                }
            default:
                _ = h.expireWaiters(at: now)
                _ = h.reapIdle(at: now)
            }
            #expect(h.pool.connecting == connectingForWaiters)
        }
    }
}

/// A small deterministic generator, so the random walk is the same on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
