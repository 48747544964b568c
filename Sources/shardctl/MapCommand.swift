import ArgumentParser
import Foundation
import ShardCtlKit
import ShardMap

/// `shardctl map show --proxy URL` and `shardctl map validate FILE`.
struct MapCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "Show the live shard map, or validate a shardmap.json file.",
        subcommands: [Show.self, Validate.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the live shard map of a proxy (secrets redacted as ***).")

        @OptionGroup var proxy: ProxyOptions

        func run() async throws {
            let clients: [AdminClient]
            do {
                clients = try self.proxy.clients()
            } catch {
                throw ValidationError("\(error)")
            }
            guard let client = clients.first else { return }
            do {
                print(try await client.shardMapJSON(), terminator: "")
            } catch {
                printError("shardctl: \(error)")
                throw ExitCode.failure
            }
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a shardmap.json as the proxy would (${VAR} expanded from the environment).")

        @Argument(help: "The shardmap.json to check.")
        var file: String

        func run() throws {
            do {
                let map = try ShardMap.load(path: self.file)
                print(StatusFormatter.mapSummary(map, file: self.file))
            } catch {
                printError("\(self.file): \(error)")
                throw ExitCode.failure
            }
        }
    }
}
