extension MergePlanBuilder {
    /// Where an aggregate call is in the tokens.
    struct AggregateCall {
        var function: MergePlan.AggregateFunction
        var name: String
        /// count/sum/avg DISTINCT (DISTINCT does not change min, max, bool_and, bool_or).
        var isDistinct: Bool
        /// The whole call, FILTER included.
        var tokens: Range<Int>
        /// The function name's token.
        var nameToken: Int
        /// The argument's tokens (after DISTINCT).
        var argument: Range<Int>?
        /// The argument node.
        var argumentNode: Int?
        /// The FILTER condition's tokens.
        var filter: Range<Int>?
        var fingerprint: String
    }

    /// Reads an aggregate call and refuses those the merger cannot combine exactly.
    func aggregateCall(_ call: Int) throws(RouteError) -> AggregateCall {
        let parts = tree.names(tree.member(call, "funcname"))
        let name = parts.last ?? ""
        if parts.count > 1, parts[parts.count - 2] != "pg_catalog" {
            throw RouteError.unsupported("the aggregate \(parts.joined(separator: "."))() across shards")
        }
        guard let function = Self.mergeableAggregates[name] else {
            throw RouteError.unsupported("the aggregate \(name)() across shards (ShardGate merges count, sum, avg, min, "
                + "max, bool_and, bool_or and every)")
        }
        if tree.member(call, "agg_order") != nil {
            throw RouteError.unsupported("ORDER BY inside the aggregate \(name)() across shards")
        }
        if tree.bool(call, "agg_within_group") || tree.bool(call, "func_variadic") {
            throw RouteError.unsupported("this call of the aggregate \(name)() across shards")
        }
        let arguments = Array(tree.elements(call, "args"))
        let star = tree.bool(call, "agg_star")
        guard star ? function == .count && arguments.isEmpty : arguments.count == 1 else {
            throw RouteError.unsupported("the aggregate \(name)() with \(arguments.count) arguments across shards")
        }
        guard let location = tree.int(call, "location"), let start = token(at: location) else {
            throw RouteError.unsupported("the aggregate \(name)() across shards (ShardGate could not locate it)")
        }
        var k = start
        while k < tokens.count, [.word, .quotedIdentifier, .dot].contains(tokens[k].kind) { k += 1 }
        guard k < tokens.count, tokens[k].kind == .openParen, k > start, let close = matchingClose(k) else {
            throw RouteError.unsupported("the aggregate \(name)() across shards (ShardGate could not locate it)")
        }
        var end = close + 1
        var filter: Range<Int>?
        if word(end) == "filter", end + 1 < tokens.count, tokens[end + 1].kind == .openParen,
           let filterClose = matchingClose(end + 1) {
            var condition = (end + 2)..<filterClose
            if word(condition.lowerBound) == "where" { condition = (condition.lowerBound + 1)..<condition.upperBound }
            filter = condition
            end = filterClose + 1
        }
        var argument: Range<Int>? = (k + 1)..<close
        let distinct = tree.bool(call, "agg_distinct")
        if distinct || word(k + 1) == "all", let range = argument {
            argument = (range.lowerBound + 1)..<range.upperBound
        }
        if star { argument = nil }
        let isDistinct = distinct && (function == .count || function == .sum || function == .avg)
        if isDistinct, let node = arguments.first, tree.isNode(node, "A_Const") {
            throw RouteError.unsupported("\(name)(DISTINCT <constant>) across shards")
        }
        return AggregateCall(function: function, name: name, isDistinct: isDistinct, tokens: start..<end, nameToken: k - 1,
                             argument: argument, argumentNode: arguments.first, filter: filter,
                             fingerprint: tree.fingerprint(call))
    }

    /// The call's text with another function name (`avg(x) FILTER (...)` → `sum(x) FILTER (...)`).
    func renamed(_ call: AggregateCall, to name: String) -> String {
        text(bytes: tokens[call.tokens.lowerBound].start..<tokens[call.nameToken].start) + name
            + text(bytes: tokens[call.nameToken].end..<tokens[call.tokens.upperBound - 1].end)
    }

    /// What the shards return for a DISTINCT aggregate: the argument (NULL where FILTER fails).
    func distinctValueText(_ call: AggregateCall) -> String {
        let argument = call.argument.map { text($0) } ?? ""
        guard let filter = call.filter else { return argument }
        return "CASE WHEN (\(text(filter))) THEN (\(argument)) END"
    }

    // MARK: - Aggregate queries

    /// GROUP BY, aggregates, HAVING, ORDER BY, DISTINCT and LIMIT of an aggregate query: the shards return
    /// partial groups, the merger combines them and does the rest.
    mutating func planGrouped(_ plan: inout MergePlan) throws(RouteError) {
        var state = GroupedState()
        // GROUP BY
        let groupItems = Array(tree.elements(select, "groupClause"))
        if tree.bool(select, "groupDistinct") {
            throw RouteError.unsupported("GROUP BY DISTINCT across shards")
        }
        var groupPieces: [Range<Int>] = []
        if !groupItems.isEmpty {
            guard var range = clauses.groupBy else {
                throw RouteError.unsupported("this GROUP BY across shards (ShardGate could not locate it)")
            }
            if word(range.lowerBound) == "all" { range = (range.lowerBound + 1)..<range.upperBound }
            groupPieces = MergeClauses.split(range, depth: 0, tokens: tokens)
            guard groupPieces.count == groupItems.count, !groupPieces.contains(where: \.isEmpty) else {
                throw RouteError.unsupported("this GROUP BY across shards (ShardGate could not locate its items)")
            }
        }
        for (item, piece) in zip(groupItems, groupPieces) {
            if tree.isNode(item, "GroupingSet") {
                throw RouteError.unsupported("GROUPING SETS, ROLLUP or CUBE across shards")
            }
            let slot: Slot
            if let ref = tree.body(item, "ColumnRef"), case let parts = tree.names(tree.member(ref, "fields")),
               parts.count == 1, let index = targets.firstIndex(where: { $0.alias == parts[0] }) {
                // A GROUP BY name that is an output column's alias (PostgreSQL prefers an input column of
                // that name; a query for which that matters is ambiguous to read anyway).
                slot = .target(index)
            } else if let found = try outputReference(item, piece: piece, allowNames: false, clause: "GROUP BY") {
                if case .target(let index) = found, targets[index].hasAggregate {
                    throw RouteError(sqlState: "42803", message: "aggregate functions are not allowed in GROUP BY")
                }
                slot = found
            } else {
                slot = try hiddenColumn(text(piece), fingerprint: tree.fingerprint(item))
            }
            state.keys.append(slot)
            state.keyFingerprints[tree.fingerprint(item)] = slot
        }
        // The select list
        for index in targets.indices where targets[index].hasAggregate {
            guard let call = tree.body(targets[index].value, "FuncCall"), tree.isAggregateCall(call) else {
                throw RouteError.unsupported("an expression over aggregate results (\(text(targets[index].expression))) "
                    + "across shards; select the aggregate itself")
            }
            let parsed = try aggregateCall(call)
            try addAggregate(parsed, at: .target(index), outputName: targets[index].alias ?? parsed.name, state: &state)
        }
        // ORDER BY: the merger sorts the merged groups, the shards need not.
        for (item, piece) in zip(tree.elements(select, "sortClause"), try sortPieces()) {
            let options = try sortOptions(item, piece: piece)
            let slot = try groupedReference(options.node, piece: options.expression, allowNames: true, state: &state)
            pendingSort.append((slot, options))
        }
        // HAVING: evaluated by the merger; the shards keep it only for its parameters' types.
        if let having = tree.member(select, "havingClause") {
            state.having = try predicate(having, state: &state)
        }
        if state.hasDistinctAggregate, groupItems.isEmpty,
           targets.contains(where: { !$0.hasAggregate }) {
            throw RouteError.unsupported("a column that is not an aggregate next to count/sum/avg(DISTINCT ...) "
                + "without GROUP BY across shards")
        }
        if tree.member(select, "distinctClause") != nil {
            guard distinctIsRows else { throw RouteError.unsupported("DISTINCT ON with aggregates across shards") }
            pendingDistinct = .rows
        }
        try rewriteGroupedClauses(state)
        try rewriteLimit(plan, grouped: true)
        pendingGrouping = state
    }

    /// Adds an aggregate column for `call` at `slot` (a target, or hidden when `slot` is nil).
    @discardableResult
    mutating func addAggregate(
        _ call: AggregateCall, at slot: Slot?, outputName: String?, state: inout GroupedState
    ) throws(RouteError) -> Slot {
        if slot == nil, let existing = state.aggregateSlots[call.fingerprint] { return existing }
        var aggregate = PendingAggregate(slot: .hidden(0), function: call.function, isDistinct: call.isDistinct)
        if call.isDistinct {
            let value = distinctValueText(call)
            if let slot {
                aggregate.slot = slot
                let range = tokens[call.tokens.lowerBound].start..<tokens[call.tokens.upperBound - 1].end
                edits.append(Edit(range: range, text: value))
            } else {
                aggregate.slot = try hiddenColumn(value, fingerprint: nil)
            }
            aggregate.outputName = outputName
            if !state.groupAdditions.contains(value) { state.groupAdditions.append(value) }
            state.hasDistinctAggregate = true
        } else {
            let callText = text(call.tokens)
            if let slot {
                aggregate.slot = slot
            } else {
                aggregate.slot = try hiddenColumn(callText, fingerprint: call.fingerprint)
            }
            if call.function == .avg {
                aggregate.sum = try hiddenColumn(renamed(call, to: "sum"), fingerprint: nil)
                aggregate.count = try hiddenColumn(renamed(call, to: "count"), fingerprint: nil)
            }
        }
        state.aggregates.append(aggregate)
        state.aggregateSlots[call.fingerprint] = state.aggregateSlots[call.fingerprint] ?? aggregate.slot
        return aggregate.slot
    }

    /// An expression of an aggregate query's ORDER BY or HAVING as a column of the merged groups.
    mutating func groupedReference(
        _ node: Int, piece: Range<Int>?, allowNames: Bool, state: inout GroupedState
    ) throws(RouteError) -> Slot {
        if let piece, let found = try outputReference(node, piece: piece, allowNames: allowNames, clause: "ORDER BY") {
            return found
        }
        let fingerprint = tree.fingerprint(node)
        if let index = targets.firstIndex(where: { !$0.isStar && $0.fingerprint == fingerprint }) { return .target(index) }
        if let slot = state.aggregateSlots[fingerprint] ?? state.keyFingerprints[fingerprint] { return slot }
        if let call = tree.body(node, "FuncCall"), tree.isAggregateCall(call) {
            return try addAggregate(try aggregateCall(call), at: nil, outputName: nil, state: &state)
        }
        if tree.containsAggregate(node) {
            let shown = piece.map { text($0) } ?? "an expression"
            throw RouteError.unsupported("an expression over aggregate results (\(shown)) across shards")
        }
        if let piece { return try hiddenColumn(text(piece), fingerprint: fingerprint) }
        if let ref = tree.body(node, "ColumnRef"), let location = tree.int(ref, "location"), let start = token(at: location) {
            var end = start + 1
            while end + 1 < tokens.count, tokens[end].kind == .dot,
                  [.word, .quotedIdentifier].contains(tokens[end + 1].kind) {
                end += 2
            }
            return try hiddenColumn(text(start..<end), fingerprint: fingerprint)
        }
        throw RouteError.unsupported("this HAVING expression across shards; compare aggregates or GROUP BY columns "
            + "with constants")
    }

    /// A HAVING condition as a predicate the merger evaluates.
    mutating func predicate(_ node: Int, state: inout GroupedState) throws(RouteError) -> MergePlan.Predicate {
        guard let (type, body) = tree.typed(node) else { throw RouteError.unsupported("this HAVING condition across shards") }
        switch type {
        case "BoolExpr":
            var items: [MergePlan.Predicate] = []
            for arg in tree.elements(body, "args") { items.append(try predicate(arg, state: &state)) }
            switch tree.string(body, "boolop") {
            case "AND_EXPR": return .and(items)
            case "OR_EXPR": return .or(items)
            default:
                guard items.count == 1 else { throw RouteError.unsupported("this HAVING condition across shards") }
                return .not(items[0])
            }
        case "NullTest":
            guard let arg = tree.member(body, "arg") else { throw RouteError.unsupported("this HAVING condition across shards") }
            return .isNull(try operand(arg, state: &state), negated: tree.string(body, "nulltesttype") == "IS_NOT_NULL")
        case "A_Const":
            if tree.bool(body, "isnull") { return .constant(nil) }
            if let value = tree.member(body, "boolval") { return .constant(tree.bool(value, "boolval")) }
        case "A_Expr":
            let kind = tree.string(body, "kind") ?? ""
            let op = tree.names(tree.member(body, "name")).last ?? ""
            if kind == "AEXPR_OP", let comparison = Self.comparison(op), let l = tree.member(body, "lexpr"),
               let r = tree.member(body, "rexpr") {
                return try compare(comparison, l, r, state: &state)
            }
            if kind == "AEXPR_IN", let l = tree.member(body, "lexpr"), let list = tree.member(body, "rexpr"),
               let listBody = tree.body(list, "List") {
                var items: [MergePlan.Predicate] = []
                for item in tree.elements(listBody, "items") {
                    items.append(try compare(op == "<>" ? .notEqual : .equal, l, item, state: &state))
                }
                return op == "<>" ? .and(items) : .or(items)
            }
            if kind == "AEXPR_BETWEEN" || kind == "AEXPR_NOT_BETWEEN", let l = tree.member(body, "lexpr"),
               let list = tree.member(body, "rexpr"), let listBody = tree.body(list, "List") {
                let bounds = Array(tree.elements(listBody, "items"))
                guard bounds.count == 2 else { break }
                let between = MergePlan.Predicate.and([try compare(.greaterOrEqual, l, bounds[0], state: &state),
                                                       try compare(.lessOrEqual, l, bounds[1], state: &state)])
                return kind == "AEXPR_BETWEEN" ? between : .not(between)
            }
        default:
            break
        }
        if tree.containsAggregate(node) || tree.isNode(node, "ColumnRef") {
            return .value(try operand(node, state: &state))
        }
        throw RouteError.unsupported("this HAVING condition across shards; compare aggregates or GROUP BY columns with "
            + "constants (=, <>, <, <=, >, >=, IN, BETWEEN, IS NULL, AND, OR, NOT)")
    }

    /// `l op r`. An untyped string literal or a parameter compared with a column is converted by the shards
    /// themselves, in the session's settings (a date in the session's time zone, say), as PostgreSQL would:
    /// a hidden `CASE WHEN false THEN <column> ELSE <constant> END` has the column's type and the
    /// constant's value.
    mutating func compare(
        _ op: MergePlan.Comparison, _ l: Int, _ r: Int, state: inout GroupedState
    ) throws(RouteError) -> MergePlan.Predicate {
        var left = try operand(l, state: &state)
        var right = try operand(r, state: &state)
        if let typed = try shardTypedConstant(r, comparedWith: left, state: &state) {
            right = typed
        } else if let typed = try shardTypedConstant(l, comparedWith: right, state: &state) {
            left = typed
        }
        return .compare(op, left, right)
    }

    private mutating func shardTypedConstant(
        _ node: Int, comparedWith other: MergePlan.Operand, state: inout GroupedState
    ) throws(RouteError) -> MergePlan.Operand? {
        guard case .column(let provisional) = other else { return nil }
        let constant: String
        if let param = tree.body(node, "ParamRef") {
            constant = "$\(tree.int(param, "number") ?? 0)"
        } else if let literal = tree.body(node, "A_Const"), tree.member(literal, "sval") != nil,
                  let location = tree.int(literal, "location"), let start = token(at: location),
                  tokens[start].kind == .string {
            constant = text(start..<(start + 1))
        } else {
            return nil
        }
        // Without GROUP BY a DISTINCT aggregate's shards may return no row at all, and the hidden value with it.
        if state.hasDistinctAggregate, state.keys.isEmpty { return nil }
        let slot = Self.slot(from: provisional)
        let column: String
        switch slot {
        case .target(let i):
            guard !state.aggregates.contains(where: { $0.slot == slot && $0.isDistinct }) else { return nil }
            column = text(targets[i].expression)
        case .hidden(let j):
            guard !state.aggregates.contains(where: { $0.slot == slot && $0.isDistinct }) else { return nil }
            column = hidden[j].text
        case .column:
            return nil
        }
        let typed = try hiddenColumn("CASE WHEN false THEN (\(column)) ELSE \(constant) END", fingerprint: nil)
        return .column(Self.provisionalColumn(typed))
    }

    static func comparison(_ op: String) -> MergePlan.Comparison? {
        switch op {
        case "=": return .equal
        case "<>", "!=": return .notEqual
        case "<": return .less
        case "<=": return .lessOrEqual
        case ">": return .greater
        case ">=": return .greaterOrEqual
        default: return nil
        }
    }

    /// A HAVING operand: a constant, a parameter, or a column of the merged groups.
    mutating func operand(_ node: Int, state: inout GroupedState) throws(RouteError) -> MergePlan.Operand {
        if let constant = try constantValue(node) { return .constant(constant) }
        return .column(Self.provisionalColumn(try groupedReference(node, piece: nil, allowNames: false, state: &state)))
    }

    /// The value of a literal (`5`, `-2.5`, `'x'`, `TRUE`, `NULL`, `'2024-01-01'::date`) or `$n`.
    func constantValue(_ node: Int) throws(RouteError) -> MergePlan.Constant? {
        if let param = tree.body(node, "ParamRef") { return .parameter(tree.int(param, "number") ?? 0) }
        if let cast = tree.body(node, "TypeCast"), let arg = tree.member(cast, "arg"), tree.isNode(arg, "A_Const") {
            return try constantValue(arg)
        }
        guard let constant = tree.body(node, "A_Const") else { return nil }
        if tree.bool(constant, "isnull") { return .null }
        if let value = tree.member(constant, "boolval") { return .boolean(tree.bool(value, "boolval")) }
        if let value = tree.member(constant, "sval") { return .string(tree.string(value, "sval") ?? "") }
        if tree.member(constant, "ival") != nil || tree.member(constant, "fval") != nil {
            // The tree prints negative integers as empty objects: read the number from the text.
            guard let location = tree.int(constant, "location"), let start = token(at: location) else {
                throw RouteError.unsupported("this HAVING constant across shards")
            }
            var end = start + 1
            if tokens[start].kind == .symbol, end < tokens.count, tokens[end].kind == .number { end += 1 }
            return .number(text(start..<end).filter { $0 != " " && $0 != "\t" && $0 != "\n" })
        }
        return nil
    }
}

/// The aggregate part of a plan while it is being built.
struct GroupedState {
    var keys: [MergePlanBuilder.Slot] = []
    var keyFingerprints: [String: MergePlanBuilder.Slot] = [:]
    var aggregates: [PendingAggregate] = []
    var aggregateSlots: [String: MergePlanBuilder.Slot] = [:]
    var having: MergePlan.Predicate?
    /// DISTINCT aggregates' arguments, added to the shards' GROUP BY.
    var groupAdditions: [String] = []
    var hasDistinctAggregate = false
}

struct PendingAggregate {
    var slot: MergePlanBuilder.Slot
    var function: MergePlan.AggregateFunction
    var isDistinct: Bool
    var sum: MergePlanBuilder.Slot?
    var count: MergePlanBuilder.Slot?
    var outputName: String?
}
