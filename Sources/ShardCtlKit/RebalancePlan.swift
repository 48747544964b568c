import ShardMap

/// One move of a rebalance: slots that leave one source shard for one target shard. Each move has
/// its own publication, subscription and cutover (a subscription has exactly one source).
public struct RebalanceMove: Sendable, Equatable, Codable {
    /// The shard that owns the slots now.
    public var source: String
    /// The shard that will own them.
    public var target: String
    /// The slots, ascending.
    public var slots: [Int]

    /// A move of `slots` from `source` to `target`.
    public init(source: String, target: String, slots: [Int]) {
        self.source = source
        self.target = target
        self.slots = Array(Set(slots)).sorted()
    }

    /// The slots in slot-list notation (`0-99,300`).
    public var slotList: String { SlotRanges.format(self.slots) }
}

/// What a rebalance will do: moves applied one after another to the map of version `baseVersion`.
public struct RebalancePlan: Sendable, Equatable {
    /// The map the plan was made from.
    public var baseVersion: Int
    /// The moves, in the order they run.
    public var moves: [RebalanceMove]
    /// Slots that were asked for but already live on the target (nothing to do for them).
    public var alreadyOnTarget: [Int]

    /// A plan from its parts.
    public init(baseVersion: Int, moves: [RebalanceMove], alreadyOnTarget: [Int] = []) {
        self.baseVersion = baseVersion
        self.moves = moves
        self.alreadyOnTarget = alreadyOnTarget
    }

    /// Whether there is nothing to move.
    public var isEmpty: Bool { self.moves.isEmpty }

    /// Slot counts per shard (map order) before and after every move.
    public func slotCounts(on map: ShardMap) -> [(shard: String, before: Int, after: Int)] {
        var after = map
        for move in self.moves {
            after = (try? after.moving(move.slots, to: move.target)) ?? after
        }
        return map.shards.indices.map { index in
            (map.shards[index].name, map.slots(of: index).count, after.slots(of: index).count)
        }
    }
}

extension ShardMap {
    /// This map with `slots` owned by `target` (their copies there gone, their rows on the old owners now
    /// copies until the cleanup) and the version one higher, validated.
    public func moving(_ slots: [Int], to target: String) throws -> ShardMap {
        guard let index = self.shardIndex(named: target) else {
            throw RebalanceError.unknownShard(target, known: self.shards.map(\.name))
        }
        var map = self
        for slot in slots {
            guard (0..<map.slotCount).contains(slot) else {
                throw RebalanceError.invalidRequest("slot \(slot) is out of range 0-\(map.slotCount - 1)")
            }
            let source = map.slotOwners[slot]
            map.slotOwners[slot] = index
            map.removeCopies([slot], from: index)
            // Until the cleanup deletes them, the source keeps the moved rows: a copy now.
            if source != index { map.addCopies([slot], on: source) }
        }
        map.version += 1
        try map.validate()
        return map
    }
}

/// Plans the moves of `shardctl rebalance` from the live map. Pure: no network.
public enum RebalancePlanner {
    /// `--slots LIST --to TARGET`: one move per shard that owns some of the slots (slots already on
    /// the target are left out and reported).
    public static func plan(slots list: String, to target: String, map: ShardMap) throws -> RebalancePlan {
        let ranges: [ClosedRange<Int>]
        do {
            ranges = try SlotRanges.parse(list, slotCount: map.slotCount)
        } catch let error as ShardMapError {
            throw RebalanceError.invalidRequest("--slots: \(error.problem)")
        }
        let slots = SlotRanges.slots(in: ranges)
        guard !slots.isEmpty else { throw RebalanceError.invalidRequest("--slots is empty; name slots like 0-99") }
        guard let targetIndex = map.shardIndex(named: target) else {
            throw RebalanceError.unknownShard(target, known: map.shards.map(\.name))
        }
        var bySource: [Int: [Int]] = [:]
        var already: [Int] = []
        for slot in slots {
            let owner = map.shardIndex(ofSlot: slot)
            if owner == targetIndex { already.append(slot) } else { bySource[owner, default: []].append(slot) }
        }
        let moves = bySource.keys.sorted().map {
            RebalanceMove(source: map.shards[$0].name, target: target, slots: bySource[$0] ?? [])
        }
        return RebalancePlan(baseVersion: map.version, moves: moves, alreadyOnTarget: already)
    }

    /// `--from SOURCE --count N --to TARGET`: the N highest-numbered slots of the source.
    public static func plan(from source: String, count: Int, to target: String, map: ShardMap) throws -> RebalancePlan {
        guard let sourceIndex = map.shardIndex(named: source) else {
            throw RebalanceError.unknownShard(source, known: map.shards.map(\.name))
        }
        guard map.shardIndex(named: target) != nil else {
            throw RebalanceError.unknownShard(target, known: map.shards.map(\.name))
        }
        guard source != target else { throw RebalanceError.invalidRequest("--from and --to are the same shard \(source)") }
        guard count > 0 else { throw RebalanceError.invalidRequest("--count must be at least 1") }
        let owned = map.slots(of: sourceIndex)
        guard count <= owned.count else {
            throw RebalanceError.invalidRequest("--count \(count): \(source) owns only \(owned.count) slots")
        }
        let slots = Array(owned.suffix(count))
        return RebalancePlan(baseVersion: map.version, moves: [RebalanceMove(source: source, target: target, slots: slots)])
    }

    /// `--even`: moves that leave every shard with `slotCount / shards` slots (the remainder going to
    /// the shards that hold most now, so that as little as possible moves). Donors give their
    /// highest-numbered slots; donors and receivers are paired in map order.
    public static func planEven(map: ShardMap) -> RebalancePlan {
        let n = map.shards.count
        guard n > 1 else { return RebalancePlan(baseVersion: map.version, moves: []) }
        let counts = map.shards.indices.map { map.slots(of: $0).count }
        let base = map.slotCount / n
        let extra = map.slotCount % n
        // The `extra` shards that may keep one more: the largest now, earlier shards first on ties.
        let keepsExtra = Set(counts.indices.sorted { counts[$0] != counts[$1] ? counts[$0] > counts[$1] : $0 < $1 }
            .prefix(extra))
        let desired = counts.indices.map { base + (keepsExtra.contains($0) ? 1 : 0) }
        var surplus: [(index: Int, slots: [Int])] = counts.indices.compactMap { index in
            let give = counts[index] - desired[index]
            return give > 0 ? (index, Array(map.slots(of: index).suffix(give))) : nil
        }
        var deficits: [(index: Int, need: Int)] = counts.indices.compactMap { index in
            let need = desired[index] - counts[index]
            return need > 0 ? (index, need) : nil
        }
        var pairs: [[Int]: [Int]] = [:]
        var order: [[Int]] = []
        var d = 0
        for s in surplus.indices {
            while !surplus[s].slots.isEmpty, d < deficits.count {
                let take = min(surplus[s].slots.count, deficits[d].need)
                let chunk = Array(surplus[s].slots.prefix(take))
                surplus[s].slots.removeFirst(take)
                deficits[d].need -= take
                let key = [surplus[s].index, deficits[d].index]
                if pairs[key] == nil { order.append(key) }
                pairs[key, default: []].append(contentsOf: chunk)
                if deficits[d].need == 0 { d += 1 }
            }
        }
        let moves = order.map {
            RebalanceMove(source: map.shards[$0[0]].name, target: map.shards[$0[1]].name, slots: pairs[$0] ?? [])
        }
        return RebalancePlan(baseVersion: map.version, moves: moves)
    }

    /// The plan as shardctl prints it.
    public static func describe(_ plan: RebalancePlan, map: ShardMap) -> String {
        var lines: [String] = []
        if plan.isEmpty {
            lines.append("Nothing to move (map version \(map.version)).")
        } else {
            lines.append("Rebalance plan for map version \(map.version):")
            for (number, move) in plan.moves.enumerated() {
                lines.append("  move \(number + 1): slots \(move.slotList) (\(move.slots.count) slot\(move.slots.count == 1 ? "" : "s")) \(move.source) -> \(move.target)")
            }
        }
        if !plan.alreadyOnTarget.isEmpty {
            lines.append("  already on the target, not moved: \(SlotRanges.format(plan.alreadyOnTarget))")
        }
        let counts = plan.slotCounts(on: map).map { "\($0.shard) \($0.before)\($0.before == $0.after ? "" : " -> \($0.after)")" }
        lines.append("  slots per shard: " + counts.joined(separator: ", "))
        let sharded = map.tables.filter { if case .sharded = $0.value { return true } else { return false } }.keys.sorted()
        let reference = map.tables.filter { $0.value == .reference }.keys.sorted()
        lines.append("  sharded tables moved: " + (sharded.isEmpty ? "none listed in the map" : sharded.joined(separator: ", ")))
        if !reference.isEmpty {
            lines.append("  reference tables (never moved): " + reference.joined(separator: ", "))
        }
        if let unlisted = map.unlistedTables {
            lines.append("  tables not in the map stay on \(unlisted) (not moved)")
        }
        return lines.joined(separator: "\n")
    }
}
