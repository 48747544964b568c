import NIOCore

/// What a backend lease is for, which decides which pool connections it may take and in what order it is
/// served (see `PoolStateMachine`).
public enum BackendClaim: Equatable, Sendable {
    /// Needs this one backend while it holds it (a statement outside a transaction): any connection.
    case single
    /// The first backend of something that may go on to want others while holding this one (a
    /// transaction, a statement over several shards): leaves the reserve to holders.
    case opening
    /// The session already holds another backend: any connection, and served first.
    case holding
}

/// Bookkeeping of one backend pool: which connections are idle, how many exist, who waits.
///
/// Pure logic: the NIO glue (ProxyServer's `BackendPool`) performs the returned actions and reports
/// connects, releases, closes and timer firings back. `Connection` is whatever identifies a connection there.
///
/// A session in a transaction over several shards holds a backend of one shard while it waits for one of
/// another. If such sessions held every connection of two pools, each waiting for the other pool, nobody
/// would move until checkout timeouts. So leases say what they are (`Claim`): a lease that may go on to
/// wait for another backend while it holds this one (`.opening`) never takes the last `reserve`
/// connections; those are for sessions that already hold a backend (`.holding`), which are also served
/// before anyone else. A statement that holds one backend and needs no other (`.single`) may take any
/// connection: it finishes without waiting for anything.
public struct PoolStateMachine<Connection: Hashable, Waiter: Hashable> {
    public typealias Claim = BackendClaim

    public enum LeaseAction: Equatable {
        /// Hand this idle connection to the waiter now.
        case use(Connection)
        /// The waiter is queued; open one new connection for the pool.
        case queueAndConnect(deadline: NIODeadline)
        /// The waiter is queued until a connection is released or its deadline passes.
        case queue(deadline: NIODeadline)
    }

    public enum HandOff: Equatable {
        /// Give the connection to this waiter.
        case lease(Connection, to: Waiter)
        /// Nobody waits: the connection is now idle in the pool.
        case parked
    }

    public let maxConnections: Int
    public let checkoutTimeout: TimeAmount
    public let idleTimeout: TimeAmount
    /// Connections `.opening` leases leave to `.holding` ones: a quarter of the pool, at least one when
    /// the pool has two or more.
    public let reserve: Int

    /// Idle connections, most recently used last (LIFO keeps few connections warm).
    private var idle: [(connection: Connection, since: NIODeadline)] = []
    /// Waiters that hold another backend, served first.
    private var holders: CircularBuffer<(waiter: Waiter, deadline: NIODeadline)> = []
    /// Everyone else, in arrival order (`.single` and `.opening`).
    private var waiters: CircularBuffer<(waiter: Waiter, deadline: NIODeadline, opening: Bool)> = []
    /// Connections leased to `.opening` claims; at most `maxConnections - reserve`.
    private var opened: Set<Connection> = []
    /// `.opening` waiters among `waiters`.
    public private(set) var waitingOpeningCount = 0
    /// Connecting + idle + leased.
    public private(set) var total: Int = 0
    public private(set) var connecting: Int = 0

    public init(maxConnections: Int, checkoutTimeout: TimeAmount, idleTimeout: TimeAmount) {
        precondition(maxConnections > 0)
        self.maxConnections = maxConnections
        self.checkoutTimeout = checkoutTimeout
        self.idleTimeout = idleTimeout
        self.reserve = maxConnections >= 2 ? max(1, maxConnections / 4) : 0
    }

    public var idleCount: Int { self.idle.count }
    /// The earliest checkout deadline of any waiter, if any.
    public var earliestWaiterDeadline: NIODeadline? {
        switch (self.holders.first?.deadline, self.waiters.first?.deadline) {
        case (let a?, let b?): return min(a, b)
        case (let a, let b): return a ?? b
        }
    }
    public var waitingCount: Int { self.holders.count + self.waiters.count }
    public var leasedCount: Int { self.total - self.connecting - self.idle.count }
    /// Connections leased to `.opening` claims.
    public var openingCount: Int { self.opened.count }

    /// Whether an `.opening` claim may take one more connection.
    var mayOpen: Bool { self.opened.count < self.maxConnections - self.reserve }
    /// Waiters a connection could be handed to now.
    private var servableCount: Int {
        self.mayOpen ? self.waitingCount : self.waitingCount - self.waitingOpeningCount
    }

    public mutating func lease(for waiter: Waiter, claim: Claim = .single, now: NIODeadline) -> LeaseAction {
        if !self.idle.isEmpty, claim != .opening || self.mayOpen {
            let connection = self.idle.removeLast().connection
            if claim == .opening { self.opened.insert(connection) }
            return .use(connection)
        }
        let deadline = now + self.checkoutTimeout
        if claim == .holding {
            self.holders.append((waiter, deadline))
        } else {
            self.waiters.append((waiter, deadline, claim == .opening))
            if claim == .opening { self.waitingOpeningCount += 1 }
        }
        // A connection opened for an `.opening` waiter past its share would only sit idle.
        if self.total < self.maxConnections, self.idle.isEmpty, claim != .opening || self.mayOpen {
            self.total += 1
            self.connecting += 1
            return .queueAndConnect(deadline: deadline)
        }
        return .queue(deadline: deadline)
    }

    /// A waiter gave up (client closed) before it was served.
    public mutating func cancel(_ waiter: Waiter) {
        if let index = self.holders.firstIndex(where: { $0.waiter == waiter }) {
            self.holders.remove(at: index)
        } else if let index = self.waiters.firstIndex(where: { $0.waiter == waiter }) {
            if self.waiters.remove(at: index).opening { self.waitingOpeningCount -= 1 }
        }
    }

    /// A new connection finished its startup.
    public mutating func connected(_ connection: Connection, now: NIODeadline) -> HandOff {
        self.connecting -= 1
        return self.offer(connection, now: now)
    }

    /// Opening a connection failed. Returns the waiter that should receive the error (the oldest), if any,
    /// and whether another connection attempt should be made for the remaining waiters.
    public mutating func connectFailed() -> (failed: Waiter?, retry: Bool) {
        self.connecting -= 1
        self.total -= 1
        var failed = self.holders.popFirst()?.waiter
        if failed == nil, let first = self.waiters.popFirst() {
            if first.opening { self.waitingOpeningCount -= 1 }
            failed = first.waiter
        }
        // Each remaining waiter beyond the attempts already in flight gets its own attempt, so every
        // waiter learns the outcome promptly instead of sitting until its checkout timeout.
        if self.servableCount > self.connecting && self.total < self.maxConnections {
            self.total += 1
            self.connecting += 1
            return (failed, true)
        }
        return (failed, false)
    }

    /// A leased connection came back clean.
    public mutating func release(_ connection: Connection, now: NIODeadline) -> HandOff {
        self.opened.remove(connection)
        return self.offer(connection, now: now)
    }

    public enum ClosedAction: Equatable {
        case none
        /// Open a replacement for the waiters.
        case connect
        /// The closed connection was an `.opening` lease, which lets a waiting `.opening` claim have an
        /// idle connection that was kept for holders.
        case lease(Connection, to: Waiter)
    }

    /// A connection closed (leased, idle or broken). If it was idle it leaves the idle list.
    public mutating func closed(_ connection: Connection) -> ClosedAction {
        if let index = self.idle.firstIndex(where: { $0.connection == connection }) {
            self.idle.remove(at: index)
        }
        let wasOpened = self.opened.remove(connection) != nil
        self.total -= 1
        // Idle connections with waiters means every waiter is `.opening` (see `offer`).
        if wasOpened, !self.idle.isEmpty, let first = self.waiters.first, first.opening {
            self.waiters.removeFirst()
            self.waitingOpeningCount -= 1
            let idle = self.idle.removeLast().connection
            self.opened.insert(idle)
            return .lease(idle, to: first.waiter)
        }
        if self.servableCount > self.connecting && self.total < self.maxConnections {
            self.total += 1
            self.connecting += 1
            return .connect
        }
        return .none
    }

    /// Waiters whose checkout deadline passed; they are removed.
    public mutating func expireWaiters(now: NIODeadline) -> [Waiter] {
        var expired: [Waiter] = []
        while let first = self.holders.first, first.deadline <= now {
            expired.append(first.waiter)
            self.holders.removeFirst()
        }
        while let first = self.waiters.first, first.deadline <= now {
            expired.append(first.waiter)
            if first.opening { self.waitingOpeningCount -= 1 }
            self.waiters.removeFirst()
        }
        // Each queue is in deadline order unless the timeout changed; scan the rest cheaply.
        if self.waiters.contains(where: { $0.deadline <= now }) {
            for late in self.waiters where late.deadline <= now {
                expired.append(late.waiter)
                if late.opening { self.waitingOpeningCount -= 1 }
            }
            self.waiters.removeAll(where: { $0.deadline <= now })
        }
        return expired
    }

    /// Idle connections unused for longer than the idle timeout; they are removed from the idle list
    /// (the caller closes them and then reports `closed`).
    public mutating func reapIdle(now: NIODeadline) -> [Connection] {
        let cutoff = now - self.idleTimeout
        let stale = self.idle.filter { $0.since <= cutoff }.map(\.connection)
        if !stale.isEmpty {
            self.idle.removeAll(where: { $0.since <= cutoff })
        }
        return stale
    }

    /// Every idle connection, removed from the pool (shutdown).
    public mutating func drainIdle() -> [Connection] {
        defer { self.idle.removeAll() }
        return self.idle.map(\.connection)
    }

    /// Hands a free connection to the first waiter that may take it: holders first, then in arrival
    /// order, passing over `.opening` waiters while the reserve is all that is left for them.
    private mutating func offer(_ connection: Connection, now: NIODeadline) -> HandOff {
        if let next = self.holders.popFirst() {
            return .lease(connection, to: next.waiter)
        }
        if let first = self.waiters.first, !first.opening || self.mayOpen {
            self.waiters.removeFirst()
            if first.opening {
                self.waitingOpeningCount -= 1
                self.opened.insert(connection)
            }
            return .lease(connection, to: first.waiter)
        }
        if self.waitingOpeningCount < self.waiters.count, let index = self.waiters.firstIndex(where: { !$0.opening }) {
            let next = self.waiters.remove(at: index)
            return .lease(connection, to: next.waiter)
        }
        self.idle.append((connection, now))
        return .parked
    }
}
