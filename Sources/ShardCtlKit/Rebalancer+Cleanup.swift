import Foundation
import ShardMap

/// Step 4 of a move (cleanup) and `--abort`.
extension Rebalancer {
    func cleanup(_ index: Int) async throws {
        try await hold(at: .cleanup, options: self.options, console: self.console)
        let move = self.journal.moves[index]
        let source = try self.sessions.primary(move.source)
        // The subscription goes first: deleting on the source while it streams would delete the rows on
        // the target too.
        try self.dropSubscription(index)
        try self.dropSlots(index, on: source, subscriptionOID: move.subscriptionOid)
        try source.execute(RebalanceSQL.dropPublication(move.name))
        let deleted = try self.deleteRows(index, on: source, shard: move.source)
        self.journal.moves[index].rowsDeleted = deleted
        try await self.withdrawCopies(index, from: move.source)
        self.console.line("\(self.label(index)): done; dropped the subscription, publication and slot, deleted \(deleted) moved row(s) from \(move.source)")
        try self.advance(index, to: .done, "cleaned up, \(deleted) rows deleted from \(move.source)")
    }

    /// `--abort`: undoes the move in progress (see `RebalanceJournal.abortPlan`).
    public func abort() async throws {
        switch self.journal.abortPlan() {
        case .nothingToAbort(let why):
            throw RebalanceError.abortNotPossible(why)
        case .afterFlip(let index, checkProxies: false):
            throw RebalanceError.abortNotPossible("\(self.label(index)) flipped the map (version \(self.journal.moves[index].newVersion.map(String.init) ?? "?") is live); run `shardctl rebalance --resume` to finish its cleanup")
        case .afterFlip(let index, checkProxies: true):
            let move = self.journal.moves[index]
            let states = await self.fleet.mapStates(version: move.newVersion ?? Int.max, slots: move.slotNumbers, target: move.target)
            guard states.allSatisfy({ $0 == .old }) else {
                let live = states.indices.filter { states[$0] != .old }.map { self.fleet.clients[$0].proxy }
                throw RebalanceError.abortNotPossible("the new map of \(self.label(index)) is (or may be) live on \(live.joined(separator: ", ")); run `shardctl rebalance --resume` to finish the move")
            }
            try await self.undo(index, releasePause: true)
        case .undo(let index, _, let releasePause):
            try await self.undo(index, releasePause: releasePause)
        }
    }

    func undo(_ index: Int, releasePause: Bool) async throws {
        let move = self.journal.moves[index]
        if releasePause {
            let results = await self.fleet.resumeAll(move.slotNumbers)
            let failed = results.filter { if case .failure = $0.value { return true } else { return false } }
            guard failed.isEmpty else {
                throw RebalanceError.step("abort", "cannot release the paused slots on \(failed.keys.sorted().map { self.fleet.clients[$0].proxy }.joined(separator: ", ")); nothing else was undone, try again")
            }
        }
        let source = try self.sessions.primary(move.source)
        let target = try self.sessions.primary(move.target)
        try self.dropSubscription(index)
        try self.dropSlots(index, on: source, subscriptionOID: move.subscriptionOid)
        try source.execute(RebalanceSQL.dropPublication(move.name))
        let deleted = try self.deleteRows(index, on: target, shard: move.target)
        var dropped: [String] = []
        for relation in move.createdTables.reversed() {
            let exists = try target.query("SELECT to_regclass($1) IS NOT NULL", [relation]).value() == "t"
            guard exists else { continue }
            if try target.query("SELECT EXISTS (SELECT 1 FROM \(relation))").value() == "f" {
                try target.execute("DROP TABLE \(relation)")
                dropped.append(relation)
            } else {
                self.console.warn("kept \(relation) on \(move.target): the rebalance created it, but it now holds rows of other slots")
            }
        }
        self.journal.moves[index].rowsDeleted = deleted
        try await self.withdrawCopies(index, from: move.target)
        for later in index..<self.journal.moves.count where self.journal.moves[later].phase != .done {
            self.journal.moves[later].phase = .aborted
        }
        self.journal.state = .aborted
        self.journal.record("aborted \(self.label(index)): \(deleted) copied rows deleted from \(move.target)\(dropped.isEmpty ? "" : ", dropped \(dropped.joined(separator: ", "))")")
        try self.save()
        self.console.line("\(self.label(index)) aborted: the old map serves; removed the subscription, publication and slot, \(deleted) copied row(s) from \(move.target)\(dropped.isEmpty ? "" : " and the tables it had created (\(dropped.joined(separator: ", ")))")")
        let finished = self.journal.moves.filter { $0.phase == .done }.count
        if finished > 0 {
            self.console.line("\(finished) earlier move(s) of this rebalance finished and stay live")
        }
    }

    /// Drops the move's subscription on the target (it drops its slots on the source when it can reach
    /// it; when it cannot, the subscription is detached first and the slots are dropped by `dropSlots`).
    func dropSubscription(_ index: Int) throws {
        let move = self.journal.moves[index]
        let target = try self.sessions.primary(move.target)
        guard try target.query("SELECT count(*) FROM pg_subscription WHERE subname = $1", [move.name]).value() != "0" else { return }
        do {
            try target.execute(RebalanceSQL.dropSubscription(move.name))
        } catch let error as PGError {
            self.console.warn("DROP SUBSCRIPTION \(move.name) could not reach \(move.source) (\(error.message)); detaching it and dropping its slots directly")
            for statement in RebalanceSQL.detachSubscription(move.name) {
                try target.execute(statement)
            }
        }
    }

    /// Drops the replication slots of the move's subscription left on the source (waiting up to 10 s for
    /// a walsender that is still shutting down).
    func dropSlots(_ index: Int, on source: PGConnection, subscriptionOID: String?) throws {
        let move = self.journal.moves[index]
        let query = RebalanceSQL.leftoverSlots(name: move.name, subscriptionOID: subscriptionOID)
        let deadline = Date().addingTimeInterval(10)
        while true {
            let slots = try source.query(query.sql, query.parameters).rows
            if slots.isEmpty { return }
            var waiting: [String] = []
            for slot in slots {
                guard let name = slot[0] else { continue }
                if slot[1] == "t" {
                    waiting.append(name)
                } else {
                    try source.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [name])
                }
            }
            if waiting.isEmpty { continue }
            guard Date() < deadline else {
                throw RebalanceError.step("cleanup", "replication slot(s) \(waiting.joined(separator: ", ")) on \(move.source) are still in use; is the subscription still running somewhere?")
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// Deletes the rows of the move's slots from its tables on `shard`, in batches; returns how many.
    func deleteRows(_ index: Int, on db: PGConnection, shard: String) throws -> Int {
        let move = self.journal.moves[index]
        var total = 0
        for table in try self.tables(of: index, on: db) {
            let filter = table.slotExpression(slotCount: self.map.slotCount).filter(slots: move.slotNumbers)
            for leaf in table.leaves {
                while true {
                    let result = try db.query(RebalanceSQL.deleteBatch(from: leaf, filter: filter, limit: self.options.deleteBatchRows))
                    total += result.affectedRows
                    self.console.progress("deleting moved rows from \(shard): \(total) so far (\(table.relation))")
                    if result.affectedRows < self.options.deleteBatchRows { break }
                }
            }
        }
        self.console.endProgress()
        return total
    }
}
