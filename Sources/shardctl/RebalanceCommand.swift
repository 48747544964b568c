import ArgumentParser
import Foundation
import ShardCtlKit
import ShardMap
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `shardctl rebalance`: move slots between shards online (DESIGN §8).
struct RebalanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebalance",
        abstract: "Move slots between shards online with PostgreSQL logical replication.",
        discussion: """
            Plan with --slots LIST --to SHARD, --from SHARD --count N --to SHARD, or --even. Every step is \
            journaled (--journal, default ./shardgate-rebalance.journal): an interrupted run continues with \
            --resume, or is undone with --abort until its map flip.
            """)

    @Option(name: .customLong("proxy"), help: "Admin URL of a running proxy (repeatable; every proxy in front of the shards). --resume/--abort default to the journal's.")
    var proxies: [String] = []

    @Option(help: "Admin token (default: SHARDGATE_ADMIN_TOKEN).")
    var token: String?

    @Option(help: "Seconds to wait for each admin request.")
    var timeout: Double = 10

    @Option(help: "Slots to move, e.g. 0-99,300 (with --to).")
    var slots: String?

    @Option(help: "Move the N highest-numbered slots of this shard (with --count and --to).")
    var from: String?

    @Option(help: "How many slots to move with --from.")
    var count: Int?

    @Option(help: "The shard that receives the slots.")
    var to: String?

    @Flag(help: "Plan moves that give every shard the same number of slots.")
    var even = false

    @Flag(help: "Print the plan and the preflight checks; change nothing.")
    var dryRun = false

    @Flag(help: "Do not ask for confirmation (it is only asked when stdin is a terminal).")
    var yes = false

    @Flag(help: "Continue the rebalance in the journal.")
    var resume = false

    @Flag(help: "Undo the rebalance in the journal (possible until its map flip).")
    var abort = false

    @Option(help: "The journal file.")
    var journal: String = RebalanceJournalFile.defaultPath

    @Option(help: "Milliseconds each proxy may wait for in-flight transactions when pausing the slots.")
    var pauseTimeoutMs: Int = 5000

    @Option(help: "Milliseconds the subscription may take to catch up while the slots are paused.")
    var catchupTimeoutMs: Int = 5000

    @Option(help: "Start the cutover once the subscription lags at most this many bytes.")
    var maxLagBytes: UInt64 = 1 << 20

    @Option(help: "Seconds the initial copy may take (default: no limit).")
    var copyTimeout: Double?

    @Option(help: "Rows per DELETE when removing moved rows.")
    var deleteBatch: Int = 10_000

    @Option(help: .hidden)
    var debugHoldAt: String?

    func validate() throws {
        let modes = [self.slots != nil, self.from != nil, self.even, self.resume, self.abort].filter { $0 }.count
        guard modes == 1 else {
            throw ValidationError("give exactly one of --slots LIST --to S, --from S --count N --to S, --even, --resume, --abort")
        }
        if self.slots != nil || self.from != nil, self.to == nil { throw ValidationError("--to SHARD is missing") }
        if self.from != nil, self.count == nil { throw ValidationError("--from needs --count N") }
        if self.count != nil, self.from == nil { throw ValidationError("--count goes with --from") }
        if (self.even || self.resume || self.abort), self.to != nil { throw ValidationError("--to goes with --slots or --from") }
        if (self.resume || self.abort), self.dryRun { throw ValidationError("--dry-run plans a new rebalance; it does not go with --resume/--abort") }
        if !self.resume && !self.abort && self.proxies.isEmpty {
            throw ValidationError("give at least one --proxy URL, e.g. --proxy http://127.0.0.1:9930")
        }
        guard self.timeout > 0, self.pauseTimeoutMs >= 0, self.catchupTimeoutMs > 0, self.deleteBatch > 0 else {
            throw ValidationError("timeouts and --delete-batch must be positive")
        }
        if let hold = self.debugHoldAt, RebalanceOptions.HoldPoint(rawValue: hold) == nil {
            throw ValidationError("--debug-hold-at: one of \(RebalanceOptions.HoldPoint.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    var options: RebalanceOptions {
        var options = RebalanceOptions()
        options.pauseTimeoutMs = self.pauseTimeoutMs
        options.catchUpTimeoutMs = self.catchupTimeoutMs
        options.maxLagBytes = self.maxLagBytes
        options.copyTimeoutSeconds = self.copyTimeout
        options.deleteBatchRows = self.deleteBatch
        options.holdAt = self.debugHoldAt.flatMap(RebalanceOptions.HoldPoint.init)
        return options
    }

    var adminToken: String? {
        (self.token ?? ProcessInfo.processInfo.environment["SHARDGATE_ADMIN_TOKEN"]).flatMap { $0.isEmpty ? nil : $0 }
    }

    func run() async throws {
        do {
            if self.resume || self.abort {
                try await self.continueJournal()
            } else {
                try await self.start()
            }
        } catch let error as ExitCode {
            throw error
        } catch {
            printError("shardctl rebalance: \(error)")
            throw ExitCode.failure
        }
    }

    func fleet(_ proxies: [String]) throws -> ProxyFleet {
        try ProxyFleet(proxies: proxies, token: self.adminToken, timeout: .milliseconds(Int64(self.timeout * 1000)))
    }

    func start() async throws {
        let fleet = try self.fleet(self.proxies)
        let map = try await fleet.agreedMap()
        let plan: RebalancePlan
        if let slots = self.slots, let to = self.to {
            plan = try RebalancePlanner.plan(slots: slots, to: to, map: map)
        } else if let from = self.from, let count = self.count, let to = self.to {
            plan = try RebalancePlanner.plan(from: from, count: count, to: to, map: map)
        } else {
            plan = RebalancePlanner.planEven(map: map)
        }
        say(RebalancePlanner.describe(plan, map: map))
        guard !plan.isEmpty else { return }
        if self.dryRun {
            let sessions = ShardSessions(map: map, applicationName: "shardctl-rebalance-dry-run")
            defer { sessions.closeAll() }
            let report = try RebalancePreflight(map: map, plan: plan, sessions: sessions).run()
            report.notes.forEach { say("  " + $0) }
            if report.problems.isEmpty {
                say("preflight: ok\ndry run: nothing was changed")
                return
            }
            printError("shardctl rebalance: \(RebalanceError.preflight(report.problems))")
            throw ExitCode.failure
        }
        guard self.adminToken != nil else {
            throw ValidationError("a rebalance pauses slots and pushes maps: give the admin token (--token or SHARDGATE_ADMIN_TOKEN)")
        }
        if !self.yes, isatty(STDIN_FILENO) == 1 {
            say("Move these slots now? [y/N] ", newline: false)
            let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased()
            guard answer == "y" || answer == "yes" else {
                say("nothing was changed")
                return
            }
        }
        let file = RebalanceJournalFile(path: self.journal)
        let rebalancer = try await Rebalancer.begin(plan: plan, map: map, fleet: fleet, file: file, options: self.options)
        say("journal: \(file.path) (rebalance \(rebalancer.journal.id))")
        try await self.finish(rebalancer)
    }

    func continueJournal() async throws {
        let file = RebalanceJournalFile(path: self.journal)
        guard let journal = try file.load() else {
            throw RebalanceError.journal(file.path, "there is no journal here; nothing to \(self.resume ? "resume" : "abort") (give --journal PATH)")
        }
        guard self.adminToken != nil else {
            throw ValidationError("give the admin token (--token or SHARDGATE_ADMIN_TOKEN)")
        }
        let fleet = try self.fleet(self.proxies.isEmpty ? journal.proxies : self.proxies)
        let rebalancer = try await Rebalancer.open(file: file, fleet: fleet, options: self.options)
        if self.abort {
            try await rebalancer.abort()
            return
        }
        say("resuming rebalance \(journal.id) from \(file.path)")
        try await self.finish(rebalancer)
    }

    func finish(_ rebalancer: Rebalancer) async throws {
        let summary = try await rebalancer.run()
        var line = "rebalance \(rebalancer.journal.id) finished: \(summary.moves) move(s), map version \(summary.mapVersion)"
        if let pauses = summary.pauses { line += "; slots paused \(pauses)" }
        say(line)
    }
}

/// Writes to standard output unbuffered, in order with the rebalance console's lines and progress.
func say(_ text: String, newline: Bool = true) {
    FileHandle.standardOutput.write(Data((newline ? text + "\n" : text).utf8))
}
