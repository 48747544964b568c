/// Parse-tree helpers for the merge planner.
extension ParseTree {
    /// The node type and body of a node wrapper (`{"FuncCall": {...}}`).
    func typed(_ i: Int) -> (type: String, body: Int)? {
        guard let (key, body) = node(i) else { return nil }
        return (string(key), body)
    }

    /// Whether node wrapper `i` is of type `name`.
    func isNode(_ i: Int, _ name: StaticString) -> Bool {
        guard let (key, _) = node(i) else { return false }
        return equals(key, name)
    }

    /// The body of node wrapper `i` when it is of type `name`.
    func body(_ i: Int, _ name: StaticString) -> Int? {
        guard let (key, body) = node(i), equals(key, name) else { return nil }
        return body
    }

    /// A canonical text of the subtree without its `location` members: equal for expressions that differ
    /// only in where (and with what spacing, case of keywords, parentheses) they were written.
    func fingerprint(_ i: Int) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(Int(entries[next(i) - 1].end - entries[i].start))
        appendFingerprint(i, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private func appendFingerprint(_ i: Int, to out: inout [UInt8]) {
        let e = entries[i]
        switch e.kind {
        case .object:
            out.append(UInt8(ascii: "{"))
            for (key, value) in members(i) where !equals(key, "location") {
                appendRaw(key, to: &out)
                out.append(UInt8(ascii: ":"))
                appendFingerprint(value, to: &out)
                out.append(UInt8(ascii: ","))
            }
            out.append(UInt8(ascii: "}"))
        case .array:
            out.append(UInt8(ascii: "["))
            for element in elements(i) {
                appendFingerprint(element, to: &out)
                out.append(UInt8(ascii: ","))
            }
            out.append(UInt8(ascii: "]"))
        case .string:
            out.append(UInt8(ascii: "\""))
            appendRaw(i, to: &out)
            out.append(UInt8(ascii: "\""))
        case .number, .bool, .null:
            appendRaw(i, to: &out)
        }
    }

    private func appendRaw(_ i: Int, to out: inout [UInt8]) {
        let e = entries[i]
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[Int(e.start)..<Int(e.end)]))
    }

    /// The `sval`s of a list of String nodes (`funcname`, `fields`, `collname`); `*` for A_Star.
    func names(_ list: Int?) -> [String] {
        guard let list else { return [] }
        var result: [String] = []
        for item in elements(list) {
            if let string = body(item, "String") {
                result.append(self.string(string, "sval") ?? "")
            } else if isNode(item, "A_Star") {
                result.append("*")
            }
        }
        return result
    }

    /// Whether the subtree holds a call to an aggregate (not looking into subqueries, whose aggregates
    /// are their own).
    func containsAggregate(_ i: Int) -> Bool {
        switch kind(i) {
        case .array:
            return elements(i).contains { containsAggregate($0) }
        case .object:
            if isNode(i, "SubLink") || isNode(i, "SelectStmt") { return false }
            if let call = body(i, "FuncCall"), isAggregateCall(call) { return true }
            for (_, value) in members(i) where containsAggregate(value) { return true }
            return false
        case .string, .number, .bool, .null:
            return false
        }
    }

    /// Whether a FuncCall body is an aggregate call (known aggregate name, or aggregate-only syntax).
    func isAggregateCall(_ call: Int) -> Bool {
        if member(call, "over") != nil { return false }
        if bool(call, "agg_star") || bool(call, "agg_distinct") || member(call, "agg_order") != nil
            || member(call, "agg_filter") != nil || bool(call, "agg_within_group") {
            return true
        }
        guard let name = names(member(call, "funcname")).last else { return false }
        return MergePlanBuilder.knownAggregateNames.contains(name)
    }

    /// Whether the subtree calls a window function.
    func containsWindowCall(_ i: Int) -> Bool {
        switch kind(i) {
        case .array:
            return elements(i).contains { containsWindowCall($0) }
        case .object:
            if isNode(i, "SubLink") { return false }
            if let call = body(i, "FuncCall"), member(call, "over") != nil { return true }
            for (_, value) in members(i) where containsWindowCall(value) { return true }
            return false
        case .string, .number, .bool, .null:
            return false
        }
    }

    /// The name of the first volatile function (random(), nextval(), ...) called in the subtree.
    func volatileCall(_ i: Int) -> String? {
        switch kind(i) {
        case .array:
            for element in elements(i) { if let name = volatileCall(element) { return name } }
            return nil
        case .object:
            if let call = body(i, "FuncCall"), let name = names(member(call, "funcname")).last,
               MergePlanBuilder.volatileFunctions.contains(name) {
                return name
            }
            for (_, value) in members(i) { if let name = volatileCall(value) { return name } }
            return nil
        case .string, .number, .bool, .null:
            return nil
        }
    }

    /// PostgreSQL's column name for an unaliased select-list expression (`FigureColname`), for the
    /// common cases; nil where PostgreSQL would say `?column?`.
    func implicitColumnName(_ value: Int) -> String? {
        guard let (type, body) = typed(value) else { return nil }
        switch type {
        case "ColumnRef":
            let parts = names(member(body, "fields"))
            return parts.last == "*" ? nil : parts.last
        case "FuncCall":
            return names(member(body, "funcname")).last
        case "TypeCast":
            if let arg = member(body, "arg"), let name = implicitColumnName(arg) { return name }
            if let typeName = member(body, "typeName") { return names(member(typeName, "names")).last }
            return nil
        case "CollateClause":
            return member(body, "arg").flatMap { implicitColumnName($0) }
        case "CaseExpr": return "case"
        case "CoalesceExpr": return "coalesce"
        case "A_ArrayExpr": return "array"
        case "MinMaxExpr": return string(body, "op") == "IS_GREATEST" ? "greatest" : "least"
        default: return nil
        }
    }
}
