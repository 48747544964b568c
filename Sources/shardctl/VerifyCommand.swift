import ArgumentParser
import ShardCtlKit
import ShardMap

/// `shardctl verify --proxy URL [--slots LIST]`: rows outside their slot's owner, per slot.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Compare per-slot row counts and checksums between each slot's owner and any other shard holding its rows.",
        discussion: "Exits 0 when every row of the map's sharded tables is on its slot's owner, 1 otherwise.")

    @OptionGroup var proxy: ProxyOptions

    @Option(help: "Only these slots, e.g. 0-99,300 (default: all).")
    var slots: String?

    func run() async throws {
        do {
            let clients = try self.proxy.clients()
            guard let client = clients.first else { return }
            let map = try await client.liveMap()
            var slots: [Int]?
            if let list = self.slots {
                do {
                    slots = SlotRanges.slots(in: try SlotRanges.parse(list, slotCount: map.slotCount))
                } catch let error as ShardMapError {
                    throw ValidationError("--slots: \(error.problem)")
                }
            }
            let sessions = ShardSessions(map: map, applicationName: "shardctl-verify")
            defer { sessions.closeAll() }
            let report = try SlotVerifier(map: map, sessions: sessions, slots: slots).run()
            print(report.render())
            if !report.isClean { throw ExitCode.failure }
        } catch let error as ExitCode {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch {
            printError("shardctl verify: \(error)")
            throw ExitCode.failure
        }
    }
}
