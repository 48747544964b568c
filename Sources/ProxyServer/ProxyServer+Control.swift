import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
import ProxyCore
import ResultMerge
import ShardMap

/// What the control calls change: the live map and the paused slots.
struct ControlState: Sendable {
    var map: ShardMap
    var pausedSlots: Set<Int> = []
}

/// Control of a running proxy: lag snapshots in, map versions swapped, slots paused — each reaching every
/// event loop (the admin port calls these).
extension ProxyServer {
    /// The live map.
    public var currentMap: ShardMap { self.control.withLockedValue { $0.map } }

    /// Slots paused now.
    public var pausedSlots: Set<Int> { self.control.withLockedValue { $0.pausedSlots } }

    /// Gives every event loop the lag monitor's newest snapshot (without waiting for them).
    public func publish(lag: LagSnapshot) {
        for (_, (box, _)) in self.loops {
            box.eventLoop.execute {
                box.value?.routing.updateLag(lag)
            }
        }
    }

    /// Swaps in a new map version on every event loop. Statements routed from then on use it; sessions keep
    /// the backends they hold. Shards may be added and their URLs may change, but existing shards keep their
    /// names and order (backends held are addressed by shard index). `fences` hold the named shards'
    /// replicas out of reads until they have replayed those positions (`RoutingContext.addReplicaFences`).
    public func replaceMap(_ map: ShardMap, fences: [Int: LSN] = [:]) async throws {
        let live = self.currentMap
        guard map.version > live.version else {
            throw ProxyConfigurationError(description: "shard map version \(map.version) is not newer than the live version \(live.version)")
        }
        let liveNames = live.shards.map(\.name)
        guard Array(map.shards.map(\.name).prefix(liveNames.count)) == liveNames else {
            throw ProxyConfigurationError(description: """
                shards may only be added at the end of the list: the live map has \(liveNames.joined(separator: ", ")) \
                in that order, the new one \(map.shards.map(\.name).joined(separator: ", "))
                """)
        }
        guard map.pool.size >= self.loops.count else {
            throw ProxyConfigurationError(description: "pool.size \(map.pool.size) is below the \(self.loops.count) event loops")
        }
        let servers = Self.servers(of: map, environment: self.configuration.environment)
        self.control.withLockedValue { $0.map = map }
        await self.onEachLoop { $0.apply(map: map, servers: servers, fences: fences) }
        self.logger.info("shard map replaced", metadata: [
            "version": "\(map.version)",
            "fences": "\(fences.sorted { $0.key < $1.key }.map { "\(map.shards[$0.key].name)=\($0.value)" }.joined(separator: " "))",
        ])
    }

    /// Pauses statements touching `slots` on every loop (added to those paused already), then waits up to
    /// `timeout` for sessions with a transaction or statement in flight on them to finish. Returns whether
    /// they did, how many were left, and every slot paused now.
    public func pause(slots: Set<Int>, timeout: Duration) async -> (drained: Bool, inFlight: Int, paused: Set<Int>, waited: Duration) {
        let paused = self.control.withLockedValue { state in
            state.pausedSlots.formUnion(slots)
            return state.pausedSlots
        }
        await self.onEachLoop { $0.setPausedSlots(paused) }
        let clock = ContinuousClock()
        let started = clock.now
        while true {
            let inFlight = await self.sessionsTouching(slots)
            if inFlight == 0 { return (true, 0, paused, clock.now - started) }
            if clock.now - started >= timeout { return (false, inFlight, paused, clock.now - started) }
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Resumes `slots`; statements waiting for them go on. Returns the slots still paused.
    public func resume(slots: Set<Int>) async -> Set<Int> {
        let paused = self.control.withLockedValue { state in
            state.pausedSlots.subtract(slots)
            return state.pausedSlots
        }
        await self.onEachLoop { $0.setPausedSlots(paused) }
        return paused
    }

    /// Sessions on any loop with a transaction or statement in flight on `slots`.
    func sessionsTouching(_ slots: Set<Int>) async -> Int {
        var total = 0
        for (_, (box, _)) in self.loops {
            total += (try? await box.eventLoop.submit { box.value?.sessionsTouching(slots) ?? 0 }.get()) ?? 0
        }
        return total
    }

    /// Pool figures per backend server, summed over the event loops.
    public func poolStatus() async -> [ProxyStatus.PoolInfo] {
        var sums: [BackendServer: (size: Int, busy: Int, idle: Int, waiting: Int)] = [:]
        for (_, (box, _)) in self.loops {
            let stats = (try? await box.eventLoop.submit { box.value?.poolStats() ?? [] }.get()) ?? []
            for entry in stats {
                var sum = sums[entry.server] ?? (0, 0, 0, 0)
                sum.size += entry.size
                sum.busy += entry.busy
                sum.idle += entry.idle
                sum.waiting += entry.waiting
                sums[entry.server] = sum
            }
        }
        return sums.sorted { ($0.key.shard, $0.key.role.rawValue, $0.key.port) < ($1.key.shard, $1.key.role.rawValue, $1.key.port) }
            .map { server, sum in
                ProxyStatus.PoolInfo(shard: server.shard, role: server.role == .primary ? .primary : .replica,
                                     server: "\(server.host):\(server.port)", size: sum.size, busy: sum.busy,
                                     idle: sum.idle, waiting: sum.waiting)
            }
    }
}

extension ProxyServer {
    /// Reads the databases' collation (`datcollate` of the first shard; the shards of one map are expected
    /// to share it) for merges that order text, retrying
    /// every second until it has it. Returns at once when `learnCollationOnce` already did.
    public func learnCollation() async {
        while !Task.isCancelled {
            if await uncancelled({ await self.learnCollationOnce(connectTimeout: .seconds(5)) }) { return }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// One attempt at reading the collation; whether the loops have it now. Startup makes one before it
    /// listens, so that the first merged read does not find it missing.
    public func learnCollationOnce(connectTimeout: TimeAmount) async -> Bool {
        if self.collation.withLockedValue({ $0 }) != nil { return true }
        let map = self.currentMap
        guard let first = map.shards.first else { return true }
        let server = BackendServer(shard: first.name, role: .primary, url: first.primary, environment: self.configuration.environment)
        var configuration = PostgresConnection.Configuration(host: server.host, port: server.port, username: server.user,
                                                             password: server.password, database: server.database, tls: .disable)
        if let socket = first.primary.unixSocketPath {
            configuration = .init(unixSocketPath: socket, username: server.user, password: server.password,
                                  database: server.database)
        }
        configuration.options.connectTimeout = connectTimeout
        configuration.options.additionalStartupParameters = [("application_name", "shardgate")]
        do {
            let connection = try await PostgresConnection.connect(on: self.group.next(), configuration: configuration,
                                                                  id: 0, logger: self.logger)
            var collation: String?
            do {
                let rows = try await connection.query(
                    "SELECT datcollate::text FROM pg_catalog.pg_database WHERE datname = current_database()",
                    logger: self.logger)
                for try await (name) in rows.decode(String.self) { collation = name }
            } catch {
                try? await connection.close()
                throw error
            }
            try? await connection.close()
            guard let collation else { return false }
            let text = TextCollation(collation)
            self.collation.withLockedValue { $0 = text }
            await self.onEachLoop { $0.routing.collation = text }
            self.logger.debug("merges order text by the shards' collation", metadata: ["collation": "\(collation)"])
            return true
        } catch {
            self.logger.info("cannot read the shards' collation yet; merges that order text are refused until it is known",
                             metadata: ["error": "\(String(reflecting: error))"])
            return false
        }
    }
}

extension ProxyServer {
    /// Resolves this proxy's prepared transactions left between the phases, now and every 5 seconds, until
    /// cancelled.
    public func recoverTwoPhaseCommits(log: TwoPhaseLog, environment: [String: String]) async {
        guard let registry = self.twoPhase else { return }
        await TwoPhaseRecovery(log: log, registry: registry, server: self, eventLoopGroup: self.group,
                               environment: environment, logger: self.logger).run()
    }
}
