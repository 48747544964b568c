import AdminServer
import ArgumentParser
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import PGWire
import Prometheus
import ProxyCore
import ProxyServer
import ShardMap

@main
struct ShardGate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shardgate",
        abstract: "A shard-routing PostgreSQL proxy.",
        subcommands: [Serve.self, Dev.self],
        defaultSubcommand: Serve.self)
}

/// Options shared by `serve` and `dev`.
struct ProxyOptions: ParsableArguments {
    @Option(help: "Address to accept PostgreSQL clients on, host:port (env SHARDGATE_LISTEN).")
    var listen: String?

    @Option(help: "Largest protocol message accepted from a client, in bytes (env SHARDGATE_MAX_MESSAGE_BYTES).")
    var maxMessageBytes: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error (env SHARDGATE_LOG_LEVEL).")
    var logLevel: String?

    @Option(help: "Event-loop threads (env SHARDGATE_THREADS); default: one per CPU core.")
    var threads: Int?

    @Option(help: "Address of the HTTP admin port, host:port (env SHARDGATE_ADMIN); default 127.0.0.1:9930.")
    var admin: String?

    @Option(help: "Bearer token the admin port's mutating endpoints require (env SHARDGATE_ADMIN_TOKEN); without one they are refused.")
    var adminToken: String?

    @Option(help: "File of two-phase commit decisions (env SHARDGATE_TWO_PHASE_LOG); default: shardgate-2pc.log next to the map.")
    var twoPhaseLog: String?

    func twoPhaseLogPath(mapPath: String?, environment: [String: String]) -> String {
        if let path = self.twoPhaseLog ?? environment["SHARDGATE_TWO_PHASE_LOG"] { return path }
        let folder = mapPath.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
            ?? FileManager.default.currentDirectoryPath
        return folder + "/shardgate-2pc.log"
    }

    func adminAddress(environment: [String: String]) throws -> (host: String, port: Int) {
        try Self.address(self.admin ?? environment["SHARDGATE_ADMIN"] ?? "127.0.0.1:9930", option: "--admin")
    }

    func adminTokenValue(environment: [String: String]) -> String? {
        let token = self.adminToken ?? environment["SHARDGATE_ADMIN_TOKEN"]
        return token?.isEmpty == false ? token : nil
    }

    func threadCount(environment: [String: String]) throws -> Int {
        let value = self.threads ?? environment["SHARDGATE_THREADS"].flatMap(Int.init) ?? System.coreCount
        guard value >= 1 else { throw ValidationError("--threads must be at least 1") }
        return value
    }

    func listenAddress(environment: [String: String]) throws -> (host: String, port: Int) {
        try Self.address(self.listen ?? environment["SHARDGATE_LISTEN"] ?? "127.0.0.1:6432", option: "--listen")
    }

    static func address(_ text: String, option: String) throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(option) must be host:port, got \"\(text)\"")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }

    func limits(environment: [String: String]) throws -> PGWireLimits {
        let value = self.maxMessageBytes ?? environment["SHARDGATE_MAX_MESSAGE_BYTES"].flatMap(Int.init)
        guard let value else { return .default }
        guard value >= 1024 else { throw ValidationError("--max-message-bytes must be at least 1024") }
        return PGWireLimits(maxMessageBytes: value)
    }

    func makeLogger(environment: [String: String]) -> Logger {
        var logger = Logger(label: "shardgate")
        let level = self.logLevel ?? environment["SHARDGATE_LOG_LEVEL"] ?? "info"
        logger.logLevel = Logger.Level(rawValue: level) ?? .info
        return logger
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy (the default command).")

    @Option(help: "Path of shardmap.json (env SHARDGATE_MAP).")
    var map: String?

    @OptionGroup var options: ProxyOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let path = self.map ?? environment["SHARDGATE_MAP"] else {
            throw ValidationError("no shard map: pass --map shardmap.json or set SHARDGATE_MAP")
        }
        let logger = self.options.makeLogger(environment: environment)
        let shardMap: ShardMap
        do {
            shardMap = try ShardMap.load(path: path, environment: environment)
        } catch {
            throw startupFailure("shardgate: cannot load \(path): \(error)")
        }
        try await runProxy(map: shardMap, mapPath: path, options: self.options, environment: environment, logger: logger,
                           announce: nil)
    }
}

/// Prints why the proxy cannot start and yields the error that makes the process exit with status 1.
func startupFailure(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    return ExitCode.failure
}

/// Runs the proxy (with its lag monitor and admin port) until SIGINT or SIGTERM, then drains it.
func runProxy(map: ShardMap, mapPath: String?, options: ProxyOptions, environment: [String: String], logger: Logger,
              announce: (@Sendable (SocketAddress) -> Void)?) async throws {
    // Caught from the start: a signal that arrives while the listeners come up still drains and exits 0.
    let signals = TerminationSignals()
    let (host, port) = try options.listenAddress(environment: environment)
    let (adminHost, adminPort) = try options.adminAddress(environment: environment)
    let limits = try options.limits(environment: environment)
    let threads = try options.threadCount(environment: environment)

    let registry = PrometheusCollectorRegistry()
    var factory = PrometheusMetricsFactory(registry: registry)
    factory.durationHistogramBuckets[ProxyMetrics.queryDurationLabel] = ProxyMetrics.queryDurationBuckets
    MetricsSystem.bootstrap(factory)
    let metrics = ProxyMetrics(map: map)

    let twoPhaseLog: TwoPhaseLog
    let twoPhasePath = options.twoPhaseLogPath(mapPath: mapPath, environment: environment)
    do {
        twoPhaseLog = try TwoPhaseLog(path: twoPhasePath)
    } catch {
        throw startupFailure("shardgate: cannot open the two-phase commit log \(twoPhasePath): \(error)")
    }

    // Every event loop owns a share of each backend pool, so there are never more loops than pool.size.
    let group = MultiThreadedEventLoopGroup(numberOfThreads: min(threads, map.pool.size))
    let server: ProxyServer
    do {
        var configuration = ProxyConfiguration(map: map, host: host, port: port, limits: limits, environment: environment,
                                               metrics: metrics)
        configuration.twoPhaseLog = twoPhaseLog
        server = try ProxyServer(configuration: configuration, group: group, logger: logger)
    } catch {
        try? await group.shutdownGracefully()
        throw startupFailure("shardgate: \(error)")
    }
    let monitor = LagMonitor(map: map, environment: environment, eventLoopGroup: group, logger: logger) { snapshot in
        server.publish(lag: snapshot)
        metrics.record(lag: snapshot)
    }
    let admin = AdminServer(
        configuration: .init(host: adminHost, port: adminPort, token: options.adminTokenValue(environment: environment),
                             environment: environment,
                             mapDirectory: mapPath.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }),
        backend: ProxyAdmin(server: server, monitor: monitor, metrics: metrics, mapPath: mapPath, environment: environment,
                            logger: logger),
        metrics: metrics, registry: registry, eventLoopGroup: group, logger: logger)

    // The admin port comes up first: once the PostgreSQL port accepts, the whole proxy is there.
    let failure: (any Error)? = await withTaskGroup(of: (any Error)?.self) { tasks in
        tasks.addTask {
            await monitor.run()
            return nil
        }
        tasks.addTask {
            await server.learnCollation()
            return nil
        }
        tasks.addTask {
            await server.recoverTwoPhaseCommits(log: twoPhaseLog, environment: environment)
            return nil
        }
        // Yields the admin address once it listens; finishes whenever the admin server ends, so the wait
        // below cannot outlive it (a run that returned before listening would leave startup deaf to SIGTERM).
        let adminUp = AsyncStream<SocketAddress>.makeStream()
        tasks.addTask {
            defer { adminUp.continuation.finish() }
            do {
                try await admin.run { address in adminUp.continuation.yield(address) }
                return nil
            } catch {
                return error
            }
        }
        var adminStarted = adminUp.stream.makeAsyncIterator()
        let adminAddress = await adminStarted.next()
        var address: SocketAddress?
        var failure: (any Error)?
        if adminAddress != nil {
            // Usually answered in milliseconds; if shard 0 is down the retry task above goes on.
            _ = await server.learnCollationOnce(connectTimeout: .seconds(2))
            do {
                address = try await server.start()
            } catch {
                failure = ListenFailure(description: "cannot listen on \(host):\(port): \(error)")
            }
        }
        guard let adminAddress, let address else {
            monitor.shutdown()
            tasks.cancelAll()
            for await result in tasks where result != nil && failure == nil { failure = result }
            if failure == nil, adminAddress == nil {
                failure = ListenFailure(description: "admin port: \(adminHost):\(adminPort) stopped before it listened")
            }
            return failure
        }
        logger.info("shardgate listening", metadata: ["address": "\(address)", "admin": "\(adminAddress)",
                                                       "map_version": "\(map.version)", "shards": "\(map.shards.count)"])
        announce?(address)
        let signal = await signals.wait()
        logger.info("received \(signal); draining clients")
        await server.shutdown(grace: .seconds(10))
        monitor.shutdown()
        tasks.cancelAll()
        for await _ in tasks {}
        return nil
    }
    if let failure {
        await server.shutdown(grace: .zero)
        try? await group.shutdownGracefully()
        throw startupFailure("shardgate: \(failure)")
    }
    try? await group.shutdownGracefully()
    logger.info("shardgate stopped")
}

struct ListenFailure: Error, CustomStringConvertible {
    let description: String
}

/// SIGINT and SIGTERM, caught from creation on (their default action, exiting at once, is turned off).
final class TerminationSignals: @unchecked Sendable {
    // Touched only on `queue`.
    private var received: String?
    private var continuation: CheckedContinuation<String, Never>?
    private var sources: [any DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "shardgate.signals")

    init() {
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: self.queue)
            source.setEventHandler { [self] in self.fire(name) }
            source.resume()
            self.sources.append(source)
        }
    }

    /// Suspends until the first signal (returns at once if one came already); returns its name.
    func wait() async -> String {
        await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
            self.queue.async {
                if let received = self.received {
                    continuation.resume(returning: received)
                } else {
                    self.continuation = continuation
                }
            }
        }
    }

    private func fire(_ name: String) {
        guard self.received == nil else { return }
        self.received = name
        self.continuation?.resume(returning: name)
        self.continuation = nil
    }
}
