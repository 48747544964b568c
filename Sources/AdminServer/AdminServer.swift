import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import ProxyCore

/// The HTTP admin port (DESIGN §7), on Hummingbird 2.
///
/// ```swift
/// let registry = PrometheusCollectorRegistry()
/// MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
/// let admin = AdminServer(configuration: .init(host: "127.0.0.1", port: 9930, token: token),
///                         backend: proxy, metrics: metrics, registry: registry, logger: logger)
/// try await admin.run()  // until the task is cancelled; throws AdminServerError.cannotListen
/// ```
public struct AdminServer: Sendable {
    /// Where to listen, the token, limits.
    public struct Configuration: Sendable {
        /// Address to listen on (`--admin`, default `127.0.0.1:9930`).
        public var host: String
        /// Port to listen on; 0 picks a free one (see `run(onListening:)`).
        public var port: Int
        /// The bearer token of the mutating endpoints (`--admin-token` / `SHARDGATE_ADMIN_TOKEN`); `nil` or
        /// empty: they answer 403.
        public var token: String?
        /// Largest request body accepted (a shard map), in bytes.
        public var maxBodyBytes: Int
        /// Environment for `${VAR}` in maps sent with `PUT /shardmap` (the proxy's own, as at startup).
        public var environment: [String: String]
        /// Directory that relative `tls` paths in a `PUT /shardmap` map are resolved against (the directory
        /// of the proxy's `--map` file); `nil`: the working directory.
        public var mapDirectory: String?

        /// A configuration; the defaults are DESIGN §7's.
        public init(host: String = "127.0.0.1", port: Int = 9930, token: String? = nil, maxBodyBytes: Int = 16 << 20,
                    environment: [String: String] = ProcessInfo.processInfo.environment, mapDirectory: String? = nil) {
            self.host = host
            self.port = port
            self.token = token
            self.maxBodyBytes = maxBodyBytes
            self.environment = environment
            self.mapDirectory = mapDirectory
        }
    }

    /// What it was created with.
    public let configuration: Configuration
    let backend: any AdminBackend
    let metrics: ProxyMetrics?
    let registry: PrometheusCollectorRegistry
    let logger: Logger
    let eventLoopGroup: (any EventLoopGroup)?

    /// An admin server for `backend`. `/metrics` emits `registry` (the one behind the bootstrapped
    /// `PrometheusMetricsFactory`); before each scrape it refreshes `metrics`' gauges from `status()` and
    /// `lag()`. It runs on `eventLoopGroup` (the proxy's, say), else on NIO's shared singleton group.
    public init(configuration: Configuration, backend: any AdminBackend, metrics: ProxyMetrics?,
                registry: PrometheusCollectorRegistry, eventLoopGroup: (any EventLoopGroup)? = nil, logger: Logger) {
        self.configuration = configuration
        self.backend = backend
        self.metrics = metrics
        self.registry = registry
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    /// Serves until the calling task is cancelled (or a surrounding ServiceGroup shuts down).
    /// `onListening` gets the bound address (useful with port 0).
    ///
    /// Throws `AdminServerError.cannotListen` when the address cannot be bound.
    public func run(onListening: (@Sendable (SocketAddress) -> Void)? = nil) async throws {
        let listening = ListeningFlag()
        let app = self.application { channel in
            listening.set()
            if let address = channel.localAddress {
                onListening?(address)
            }
        }
        do {
            try await app.run()
        } catch is CancellationError {
            return
        } catch {
            guard listening.isSet else {
                throw AdminServerError.cannotListen(host: self.configuration.host, port: self.configuration.port,
                                                    reason: "\(error)")
            }
            throw error
        }
    }

    /// The Hummingbird application (what `run` runs; tests drive it with HummingbirdTesting).
    public func application(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        var logger = self.logger
        logger[metadataKey: "component"] = "admin"
        return Application(
            router: AdminRoutes(server: self).router(),
            configuration: ApplicationConfiguration(
                address: .hostname(self.configuration.host, port: self.configuration.port),
                serverName: "shardgate"),
            onServerRunning: onServerRunning,
            eventLoopGroupProvider: self.eventLoopGroup.map { .shared($0) } ?? .singleton,
            logger: logger)
    }
}

/// Why the admin server could not start.
public enum AdminServerError: Error, CustomStringConvertible, Equatable {
    /// Binding the address failed (in use, not local, no permission); `reason` is NIO's error.
    case cannotListen(host: String, port: Int, reason: String)

    public var description: String {
        switch self {
        case .cannotListen(let host, let port, let reason):
            return "admin port: cannot listen on \(host):\(port): \(reason)"
        }
    }
}

/// Set once the server is bound, so that a later failure is not reported as a bind error.
private final class ListeningFlag: Sendable {
    private let value = NIOLockedValueBox(false)
    func set() { self.value.withLockedValue { $0 = true } }
    var isSet: Bool { self.value.withLockedValue { $0 } }
}
