import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PGWire
import ProxyCore
import ShardMap
import SQLRouting

/// What every connection of the proxy shares; immutable.
struct SharedState: Sendable {
    var map: ShardMap
    var databaseName: String
    var auth: ClientAuthSettings
    var tls: NIOSSLContext?
    var cancelRegistry: CancelRegistry
    /// Where logins go: the first shard's primary.
    var defaultServer: BackendServer
    /// `servers[shard][0]` is the shard's primary, `servers[shard][1 + i]` its replica `i`.
    var servers: [[BackendServer]]
    var limits: PGWireLimits
    /// `pool.size`: backend connections per server in total, shared out over the event loops.
    var poolSize: Int
    var checkoutTimeout: TimeAmount
    var idleTimeout: TimeAmount
}

/// What loops use to write two-phase commit decisions (shared by all of them).
struct LoopControl: Sendable {
    var fileIO: NIOThreadPool
    var twoPhaseLog: TwoPhaseLog?
    var registry: TwoPhaseRegistry?
    /// Fault injection for the crash-recovery tests (`SHARDGATE_FAULT`): `crash-before-decision` or
    /// `crash-after-decision` ends the process at that point of a two-phase commit.
    var fault: String?
}

/// The state one event loop owns: its backend pools and its client connections. Only touched on that loop,
/// so a client and the backends it leases never cross threads.
final class LoopContext {
    let shared: SharedState
    let eventLoop: any EventLoop
    private let logger: Logger
    private var pools: [BackendServer: BackendPool] = [:]
    private var clients: [ObjectIdentifier: ClientChannelHandler] = [:]
    private var shuttingDown = false
    /// This loop's routing state: map, SQL analysis cache, statement catalog, replica snapshot.
    var routing: RoutingContext
    /// Decision log and its writer thread (set when the server starts).
    var control: LoopControl?

    /// This loop's share of `pool.size`.
    let poolSize: Int
    /// `servers[shard][0]` is the shard's primary, `servers[shard][1 + i]` its replica `i` (follows map swaps).
    private(set) var servers: [[BackendServer]]
    /// The pools of `servers`, laid out the same way, filled as they are first asked for: a statement's pool
    /// is found by index, without hashing a server's strings.
    private var targetPools: [[BackendPool?]]
    /// Sessions with statements waiting for paused slots.
    private var pauseWaiters: [ObjectIdentifier: ClientChannelHandler] = [:]

    init(shared: SharedState, eventLoop: any EventLoop, poolSize: Int, logger: Logger) {
        self.shared = shared
        self.poolSize = poolSize
        self.routing = RoutingContext(map: shared.map)
        self.servers = shared.servers
        self.targetPools = shared.servers.map { [BackendPool?](repeating: nil, count: $0.count) }
        self.eventLoop = eventLoop
        self.logger = logger
    }

    func pool(for server: BackendServer) -> BackendPool {
        if let pool = self.pools[server] { return pool }
        let pool = BackendPool(server: server, eventLoop: self.eventLoop, size: self.poolSize,
                               checkoutTimeout: self.shared.checkoutTimeout, idleTimeout: self.shared.idleTimeout,
                               limits: self.shared.limits, logger: self.logger)
        self.pools[server] = pool
        return pool
    }

    /// The pool of a routing target.
    func pool(for target: BackendTarget) -> BackendPool {
        let index = target.replica.map { $0 + 1 } ?? 0
        if let pool = self.targetPools[target.shard][index] { return pool }
        let pool = self.pool(for: self.servers[target.shard][index])
        self.targetPools[target.shard][index] = pool
        return pool
    }

    /// A new map version: statements from now on are routed by it (sessions keep the backends they hold).
    func apply(map: ShardMap, servers: [[BackendServer]], fences: [Int: LSN]) {
        self.routing.updateMap(map)
        self.routing.addReplicaFences(fences)
        self.servers = servers
        self.targetPools = servers.map { [BackendPool?](repeating: nil, count: $0.count) }
    }

    // MARK: pausing slots

    /// Statements touching `slots` wait from now on; when slots are resumed, waiting sessions go on.
    func setPausedSlots(_ slots: Set<Int>) {
        let resumed = !self.routing.pausedSlots.isSubset(of: slots)
        self.routing.setPausedSlots(slots)
        guard resumed else { return }
        let waiters = self.pauseWaiters.values
        self.pauseWaiters.removeAll()
        for client in waiters { client.pauseEnded() }
    }

    func waitForPause(_ client: ClientChannelHandler) {
        self.pauseWaiters[ObjectIdentifier(client)] = client
    }

    /// Sessions with an open transaction or a statement in flight on any of `slots`.
    func sessionsTouching(_ slots: Set<Int>) -> Int {
        self.clients.values.reduce(0) { $0 + ($1.touches(slots) ? 1 : 0) }
    }

    /// Pool figures per server on this loop.
    func poolStats() -> [(server: BackendServer, size: Int, busy: Int, idle: Int, waiting: Int)] {
        self.pools.map { server, pool in
            let stats = pool.stats
            return (server, stats.size, stats.busy, stats.idle, stats.waiting)
        }
    }

    var clientCount: Int { self.clients.count }

    func clientOpened(_ client: ClientChannelHandler) {
        self.clients[ObjectIdentifier(client)] = client
        if self.shuttingDown {
            client.shutdown()
        }
    }

    func clientClosed(_ client: ClientChannelHandler) {
        self.clients[ObjectIdentifier(client)] = nil
        self.pauseWaiters[ObjectIdentifier(client)] = nil
    }

    /// Asks every client to finish its transaction and leave.
    func beginShutdown() {
        self.shuttingDown = true
        for client in Array(self.clients.values) {
            client.shutdown()
        }
    }

    /// Closes what is left, then the pools.
    func finishShutdown() {
        for client in Array(self.clients.values) {
            client.forceClose()
        }
        for pool in self.pools.values {
            pool.close()
        }
    }
}
