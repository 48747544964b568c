import Foundation
import Logging
import NIOPosix
import PostgresNIO
import ShardMap

/// The test cluster started by scripts/test, and proxies started against it.
enum TestCluster {
    struct NotConfigured: Error, CustomStringConvertible {
        var description: String {
            "SHARDGATE_TEST_MAP / SHARDGATE_BIN are not set: run the integration tests through scripts/test, which starts the test cluster"
        }
    }

    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    static func mapPath() throws -> String {
        guard let path = environment["SHARDGATE_TEST_MAP"] else { throw NotConfigured() }
        return path
    }

    static func map() throws -> ShardMap {
        try ShardMap.load(path: try mapPath())
    }

    static let logger: Logger = {
        var logger = Logger(label: "integration-tests")
        logger.logLevel = .warning
        return logger
    }()

    /// Connects to `host:port` with PostgresNIO.
    static func connect(host: String = "127.0.0.1", port: Int, user: String, password: String?, database: String = "app",
                        id: Int = 1) async throws -> PostgresConnection {
        let configuration = PostgresConnection.Configuration(host: host, port: port, username: user, password: password,
                                                             database: database, tls: .disable)
        return try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger)
    }
}

/// A `shardgate serve` process on a free loopback port, with extra sections merged into the test map.
final class RunningProxy {
    let port: Int
    private let process: Process
    private let stderrPath: String

    init(extra: [String: Any], environment extraEnvironment: [String: String] = [:]) async throws {
        guard let binary = TestCluster.environment["SHARDGATE_BIN"] else { throw TestCluster.NotConfigured() }
        let data = try Data(contentsOf: URL(fileURLWithPath: try TestCluster.mapPath()))
        var json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        for (key, value) in extra { json[key] = value }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sg-swift-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let mapURL = directory.appendingPathComponent("shardmap.json")
        try JSONSerialization.data(withJSONObject: json).write(to: mapURL)
        self.stderrPath = directory.appendingPathComponent("stderr.log").path
        _ = FileManager.default.createFile(atPath: self.stderrPath, contents: nil)
        self.port = try TestCluster.unusedPort()
        self.process = Process()
        self.process.executableURL = URL(fileURLWithPath: binary)
        // An admin port of its own too: the default (9930) belongs to a `shardgate dev` that may be running.
        self.process.arguments = ["serve", "--map", mapURL.path, "--listen", "127.0.0.1:\(self.port)",
                                  "--admin", "127.0.0.1:\(try TestCluster.unusedPort())"]
        self.process.environment = TestCluster.environment.merging(extraEnvironment) { _, new in new }
        self.process.standardError = FileHandle(forWritingAtPath: self.stderrPath)
        self.process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try self.process.run()
        // Wait until it accepts TCP connections.
        for _ in 0..<100 {
            if Self.canConnect(port: self.port) { return }
            guard self.process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        self.stop()
        throw ProxyDidNotStart(log: (try? String(contentsOfFile: self.stderrPath, encoding: .utf8)) ?? "")
    }

    struct ProxyDidNotStart: Error, CustomStringConvertible {
        var log: String
        var description: String { "shardgate did not start:\n\(self.log)" }
    }

    /// Stops the proxy with SIGTERM and returns its exit status and log.
    @discardableResult
    func stop() -> (status: Int32, log: String) {
        if self.process.isRunning {
            self.process.terminate()
        }
        // It drains within its 10-second grace; one that does not is killed, so that a hung proxy fails
        // its test instead of stopping the whole run.
        let deadline = Date().addingTimeInterval(15)
        while self.process.isRunning, Date() < deadline {
            usleep(50_000)
        }
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
        }
        self.process.waitUntilExit()
        return (self.process.terminationStatus, (try? String(contentsOfFile: self.stderrPath, encoding: .utf8)) ?? "")
    }

    private static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

// MARK: Sockets

extension TestCluster {
    /// A loopback port nothing listens on (bound, then closed).
    static func unusedPort() throws -> Int {
        let (socket, port) = try self.bind()
        close(socket)
        return port
    }

    /// A listening socket that never accepts: connects complete (backlog), nothing ever answers.
    static func silentListener() throws -> (Int32, Int) {
        let (socket, port) = try self.bind()
        guard listen(socket, 16) == 0 else { throw SocketFailure("listen failed") }
        return (socket, port)
    }

    private static func bind() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketFailure("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw SocketFailure("bind failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}

struct SocketFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
