import ShardMap

/// Computes a `RoutePlan` from an analysis, the shard map and the bind parameters (DESIGN §4).
public enum RoutePlanner {
    /// Plans `analysis` against `map`.
    ///
    /// Throws `42P01` for a table missing from the map (without `unlisted_tables`), `0A000` for shapes
    /// ShardGate cannot run exactly (UPDATE of a shard key, cross-shard joins not on co-located keys,
    /// INSERT keys that are not constants or parameters, ...), `22P02` for an INSERT key PostgreSQL would
    /// not accept, `22023` for an override naming an unknown shard.
    public static func plan(
        _ analysis: SQLAnalysis, map: ShardMap, parameters: BindParameters = BindParameters()
    ) throws(RouteError) -> RoutePlan {
        if let plan = singleKeyPlan(analysis, map: map, parameters: parameters) { return plan }
        let kinds = analysis.statements.map(\.kind)
        var needsPrimary = false
        var isWrite = false
        var shape: ResultShape = []
        for statement in analysis.statements {
            needsPrimary = needsPrimary || statement.kind.needsPrimary(locksRows: statement.locksRows)
            isWrite = isWrite || statement.kind.isWrite
            shape.formUnion(statement.resultShape)
        }
        if let override = analysis.override {
            let target = try overrideTarget(override, analysis: analysis, map: map)
            var plan = RoutePlan(target: target, needsPrimary: needsPrimary, isWrite: isWrite, kinds: kinds,
                                 resultShape: shape, isOverride: true)
            // An override bypasses the keys: the statement may touch any slot of a sharded table.
            plan.slots = analysis.statements.contains { $0.occurrences.contains { if case .sharded = $0.placement { true } else { false } } }
                ? nil : []
            return plan
        }
        var combined: RoutePlan.Target?
        var rows: [Int: [Int]]?
        var touched: Set<Int>? = []
        for statement in analysis.statements {
            let evaluator = KeyEvaluator(analysis: analysis, parameters: parameters, slotCount: map.slotCount)
            let (target, statementRows, statementSlots) = try planStatement(statement, map: map, evaluator: evaluator)
            if let statementSlots, let known = touched {
                touched = known.union(statementSlots)
            } else {
                touched = nil
            }
            if let statementRows, statementRows.count > 1, analysis.statements.count > 1 {
                throw .unsupported("a multi-row INSERT over several shards in a query string with other statements")
            }
            rows = rows ?? statementRows
            guard target != .anyShard else { continue }
            if let existing = combined,
               existing.shards(map.shards.count) != target.shards(map.shards.count) {
                throw .unsupported("a query string whose statements go to different shards; send them one at a time")
            }
            combined = combined ?? target
        }
        let copyIn = analysis.statements.count == 1 ? analysis.statements[0].copyIn : nil
        var plan = RoutePlan(target: combined ?? .anyShard, needsPrimary: needsPrimary, isWrite: isWrite, kinds: kinds,
                             insertRowsByShard: rows, resultShape: shape, copyIn: copyIn)
        plan.slots = touched
        return plan
    }

    /// The plan of the commonest statement, found without the general planner's sets and arrays: one
    /// read or write of one sharded table whose key equals one value (`WHERE id = 42`, `WHERE id = $1`).
    /// `nil` for every other shape, and when the value is not a single known slot, so that the general
    /// planner decides (and reports) them.
    private static func singleKeyPlan(
        _ analysis: SQLAnalysis, map: ShardMap, parameters: BindParameters
    ) -> RoutePlan? {
        guard analysis.override == nil, analysis.statements.count == 1 else { return nil }
        let statement = analysis.statements[0]
        switch statement.kind {
        case .read, .write: break
        default: return nil
        }
        guard statement.occurrences.count == 1, !statement.broadcast, statement.unsupported == nil,
              statement.updatedShardKey == nil, statement.copyIn == nil else { return nil }
        let occurrence = statement.occurrences[0]
        guard case .sharded(_, let type) = occurrence.placement, occurrence.insertRows == nil,
              case .values(let sources)? = occurrence.key, sources.count == 1 else { return nil }
        let evaluator = KeyEvaluator(analysis: analysis, parameters: parameters, slotCount: map.slotCount)
        guard case .slots(let slots) = evaluator.evaluate(sources[0], type: type), slots.count == 1 else { return nil }
        var plan = RoutePlan(target: .shard(map.shardIndex(ofSlot: slots.first!)),
                             needsPrimary: statement.kind.needsPrimary(locksRows: statement.locksRows),
                             isWrite: statement.kind.isWrite, kinds: [statement.kind],
                             resultShape: statement.resultShape)
        plan.slots = slots
        return plan
    }

    private static func overrideTarget(
        _ override: RouteOverride, analysis: SQLAnalysis, map: ShardMap
    ) throws(RouteError) -> RoutePlan.Target {
        switch override {
        case .shard(let name):
            guard let index = map.shardIndex(named: name) else { throw .unknownShard(name) }
            return .shard(index)
        case .shardKey(let value):
            var type: ShardKeyType?
            for statement in analysis.statements {
                for occurrence in statement.occurrences {
                    if type == nil, case .sharded(_, let keyType) = occurrence.placement { type = keyType }
                }
            }
            let keyType = type ?? (SlotHash.parseBigint(value) != nil ? .bigint
                : SlotHash.parseUUID(value) != nil ? .uuid : .text)
            guard let slot = SlotHash.slot(literal: value, type: keyType, slotCount: map.slotCount) else {
                throw .invalidKey(value, type: keyType.rawValue)
            }
            return .shard(map.shardIndex(ofSlot: slot))
        }
    }

    /// One statement's target, for a VALUES insert into a sharded table its rows per shard, and the slots of
    /// sharded tables it touches (nil: any slot).
    private static func planStatement(
        _ statement: StatementAnalysis, map: ShardMap, evaluator: KeyEvaluator
    ) throws(RouteError) -> (RoutePlan.Target, [Int: [Int]]?, Set<Int>?) {
        switch statement.kind {
        case .transaction, .set, .reset, .show, .empty:
            return (.anyShard, nil, [])
        case .read, .write, .ddl, .utility:
            break
        }
        if let unsupported = statement.unsupported { throw .unsupported(unsupported) }
        if let table = statement.updatedShardKey {
            throw .unsupported("an UPDATE of the shard key of \"\(table)\" (the row would have to move between "
                + "shards); delete the row and insert it with the new key")
        }
        let occurrences = statement.occurrences
        let unlistedShard = map.unlistedTables.flatMap { map.shardIndex(named: $0) }
        for occurrence in occurrences where occurrence.placement == .unlisted && unlistedShard == nil {
            throw .tableNotInMap(occurrence.table.mapName)
        }
        if statement.broadcast {
            let targets = occurrences.filter { $0.role == .ddl }
            let unlisted = targets.filter { $0.placement == .unlisted }
            if let unlistedShard, !unlisted.isEmpty {
                guard unlisted.count == targets.count else {
                    let names = unlisted.map { "\"\($0.table.mapName)\"" }.joined(separator: ", ")
                    throw .unsupported("DDL naming both tables in the shard map and unlisted tables (\(names))")
                }
                return (.shard(unlistedShard), nil, [])
            }
            let sharded = occurrences.contains { if case .sharded = $0.placement { true } else { false } }
            return (.allShards, nil, sharded ? nil : [])
        }

        // Slots each sharded occurrence's rows can live in (nil: any slot).
        var slots = [Set<Int>?](repeating: nil, count: occurrences.count)
        var rowsByShard: [Int: [Int]]?
        for (index, occurrence) in occurrences.enumerated() {
            guard case .sharded(let key, let type) = occurrence.placement else { continue }
            if let rows = occurrence.insertRows {
                var byShard: [Int: [Int]] = [:]
                var rowSlots = Set<Int>()
                for (row, source) in rows.enumerated() {
                    let slot = try evaluator.insertSlot(source, type: type, table: occurrence.table.mapName, key: key,
                                                        row: row)
                    rowSlots.insert(slot)
                    byShard[map.shardIndex(ofSlot: slot), default: []].append(row)
                }
                slots[index] = rowSlots
                rowsByShard = byShard
            } else if let predicate = occurrence.key {
                slots[index] = evaluator.slots(predicate, type: type)
            }
        }
        propagate(&slots, joins: statement.keyJoins)
        var touched: Set<Int>? = []
        for (index, occurrence) in occurrences.enumerated() {
            guard case .sharded = occurrence.placement else { continue }
            if let owned = slots[index], let known = touched { touched = known.union(owned) } else { touched = nil }
        }

        let routed = occurrences.indices.filter {
            if case .sharded = occurrences[$0].placement { return true }
            return occurrences[$0].placement == .unlisted
        }
        let writesReference = occurrences.first { $0.placement == .reference && $0.role == .written }
        guard !routed.isEmpty else {
            return (writesReference == nil ? .anyShard : .allShards, nil, touched)
        }
        if let reference = writesReference {
            if let read = routed.first(where: { occurrences[$0].role != .written }) {
                let source = occurrences[read].table.mapName
                throw .unsupported("writing reference table \"\(reference.table.mapName)\" from sharded or unlisted "
                    + "table \"\(source)\" (every shard would compute different rows)")
            }
            // Writing sharded and reference tables without reading any (`TRUNCATE a, b`): every shard.
            if let unlisted = routed.first(where: { occurrences[$0].placement == .unlisted }) {
                throw .unsupported("one statement writing reference table \"\(reference.table.mapName)\" (on every "
                    + "shard) and unlisted table \"\(occurrences[unlisted].table.mapName)\" (on one shard); write them "
                    + "in separate statements")
            }
            return (.allShards, nil, touched)
        }
        var shards = Set<Int>()
        var everyShard = false
        for index in routed {
            if occurrences[index].placement == .unlisted, let unlistedShard {
                shards.insert(unlistedShard)
            } else if let owned = slots[index] {
                for slot in owned { shards.insert(map.shardIndex(ofSlot: slot)) }
            } else {
                everyShard = true
            }
        }
        if everyShard {
            shards = map.shardsHoldingRows
            everyShard = shards.count == map.shards.count
        }
        guard shards.count > 1 else {
            return (shards.first.map { .shard($0) } ?? .anyShard, rowsByShard, touched)
        }
        if componentCount(routed, joins: statement.keyJoins) > 1 {
            var names: [String] = []
            for index in routed where !names.contains(occurrences[index].table.mapName) {
                names.append(occurrences[index].table.mapName)
            }
            let list = names.map { "\"\($0)\"" }.joined(separator: " and ")
            throw .unsupported("a join or subquery over \(list) that is not on their shard keys and spans several "
                + "shards (add the same shard key condition for each, or join on the shard keys)")
        }
        if let construct = statement.singleShardOnly { throw .unsupported(construct) }
        if !statement.nestedShape.isEmpty {
            throw .unsupported("an aggregate, DISTINCT, LIMIT, window or set operation inside a subquery or CTE "
                + "over several shards")
        }
        return (everyShard ? .allShards : .shards(shards), rowsByShard, touched)
    }

    /// Narrows each occurrence's slots by the slots of occurrences joined to it on the key, to a fixpoint.
    private static func propagate(_ slots: inout [Set<Int>?], joins: [KeyJoin]) {
        guard !joins.isEmpty else { return }
        var changed = true
        var rounds = 0
        while changed, rounds <= joins.count {
            changed = false
            rounds += 1
            for join in joins {
                for (from, to, allowed) in [(join.left, join.right, join.leftRestrictsRight),
                                            (join.right, join.left, join.rightRestrictsLeft)] where allowed {
                    guard let source = slots[from] else { continue }
                    let narrowed = slots[to].map { $0.intersection(source) } ?? source
                    if narrowed != slots[to] {
                        slots[to] = narrowed
                        changed = true
                    }
                }
            }
        }
    }

    /// How many groups of `routed` occurrences are connected by key joins (unlisted tables stand alone).
    private static func componentCount(_ routed: [Int], joins: [KeyJoin]) -> Int {
        var parent = Dictionary(uniqueKeysWithValues: routed.map { ($0, $0) })
        func root(_ x: Int) -> Int {
            var x = x
            while let p = parent[x], p != x { x = p }
            return x
        }
        for join in joins where parent[join.left] != nil && parent[join.right] != nil {
            parent[root(join.left)] = root(join.right)
        }
        return Set(routed.map(root)).count
    }
}

extension RoutePlan.Target {
    /// The shard indexes for comparison (`anyShard` as empty).
    func shards(_ count: Int) -> Set<Int> {
        switch self {
        case .shard(let index): return [index]
        case .shards(let indexes): return indexes
        case .allShards: return Set(0..<count)
        case .anyShard: return []
        }
    }
}
