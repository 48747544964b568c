import Foundation
import ShardMap

/// Runs a rebalance (DESIGN §8) step by step from its journal: preflight, schema, publication,
/// subscription and copy, cutover, cleanup — or `--abort`. Every step is idempotent and journaled
/// once done, so an interrupted run continues with `--resume`.
///
/// ```swift
/// let rebalancer = try await Rebalancer.begin(plan: plan, map: map, fleet: fleet, file: file)
/// let summary = try await rebalancer.run()
/// ```
public final class Rebalancer {
    public let fleet: ProxyFleet
    public let file: RebalanceJournalFile
    public internal(set) var journal: RebalanceJournal
    let sessions: ShardSessions
    let console: RebalanceConsole
    let options: RebalanceOptions
    /// The latest live map seen.
    var map: ShardMap

    init(journal: RebalanceJournal, map: ShardMap, fleet: ProxyFleet, file: RebalanceJournalFile,
         console: RebalanceConsole, options: RebalanceOptions) {
        self.journal = journal
        self.map = map
        self.fleet = fleet
        self.file = file
        self.console = console
        self.options = options
        self.sessions = ShardSessions(map: map, applicationName: "shardctl-rebalance")
    }

    deinit {
        self.sessions.closeAll()
    }

    /// Starts a new rebalance of `plan` (made from `map`, the proxies' live map): refuses when the
    /// journal holds an unfinished run, takes the locks, runs the preflight (nothing changes when it
    /// fails) and writes a fresh journal.
    public static func begin(plan: RebalancePlan, map: ShardMap, fleet: ProxyFleet, file: RebalanceJournalFile,
                             console: RebalanceConsole = RebalanceConsole(),
                             options: RebalanceOptions = RebalanceOptions()) async throws -> Rebalancer {
        try file.lock()
        if let old = try file.load(), old.state == .running {
            throw RebalanceError.busy("""
                \(file.path) holds the unfinished rebalance \(old.id) (started \(old.createdAt)); run \
                `shardctl rebalance --resume` or `--abort` first (or give another --journal)
                """)
        }
        let journal = RebalanceJournal(plan: plan, proxies: fleet.names)
        let rebalancer = Rebalancer(journal: journal, map: map, fleet: fleet, file: file, console: console, options: options)
        try rebalancer.sessions.lock(journal.involvedShards)
        let report = try RebalancePreflight(map: map, plan: plan, sessions: rebalancer.sessions, ownID: journal.id).run()
        report.notes.forEach { console.line("  " + $0) }
        guard report.problems.isEmpty else { throw RebalanceError.preflight(report.problems) }
        console.line("preflight: ok")
        rebalancer.journal.record("started: " + plan.moves.map { "\($0.slotList) \($0.source)->\($0.target)" }.joined(separator: "; "))
        try rebalancer.save()
        return rebalancer
    }

    /// Opens the unfinished rebalance in `file` for `--resume` or `--abort`, with the live map of `fleet`.
    public static func open(file: RebalanceJournalFile, fleet: ProxyFleet,
                            console: RebalanceConsole = RebalanceConsole(),
                            options: RebalanceOptions = RebalanceOptions()) async throws -> Rebalancer {
        try file.lock()
        guard let journal = try file.load() else {
            throw RebalanceError.journal(file.path, "there is no journal here; nothing to resume or abort (give --journal PATH if it is elsewhere)")
        }
        let map = try await fleet.agreedMap()
        let rebalancer = Rebalancer(journal: journal, map: map, fleet: fleet, file: file, console: console, options: options)
        if journal.state == .running {
            try rebalancer.sessions.lock(journal.involvedShards)
        }
        return rebalancer
    }

    /// What a finished run reports.
    public struct Summary: Sendable, Equatable {
        public var moves: Int
        public var mapVersion: Int
        public var pauses: PauseStats?
    }

    /// Runs (or continues) the rebalance until every move is done.
    @discardableResult
    public func run() async throws -> Summary {
        do {
            while true {
                switch self.journal.nextStep() {
                case .prepareSchema(let move): try self.prepareSchema(move)
                case .publish(let move): try self.publish(move)
                case .subscribe(let move): try await self.subscribe(move)
                case .catchUp(let move): try await self.catchUp(move)
                case .cutover(let move): try await self.cutover(move)
                case .releasePause(let move): try await self.releasePause(move)
                case .finishFlip(let move): try await self.finishFlip(move)
                case .cleanup(let move): try await self.cleanup(move)
                case .finished:
                    if self.journal.state != .done {
                        self.journal.state = .done
                        self.journal.record("finished")
                        try self.save()
                    }
                    return self.summary()
                case .wasAborted:
                    throw RebalanceError.journal(self.file.path, "the rebalance \(self.journal.id) was aborted; start a new one")
                }
            }
        } catch {
            self.console.endProgress()
            self.journal.lastError = "\(error)"
            self.journal.record("error: \(error)")
            try? self.save()
            throw error
        }
    }

    func summary() -> Summary {
        Summary(moves: self.journal.moves.count, mapVersion: self.map.version,
                pauses: PauseStats(self.journal.moves.compactMap(\.pauseMs)))
    }

    /// Writes the journal durably.
    func save() throws {
        self.journal.updatedAt = RebalanceJournal.timestamp(Date())
        try self.file.save(self.journal)
    }

    /// Sets a move's phase and writes the journal.
    func advance(_ index: Int, to phase: MovePhase, _ event: String? = nil) throws {
        self.journal.moves[index].phase = phase
        self.journal.record("move \(index + 1): \(event ?? phase.rawValue)")
        try self.save()
    }

    func label(_ index: Int) -> String {
        let move = self.journal.moves[index]
        return "move \(index + 1) (\(move.slots) \(move.source) -> \(move.target))"
    }
}

extension RebalanceJournal {
    /// Every shard any move reads from or writes to.
    public var involvedShards: [String] {
        Array(Set(self.moves.flatMap { [$0.source, $0.target] })).sorted()
    }
}

extension RebalanceJournal.Move {
    /// The slots as numbers.
    public var slotNumbers: [Int] {
        (try? SlotRanges.slots(in: SlotRanges.parse(self.slots, slotCount: ShardMap.maximumSlotCount))) ?? []
    }

    /// The move as planned.
    public var move: RebalanceMove {
        RebalanceMove(source: self.source, target: self.target, slots: self.slotNumbers)
    }
}
