import ArgumentParser
import Foundation
import ShardCtlKit

/// `--proxy`, `--token` and `--timeout`, shared by the subcommands that talk to admin ports.
struct ProxyOptions: ParsableArguments {
    @Option(name: .customLong("proxy"),
            help: "Admin URL of a running proxy, e.g. http://127.0.0.1:9930 (repeatable).")
    var proxies: [String] = []

    @Option(help: "Admin token (default: SHARDGATE_ADMIN_TOKEN); only needed for changes.")
    var token: String?

    @Option(help: "Seconds to wait for each proxy.")
    var timeout: Double = 10

    func validate() throws {
        guard !self.proxies.isEmpty else {
            throw ValidationError("give at least one --proxy URL, e.g. --proxy http://127.0.0.1:9930")
        }
        guard self.timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    /// One client per `--proxy`, in order.
    func clients() throws -> [AdminClient] {
        let token = self.token ?? ProcessInfo.processInfo.environment["SHARDGATE_ADMIN_TOKEN"]
        return try self.proxies.map {
            try AdminClient(proxy: $0, token: token, timeout: .milliseconds(Int64(self.timeout * 1000)))
        }
    }
}

/// Prints to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
