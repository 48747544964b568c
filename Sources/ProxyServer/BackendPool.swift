import Logging
import NIOCore
import PGWire
import ProxyCore

/// Something that waits for backend connections from pools; `lease` tells its requests apart.
protocol BackendLeaser: AnyObject {
    func backendLeased(_ connection: BackendConnection, lease: Int)
    func backendUnavailable(_ error: ErrorNoticeFields, lease: Int)
}

/// One lease request: the leaser and its lease number.
struct PoolWaiter: Hashable {
    var leaser: ObjectIdentifier
    var lease: Int
}

/// The connections to one backend server owned by one event loop. Everything here runs on that loop.
final class BackendPool {
    let server: BackendServer
    let eventLoop: any EventLoop
    private var machine: PoolStateMachine<ObjectIdentifier, PoolWaiter>
    private var connections: [ObjectIdentifier: BackendConnection] = [:]
    private var waiters: [PoolWaiter: any BackendLeaser] = [:]
    private let limits: PGWireLimits
    private let logger: Logger
    private var reaper: Scheduled<Void>?
    /// The one timer for checkout deadlines: set for the earliest waiter, re-armed when it fires.
    private var expiryTimer: Scheduled<Void>?
    private var closed = false

    init(server: BackendServer, eventLoop: any EventLoop, size: Int, checkoutTimeout: TimeAmount, idleTimeout: TimeAmount,
         limits: PGWireLimits, logger: Logger) {
        self.server = server
        self.eventLoop = eventLoop
        self.machine = PoolStateMachine(maxConnections: size, checkoutTimeout: checkoutTimeout, idleTimeout: idleTimeout)
        self.limits = limits
        var logger = logger
        logger[metadataKey: "backend"] = "\(server)"
        self.logger = logger
        self.scheduleReaper()
    }

    func lease(for leaser: any BackendLeaser, lease: Int, claim: BackendClaim = .single) {
        let id = PoolWaiter(leaser: ObjectIdentifier(leaser), lease: lease)
        guard !self.closed else {
            leaser.backendUnavailable(ProxyErrors.shuttingDown, lease: lease)
            return
        }
        switch self.machine.lease(for: id, claim: claim, now: .now()) {
        case .use(let connectionID):
            leaser.backendLeased(self.connections[connectionID]!, lease: lease)
        case .queueAndConnect(let deadline):
            self.waiters[id] = leaser
            self.scheduleExpiry(at: deadline)
            self.openConnection()
        case .queue(let deadline):
            self.waiters[id] = leaser
            self.scheduleExpiry(at: deadline)
        }
    }

    func cancelLease(for leaser: any BackendLeaser, lease: Int) {
        let id = PoolWaiter(leaser: ObjectIdentifier(leaser), lease: lease)
        self.machine.cancel(id)
        self.waiters[id] = nil
    }

    /// A clean connection comes back.
    func release(_ connection: BackendConnection) {
        connection.handler.detach()
        guard !self.closed else {
            connection.channel.close(promise: nil)
            return
        }
        self.handOff(self.machine.release(connection.id, now: .now()), connection)
    }

    /// A connection that must not be reused (dirty, broken): close it; the pool learns of it on close.
    func discard(_ connection: BackendConnection) {
        connection.handler.detach()
        connection.channel.close(promise: nil)
    }

    /// Connections now: size (this loop's share of pool.size), leased, idle, and leases waiting.
    var stats: (size: Int, busy: Int, idle: Int, waiting: Int) {
        (self.machine.maxConnections, self.machine.leasedCount, self.machine.idleCount, self.machine.waitingCount)
    }

    /// Closes idle connections and refuses new leases.
    func close() {
        self.closed = true
        self.reaper?.cancel()
        for id in self.machine.drainIdle() {
            self.connections[id]?.channel.close(promise: nil)
        }
        for (id, waiter) in self.waiters {
            waiter.backendUnavailable(ProxyErrors.shuttingDown, lease: id.lease)
        }
        self.waiters.removeAll()
    }

    private func handOff(_ handOff: PoolStateMachine<ObjectIdentifier, PoolWaiter>.HandOff, _ connection: BackendConnection) {
        switch handOff {
        case .parked:
            break
        case .lease(_, let waiterID):
            let waiter = self.waiters.removeValue(forKey: waiterID)!
            waiter.backendLeased(connection, lease: waiterID.lease)
        }
    }

    private func openConnection() {
        BackendConnection.connect(to: self.server, on: self.eventLoop, limits: self.limits, logger: self.logger)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let connection):
                    self.connections[connection.id] = connection
                    connection.pool = self
                    connection.handler.onClose = { [self] connection in self.connectionClosed(connection) }
                    if self.closed {
                        connection.channel.close(promise: nil)
                        return
                    }
                    self.handOff(self.machine.connected(connection.id, now: .now()), connection)
                case .failure(let error):
                    self.logger.info("could not open backend connection", metadata: ["error": "\(error)"])
                    let (failed, retry) = self.machine.connectFailed()
                    if let failed, let waiter = self.waiters.removeValue(forKey: failed) {
                        let reason = (error as? BackendConnectError)?.reason ?? "\(error)"
                        waiter.backendUnavailable(ProxyErrors.backendUnavailable("\(self.server)", reason: reason),
                                                  lease: failed.lease)
                    }
                    if retry { self.openConnection() }
                }
            }
    }

    private func connectionClosed(_ connection: BackendConnection) {
        guard self.connections.removeValue(forKey: connection.id) != nil else { return }
        switch self.machine.closed(connection.id) {
        case .none:
            break
        case .connect:
            if !self.closed { self.openConnection() }
        case .lease(let id, let waiterID):
            self.handOff(.lease(id, to: waiterID), self.connections[id]!)
        }
    }

    /// Arms the checkout timer unless one is already set: waiters are queued in deadline order, so the
    /// armed timer is never later than the earliest deadline.
    private func scheduleExpiry(at deadline: NIODeadline) {
        guard self.expiryTimer == nil else { return }
        // Pools live as long as their event loop, so the timers hold them strongly (no weak side table).
        self.expiryTimer = self.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.expireWaiters()
        }
    }

    private func expireWaiters() {
        self.expiryTimer = nil
        let waitedMs = Int(self.machine.checkoutTimeout.nanoseconds / 1_000_000)
        for id in self.machine.expireWaiters(now: .now()) {
            self.waiters.removeValue(forKey: id)?.backendUnavailable(ProxyErrors.poolTimeout("\(self.server)", waitedMs: waitedMs),
                                                                    lease: id.lease)
        }
        if let next = self.machine.earliestWaiterDeadline {
            self.scheduleExpiry(at: next)
        }
    }

    private func scheduleReaper() {
        let interval = TimeAmount.nanoseconds(max(self.machine.idleTimeout.nanoseconds / 4, TimeAmount.milliseconds(100).nanoseconds))
        self.reaper = self.eventLoop.assumeIsolated().scheduleTask(in: interval) { [self] in
            self.reapIdle()
        }
    }

    private func reapIdle() {
        for id in self.machine.reapIdle(now: .now()) {
            self.connections[id]?.channel.close(promise: nil)
        }
        if !self.closed { self.scheduleReaper() }
    }
}
