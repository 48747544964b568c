import ArgumentParser
import Foundation
import Logging
import ShardMap

/// `shardgate dev`: a local cluster (2 shards, each a primary with a streaming replica) and the proxy.
struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start (or reuse) a local 2-shard cluster under ./.shardgate-dev and run the proxy in front of it.")

    @Flag(help: "Delete the local cluster and start from empty.")
    var reset = false

    @Option(help: "Folder of the local cluster.")
    var dir = ".shardgate-dev"

    @Option(help: "Port of the first PostgreSQL server; shard i uses base+2i (primary) and base+2i+1 (replica).")
    var basePort = 5500

    @Option(help: "Number of shards.")
    var shards = 2

    @OptionGroup var options: ProxyOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let logger = self.options.makeLogger(environment: environment)
        guard let script = Self.findClusterScript() else {
            throw startupFailure("""
                shardgate dev: cannot find scripts/pgcluster. Run it from the ShardGate checkout \
                (e.g. `swift run shardgate dev`), or set SHARDGATE_CLUSTER_SCRIPT.
                """)
        }
        let directory = URL(fileURLWithPath: self.dir, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL.path
        var arguments = ["start", "--dir", directory, "--shards", String(self.shards), "--base-port", String(self.basePort)]
        if self.reset { arguments.append("--reset") }
        guard Self.run(script, arguments) == 0 else {
            throw startupFailure("shardgate dev: the local cluster did not start (see the messages above)")
        }
        let mapPath = directory + "/shardmap.json"
        let map: ShardMap
        do {
            map = try ShardMap.load(path: mapPath, environment: environment)
        } catch {
            _ = Self.run(script, ["stop", "--dir", directory])
            throw startupFailure("shardgate dev: cannot load \(mapPath): \(error)")
        }
        let (host, _) = try self.options.listenAddress(environment: environment)
        let (adminHost, adminPort) = try self.options.adminAddress(environment: environment)
        let database = map.databaseName
        defer { _ = Self.run(script, ["stop", "--dir", directory]) }
        try await runProxy(map: map, mapPath: mapPath, options: self.options, environment: environment,
                           logger: logger) { address in
            let shown = address.port.map { "\(host):\($0)" } ?? "\(address)"
            FileHandle.standardOutput.write(Data("""

                ShardGate dev is running: \(map.shards.count) shards, each a primary with a streaming replica.
                  connect:   psql "postgresql://postgres@\(shown)/\(database)"
                  dashboard: http://\(adminHost):\(adminPort)/
                  shard map: \(mapPath)
                Press Ctrl-C to stop the proxy and the local cluster.

                """.utf8))
        }
    }

    /// scripts/pgcluster next to the working directory or the executable, or SHARDGATE_CLUSTER_SCRIPT.
    static func findClusterScript() -> String? {
        if let explicit = ProcessInfo.processInfo.environment["SHARDGATE_CLUSTER_SCRIPT"] {
            return explicit
        }
        let starts = [FileManager.default.currentDirectoryPath,
                      URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path]
        for start in starts {
            var folder = URL(fileURLWithPath: start)
            for _ in 0..<8 {
                let candidate = folder.appendingPathComponent("scripts/pgcluster").path
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
                folder.deleteLastPathComponent()
            }
        }
        return nil
    }

    /// Runs a command with this process's output; returns its exit status.
    ///
    /// posix_spawn + waitpid rather than Foundation.Process: Process.waitUntilExit waits on a run loop
    /// that, called from this async command, never learns that the child exited.
    static func run(_ executable: String, _ arguments: [String]) -> Int32 {
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable, nil, nil, argv, environ)
        guard spawned == 0 else {
            FileHandle.standardError.write(Data("shardgate dev: cannot run \(executable): \(String(cString: strerror(spawned)))\n".utf8))
            return -1
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { return -1 }
        }
        // WIFEXITED / WEXITSTATUS: low 7 bits zero means a normal exit, the status is in the next byte.
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }
}
