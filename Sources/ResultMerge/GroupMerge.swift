import NIOCore
import PGWire

/// Aggregate and GROUP BY merges: every shard row (one partial group) is folded into its merged group;
/// when every shard has finished, HAVING, DISTINCT, ORDER BY and OFFSET/LIMIT run over the merged
/// groups, whose rows are then handed out one at a time.
struct GroupMerge {
    struct Group {
        /// The group's first row (copied), for the group keys and the columns equal within a group.
        var representative: DataRow?
        var states: [AggregateState]
    }

    private let spec: MergeSpec
    private let layout: MergeLayout
    private let keyColumns: [(index: Int, decoder: ValueDecoder)]
    private let aggregates: [ResolvedAggregate]
    /// Merged column types (aggregates' result types) for HAVING, DISTINCT and ORDER BY.
    private let finalTypes: [UInt32]
    private let having: HavingEvaluator?
    private let sort: SortKeyComparator
    private let distinct: DistinctMode?
    let clientDescription: RowDescription
    private let extraFloatDigits: Int

    private var index: [[MergeValue]: Int] = [:]
    private var groups: [Group] = []
    private(set) var bufferedBytes = 0

    /// After `finish`: the rows to hand out.
    private var finalRows: [DataRow] = []
    private var cursor = 0
    private(set) var isFinalized = false
    private(set) var emittedCount = 0

    enum DistinctMode {
        case rows
        case on([Int])
    }

    init(
        spec: MergeSpec, grouping: MergeGrouping, layout: MergeLayout, description: RowDescription,
        loader: inout CollationLoader
    ) throws(MergeError) {
        self.spec = spec
        self.layout = layout
        extraFloatDigits = spec.extraFloatDigits
        var keys: [(Int, ValueDecoder)] = []
        for column in grouping.keys {
            let i = try layout.index(column)
            guard let kind = ValueKind(oid: layout.shardTypes[i]) else {
                throw MergeError.unsupported("GROUP BY a column of type \(ValueKind.name(oid: layout.shardTypes[i])) "
                    + "across shards", detail: "Column \(i + 1) has a type ShardGate cannot compare.")
            }
            keys.append((i, ValueDecoder(kind: kind, binary: layout.binary[i], terminateText: false,
                                         oid: layout.shardTypes[i], column: i)))
        }
        keyColumns = keys
        aggregates = try Self.resolveAggregates(grouping.aggregates, layout: layout, loader: &loader)
        var types = layout.shardTypes
        for aggregate in aggregates { types[aggregate.index] = aggregate.outputType }
        finalTypes = types
        having = try grouping.having.map { p throws(MergeError) in
            try HavingEvaluator(p, layout: layout, types: types, loader: &loader)
        }
        var sortKeys: [ResolvedSortKey] = []
        for key in spec.sortKeys {
            let i = try layout.index(key.column)
            let (decoder, comparator) = try loader.resolve(oid: types[i], binary: layout.binary[i], index: i,
                                                           collation: key.collation, purpose: "ORDER BY")
            sortKeys.append(ResolvedSortKey(index: i, decoder: decoder, comparator: comparator,
                                            descending: key.descending, nullsFirst: key.nullsFirst))
        }
        sort = SortKeyComparator(keys: sortKeys)
        switch spec.distinct {
        case nil: distinct = nil
        case .rows?: distinct = .rows
        case .on(let columns)?:
            var indexes: [Int] = []
            for column in columns { indexes.append(try layout.index(column)) }
            distinct = .on(indexes)
        }
        clientDescription = Self.clientDescription(description, layout: layout, aggregates: aggregates)
        if !grouping.hasGroupBy {
            // One group, even over no rows: count() is 0, the others NULL.
            index[[]] = 0
            groups.append(Group(representative: nil, states: aggregates.map { $0.initialState() }))
        }
    }

    /// The visible columns, with the result types of DISTINCT aggregates (whose shard columns hold the
    /// argument values).
    static func clientDescription(
        _ description: RowDescription, layout: MergeLayout, aggregates: [ResolvedAggregate]
    ) -> RowDescription {
        var columns = Array(description.columns.prefix(layout.visibleCount))
        for aggregate in aggregates where aggregate.index < layout.visibleCount {
            guard case .distinct = aggregate.input else { continue }
            var column = columns[aggregate.index]
            column.name = aggregate.outputName ?? column.name
            column.dataTypeOID = aggregate.outputType
            column.dataTypeSize = aggregate.outputSize
            column.dataTypeModifier = -1
            column.tableOID = 0
            column.columnAttributeNumber = 0
            columns[aggregate.index] = column
        }
        return RowDescription(columns: columns)
    }

    // MARK: - Folding

    mutating func add(_ columns: RowColumns, row: DataRow, limit: Int) throws(MergeError) {
        var key: [MergeValue] = []
        key.reserveCapacity(keyColumns.count)
        for (i, decoder) in keyColumns { key.append(try decoder.decode(columns[i])) }
        let slot: Int
        if let existing = index[key] {
            slot = existing
        } else {
            slot = groups.count
            index[key] = slot
            groups.append(Group(representative: nil, states: aggregates.map { $0.initialState() }))
            bufferedBytes += 96 + aggregates.count * 24 + key.count * 24
        }
        if groups[slot].representative == nil {
            // Copied: a slice would keep the shard's whole read buffer alive.
            groups[slot].representative = DataRow(columnCount: row.columnCount, bytes: ByteBuffer(bytes: row.bytes.readableBytesView))
            bufferedBytes += row.bytes.readableBytes * 2
        }
        for (a, aggregate) in aggregates.enumerated() {
            bufferedBytes += try groups[slot].states[a].fold(aggregate, columns, binary: layout.binary)
        }
        if bufferedBytes > limit { throw MergeError.bufferLimit(limit) }
    }

    // MARK: - Finishing

    /// Computes every group's result, applies HAVING, DISTINCT, ORDER BY, OFFSET and LIMIT.
    mutating func finish(limit: Int) throws(MergeError) {
        var rows: [(keys: [MergeValue], values: [ByteBuffer?])] = []
        rows.reserveCapacity(groups.count)
        var seen: Set<[MergeValue]> = []
        let distinctDecoders = try distinctDecoders()
        for g in groups.indices {
            let group = groups[g]
            var values: [ByteBuffer?]
            if let representative = group.representative {
                values = try RowColumns(representative, expected: layout.columnCount).values
            } else {
                values = Array(repeating: nil, count: layout.columnCount)
            }
            for (a, aggregate) in aggregates.enumerated() {
                values[aggregate.index] = try group.states[a].finish(aggregate, extraFloatDigits: extraFloatDigits)
            }
            groups[g] = Group(representative: nil, states: []) // release as we go
            if let having, try !having.passes(values) { continue }
            if let distinctDecoders {
                var key: [MergeValue] = []
                for (i, decoder) in distinctDecoders { key.append(try decoder.decode(values[i])) }
                guard seen.insert(key).inserted else { continue }
            }
            var keys: [MergeValue] = []
            for key in sort.keys { keys.append(try key.decoder.decode(values[key.index])) }
            rows.append((keys, values))
        }
        groups = []
        index = [:]
        if !sort.isEmpty {
            // Stable, so that equal keys keep the groups' first-seen order.
            let order = rows.indices.sorted { a, b in
                let c = sort.compare(rows[a].keys, rows[b].keys)
                return c != 0 ? c < 0 : a < b
            }
            rows = order.map { rows[$0] }
        }
        var limiter = RowLimiter(offset: spec.offset, limit: spec.limit, withTies: spec.withTies && !sort.isEmpty)
        for row in rows where !limiter.isSatisfied {
            guard limiter.admit(row.keys, sort: sort) else { continue }
            finalRows.append(DataRow(values: Array(row.values.prefix(layout.visibleCount))))
        }
        isFinalized = true
    }

    private func distinctDecoders() throws(MergeError) -> [(Int, ValueDecoder)]? {
        let columns: [Int]
        switch distinct {
        case nil: return nil
        case .rows?: columns = Array(0..<layout.visibleCount)
        case .on(let indexes)?: columns = indexes
        }
        var decoders: [(Int, ValueDecoder)] = []
        for i in columns {
            guard let kind = ValueKind(oid: finalTypes[i]) else {
                throw MergeError.unsupported("DISTINCT on a column of type \(ValueKind.name(oid: finalTypes[i])) across shards")
            }
            decoders.append((i, ValueDecoder(kind: kind, binary: layout.binary[i], terminateText: false,
                                             oid: finalTypes[i], column: i)))
        }
        return decoders
    }

    /// The next row for the client, nil when all are out.
    mutating func nextRow() -> DataRow? {
        guard cursor < finalRows.count else {
            finalRows = []
            return nil
        }
        let row = finalRows[cursor]
        cursor += 1
        emittedCount += 1
        return row
    }

    // MARK: - Resolving aggregates

    static func resolveAggregates(
        _ specs: [MergeAggregate], layout: MergeLayout, loader: inout CollationLoader
    ) throws(MergeError) -> [ResolvedAggregate] {
        var result: [ResolvedAggregate] = []
        for aggregate in specs { result.append(try resolve(aggregate, layout: layout, loader: &loader)) }
        return result
    }

    private static func resolve(
        _ a: MergeAggregate, layout: MergeLayout, loader: inout CollationLoader
    ) throws(MergeError) -> ResolvedAggregate {
        let i = try layout.index(a.column)
        let oid = layout.shardTypes[i]
        let binary = layout.binary[i]
        let typeName = ValueKind.name(oid: oid)
        func make(_ input: ResolvedAggregate.Input, _ type: UInt32, _ size: Int16) -> ResolvedAggregate {
            ResolvedAggregate(index: i, input: input, outputType: type, outputSize: size, binary: binary,
                              outputName: a.outputName)
        }
        let kind = ValueKind(oid: oid)
        if a.isDistinct, a.function == .count || a.function == .sum || a.function == .avg {
            guard let kind else {
                throw MergeError.unsupported("\(a.function.rawValue)(DISTINCT ...) of type \(typeName) across shards")
            }
            let decoder = ValueDecoder(kind: kind, binary: binary, terminateText: false, oid: oid, column: i)
            let input = ResolvedAggregate.Input.distinct(a.function, kind, decoder)
            switch (a.function, kind) {
            case (.count, _): return make(input, 20, 8)
            case (.sum, .int2), (.sum, .int4): return make(input, 20, 8)
            case (.sum, .int8), (.sum, .numeric), (.avg, .int2), (.avg, .int4), (.avg, .int8), (.avg, .numeric):
                return make(input, 1700, -1)
            case (.sum, .float4): return make(input, 700, 4)
            case (.sum, .float8), (.avg, .float4), (.avg, .float8): return make(input, 701, 8)
            default:
                throw MergeError.unsupported("\(a.function.rawValue)(DISTINCT ...) of type \(typeName) across shards")
            }
        }
        switch a.function {
        case .count:
            guard oid == 20 else { throw MergeError.internalError("count() column \(i + 1) is \(typeName), not bigint") }
            return make(.count, 20, 8)
        case .sum:
            guard let kind, [.int8, .numeric, .float4, .float8].contains(kind) else {
                throw MergeError.unsupported("sum() of type \(typeName) across shards")
            }
            return make(.sum(kind), oid, kind == .numeric ? -1 : (kind == .float4 ? 4 : 8))
        case .avg:
            guard let sumColumn = a.sumColumn, let countColumn = a.countColumn else {
                throw MergeError.internalError("avg() without its sum and count columns")
            }
            let s = try layout.index(sumColumn), c = try layout.index(countColumn)
            guard layout.shardTypes[c] == 20 else { throw MergeError.internalError("avg()'s count column is not bigint") }
            switch (oid, layout.shardTypes[s]) {
            case (1700, 20): return make(.avgNumeric(sum: s, count: c, sumKind: .int8), 1700, -1)
            case (1700, 1700): return make(.avgNumeric(sum: s, count: c, sumKind: .numeric), 1700, -1)
            case (701, 701): return make(.avgFloat8(sum: s, count: c), 701, 8)
            case (701, 700): return make(.avgFloat4(count: c), 701, 8)
            default: throw MergeError.unsupported("avg() of type \(typeName) across shards")
            }
        case .min, .max:
            let (decoder, comparator) = try loader.resolve(oid: oid, binary: binary, index: i, collation: nil,
                                                           purpose: "\(a.function.rawValue)()")
            return make(.extreme(isMax: a.function == .max, decoder: decoder, comparator: comparator), oid, -2)
        case .boolAnd, .boolOr:
            guard oid == 16 else { throw MergeError.unsupported("\(a.function.rawValue)() of type \(typeName) across shards") }
            return make(a.function == .boolAnd ? .boolAnd : .boolOr, 16, 1)
        }
    }
}
