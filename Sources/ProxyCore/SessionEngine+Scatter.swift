import NIOCore
import PGWire
import ResultMerge
import ShardMap
import SQLRouting

/// Statements that run on several shards at once: reads without a key (or with keys on several shards),
/// writes without a key, reference-table writes, DDL, multi-row INSERTs split per shard.
extension SessionEngine {
    mutating func scatterQuery(_ frame: PGFrame, sql: String, analysis: SQLAnalysis, plan: RoutePlan, shards: [Int],
                               effect: SessionEffect, hidesPosition: Bool, context: inout RoutingContext,
                               current: Bool) -> Bool {
        if let refusal = self.scatterRefusal(plan: plan, effect: effect) {
            return self.refuse(refusal, simpleQuery: true)
        }
        if let copy = plan.copyIn {
            return self.copyIntoShards(frame, format: copy, context: &context)
        }
        if let merge = self.mergeNeeded(plan) {
            return self.mergedQuery(sql: sql, plan: plan, shards: shards, shape: merge, effect: effect,
                                    hidesPosition: hidesPosition, context: &context)
        }
        var perShard: [Int: String]?
        if let rows = plan.insertRowsByShard, rows.count > 1 {
            do {
                perShard = try InsertSplitter.split(sql, rowsByShard: rows)
            } catch {
                return self.refuse(Self.error(error), simpleQuery: true)
            }
        }
        do {
            try Self.filterCopies(&perShard, sql: sql, shards: shards, map: context.map)
        } catch {
            return self.refuse(Self.error(error), simpleQuery: true)
        }
        guard self.isReadyForGroup(shards) else { return false }
        let atomic = self.beginImplicitTransaction(plan: plan, analysis: analysis)
        let members = self.makeGroup(shards, primary: plan.needsPrimary || plan.isWrite,
                                     rows: Self.answersOnce(analysis) ? .firstShard : .concatenate,
                                     isWrite: plan.isWrite && self.transaction == nil, context: &context)
        if atomic { self.group?.combiner.holdsReadyForQuery = true }
        if plan.isWrite { self.orderWrites(members) }
        self.noteDispatch(Self.route(plan, shards: shards, shardCount: context.map.shards.count),
                          primary: plan.needsPrimary || plan.isWrite, context: context)
        var shared: ByteBuffer?
        for (index, member) in members.enumerated() {
            let bytes: ByteBuffer
            if let text = perShard?[shards[index]] {
                bytes = Self.query(text, allocator: self.allocator)
            } else if let shared {
                bytes = shared
            } else {
                var out = self.allocator.buffer(capacity: frame.wireLength)
                frame.write(into: &out)
                shared = out
                bytes = out
            }
            self.noteUnit(effect, plan: plan, lease: member, shard: shards[index])
            self.enqueue(.bytes(bytes, [.init(.query, .combine, hidesPosition: hidesPosition)]), to: member)
        }
        return true
    }

    /// On shards that hold a rebalance's copies (`ShardMap.copies`), the statement with those rows
    /// filtered out of its sharded tables (`CopyFilter`); `texts` gains the shards whose text changes.
    /// Costs nothing unless a rebalance is moving slots.
    static func filterCopies(_ texts: inout [Int: String]?, sql: String, shards: [Int], map: ShardMap) throws(RouteError) {
        guard !map.copies.isEmpty else { return }
        for shard in shards where map.copies[shard] != nil {
            let text = texts?[shard] ?? sql
            let filtered = try CopyFilter.rewrite(text, map: map, shard: shard)
            if filtered != text { texts = texts ?? [:]; texts![shard] = filtered }
        }
    }

    /// A write over several shards outside a transaction runs in one ShardGate opens around it (committed
    /// with two-phase commit, or rolled back on every shard), unless PostgreSQL refuses to run it in a
    /// transaction block. Returns whether it does.
    mutating func beginImplicitTransaction(plan: RoutePlan, analysis: SQLAnalysis) -> Bool {
        guard plan.isWrite, self.transaction == nil,
              !analysis.statements.contains(where: \.runsOutsideTransaction) else { return false }
        var transaction = Transaction(begin: "BEGIN", readOnly: false, answeredLocally: true)
        transaction.implicit = true
        self.transaction = transaction
        return true
    }

    /// Why a statement cannot run on several shards, if it cannot.
    func scatterRefusal(plan: RoutePlan, effect: SessionEffect) -> ErrorNoticeFields? {
        if effect.pins || effect.change != nil {
            return ProxyErrors.unsupported("a statement that changes session state and runs on several shards")
        }
        return nil
    }

    /// The shape of a read over several shards whose rows must be merged, not concatenated.
    func mergeNeeded(_ plan: RoutePlan) -> ResultShape? {
        guard !plan.isWrite, !plan.resultShape.isEmpty, plan.copyIn == nil else { return nil }
        return plan.resultShape
    }

    /// A read over several shards whose rows are merged: each shard runs the planner's rewritten SQL, and a
    /// ResultMerger turns their rows into the one result a single server would give.
    mutating func mergedQuery(sql: String, plan: RoutePlan, shards: [Int], shape: ResultShape, effect: SessionEffect,
                              hidesPosition: Bool, context: inout RoutingContext) -> Bool {
        let mergePlan: MergePlan
        let spec: MergeSpec
        do {
            mergePlan = try context.mergePlans.plan(sql)
            spec = try MergeSpec(plan: mergePlan)
        } catch {
            return self.refuse(Self.error(error), simpleQuery: true)
        }
        var filtered: [Int: String]?
        do {
            try Self.filterCopies(&filtered, sql: mergePlan.shardSQL, shards: shards, map: context.map)
        } catch {
            return self.refuse(Self.error(error), simpleQuery: true)
        }
        guard self.isReadyForGroup(shards) else { return false }
        let names = shards.map { $0 < self.shardNames.count ? self.shardNames[$0] : "shard \($0)" }
        let merger = ResultMerger(spec: spec, shardCount: shards.count, maxBufferedBytes: context.map.merge.maxBytes,
                                  collation: context.collation ?? Self.unknownCollation, shardNames: names)
        let combiner = ScatterCombiner(shardNames: names, merger: merger, spec: spec, allocator: self.allocator)
        let members = self.makeGroup(shards, primary: plan.needsPrimary, combiner: combiner, context: &context)
        self.noteDispatch(Self.route(plan, shards: shards, shardCount: context.map.shards.count),
                          primary: plan.needsPrimary, context: context)
        let bytes = Self.query(mergePlan.shardSQL, allocator: self.allocator)
        for (index, member) in members.enumerated() {
            self.noteUnit(effect, plan: plan, lease: member, shard: shards[index])
            let text = filtered?[shards[index]].map { Self.query($0, allocator: self.allocator) }
            self.enqueue(.bytes(text ?? bytes, [.init(.query, .combine, hidesPosition: hidesPosition)]), to: member)
        }
        return true
    }

    /// Before the databases' collation is known, merges that order text fail with 0A000 naming why.
    static let unknownCollation = TextCollation("(not known yet: no shard has answered ShardGate's question for it)")

    static func describe(_ shape: ResultShape) -> String {
        var parts: [String] = []
        if shape.contains(.orderBy) { parts.append("ORDER BY") }
        if shape.contains(.limit) { parts.append("LIMIT/OFFSET") }
        if shape.contains(.aggregate) { parts.append("aggregates") }
        if shape.contains(.groupBy) { parts.append("GROUP BY/HAVING") }
        if shape.contains(.distinct) { parts.append("DISTINCT") }
        if shape.contains(.window) { parts.append("window functions") }
        if shape.contains(.setOperation) { parts.append("UNION/INTERSECT/EXCEPT") }
        return parts.joined(separator: ", ")
    }

    /// DDL and reference-table writes do the same on every shard: a single server would answer once.
    static func answersOnce(_ analysis: SQLAnalysis) -> Bool {
        analysis.statements.allSatisfy { statement in
            switch statement.kind {
            case .ddl, .utility:
                return true
            case .write:
                let written = statement.occurrences.filter { $0.role == .written }
                return !written.isEmpty && written.allSatisfy { $0.placement == .reference }
            case .read, .transaction, .set, .reset, .show, .empty:
                return false
            }
        }
    }

    /// Feeds one member's message into the combiner and passes its output on.
    mutating func combine(member: Int, kind: ResponseTracker.Expected.Kind, id: UInt8, payload: ByteBuffer) {
        guard var group = self.group else { return }
        self.group = nil
        let output = group.combiner.receive(member: member, kind: kind, id: id, payload: payload)
        self.group = group
        if output.bytes.readableBytes > 0 { self.emit(.send(output.bytes)) }
        for index in output.pause { self.emit(.pauseReading(group.members[index])) }
        for index in output.resume { self.emit(.resumeReading(group.members[index])) }
    }
}
