extension MergePlanBuilder {
    // MARK: - LIMIT / OFFSET

    /// OFFSET, LIMIT (or FETCH FIRST) and WITH TIES from the tree.
    func readBounds() throws(RouteError) -> (MergePlan.Bound?, MergePlan.Bound?, Bool) {
        let withTies = tree.string(select, "limitOption") == "LIMIT_OPTION_WITH_TIES"
        let offset = try bound(tree.member(select, "limitOffset"), name: "OFFSET", sqlState: "2201X")
        let limit = try bound(tree.member(select, "limitCount"), name: "LIMIT", sqlState: "2201W")
        return (offset, limit, withTies)
    }

    private func bound(_ node: Int?, name: String, sqlState: String) throws(RouteError) -> MergePlan.Bound? {
        guard let node else { return nil }
        if let param = tree.body(node, "ParamRef") { return .parameter(tree.int(param, "number") ?? 0) }
        if let cast = tree.body(node, "TypeCast"), let arg = tree.member(cast, "arg"),
           tree.isNode(arg, "ParamRef") || tree.isNode(arg, "A_Const") {
            return try bound(arg, name: name, sqlState: sqlState)
        }
        guard let constant = tree.body(node, "A_Const") else {
            throw RouteError.unsupported("\(name) with an expression across shards; use a constant or a parameter")
        }
        if tree.bool(constant, "isnull") { return nil }
        if let string = tree.member(constant, "sval") {
            // LIMIT '10': an untyped literal PostgreSQL reads as bigint.
            let raw = Substring(tree.string(string, "sval") ?? "")
            let text = String(raw.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
            guard let value = Int64(text) else {
                throw RouteError(sqlState: "22P02", message: "invalid input syntax for type bigint: \"\(text)\"")
            }
            if value < 0 { throw RouteError(sqlState: sqlState, message: "\(name) must not be negative") }
            return .constant(value)
        }
        // Integers beyond 32 bits are Float nodes in the tree; the text decides.
        let ival = tree.member(constant, "ival")
        guard ival != nil || tree.member(constant, "fval") != nil else {
            throw RouteError.unsupported("a \(name) that is not an integer across shards")
        }
        let value: Int64
        if let location = tree.int(constant, "location"), location >= 0, let start = token(at: location) {
            var end = start + 1
            if tokens[start].kind == .symbol, end < tokens.count, tokens[end].kind == .number { end += 1 }
            guard let parsed = Int64(text(start..<end).filter { $0 != " " && $0 != "\t" && $0 != "\n" }) else {
                throw RouteError.unsupported("a \(name) that is not an integer (or out of range) across shards")
            }
            value = parsed
        } else if let ival {
            // FETCH FIRST ROW ONLY: an implicit 1, without a location.
            value = Int64(tree.int(ival, "ival") ?? 0)
        } else {
            throw RouteError.unsupported("this \(name) value across shards")
        }
        if value < 0 { throw RouteError(sqlState: sqlState, message: "\(name) must not be negative") }
        return .constant(value)
    }

    /// The shards' LIMIT: `offset + limit` with no OFFSET (the merger skips the offset). Aggregate queries
    /// get none (the merger limits the merged groups); parameters stay referenced so that their types are
    /// still inferred as the client's statement has them.
    mutating func rewriteLimit(_ plan: MergePlan, grouped: Bool) throws(RouteError) {
        guard let first = clauses.limitClauses.first else { return }
        let (offset, limit, withTies) = (plan.offset, plan.limit, plan.withTies)
        var replacement: String
        if grouped {
            var parts: [String] = []
            if case .parameter(let n)? = offset { parts.append("OFFSET 0 * ($\(n))::int8") }
            if case .parameter(let n)? = limit { parts.append("LIMIT NULLIF(0 * ($\(n))::int8, 0)") }
            replacement = parts.joined(separator: " ")
        } else {
            guard let offset else { return } // LIMIT alone: every shard runs it as is.
            func term(_ bound: MergePlan.Bound) -> String {
                switch bound {
                case .constant(let v): return String(v)
                case .parameter(let n): return "($\(n))::int8"
                }
            }
            switch (limit, offset) {
            case (nil, .constant):
                replacement = ""
            case (nil, .parameter(let n)):
                replacement = "OFFSET 0 * ($\(n))::int8"
            case (.constant(let l)?, .constant(let o)):
                let (sum, overflow) = l.addingReportingOverflow(o)
                replacement = overflow ? "" : (withTies ? "FETCH FIRST \(sum) ROWS WITH TIES" : "LIMIT \(sum)")
            case (let l?, let o):
                let sum = "\(term(l)) + \(term(o))"
                replacement = withTies ? "FETCH FIRST (\(sum)) ROWS WITH TIES" : "LIMIT \(sum)"
            }
        }
        // Each clause goes with the space before it.
        edits.append(Edit(range: previousEnd(first.lowerBound)..<bytes(first).upperBound,
                          text: replacement.isEmpty ? "" : " " + replacement))
        for clause in clauses.limitClauses.dropFirst() {
            edits.append(Edit(range: previousEnd(clause.lowerBound)..<bytes(clause).upperBound, text: ""))
        }
    }

    // MARK: - Aggregate queries

    /// The shards' GROUP BY gains the DISTINCT aggregates' arguments; HAVING keeps only its parameters'
    /// types (`(...) OR true`); ORDER BY goes (the merger sorts the merged groups).
    mutating func rewriteGroupedClauses(_ state: GroupedState) throws(RouteError) {
        if !state.groupAdditions.isEmpty {
            let list = state.groupAdditions.joined(separator: ", ")
            if let group = clauses.groupBy, !group.isEmpty {
                let end = tokens[group.upperBound - 1].end
                edits.append(Edit(range: end..<end, text: ", " + list))
            } else if let next = clauses.keywords.first(where: {
                ["having", "window", "order", "limit", "offset", "fetch", "for"].contains($0.word)
            }) {
                let at = previousEnd(next.token)
                edits.append(Edit(range: at..<at, text: " GROUP BY \(list)"))
            } else {
                let at = clauses.end > 0 ? tokens[clauses.end - 1].end : statementRange.upperBound
                edits.append(Edit(range: at..<at, text: " GROUP BY \(list)"))
            }
        }
        if let having = clauses.having, !having.isEmpty {
            edits.append(Edit(range: bytes(having), text: "(\(text(having))) OR true"))
        }
        if let order = clauses.orderKeyword, let content = clauses.orderBy, !content.isEmpty {
            edits.append(Edit(range: previousEnd(order)..<tokens[content.upperBound - 1].end, text: ""))
        }
    }

    /// Where the token before `token` ends (the start of `token` for the first).
    func previousEnd(_ token: Int) -> Int {
        token > 0 ? tokens[token - 1].end : tokens[token].start
    }

    // MARK: - The plan

    /// Numbers the columns, appends the hidden ones and applies the edits.
    mutating func finish(_ plan: inout MergePlan) throws(RouteError) {
        for (slot, options) in pendingSort {
            plan.sortKeys.append(MergePlan.SortKey(column: try column(slot), descending: options.descending,
                                                   nullsFirst: options.nullsFirst, collation: options.collation))
        }
        switch pendingDistinct {
        case nil: plan.distinct = nil
        case .rows?: plan.distinct = .rows
        case .on(let slots)?:
            var columns: [MergePlan.Column] = []
            for slot in slots { columns.append(try column(slot)) }
            plan.distinct = .on(columns)
        }
        if let state = pendingGrouping {
            var keys: [MergePlan.Column] = []
            for slot in state.keys { keys.append(try column(slot)) }
            var aggregates: [MergePlan.Aggregate] = []
            for pending in state.aggregates {
                aggregates.append(MergePlan.Aggregate(
                    column: try column(pending.slot), function: pending.function, isDistinct: pending.isDistinct,
                    sumColumn: try pending.sum.map { s throws(RouteError) in try column(s) },
                    countColumn: try pending.count.map { s throws(RouteError) in try column(s) },
                    outputName: pending.outputName))
            }
            plan.grouping = MergePlan.Grouping(keys: keys, aggregates: aggregates, having: try resolve(state.having),
                                               hasGroupBy: !state.keys.isEmpty)
        }
        plan.hiddenColumnCount = hidden.count
        if !hidden.isEmpty {
            let columns = hidden.enumerated().map { "\($1.text) AS \"?sg\($0 + 1)\"" }
            if !clauses.targets.isEmpty {
                let end = tokens[clauses.targets.upperBound - 1].end
                edits.append(Edit(range: end..<end, text: ", " + columns.joined(separator: ", ")))
            } else {
                let at = clauses.targets.lowerBound < tokens.count ? tokens[clauses.targets.lowerBound].start
                    : statementRange.upperBound
                edits.append(Edit(range: at..<at, text: " " + columns.joined(separator: ", ") + " "))
            }
        }
        (plan.shardSQL, plan.unchangedPrefixCharacters) = try applyEdits()
    }

    /// A slot as a column of the shards' rows: from the start unless a `*` comes before it.
    private func column(_ slot: Slot) throws(RouteError) -> MergePlan.Column {
        let stars = targets.indices.filter { targets[$0].isStar }
        switch slot {
        case .column(let i):
            return .fromStart(i)
        case .target(let i):
            if stars.allSatisfy({ $0 > i }) { return .fromStart(i) }
            if stars.allSatisfy({ $0 < i }) { return .fromEnd(targets.count - i + hidden.count) }
            throw RouteError.unsupported("ordering or grouping by a column that has * items on both sides across shards")
        case .hidden(let j):
            return stars.isEmpty ? .fromStart(targets.count + j) : .fromEnd(hidden.count - j)
        }
    }

    private func resolve(_ predicate: MergePlan.Predicate?) throws(RouteError) -> MergePlan.Predicate? {
        guard let predicate else { return nil }
        return try resolve(predicate)
    }

    /// Replaces the provisional columns of a HAVING predicate (see `provisionalColumn`) by final ones.
    private func resolve(_ predicate: MergePlan.Predicate) throws(RouteError) -> MergePlan.Predicate {
        switch predicate {
        case .and(let items):
            var out: [MergePlan.Predicate] = []
            for item in items { out.append(try resolve(item)) }
            return .and(out)
        case .or(let items):
            var out: [MergePlan.Predicate] = []
            for item in items { out.append(try resolve(item)) }
            return .or(out)
        case .not(let inner): return .not(try resolve(inner))
        case .compare(let op, let a, let b): return .compare(op, try resolve(a), try resolve(b))
        case .isNull(let a, let negated): return .isNull(try resolve(a), negated: negated)
        case .value(let a): return .value(try resolve(a))
        case .constant: return predicate
        }
    }

    private func resolve(_ operand: MergePlan.Operand) throws(RouteError) -> MergePlan.Operand {
        guard case .column(let provisional) = operand else { return operand }
        return .column(try column(Self.slot(from: provisional)))
    }

    /// Slots travel in HAVING predicates encoded as columns until the numbering is final.
    static func provisionalColumn(_ slot: Slot) -> MergePlan.Column {
        switch slot {
        case .target(let i): return .fromStart(i)
        case .hidden(let j): return .fromEnd(-1 - j)
        case .column(let i): return .fromStart(-1 - i)
        }
    }

    static func slot(from column: MergePlan.Column) -> Slot {
        switch column {
        case .fromStart(let i): return i >= 0 ? .target(i) : .column(-1 - i)
        case .fromEnd(let j): return .hidden(-1 - j)
        }
    }

    /// The statement with the edits applied, and how many characters at its start are unchanged.
    private func applyEdits() throws(RouteError) -> (String, Int?) {
        let whole = text(bytes: 0..<sql.count)
        guard !edits.isEmpty else { return (whole, nil) }
        // By position; at one position insertions first, then in the order they were made.
        let ordered = edits.enumerated().sorted { a, b in
            let (x, y) = (a.element.range, b.element.range)
            if x.lowerBound != y.lowerBound { return x.lowerBound < y.lowerBound }
            if x.isEmpty != y.isEmpty { return x.isEmpty }
            return a.offset < b.offset
        }.map(\.element)
        var out = ""
        var cursor = 0
        for edit in ordered {
            guard edit.range.lowerBound >= cursor else {
                throw RouteError.unsupported("this statement across shards (overlapping rewrites)")
            }
            out += text(bytes: cursor..<edit.range.lowerBound)
            out += edit.text
            cursor = edit.range.upperBound
        }
        out += text(bytes: cursor..<sql.count)
        let prefix = ordered[0].range.lowerBound
        let characters = UnsafeBufferPointer(rebasing: sql[0..<prefix]).reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) }
        return (out, characters)
    }
}
