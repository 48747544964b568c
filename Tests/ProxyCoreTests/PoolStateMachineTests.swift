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
        // Nobody waits while a connection sits idle, except `.opening` waiters kept out of the reserve.
        #expect(pool.idleCount == 0 || pool.waitingCount == 0
                    || (pool.waitingCount == pool.waitingOpeningCount && !pool.mayOpen), sourceLocation: at)
        #expect(pool.openingCount <= pool.maxConnections - pool.reserve, sourceLocation: at)
        #expect(pool.leasedCount == self.leased.count, "leased \(pool.leasedCount), model \(self.leased.sorted())", sourceLocation: at)
    }

    mutating func lease(_ waiter: String, _ claim: BackendClaim = .single, at offset: TimeAmount = .zero) -> Pool.LeaseAction {
        let action = self.pool.lease(for: waiter, claim: claim, now: Self.t0 + offset)
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

    /// Whether a replacement is to be opened; a hand-off of an idle connection is recorded as a lease.
    mutating func closed(_ connection: Int) -> Bool {
        self.leased.remove(connection)
        let action = self.pool.closed(connection)
        if case .lease(let idle, _) = action { self.leased.insert(idle) }
        self.check()
        return action == .connect
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
            #expect(replace == .none, "no waiter that could use a connection exists while connections idle",
                    sourceLocation: self.sourceLocation)
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
                let claim: BackendClaim = [.single, .opening, .holding][Int(generator.next() % 3)]
                if case .queueAndConnect = h.lease("w\(waiterNumber)", claim, at: now) { connectingForWaiters += 1 }
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

    // MARK: claims

    @Test func openingLeasesLeaveTheReserveToHolders() {
        var h = PoolHarness(max: 4)
        #expect(h.pool.reserve == 1)
        for waiter in ["a", "b", "c", "d"] { _ = h.lease(waiter, .opening) }
        #expect(h.connected(1) == .lease(1, to: "a"))
        #expect(h.connected(2) == .lease(2, to: "b"))
        #expect(h.connected(3) == .lease(3, to: "c"))
        // d would take the last connection: it stays for a session that already holds a backend.
        #expect(h.connected(4) == .parked)
        #expect(h.pool.openingCount == 3)
        #expect(h.lease("e", .opening) == .queue(deadline: self.deadline(Self.checkout)))
        #expect(h.lease("held", .holding) == .use(4))
        // An opening lease that ends lets the next opening waiter in.
        #expect(h.release(1) == .lease(1, to: "d"))
        #expect(h.release(4) == .parked)
        #expect(h.pool.waitingCount == 1)
    }

    @Test func anOpeningLeaseThatBreaksLetsTheNextOpeningWaiterHaveTheIdleReserve() {
        var h = PoolHarness(max: 2)
        _ = h.lease("a", .opening)
        _ = h.lease("b", .opening)
        #expect(h.connected(1) == .lease(1, to: "a"))
        #expect(h.connected(2) == .parked)
        #expect(h.pool.closed(1) == .lease(2, to: "b"))
        #expect(h.pool.openingCount == 1 && h.pool.waitingCount == 0 && h.pool.idleCount == 0)
    }

    @Test func singleStatementsMayTakeTheReserve() {
        var h = PoolHarness(max: 2)
        #expect(h.pool.reserve == 1)
        _ = h.lease("a", .opening)
        _ = h.lease("b", .opening)
        #expect(h.connected(1) == .lease(1, to: "a"))
        #expect(h.connected(2) == .parked)
        // b waits, but a statement that needs no other backend is not held up behind it.
        #expect(h.lease("s") == .use(2))
        _ = h.lease("t")
        #expect(h.release(2) == .lease(2, to: "t"))
        #expect(h.release(1) == .lease(1, to: "b"))
    }

    @Test func holdersAreServedBeforeEarlierWaiters() {
        var h = PoolHarness(max: 1)
        _ = h.lease("a")
        #expect(h.connected(1) == .lease(1, to: "a"))
        _ = h.lease("b", at: .milliseconds(1))
        _ = h.lease("c", .opening, at: .milliseconds(2))
        _ = h.lease("held", .holding, at: .milliseconds(3))
        #expect(h.pool.reserve == 0)
        #expect(h.release(1) == .lease(1, to: "held"))
        #expect(h.release(1) == .lease(1, to: "b"))
        #expect(h.release(1) == .lease(1, to: "c"))
    }

    @Test func waitersOfEveryClaimExpireAndCancel() {
        var h = PoolHarness(max: 2)
        _ = h.lease("a")
        _ = h.lease("b", at: .seconds(1))
        _ = h.connected(1)
        _ = h.connected(2, at: .seconds(1))
        _ = h.lease("c", .opening, at: .seconds(2))
        _ = h.lease("d", .holding, at: .seconds(3))
        _ = h.lease("e", .opening, at: .seconds(4))
        #expect(h.pool.waitingCount == 3)
        #expect(h.pool.waitingOpeningCount == 2)
        h.cancel("e")
        #expect(h.pool.waitingOpeningCount == 1)
        #expect(h.expireWaiters(at: .seconds(8)) == ["d", "c"])
        #expect(h.pool.waitingCount == 0 && h.pool.waitingOpeningCount == 0)
    }

    /// Sessions that each need one backend of pool A and one of pool B, taking them in either order (a
    /// transaction over two shards). Each runs `rounds` transactions; returns how many finished before
    /// nothing could move any more.
    func runTwoShardTransactions(sessions: Int, poolSize: Int, rounds: Int, claims: Bool) -> Int {
        var pools = [PoolHarness(max: poolSize), PoolHarness(max: poolSize)]
        var nextConnection = 0
        var pendingConnects: [(pool: Int, count: Int)] = []
        // Per session: backends held per pool, and which pool it starts from.
        var held = Array(repeating: [Int?](repeating: nil, count: 2), count: sessions)
        var waiting = Array(repeating: -1, count: sessions)
        var done = Array(repeating: 0, count: sessions)
        var finished = 0
        func request(_ session: Int, _ pool: Int) {
            let claim: BackendClaim = !claims ? .single : held[session].contains(where: { $0 != nil }) ? .holding : .opening
            switch pools[pool].lease("s\(session)", claim) {
            case .use(let connection): held[session][pool] = connection
            case .queueAndConnect: pendingConnects.append((pool, 1)); waiting[session] = pool
            case .queue: waiting[session] = pool
            }
        }
        func give(_ handOff: PoolHarness.Pool.HandOff, pool: Int) {
            if case .lease(let connection, let waiter) = handOff {
                let session = Int(waiter.dropFirst())!
                held[session][pool] = connection
                waiting[session] = -1
            }
        }
        for session in 0..<sessions { request(session, session % 2) }
        var progress = true
        while progress {
            progress = false
            while let connect = pendingConnects.popLast() {
                nextConnection += 1
                give(pools[connect.pool].connected(nextConnection), pool: connect.pool)
                progress = true
            }
            for session in 0..<sessions where done[session] < rounds && waiting[session] < 0 {
                let first = session % 2
                if held[session][first] != nil, held[session][1 - first] == nil {
                    request(session, 1 - first)
                    progress = true
                } else if held[session][0] != nil, held[session][1] != nil {
                    // Commit: both backends go back.
                    for pool in 0..<2 {
                        let connection = held[session][pool]!
                        held[session][pool] = nil
                        give(pools[pool].release(connection), pool: pool)
                    }
                    done[session] += 1
                    finished += 1
                    if done[session] < rounds { request(session, first) }
                    progress = true
                }
            }
        }
        return finished
    }

    @Test func transactionsOverTwoPoolsNeverStarveEachOther() {
        for (sessions, size) in [(16, 4), (64, 5), (9, 2), (40, 10)] {
            #expect(self.runTwoShardTransactions(sessions: sessions, poolSize: size, rounds: 5, claims: true) == sessions * 5,
                    "\(sessions) sessions, pools of \(size)")
        }
        // The same workload without claims stalls with every connection held by a session waiting for the
        // other pool: what the reserve is for.
        #expect(self.runTwoShardTransactions(sessions: 16, poolSize: 4, rounds: 5, claims: false) < 16 * 5)
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
