import NIOCore

/// Bookkeeping of one backend pool: which connections are idle, how many exist, who waits.
///
/// Pure logic: the NIO glue (ProxyServer's `BackendPool`) performs the returned actions and reports
/// connects, releases, closes and timer firings back. `Connection` is whatever identifies a connection there.
public struct PoolStateMachine<Connection: Hashable, Waiter: Hashable> {
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

    /// Idle connections, most recently used last (LIFO keeps few connections warm).
    private var idle: [(connection: Connection, since: NIODeadline)] = []
    private var waiters: CircularBuffer<(waiter: Waiter, deadline: NIODeadline)> = []
    /// Connecting + idle + leased.
    public private(set) var total: Int = 0
    public private(set) var connecting: Int = 0

    public init(maxConnections: Int, checkoutTimeout: TimeAmount, idleTimeout: TimeAmount) {
        precondition(maxConnections > 0)
        self.maxConnections = maxConnections
        self.checkoutTimeout = checkoutTimeout
        self.idleTimeout = idleTimeout
    }

    public var idleCount: Int { self.idle.count }
    /// The checkout deadline of the longest-waiting waiter, if any.
    public var earliestWaiterDeadline: NIODeadline? { self.waiters.first?.deadline }
    public var waitingCount: Int { self.waiters.count }
    public var leasedCount: Int { self.total - self.connecting - self.idle.count }

    public mutating func lease(for waiter: Waiter, now: NIODeadline) -> LeaseAction {
        if let last = self.idle.popLast() {
            return .use(last.connection)
        }
        let deadline = now + self.checkoutTimeout
        self.waiters.append((waiter, deadline))
        if self.total < self.maxConnections {
            self.total += 1
            self.connecting += 1
            return .queueAndConnect(deadline: deadline)
        }
        return .queue(deadline: deadline)
    }

    /// A waiter gave up (client closed) before it was served.
    public mutating func cancel(_ waiter: Waiter) {
        if let index = self.waiters.firstIndex(where: { $0.waiter == waiter }) {
            self.waiters.remove(at: index)
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
        let failed = self.waiters.popFirst()?.waiter
        // Each remaining waiter beyond the attempts already in flight gets its own attempt, so every
        // waiter learns the outcome promptly instead of sitting until its checkout timeout.
        if self.waiters.count > self.connecting && self.total < self.maxConnections {
            self.total += 1
            self.connecting += 1
            return (failed, true)
        }
        return (failed, false)
    }

    /// A leased connection came back clean.
    public mutating func release(_ connection: Connection, now: NIODeadline) -> HandOff {
        self.offer(connection, now: now)
    }

    /// A connection closed (leased, idle or broken). If it was idle it leaves the idle list.
    /// Returns true when a replacement should be opened for waiters.
    public mutating func closed(_ connection: Connection) -> Bool {
        if let index = self.idle.firstIndex(where: { $0.connection == connection }) {
            self.idle.remove(at: index)
        }
        self.total -= 1
        if self.waiters.count > self.connecting && self.total < self.maxConnections {
            self.total += 1
            self.connecting += 1
            return true
        }
        return false
    }

    /// Waiters whose checkout deadline passed; they are removed.
    public mutating func expireWaiters(now: NIODeadline) -> [Waiter] {
        var expired: [Waiter] = []
        while let first = self.waiters.first, first.deadline <= now {
            expired.append(first.waiter)
            self.waiters.removeFirst()
        }
        // Deadlines are not strictly ordered only if the timeout changed; scan the rest cheaply.
        if self.waiters.contains(where: { $0.deadline <= now }) {
            let late = self.waiters.filter { $0.deadline <= now }.map(\.waiter)
            self.waiters.removeAll(where: { $0.deadline <= now })
            expired += late
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

    private mutating func offer(_ connection: Connection, now: NIODeadline) -> HandOff {
        if let next = self.waiters.popFirst() {
            return .lease(connection, to: next.waiter)
        }
        self.idle.append((connection, now))
        return .parked
    }
}
