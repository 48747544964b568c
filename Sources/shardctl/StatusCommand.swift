import ArgumentParser
import ShardCtlKit

/// `shardctl status --proxy URL [--proxy URL ...]`: map version, shards with their primary and
/// replicas (healthy, in rotation, lag), pools, clients and paused slots of each proxy.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the map version, replication lag, pools, clients and paused slots of running proxies.")

    @OptionGroup var proxy: ProxyOptions

    func run() async throws {
        let clients: [AdminClient]
        do {
            clients = try self.proxy.clients()
        } catch {
            throw ValidationError("\(error)")
        }
        var reports: [(proxy: String, report: StatusReport)] = []
        var failed = false
        for client in clients {
            do {
                reports.append((client.proxy, try await client.status()))
            } catch {
                printError("shardctl: \(error)")
                failed = true
            }
        }
        if !reports.isEmpty {
            print(StatusFormatter.render(reports))
        }
        if failed { throw ExitCode.failure }
    }
}
