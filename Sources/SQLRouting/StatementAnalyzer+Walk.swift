import ShardMap

extension StatementAnalyzer {
    /// What a walked SELECT tells its caller.
    struct SelectSummary {
        var shape: ResultShape = []
        /// The occurrence whose shard key is the single output column (`SELECT user_id FROM orders ...`).
        var keyTarget: Int?
    }

    // MARK: - SELECT

    /// Walks a SelectStmt body in a new scope.
    mutating func walkSelect(_ s: Int) -> SelectSummary {
        let pushedCTEs = pushCTEs(s)
        defer { if pushedCTEs { cteFrames.removeLast() } }
        shapes.append([])
        var summary = SelectSummary()
        if let op = tree.string(s, "op"), op != "SETOP_NONE" {
            shapes[shapes.count - 1].insert(.setOperation)
            // The branches are SelectStmt bodies (not node wrappers).
            for branch in [tree.member(s, "larg"), tree.member(s, "rarg")] {
                guard let branch else { continue }
                _ = walkNestedSelect(branch, correlatable: false)
            }
            for field: StaticString in ["sortClause", "limitCount", "limitOffset"] {
                if let value = tree.member(s, field) { walkExpression(value) }
            }
        } else {
            scopes.append([])
            for item in tree.elements(s, "fromClause") { _ = walkFromItem(item) }
            if let condition = tree.member(s, "whereClause") {
                walkExpression(condition)
                applyConstraints(condition, restricting: currentScopeOccurrences)
            }
            for field: StaticString in ["targetList", "groupClause", "havingClause", "windowClause",
                                        "distinctClause", "valuesLists", "sortClause", "limitCount", "limitOffset"] {
                if let value = tree.member(s, field) { walkExpression(value) }
            }
            let targets = Array(tree.elements(s, "targetList"))
            if targets.count == 1, let (_, target) = tree.node(targets[0]), let value = tree.member(target, "val") {
                summary.keyTarget = keyColumnOccurrence(value)
            }
            scopes.removeLast()
        }
        var shape = shapes.removeLast()
        if tree.member(s, "sortClause") != nil { shape.insert(.orderBy) }
        if tree.member(s, "limitCount") != nil || tree.member(s, "limitOffset") != nil { shape.insert(.limit) }
        if tree.member(s, "groupClause") != nil || tree.member(s, "havingClause") != nil { shape.insert(.groupBy) }
        if tree.member(s, "distinctClause") != nil { shape.insert(.distinct) }
        if tree.member(s, "windowClause") != nil { shape.insert(.window) }
        if tree.member(s, "lockingClause") != nil { analysis.locksRows = true }
        summary.shape = shape
        return summary
    }

    /// Makes the WITH clause's names visible (as PostgreSQL does: each CTE sees the earlier ones, all of
    /// them under RECURSIVE) and walks the CTE bodies.
    mutating func pushCTEs(_ s: Int) -> Bool {
        guard let with = tree.member(s, "withClause") else { return false }
        let recursive = tree.bool(with, "recursive")
        var names: [String] = []
        var bodies: [Int] = []
        for cte in tree.elements(with, "ctes") {
            guard let (_, body) = tree.node(cte), let name = tree.string(body, "ctename") else { continue }
            names.append(name)
            bodies.append(body)
        }
        cteFrames.append(recursive ? names : [])
        for (name, body) in zip(names, bodies) {
            if let query = tree.member(body, "ctequery"), let (key, inner) = tree.node(query) {
                _ = analyzeStatement(type: tree.string(key), body: inner, top: false)
            }
            if !recursive { cteFrames[cteFrames.count - 1].append(name) }
        }
        return true
    }

    var currentScopeOccurrences: [Int] {
        scopes.last?.compactMap(\.occurrence) ?? []
    }

    /// Walks a FROM item; returns the table occurrences it brought into scope.
    mutating func walkFromItem(_ item: Int) -> [Int] {
        guard let (typeKey, body) = tree.node(item) else { return [] }
        if tree.equals(typeKey, "RangeVar") {
            return addOccurrence(body, role: .read).map { [$0] } ?? []
        }
        if tree.equals(typeKey, "JoinExpr") {
            let left = tree.member(body, "larg").map { walkFromItem($0) } ?? []
            let right = tree.member(body, "rarg").map { walkFromItem($0) } ?? []
            // Which side's rows an ON condition restricts: both for inner joins, only the nullable side
            // of an outer join (the preserved side keeps every row).
            let restricted: [Int]
            switch tree.string(body, "jointype") {
            case "JOIN_LEFT": restricted = right
            case "JOIN_RIGHT": restricted = left
            case "JOIN_FULL": restricted = []
            default: restricted = left + right
            }
            if let quals = tree.member(body, "quals") {
                walkExpression(quals)
                applyConstraints(quals, restricting: restricted)
            }
            for column in tree.elements(body, "usingClause") {
                guard let (_, string) = tree.node(column), let name = tree.string(string, "sval") else { continue }
                let l = left.filter { shardKey(of: $0)?.key == name }
                let r = right.filter { shardKey(of: $0)?.key == name }
                if l.count == 1, r.count == 1 { addKeyJoin(l[0], r[0], restricted: restricted) }
            }
            if let alias = tree.member(body, "alias").flatMap({ tree.string($0, "aliasname") }) {
                scopes[scopes.count - 1].append(RangeEntry(name: alias, occurrence: nil))
            }
            return left + right
        }
        if tree.equals(typeKey, "RangeSubselect") {
            if let query = tree.member(body, "subquery"), let (_, select) = tree.node(query) {
                // A LATERAL subquery joined to its outer rows by shard key runs per key, like a sublink.
                _ = walkNestedSelect(select, correlatable: tree.bool(body, "lateral"))
            }
        } else if tree.equals(typeKey, "RangeTableSample") {
            if let relation = tree.member(body, "relation") { return walkFromItem(relation) }
        } else {
            walkExpression(body)
        }
        if let alias = tree.member(body, "alias").flatMap({ tree.string($0, "aliasname") }) {
            scopes[scopes.count - 1].append(RangeEntry(name: alias, occurrence: nil))
        }
        return []
    }

    // MARK: - INSERT / UPDATE / DELETE / MERGE

    mutating func walkModification(type: String, body s: Int) {
        writes = true
        let pushedCTEs = pushCTEs(s)
        defer { if pushedCTEs { cteFrames.removeLast() } }
        scopes.append([])
        defer { scopes.removeLast() }
        guard let relation = tree.member(s, "relation"), let target = addOccurrence(relation, role: .written) else {
            return
        }
        let key = shardKey(of: target)
        let table = analysis.occurrences[target].table.mapName
        switch type {
        case "InsertStmt":
            walkInsert(s, target: target, key: key, table: table)
        case "UpdateStmt":
            for item in tree.elements(s, "fromClause") { _ = walkFromItem(item) }
            for assignment in tree.elements(s, "targetList") {
                guard let (_, target) = tree.node(assignment) else { continue }
                if let key, tree.string(target, "name") == key.key { analysis.updatedShardKey = table }
                walkExpression(target)
            }
            if let condition = tree.member(s, "whereClause") {
                walkExpression(condition)
                applyConstraints(condition, restricting: currentScopeOccurrences)
            }
        case "DeleteStmt":
            for item in tree.elements(s, "usingClause") { _ = walkFromItem(item) }
            if let condition = tree.member(s, "whereClause") {
                walkExpression(condition)
                applyConstraints(condition, restricting: currentScopeOccurrences)
            }
        default: // MergeStmt
            if let source = tree.member(s, "sourceRelation") { _ = walkFromItem(source) }
            for field: StaticString in ["joinCondition", "mergeWhenClauses"] {
                if let value = tree.member(s, field) { walkExpression(value) }
            }
            if key != nil { analysis.unsupported = "MERGE into sharded table \"\(table)\"" }
        }
        if let returning = tree.member(s, "returningList") { walkExpression(returning) }
    }

    private mutating func walkInsert(_ s: Int, target: Int, key: (key: String, type: ShardKeyType)?, table: String) {
        var columns: [String] = []
        for column in tree.elements(s, "cols") {
            if let (_, resTarget) = tree.node(column) { columns.append(tree.string(resTarget, "name") ?? "") }
        }
        let keyIndex = key.flatMap { key in columns.firstIndex(of: key.key) }
        if let key, keyIndex == nil {
            analysis.unsupported = columns.isEmpty
                ? "INSERT into sharded table \"\(table)\" without a column list (name the columns, including \"\(key.key)\")"
                : "INSERT into sharded table \"\(table)\" that does not set its shard key \"\(key.key)\""
        }
        if let select = tree.member(s, "selectStmt"), let (_, body) = tree.node(select) {
            let isValues = tree.member(body, "valuesLists") != nil && tree.member(body, "fromClause") == nil
                && (tree.string(body, "op") ?? "SETOP_NONE") == "SETOP_NONE"
            if isValues {
                var rows: [KeyValueSource?] = []
                for row in tree.elements(body, "valuesLists") {
                    let items = tree.node(row).map { Array(tree.elements($0.body, "items")) } ?? []
                    for item in items { walkExpression(item) }
                    if let key, let keyIndex {
                        rows.append(keyIndex < items.count ? keyValue(items[keyIndex], type: key.type) : nil)
                    }
                }
                if key != nil, keyIndex != nil { analysis.occurrences[target].insertRows = rows }
            } else {
                if key != nil, keyIndex != nil {
                    analysis.unsupported = "INSERT ... SELECT into sharded table \"\(table)\" (rows would have to be "
                        + "split by shard key); insert with VALUES"
                }
                _ = walkNestedSelect(body, correlatable: false)
            }
        } else if let key {
            analysis.unsupported = "INSERT ... DEFAULT VALUES into sharded table \"\(table)\" (no shard key \"\(key.key)\")"
        }
        if let conflict = tree.member(s, "onConflictClause") {
            for assignment in tree.elements(conflict, "targetList") {
                guard let (_, resTarget) = tree.node(assignment) else { continue }
                if let key, tree.string(resTarget, "name") == key.key { analysis.updatedShardKey = table }
            }
            walkExpression(conflict)
        }
    }

    // MARK: - Expressions

    /// Walks an expression (or any subtree) for subqueries, nested statements, table references and
    /// aggregate/window calls.
    mutating func walkExpression(_ i: Int) {
        switch tree.kind(i) {
        case .array:
            for element in tree.elements(i) { walkExpression(element) }
        case .object:
            guard let (typeKey, body) = tree.node(i), isNodeName(typeKey) else {
                for (_, value) in tree.members(i) { walkExpression(value) }
                return
            }
            let type = tree.string(typeKey)
            switch type {
            case "ColumnRef", "A_Const", "ParamRef", "String", "Integer", "Float":
                return
            case "SubLink":
                walkSubLink(body)
            case "SelectStmt":
                _ = walkNestedSelect(body, correlatable: false)
            case "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt":
                walkModification(type: type, body: body)
            case "RangeVar":
                addOccurrence(body, role: .read)
            case "FuncCall":
                noteFunctionCall(body)
                for (_, value) in tree.members(body) { walkExpression(value) }
            default:
                for (_, value) in tree.members(body) { walkExpression(value) }
            }
        default:
            return
        }
    }

    private func isNodeName(_ key: Int) -> Bool {
        let first = tree.bytes[Int(tree.entries[key].start)]
        return first >= UInt8(ascii: "A") && first <= UInt8(ascii: "Z")
    }

    private mutating func walkSubLink(_ body: Int) {
        if let test = tree.member(body, "testexpr") { walkExpression(test) }
        guard let query = tree.member(body, "subselect"), let (_, select) = tree.node(query) else { return }
        let mark = NestedMark(occurrences: analysis.occurrences.count, joins: analysis.keyJoins.count)
        let summary = walkSelect(select)
        if tree.string(body, "subLinkType") == "ANY_SUBLINK", isEqualityOperator(body, field: "operName"),
           let test = tree.member(body, "testexpr"), let outer = keyColumnOccurrence(test),
           let inner = summary.keyTarget, shardKey(of: outer)?.type == shardKey(of: inner)?.type {
            // `outer.key IN (SELECT inner.key ...)`: a key join if it turns out to be a top-level AND
            // condition (see `applyConstraints`); its shape is recorded when the statement is done.
            let shape = nestedShapeToRecord(mark, shape: summary.shape, correlatable: true)
            keySubLinks[body] = KeySubLink(outer: outer, inner: inner, shape: shape)
        } else {
            finishNested(mark, shape: summary.shape, correlatable: true)
        }
    }

    /// Records the shapes of `key IN (SELECT key ...)` subqueries: as a key join per shard, such a
    /// subquery is exact when grouped or aggregated by key, not when limited or windowed.
    mutating func recordKeySubLinkShapes() {
        for link in keySubLinks.values {
            analysis.nestedShape.formUnion(link.joined ? link.shape.intersection([.limit, .window, .setOperation])
                                                      : link.shape)
        }
    }

    /// Where a nested SELECT's occurrences and key joins begin.
    struct NestedMark {
        var occurrences: Int
        var joins: Int
    }

    /// Walks a nested SELECT (subquery, CTE body, set-operation branch).
    mutating func walkNestedSelect(_ s: Int, correlatable: Bool) -> SelectSummary {
        let mark = NestedMark(occurrences: analysis.occurrences.count, joins: analysis.keyJoins.count)
        let summary = walkSelect(s)
        finishNested(mark, shape: summary.shape, correlatable: correlatable)
        return summary
    }

    /// Records a nested SELECT's shape where it matters for a scatter: when it reads sharded tables and
    /// is not correlated to its outer query by shard key (`correlatable`: sublinks and LATERAL
    /// subqueries, which run per outer row, so per key, on the key's shard).
    private mutating func finishNested(_ mark: NestedMark, shape: ResultShape, correlatable: Bool) {
        analysis.nestedShape.formUnion(nestedShapeToRecord(mark, shape: shape, correlatable: correlatable))
    }

    private func nestedShapeToRecord(_ mark: NestedMark, shape: ResultShape, correlatable: Bool) -> ResultShape {
        let readsSharded = analysis.occurrences[mark.occurrences...].contains {
            if case .sharded = $0.placement { return true }
            return false
        }
        let correlated = correlatable && analysis.keyJoins[mark.joins...].contains {
            min($0.left, $0.right) < mark.occurrences && max($0.left, $0.right) >= mark.occurrences
        }
        return readsSharded && !correlated ? shape : []
    }

    /// PostgreSQL's built-in aggregates.
    static let aggregateNames: Set<String> = [
        "count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and", "bool_or", "every",
        "bit_and", "bit_or", "bit_xor", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg", "xmlagg",
        "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "covar_pop", "covar_samp", "corr",
        "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy",
        "regr_syy", "percentile_cont", "percentile_disc", "mode", "range_agg", "range_intersect_agg",
    ]

    private mutating func noteFunctionCall(_ body: Int) {
        var function = ""
        for part in tree.elements(body, "funcname") {
            if let (_, string) = tree.node(part) { function = tree.string(string, "sval") ?? "" }
        }
        if function == "set_config" {
            analysis.callsSetConfig = true
        }
        // Session-level advisory locks outlive the transaction (the _xact_ variants do not).
        if (function.hasPrefix("pg_advisory_lock") || function.hasPrefix("pg_try_advisory_lock")) {
            analysis.createsSessionObject = true
        }
        guard !shapes.isEmpty else { return }
        if tree.member(body, "over") != nil {
            shapes[shapes.count - 1].insert(.window)
            return
        }
        let name = function
        if Self.aggregateNames.contains(name) || tree.bool(body, "agg_star") || tree.bool(body, "agg_distinct")
            || tree.member(body, "agg_order") != nil || tree.member(body, "agg_filter") != nil
            || tree.bool(body, "agg_within_group") {
            shapes[shapes.count - 1].insert(.aggregate)
        }
    }
}
