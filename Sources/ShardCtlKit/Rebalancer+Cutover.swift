import Foundation
import ShardMap

/// Step 3 of a move, and picking up a cutover that an earlier run left in the middle.
extension Rebalancer {
    func cutover(_ index: Int) async throws {
        let move = self.journal.moves[index]
        let live = try await self.fleet.agreedMap()
        self.map = live
        let database: any CutoverDatabase
        if move.tables.isEmpty {
            database = NothingReplicated()
        } else {
            database = LiveCutoverDatabase(source: try self.sessions.primary(move.source),
                                           target: try self.sessions.primary(move.target),
                                           slot: move.name, label: "\(self.journal.id) move \(index + 1) cutover")
        }
        self.console.line("\(self.label(index)): cutover (pausing the slots on \(self.fleet.clients.count) prox\(self.fleet.clients.count == 1 ? "y" : "ies"))")
        let cutover = RebalanceCutover(fleet: self.fleet, move: move.move, options: self.options, console: self.console)
        let outcome = try await cutover.run(live: live, database: database) { phase, version, fence in
            self.journal.moves[index].phase = phase
            if let version { self.journal.moves[index].newVersion = version }
            if let fence { self.journal.moves[index].fence = fence.description }
            self.journal.record("move \(index + 1): \(phase.rawValue)")
            try self.save()
        }
        self.journal.moves[index].pauseMs = outcome.pauseMs
        self.journal.moves[index].cutoverSteps = outcome.steps
        self.map = try live.moving(move.slotNumbers, to: move.target)
        try self.advance(index, to: .flipped, "map version \(outcome.newVersion) live, slots resumed after \(Self.ms(outcome.pauseMs))")
        let steps = ["pause", "drain", "fence", "journal", "flip", "resume"].compactMap { name in
            outcome.steps[name].map { "\(name) \(Self.ms($0))" }
        }
        self.console.line("\(self.label(index)): map version \(outcome.newVersion) is live; the slots were paused \(Self.ms(outcome.pauseMs)) (\(steps.joined(separator: ", ")))")
    }

    /// A run died after pausing and before pushing a map: release the slots everywhere, then cut over again.
    func releasePause(_ index: Int) async throws {
        let move = self.journal.moves[index]
        let results = await self.fleet.resumeAll(move.slotNumbers)
        let failed = results.filter { if case .failure = $0.value { return true } else { return false } }
        guard failed.isEmpty else {
            let names = failed.keys.sorted().map { self.fleet.clients[$0].proxy }
            throw RebalanceError.step("releasing the paused slots \(move.slots)", "cannot reach \(names.joined(separator: ", ")); the old map serves, the slots stay paused there until this succeeds")
        }
        self.console.line("\(self.label(index)): released the slots an interrupted cutover had paused; the old map serves")
        try self.advance(index, to: .caughtUp, "pause released")
    }

    /// A run died while pushing the new map: finish pushing it (or, if no proxy took it, start over).
    func finishFlip(_ index: Int) async throws {
        let move = self.journal.moves[index]
        guard let version = move.newVersion else {
            try await self.releasePause(index)
            return
        }
        var states = await self.fleet.mapStates(version: version, slots: move.slotNumbers, target: move.target)
        let cutover = RebalanceCutover(fleet: self.fleet, move: move.move, options: self.options, console: self.console)
        switch RebalanceJournal.flipDecision(states) {
        case .rollBack:
            self.console.line("\(self.label(index)): no proxy took map version \(version); releasing the slots")
            try await self.releasePause(index)
            return
        case .complete:
            break
        case .pushAgain(let pending):
            guard let donor = states.firstIndex(of: .new) else {
                throw RebalanceError.cutoverIncomplete("cannot tell which map \(pending.map { self.fleet.clients[$0].proxy }.joined(separator: ", ")) serve")
            }
            let newMap = try await self.fleet.clients[donor].liveMap()
            let fences = move.fence.flatMap(LSN.init).map { [move.target: $0] } ?? [:]
            self.console.line("\(self.label(index)): pushing map version \(version) to the proxies that do not serve it yet")
            _ = await self.fleet.pushAll(ShardMapUpdate(map: newMap, fences: fences), only: pending)
            states = await self.fleet.mapStates(version: version, slots: move.slotNumbers, target: move.target)
            guard RebalanceJournal.flipDecision(states) == .complete else {
                let stuck = states.indices.filter { states[$0] != .new }.map { self.fleet.clients[$0].proxy }
                throw RebalanceError.cutoverIncomplete("\(stuck.joined(separator: ", ")) still do not serve map version \(version)")
            }
        }
        try await cutover.resumeEverywhere()
        self.map = try await self.fleet.agreedMap()
        self.console.line("\(self.label(index)): map version \(version) is live on every proxy; slots resumed")
        try self.advance(index, to: .flipped, "flip finished by --resume")
    }

    static func ms(_ value: Double) -> String {
        String(format: "%.1f ms", value)
    }
}

/// The cutover's SQL on the source and target primaries.
struct LiveCutoverDatabase: CutoverDatabase {
    let source: PGConnection
    let target: PGConnection
    let slot: String
    let label: String

    func sourceSyncPoint() throws -> LSN {
        try self.source.execute(RebalanceSQL.syncPoint(label: self.label))
        return try self.lsn(self.source.query(RebalanceSQL.syncPointLSN).value(), on: self.source)
    }

    func caughtUp(to lsn: LSN) throws -> Bool {
        let result = try self.source.query(
            "SELECT (confirmed_flush_lsn >= $1::pg_lsn)::text FROM pg_replication_slots WHERE slot_name = $2",
            [lsn.description, self.slot])
        guard let row = result.rows.first else {
            throw PGError(connection: self.source.label, message: "the replication slot \(self.slot) is gone")
        }
        return row[0] == "true"
    }

    func targetFence() throws -> LSN? {
        try self.target.execute(RebalanceSQL.syncPoint(label: self.label + " fence"))
        return try self.lsn(self.target.query(RebalanceSQL.syncPointLSN).value(), on: self.target)
    }

    func lsn(_ text: String?, on db: PGConnection) throws -> LSN {
        guard let text, let lsn = LSN(text) else {
            throw PGError(connection: db.label, message: "unexpected WAL position \(text ?? "NULL")")
        }
        return lsn
    }
}

/// A move with no table to copy: nothing to drain, no fence.
struct NothingReplicated: CutoverDatabase {
    func sourceSyncPoint() throws -> LSN { LSN(0) }
    func caughtUp(to lsn: LSN) throws -> Bool { true }
    func targetFence() throws -> LSN? { nil }
}
