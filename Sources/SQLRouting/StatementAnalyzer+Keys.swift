import ShardMap

extension StatementAnalyzer {
    // MARK: - Predicates

    /// Records the shard-key restrictions of `condition` on the occurrences in `restricted`, and the
    /// key equalities (joins) found under its top-level AND.
    mutating func applyConstraints(_ condition: Int, restricting restricted: [Int]) {
        var joins: [KeyEquality] = []
        for (occurrence, predicate) in keyConstraints(condition, topLevel: true, joins: &joins)
        where restricted.contains(occurrence) {
            let existing = analysis.occurrences[occurrence].key
            analysis.occurrences[occurrence].key = existing.map { Self.and($0, predicate) } ?? predicate
        }
        for join in joins {
            if let subLink = join.subLink, let link = keySubLinks[subLink] {
                // `outer.key IN (SELECT inner.key ...)` at the top level: only inner rows with an outer
                // row's key matter, and outer rows need a matching inner key.
                keySubLinks[subLink]?.joined = true
                analysis.keyJoins.append(KeyJoin(left: link.outer, right: link.inner, leftRestrictsRight: true,
                                                 rightRestrictsLeft: restricted.contains(link.outer)))
            } else {
                addKeyJoin(join.a, join.b, restricted: restricted)
            }
        }
    }

    /// A key join; a side is restricted by the other only when the condition restricts its rows.
    mutating func addKeyJoin(_ a: Int, _ b: Int, restricted: [Int]) {
        analysis.keyJoins.append(KeyJoin(left: a, right: b, leftRestrictsRight: restricted.contains(b),
                                         rightRestrictsLeft: restricted.contains(a)))
    }

    /// A key equality found in a condition: two key columns, or a `key IN (SELECT key ...)` sublink.
    struct KeyEquality {
        var a: Int
        var b: Int
        var subLink: Int?
    }

    static func and(_ a: KeyPredicate, _ b: KeyPredicate) -> KeyPredicate {
        switch (a, b) {
        case (.all(let x), .all(let y)): return .all(x + y)
        case (.all(let x), _): return .all(x + [b])
        case (_, .all(let y)): return .all([a] + y)
        default: return .all([a, b])
        }
    }

    /// The key restrictions a boolean expression implies, one entry per occurrence: `key = v`,
    /// `v = key`, `key IN (...)`, `key = ANY(...)`, combined by AND (intersection) and OR (union, only
    /// when every branch restricts the same occurrence). Key equalities are reported in `joins` only
    /// at the top level of ANDs.
    func keyConstraints(_ e: Int, topLevel: Bool, joins: inout [KeyEquality]) -> [(Int, KeyPredicate)] {
        guard let (typeKey, body) = tree.node(e) else { return [] }
        if tree.equals(typeKey, "BoolExpr") {
            switch tree.string(body, "boolop") {
            case "AND_EXPR":
                var merged: [(Int, KeyPredicate)] = []
                for arg in tree.elements(body, "args") {
                    for (occurrence, predicate) in keyConstraints(arg, topLevel: topLevel, joins: &joins) {
                        if let k = merged.firstIndex(where: { $0.0 == occurrence }) {
                            merged[k].1 = Self.and(merged[k].1, predicate)
                        } else {
                            merged.append((occurrence, predicate))
                        }
                    }
                }
                return merged
            case "OR_EXPR":
                var ignored: [KeyEquality] = []
                let branches = tree.elements(body, "args").map { keyConstraints($0, topLevel: false, joins: &ignored) }
                guard let first = branches.first else { return [] }
                return first.compactMap { occurrence, _ in
                    let parts = branches.compactMap { branch in branch.first { $0.0 == occurrence }?.1 }
                    return parts.count == branches.count ? (occurrence, .any(parts)) : nil
                }
            default:
                return []
            }
        }
        if tree.equals(typeKey, "SubLink") {
            if topLevel, let link = keySubLinks[body] {
                joins.append(KeyEquality(a: link.outer, b: link.inner, subLink: body))
            }
            return []
        }
        guard tree.equals(typeKey, "A_Expr"), isEqualityOperator(body, field: "name"),
              let l = tree.member(body, "lexpr"), let r = tree.member(body, "rexpr") else { return [] }
        switch tree.string(body, "kind") {
        case "AEXPR_OP":
            let lo = keyColumnOccurrence(l)
            let ro = keyColumnOccurrence(r)
            if let lo, let ro {
                if topLevel, lo != ro, shardKey(of: lo)?.type == shardKey(of: ro)?.type { joins.append(KeyEquality(a: lo, b: ro)) }
                return []
            }
            if let lo, let type = shardKey(of: lo)?.type, let value = keyValue(r, type: type) {
                return [(lo, .values([value]))]
            }
            if let ro, let type = shardKey(of: ro)?.type, let value = keyValue(l, type: type) {
                return [(ro, .values([value]))]
            }
            return []
        case "AEXPR_IN":
            guard let occurrence = keyColumnOccurrence(l), let type = shardKey(of: occurrence)?.type,
                  let (listKey, list) = tree.node(r), tree.equals(listKey, "List") else { return [] }
            var values: [KeyValueSource] = []
            for item in tree.elements(list, "items") {
                guard let value = keyValue(item, type: type) else { return [] }
                values.append(value)
            }
            return [(occurrence, .values(values))]
        case "AEXPR_OP_ANY":
            guard let occurrence = keyColumnOccurrence(l), let type = shardKey(of: occurrence)?.type,
                  let values = arrayValues(r, type: type) else { return [] }
            return [(occurrence, .values(values))]
        default:
            return []
        }
    }

    /// Whether the operator list `field` is `=` (or `pg_catalog.=`); an absent list is `=` (`IN (subquery)`).
    func isEqualityOperator(_ body: Int, field: StaticString) -> Bool {
        guard let list = tree.member(body, field) else { return true }
        var parts: [String] = []
        for part in tree.elements(list) {
            guard let (_, string) = tree.node(part), let text = tree.string(string, "sval") else { return false }
            parts.append(text)
        }
        return parts == ["="] || parts == ["pg_catalog", "="]
    }

    // MARK: - Columns

    /// The occurrence whose shard key the column reference `e` names, if any.
    func keyColumnOccurrence(_ e: Int) -> Int? {
        guard let (typeKey, body) = tree.node(e), tree.equals(typeKey, "ColumnRef") else { return nil }
        var parts: [String] = []
        for field in tree.elements(body, "fields") {
            guard let (key, string) = tree.node(field), tree.equals(key, "String"),
                  let text = tree.string(string, "sval") else { return nil }
            parts.append(text)
        }
        let occurrence: Int?
        switch parts.count {
        case 1:
            let candidates = currentScopeOccurrences.filter { shardKey(of: $0)?.key == parts[0] }
            occurrence = candidates.count == 1 ? candidates[0] : nil
        case 2:
            occurrence = resolveQualifier(parts[0], schema: nil)
        case 3:
            occurrence = resolveQualifier(parts[1], schema: parts[0])
        default:
            occurrence = nil
        }
        guard let occurrence, shardKey(of: occurrence)?.key == parts[parts.count - 1] else { return nil }
        return occurrence
    }

    /// The innermost FROM entry called `name` (alias, or table name when unaliased).
    private func resolveQualifier(_ name: String, schema: String?) -> Int? {
        for scope in scopes.reversed() {
            guard let entry = scope.first(where: { $0.name == name }) else { continue }
            guard let occurrence = entry.occurrence else { return nil }
            if let schema {
                let table = analysis.occurrences[occurrence].table
                guard table.alias == nil, table.schema == (schema == "public" ? nil : schema) else { return nil }
            }
            return occurrence
        }
        return nil
    }

    // MARK: - Values

    /// Where the value of `e`, compared with a key of `type`, comes from; `nil` when it is not a constant
    /// or parameter (or a cast that could change the value).
    func keyValue(_ e: Int, type: ShardKeyType) -> KeyValueSource? {
        guard let (typeKey, body) = tree.node(e) else { return nil }
        switch tree.string(typeKey) {
        case "A_Const":
            if tree.bool(body, "isnull") { return .null }
            let isNumber = tree.member(body, "ival") != nil || tree.member(body, "fval") != nil
            guard isNumber || tree.member(body, "sval") != nil, let location = tree.int(body, "location"),
                  let (index, negated) = literal(at: location, number: isNumber) else { return nil }
            return .literal(index: index, negated: negated)
        case "ParamRef":
            return tree.int(body, "number").map { .parameter($0) }
        case "TypeCast":
            guard let arg = tree.member(body, "arg"), let typeName = tree.member(body, "typeName"),
                  tree.member(typeName, "arrayBounds") == nil, castKeepsValue(typeName, type: type) else { return nil }
            return keyValue(arg, type: type)
        case "CollateClause":
            guard type == .text, let arg = tree.member(body, "arg") else { return nil }
            return keyValue(arg, type: type)
        default:
            return nil
        }
    }

    /// The values of an array compared with `= ANY(...)`.
    func arrayValues(_ e: Int, type: ShardKeyType) -> [KeyValueSource]? {
        guard let (typeKey, body) = tree.node(e) else { return nil }
        switch tree.string(typeKey) {
        case "A_Const":
            guard tree.member(body, "sval") != nil, let location = tree.int(body, "location"),
                  let (index, _) = literal(at: location, number: false) else { return nil }
            return [.arrayLiteral(index: index)]
        case "ParamRef":
            return tree.int(body, "number").map { [.arrayParameter($0)] }
        case "TypeCast":
            guard let arg = tree.member(body, "arg"), let typeName = tree.member(body, "typeName"),
                  tree.member(typeName, "arrayBounds") != nil, castKeepsValue(typeName, type: type) else { return nil }
            return arrayValues(arg, type: type)
        case "A_ArrayExpr":
            var values: [KeyValueSource] = []
            for element in tree.elements(body, "elements") {
                guard let value = keyValue(element, type: type) else { return nil }
                values.append(value)
            }
            return values
        default:
            return nil
        }
    }

    /// Whether a cast to `typeName` leaves a key value of `type` as it is (no rounding, no truncation).
    private func castKeepsValue(_ typeName: Int, type: ShardKeyType) -> Bool {
        guard tree.member(typeName, "typmods") == nil else { return false }
        var name = ""
        for part in tree.elements(typeName, "names") {
            if let (_, string) = tree.node(part) { name = tree.string(string, "sval") ?? "" }
        }
        switch type {
        case .bigint: return ["int8", "int4", "int2"].contains(name)
        case .text: return ["text", "varchar"].contains(name)
        case .uuid: return name == "uuid"
        }
    }

    /// The literal token a constant at byte `location` came from. A negative number's constant points at
    /// its `-` sign, which the lexer keeps as a separate token.
    private func literal(at location: Int, number: Bool) -> (Int, Bool)? {
        var low = 0
        var high = literals.count
        while low < high {
            let mid = (low + high) / 2
            if Int(literals[mid].start) < location { low = mid + 1 } else { high = mid }
        }
        if low < literals.count, Int(literals[low].start) == location {
            let kind = literals[low].kind
            let fits = number ? kind == .number : [.string, .escapeString, .dollarString].contains(kind)
            return fits ? (low, false) : nil
        }
        guard number, location < sql.count, sql[location] == UInt8(ascii: "-"), low < literals.count,
              literals[low].kind == .number else { return nil }
        for k in (location + 1)..<Int(literals[low].start) {
            let c = sql[k]
            guard SQLLexer.isSpace(c) || c == UInt8(ascii: "(") else { return nil }
        }
        return (low, true)
    }
}
