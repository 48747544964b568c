import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PGWire
import ProxyCore
import ResultMerge
import ShardMap

/// Settings of a proxy instance, from the shard map and the command line.
public struct ProxyConfiguration: Sendable {
    public var map: ShardMap
    public var host: String
    public var port: Int
    public var limits: PGWireLimits
    public var environment: [String: String]
    /// Where statements are counted (nil: not counted).
    public var metrics: ProxyMetrics?
    /// The commit-decision log of two-phase commits (nil: writes over several shards in one transaction
    /// are refused).
    public var twoPhaseLog: TwoPhaseLog?

    public init(map: ShardMap, host: String = "127.0.0.1", port: Int = 6432, limits: PGWireLimits = .default,
                environment: [String: String], metrics: ProxyMetrics? = nil) {
        self.map = map
        self.host = host
        self.port = port
        self.limits = limits
        self.environment = environment
        self.metrics = metrics
    }
}

/// A configuration the proxy refuses to run with.
public struct ProxyConfigurationError: Error, CustomStringConvertible {
    public var description: String
}

/// The PostgreSQL-protocol listener: accepts clients and serves them from per-event-loop backend pools.
public final class ProxyServer: Sendable {
    let group: any EventLoopGroup
    let shared: SharedState
    let configuration: ProxyConfiguration
    let logger: Logger
    let loops: [ObjectIdentifier: (box: NIOLoopBoundBox<LoopContext?>, poolSize: Int)]
    private let serverChannel = NIOLockedValueBox<(any Channel)?>(nil)
    /// The databases' collation once read (`learnCollationOnce`); loops started later get it too.
    let collation = NIOLockedValueBox<TextCollation?>(nil)
    /// The live map and the slots paused on every loop (changed only through the control calls).
    let control: NIOLockedValueBox<ControlState>
    /// This proxy's two-phase commits, and the thread that writes their decisions.
    let twoPhase: TwoPhaseRegistry?
    let fileIO: NIOThreadPool

    public init(configuration: ProxyConfiguration, group: any EventLoopGroup, logger: Logger) throws {
        let map = configuration.map
        let auth = ClientAuthSettings(map.auth)
        if case .trust = auth.method, !Self.isLoopback(configuration.host) {
            throw ProxyConfigurationError(description: """
                client authentication is trust (no "auth" section in the shard map), which is only allowed while \
                listening on loopback, but the listen address is \(configuration.host); add an "auth" section
                """)
        }
        var tls: NIOSSLContext?
        if let config = map.tls {
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(config.certPath).map { NIOSSLCertificateSource.certificate($0) }
                let key = try NIOSSLPrivateKey(file: config.keyPath, format: .pem)
                tls = try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
            } catch {
                throw ProxyConfigurationError(description: "tls: cannot load certificate \(config.certPath) / key \(config.keyPath): \(error)")
            }
        }
        // Backend connections are plain TCP for now: a shard URL that demands TLS must not be served
        // silently without it.
        for shard in map.shards {
            for (role, url) in [("primary", shard.primary)] + shard.replicas.map({ ("replica", $0) }) {
                if let mode = url.parameters["sslmode"], ["require", "verify-ca", "verify-full"].contains(mode) {
                    throw ProxyConfigurationError(description: """
                        shards.\(shard.name).\(role): sslmode=\(mode) is not supported yet: ShardGate connects to \
                        backends without TLS; remove sslmode or use disable/allow/prefer
                        """)
                }
            }
        }
        guard let first = map.shards.first else {
            throw ProxyConfigurationError(description: "the shard map has no shards")
        }
        let loopList = Array(group.makeIterator())
        guard loopList.count <= map.pool.size else {
            throw ProxyConfigurationError(description: """
                pool.size is \(map.pool.size) but ShardGate runs \(loopList.count) event loops; each loop needs at least \
                one backend connection per server: use --threads \(map.pool.size) or a larger pool.size
                """)
        }
        self.shared = SharedState(
            map: map,
            databaseName: map.databaseName,
            auth: auth,
            tls: tls,
            cancelRegistry: CancelRegistry(),
            defaultServer: BackendServer(shard: first.name, role: .primary, url: first.primary, environment: configuration.environment),
            servers: Self.servers(of: map, environment: configuration.environment),
            limits: configuration.limits,
            poolSize: map.pool.size,
            checkoutTimeout: .milliseconds(Int64(map.pool.checkoutTimeoutMs)),
            idleTimeout: .milliseconds(Int64(map.pool.idleTimeoutMs)))
        // Each loop owns its pools; their sizes add up to pool.size exactly.
        var loops: [ObjectIdentifier: (box: NIOLoopBoundBox<LoopContext?>, poolSize: Int)] = [:]
        for (index, loop) in loopList.enumerated() {
            let share = map.pool.size / loopList.count + (index < map.pool.size % loopList.count ? 1 : 0)
            loops[ObjectIdentifier(loop)] = (NIOLoopBoundBox.makeEmptyBox(valueType: LoopContext.self, eventLoop: loop), share)
        }
        self.loops = loops
        self.control = NIOLockedValueBox(ControlState(map: map))
        self.twoPhase = configuration.twoPhaseLog.map { TwoPhaseRegistry(instance: $0.instance, boot: $0.boot) }
        self.fileIO = NIOThreadPool(numberOfThreads: 1)
        self.group = group
        self.configuration = configuration
        self.logger = logger
    }

    /// The backend servers of `map`: per shard its primary, then its replicas.
    static func servers(of map: ShardMap, environment: [String: String]) -> [[BackendServer]] {
        map.shards.map { shard in
            [BackendServer(shard: shard.name, role: .primary, url: shard.primary, environment: environment)]
                + shard.replicas.map { BackendServer(shard: shard.name, role: .replica, url: $0, environment: environment) }
        }
    }

    /// Binds the listener; returns the bound address (port 0 picks a free port).
    public func start() async throws -> SocketAddress {
        let shared = self.shared
        let logger = self.logger
        let loops = self.loops
        let metrics = self.configuration.metrics
        let twoPhase = self.twoPhase
        let control = LoopControl(fileIO: self.fileIO, twoPhaseLog: self.configuration.twoPhaseLog, registry: twoPhase,
                                  fault: self.configuration.environment["SHARDGATE_FAULT"])
        self.fileIO.start()
        // Every loop's context exists before the first client, so that map swaps and pauses reach them all.
        for (_, (box, poolSize)) in loops {
            try await box.eventLoop.submit {
                let context = LoopContext(shared: shared, eventLoop: box.eventLoop, poolSize: poolSize, logger: logger)
                context.routing.metrics = metrics
                context.routing.twoPhase = twoPhase
                context.routing.collation = self.collation.withLockedValue { $0 }
                context.control = control
                box.value = context
            }.get()
        }
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let (box, _) = loops[ObjectIdentifier(channel.eventLoop)]!
                    try channel.pipeline.syncOperations.addHandler(ClientChannelHandler(loop: box.value!, logger: logger))
                }
            }
            .bind(host: self.configuration.host, port: self.configuration.port)
            .get()
        self.serverChannel.withLockedValue { $0 = channel }
        return channel.localAddress!
    }

    /// Stops accepting, lets clients finish their transactions for up to `grace`, then closes the rest.
    public func shutdown(grace: TimeAmount) async {
        let channel = self.serverChannel.withLockedValue { value in
            defer { value = nil }
            return value
        }
        try? await channel?.close()
        await self.onEachLoop { $0.beginShutdown() }
        let deadline = NIODeadline.now() + grace
        while NIODeadline.now() < deadline {
            let remaining = await self.clientCount()
            if remaining == 0 { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        await self.onEachLoop { $0.finishShutdown() }
        try? await self.fileIO.shutdownGracefully()
    }

    /// Connected clients across all event loops.
    public func clientCount() async -> Int {
        var total = 0
        for (_, (box, _)) in self.loops {
            total += (try? await box.eventLoop.submit { box.value?.clientCount ?? 0 }.get()) ?? 0
        }
        return total
    }

    func onEachLoop(_ body: @escaping @Sendable (LoopContext) -> Void) async {
        for (_, (box, _)) in self.loops {
            try? await box.eventLoop.submit {
                if let context = box.value { body(context) }
            }.get()
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
