import Foundation
import ShardMap

/// The map's `"copies"` during a move: which shard holds rows of slots it does not own, so that the
/// proxies' reads over several shards skip them there (DECISIONS.md, "Rebalance"). Set on the target
/// before the subscription copies anything, moved to the source by the cutover's map, removed after the
/// cleanup (or the abort) deleted the rows. A copies entry for a shard without such rows filters nothing,
/// so leaving one behind after a failure is safe; the next step (or `--abort`) takes it away.
extension Rebalancer {
    /// Makes every proxy serve the live map with `change` applied (its copies only), one version higher,
    /// unless it already does; a push that an earlier run left on some proxies is finished on the rest.
    func updateCopies(_ step: String, _ change: (inout ShardMap) -> Void) async throws {
        let maps: [ShardMap]
        do {
            maps = try await self.fleet.liveMaps(sameOwners: true)
        } catch let error as RebalanceError {
            throw error
        } catch {
            throw RebalanceError.step(step, "cannot read every proxy's map: \(error)")
        }
        guard let newest = maps.max(by: { $0.version < $1.version }) else { return }
        var wanted = newest
        change(&wanted)
        if wanted.copies != newest.copies {
            wanted.version += 1
            do {
                try wanted.validate()
            } catch {
                throw RebalanceError.step(step, "the map with the new copies is not valid: \(error)")
            }
        }
        let pending = maps.indices.filter { maps[$0].version < wanted.version }
        self.map = wanted
        guard !pending.isEmpty else { return }
        let pushed = await self.fleet.pushAll(ShardMapUpdate(map: wanted), only: pending)
        let failed = pending.filter { if case .success? = pushed[$0] { return false } else { return true } }
        guard failed.isEmpty else {
            let reasons = failed.map { index -> String in
                if case .failure(let error)? = pushed[index] { return "\(self.fleet.clients[index].proxy): \(error)" }
                return "\(self.fleet.clients[index].proxy): no answer"
            }
            throw RebalanceError.step(step, "map version \(wanted.version) (copies \(Self.copiesText(wanted))) did not reach \(reasons.joined(separator: "; ")); no slot changed owner, the old map keeps serving; `shardctl rebalance --resume` pushes it again")
        }
        self.journal.record("map version \(wanted.version): copies \(Self.copiesText(wanted))")
        try self.save()
    }

    static func copiesText(_ map: ShardMap) -> String {
        let parts = map.copies.keys.sorted().map { "\(map.shards[$0].name) \(SlotRanges.format(map.copies[$0]!.sorted()))" }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }

    /// Before the subscription: the target is about to hold copies of the move's slots.
    func announceCopies(_ index: Int) async throws {
        let move = self.journal.moves[index]
        try await self.updateCopies("announcing the copies on \(move.target)") { map in
            guard let target = map.shardIndex(named: move.target) else { return }
            map.addCopies(move.slotNumbers.filter { map.slotOwners[$0] != target }, on: target)
        }
    }

    /// After the cleanup (or the abort) deleted the rows of the move's slots from `shard`.
    func withdrawCopies(_ index: Int, from shard: String) async throws {
        let move = self.journal.moves[index]
        try await self.updateCopies("withdrawing the copies on \(shard)") { map in
            guard let holder = map.shardIndex(named: shard) else { return }
            map.removeCopies(move.slotNumbers, from: holder)
        }
    }
}
