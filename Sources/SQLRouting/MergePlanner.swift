/// Plans the merge of a read that runs on several shards (DESIGN §5): the SQL each shard runs and what
/// the proxy does with their rows, from PostgreSQL's parse tree. Rewrites are made at token boundaries
/// located through the tree, never by pattern matching on the text.
///
/// Shapes that cannot be merged exactly are refused with `0A000` naming the construct: window functions,
/// set operations, aggregates other than count/sum/avg/min/max/bool_and/bool_or/every, expressions over
/// aggregate results, GROUPING SETS, ORDER BY inside an aggregate, volatile ORDER BY, several statements.
public enum MergePlanner {
    /// The merge plan of `sql` (one SELECT statement).
    public static func plan(_ sql: String) throws(RouteError) -> MergePlan {
        let text = sql
        let count = text.utf8.count
        let result: Result<MergePlan, RouteError> = text.withCString { cString in
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(cString).assumingMemoryBound(to: UInt8.self),
                                            count: count)
            guard !bytes.contains(0) else {
                return .failure(RouteError.syntaxError("query text contains a zero byte", position: nil))
            }
            return Result { () throws(RouteError) -> MergePlan in
                try PgQueryParser.withParseTree(cString) { tree throws(RouteError) -> MergePlan in
                    var builder = try MergePlanBuilder(tree: tree, sql: bytes)
                    return try builder.build()
                }
            }
        }
        return try result.get()
    }
}

/// The planner's working state for one statement.
struct MergePlanBuilder {
    /// Aggregates by name (as the analyzer knows them): a call to one makes a query an aggregate query.
    static let knownAggregateNames: Set<String> = [
        "count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and", "bool_or", "every",
        "bit_and", "bit_or", "bit_xor", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg", "xmlagg",
        "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "covar_pop", "covar_samp", "corr",
        "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy",
        "regr_syy", "percentile_cont", "percentile_disc", "mode", "range_agg", "range_intersect_agg", "grouping",
    ]

    /// The aggregates merged exactly.
    static let mergeableAggregates: [String: MergePlan.AggregateFunction] = [
        "count": .count, "sum": .sum, "avg": .avg, "min": .min, "max": .max,
        "bool_and": .boolAnd, "every": .boolAnd, "bool_or": .boolOr,
    ]

    /// Functions whose value changes per call: ordering by them cannot be reproduced.
    static let volatileFunctions: Set<String> = [
        "random", "random_normal", "setseed", "clock_timestamp", "timeofday", "nextval", "setval",
        "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4",
    ]

    /// One select-list item.
    struct Target {
        var value: Int
        var alias: String?
        /// The output column name ORDER BY can refer to (alias, else PostgreSQL's implicit name).
        var outputName: String?
        var isStar: Bool
        var fingerprint: String
        /// The whole item's tokens, and its expression's (alias removed).
        var tokens: Range<Int>
        var expression: Range<Int>
        var hasAggregate: Bool
    }

    /// A column appended to the select list.
    struct Hidden {
        var text: String
        var fingerprint: String?
    }

    /// A column of the shards' rows before the star-aware numbering is known.
    enum Slot: Hashable {
        case target(Int)
        case hidden(Int)
        /// A 0-based column of the shards' rows counted from the first (a position past a `*`).
        case column(Int)
    }

    /// A text replacement in the statement (bytes); inserts have empty ranges.
    struct Edit {
        var range: Range<Int>
        var text: String
    }

    let tree: ParseTree
    let sql: UnsafeBufferPointer<UInt8>
    /// The SelectStmt body.
    let select: Int
    let statementRange: Range<Int>
    let tokens: [MergeToken]
    let clauses: MergeClauses
    var targets: [Target] = []
    var hidden: [Hidden] = []
    var edits: [Edit] = []

    init(tree: ParseTree, sql: UnsafeBufferPointer<UInt8>) throws(RouteError) {
        self.tree = tree
        self.sql = sql
        let statements = Array(tree.elements(tree.root, "stmts"))
        guard statements.count == 1 else {
            throw RouteError.unsupported(statements.isEmpty ? "an empty statement across shards"
                : "several statements in one query string across shards; send them one at a time")
        }
        guard let stmt = tree.member(statements[0], "stmt"), let (type, body) = tree.typed(stmt) else {
            throw RouteError.unsupported("this statement across shards")
        }
        guard type == "SelectStmt" else {
            let name: String
            switch type {
            case "ExplainStmt": name = "EXPLAIN"
            case "CopyStmt": name = "COPY"
            case "DeclareCursorStmt": name = "a cursor"
            default: name = type.hasSuffix("Stmt") ? String(type.dropLast(4)) : type
            }
            throw RouteError.unsupported("\(name) of a query that spans several shards")
        }
        select = body
        let location = tree.int(statements[0], "stmt_location") ?? 0
        let length = tree.int(statements[0], "stmt_len") ?? 0
        statementRange = location..<(length > 0 ? min(sql.count, location + length) : sql.count)
        if let op = tree.string(body, "op"), op != "SETOP_NONE" {
            throw RouteError.unsupported("UNION, INTERSECT or EXCEPT across shards")
        }
        if tree.member(body, "windowClause") != nil || tree.containsWindowCall(body) {
            throw RouteError.unsupported("window functions (OVER) across shards")
        }
        tokens = MergeTokenizer.tokens(sql, range: statementRange)
        clauses = MergeClauses(tokens: tokens, sql: sql)
        try readTargets()
    }

    // MARK: - Text

    func text(_ range: Range<Int>) -> String {
        guard !range.isEmpty else { return "" }
        return text(bytes: tokens[range.lowerBound].start..<tokens[range.upperBound - 1].end)
    }

    func text(bytes range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: sql[range]), as: UTF8.self)
    }

    func word(_ k: Int) -> String? {
        guard k >= 0, k < tokens.count, tokens[k].kind == .word else { return nil }
        return text(k..<(k + 1)).lowercased()
    }

    /// The byte range of a token range.
    func bytes(_ range: Range<Int>) -> Range<Int> {
        tokens[range.lowerBound].start..<tokens[range.upperBound - 1].end
    }

    /// The token starting at byte `location`.
    func token(at location: Int) -> Int? {
        var lo = 0, hi = tokens.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if tokens[mid].start < location { lo = mid + 1 } else { hi = mid }
        }
        return lo < tokens.count && tokens[lo].start == location ? lo : nil
    }

    /// The closing parenthesis matching the opening one at `open`.
    func matchingClose(_ open: Int) -> Int? {
        var k = open + 1
        while k < tokens.count {
            if tokens[k].kind == .closeParen, tokens[k].depth == tokens[open].depth { return k }
            k += 1
        }
        return nil
    }

    // MARK: - Select list

    private mutating func readTargets() throws(RouteError) {
        let list = Array(tree.elements(select, "targetList"))
        guard clauses.select != nil else {
            // TABLE t / VALUES: no select list to rewrite (only a plain concatenation can be planned).
            return
        }
        let pieces = MergeClauses.split(clauses.targets, depth: 0, tokens: tokens)
        guard pieces.count == list.count, !pieces.contains(where: \.isEmpty) else {
            throw RouteError.unsupported("this select list across shards (ShardGate could not locate its items)")
        }
        for (item, piece) in zip(list, pieces) {
            guard let target = tree.body(item, "ResTarget"), let value = tree.member(target, "val") else {
                throw RouteError.unsupported("this select list item across shards")
            }
            let alias = tree.string(target, "name")
            var expression = piece
            if alias != nil, expression.count > 1 {
                expression = expression.lowerBound..<(expression.upperBound - 1)
                if expression.count > 1, word(expression.upperBound - 1) == "as" {
                    expression = expression.lowerBound..<(expression.upperBound - 1)
                }
            }
            let isStar = tree.body(value, "ColumnRef").map { tree.names(tree.member($0, "fields")).last == "*" } ?? false
            targets.append(Target(value: value, alias: alias, outputName: alias ?? tree.implicitColumnName(value),
                                  isStar: isStar, fingerprint: tree.fingerprint(value), tokens: piece,
                                  expression: expression, hasAggregate: tree.containsAggregate(value)))
        }
    }

    // MARK: - Planning

    mutating func build() throws(RouteError) -> MergePlan {
        let sortItems = Array(tree.elements(select, "sortClause"))
        let isAggregate = tree.member(select, "groupClause") != nil || tree.member(select, "havingClause") != nil
            || targets.contains(where: \.hasAggregate)
            || sortItems.contains { tree.member($0, "SortBy").map { tree.containsAggregate($0) } ?? false }
        var plan = MergePlan(shardSQL: "")
        (plan.offset, plan.limit, plan.withTies) = try readBounds()
        if isAggregate {
            try planGrouped(&plan)
        } else {
            try planPlain(&plan)
        }
        try finish(&plan)
        return plan
    }

    /// ORDER BY, DISTINCT [ON] and LIMIT for a query without aggregates.
    private mutating func planPlain(_ plan: inout MergePlan) throws(RouteError) {
        var sortSlots: [(Slot, SortOptions)] = []
        let sortPieces = try sortPieces()
        let isDistinctRows = distinctIsRows
        for (item, piece) in zip(tree.elements(select, "sortClause"), sortPieces) {
            let options = try sortOptions(item, piece: piece)
            let slot: Slot
            if let found = try outputReference(options.node, piece: options.expression, allowNames: true, clause: "ORDER BY") {
                slot = found
            } else {
                guard !isDistinctRows else {
                    throw RouteError(sqlState: "42P10", message: "for SELECT DISTINCT, ORDER BY expressions must appear in select list")
                }
                slot = try hiddenColumn(text(options.expression), fingerprint: tree.fingerprint(options.node))
            }
            sortSlots.append((slot, options))
        }
        var distinctSlots: [Slot]?
        if let distinctList = tree.member(select, "distinctClause"), !isDistinctRows {
            let items = Array(tree.elements(distinctList))
            guard let on = clauses.distinctOn, !on.isEmpty else {
                throw RouteError.unsupported("this DISTINCT ON across shards (ShardGate could not locate its items)")
            }
            let pieces = MergeClauses.split(on, depth: tokens[on.lowerBound - 1].depth + 1, tokens: tokens)
            guard pieces.count == items.count else {
                throw RouteError.unsupported("this DISTINCT ON across shards (ShardGate could not locate its items)")
            }
            var slots: [Slot] = []
            for (node, piece) in zip(items, pieces) {
                if let found = try outputReference(node, piece: piece, allowNames: true, clause: "DISTINCT ON") {
                    slots.append(found)
                } else {
                    slots.append(try hiddenColumn(text(piece), fingerprint: tree.fingerprint(node)))
                }
            }
            distinctSlots = slots
        }
        try rewriteLimit(plan, grouped: false)
        pendingSort = sortSlots
        pendingDistinct = isDistinctRows ? .rows : distinctSlots.map { .on($0) }
    }

    /// The ORDER BY pieces (one per sort item).
    func sortPieces() throws(RouteError) -> [Range<Int>] {
        let items = Array(tree.elements(select, "sortClause"))
        guard !items.isEmpty else { return [] }
        guard let range = clauses.orderBy else {
            throw RouteError.unsupported("this ORDER BY across shards (ShardGate could not locate it)")
        }
        let pieces = MergeClauses.split(range, depth: 0, tokens: tokens)
        guard pieces.count == items.count, !pieces.contains(where: \.isEmpty) else {
            throw RouteError.unsupported("this ORDER BY across shards (ShardGate could not locate its items)")
        }
        return pieces
    }

    /// `SELECT DISTINCT` (not DISTINCT ON).
    var distinctIsRows: Bool {
        guard let list = tree.member(select, "distinctClause"), let first = tree.elements(list).first(where: { _ in true })
        else { return false }
        return tree.kind(first) == .object && tree.node(first) == nil
    }

    /// What one ORDER BY item says.
    struct SortOptions {
        /// The expression node (a COLLATE clause's argument).
        var node: Int
        /// The expression's tokens (ASC/DESC/NULLS removed; COLLATE kept).
        var expression: Range<Int>
        var descending: Bool
        var nullsFirst: Bool?
        var collation: String?
    }

    func sortOptions(_ item: Int, piece: Range<Int>) throws(RouteError) -> SortOptions {
        guard let sortBy = tree.body(item, "SortBy"), var node = tree.member(sortBy, "node") else {
            throw RouteError.unsupported("this ORDER BY item across shards")
        }
        var expression = piece
        var nullsFirst: Bool?
        switch tree.string(sortBy, "sortby_nulls") {
        case "SORTBY_NULLS_FIRST": nullsFirst = true
        case "SORTBY_NULLS_LAST": nullsFirst = false
        default: break
        }
        if nullsFirst != nil { expression = expression.lowerBound..<(expression.upperBound - 2) }
        let descending: Bool
        switch tree.string(sortBy, "sortby_dir") {
        case "SORTBY_DESC":
            descending = true
            expression = expression.lowerBound..<(expression.upperBound - 1)
        case "SORTBY_ASC":
            descending = false
            expression = expression.lowerBound..<(expression.upperBound - 1)
        case "SORTBY_USING":
            throw RouteError.unsupported("ORDER BY ... USING across shards; use ASC or DESC")
        default:
            descending = false
        }
        guard !expression.isEmpty else { throw RouteError.unsupported("this ORDER BY item across shards") }
        if let volatile = tree.volatileCall(node) {
            throw RouteError.unsupported("ORDER BY a volatile function (\(volatile)()) across shards")
        }
        var collation: String?
        if let collate = tree.body(node, "CollateClause"), let arg = tree.member(collate, "arg") {
            switch tree.names(tree.member(collate, "collname")).last {
            case "default"?: collation = nil // the database's
            case "ucs_basic"?: collation = "C" // code point order: for UTF-8, byte order
            case let name: collation = name
            }
            node = arg
        }
        return SortOptions(node: node, expression: expression, descending: descending, nullsFirst: nullsFirst,
                           collation: collation)
    }

    /// An ORDER BY / DISTINCT ON / GROUP BY item that names a select-list column: by position, by output
    /// name (`allowNames`), or by being the same expression; also an already hidden column.
    func outputReference(_ node: Int, piece: Range<Int>, allowNames: Bool, clause: String) throws(RouteError) -> Slot? {
        if let constant = tree.body(node, "A_Const"), tree.member(constant, "ival") != nil,
           let position = Int(text(piece)) {
            let firstStar = targets.firstIndex(where: \.isStar)
            guard position >= 1, firstStar != nil || position <= targets.count else {
                throw RouteError(sqlState: "42P10", message: "\(clause) position \(position) is not in select list")
            }
            if let firstStar, position - 1 >= firstStar { return .column(position - 1) }
            return .target(position - 1)
        }
        if allowNames, let ref = tree.body(node, "ColumnRef") {
            let parts = tree.names(tree.member(ref, "fields"))
            let matches = parts.count == 1 ? targets.indices.filter { !targets[$0].isStar && targets[$0].outputName == parts[0] }
                : []
            if let first = matches.first {
                // As PostgreSQL: two output columns of that name are an error unless they are the same expression.
                if matches.contains(where: { targets[$0].fingerprint != targets[first].fingerprint }) {
                    throw RouteError(sqlState: "42702", message: "\(clause) \"\(parts[0])\" is ambiguous")
                }
                return .target(first)
            }
        }
        let fingerprint = tree.fingerprint(node)
        if let index = targets.firstIndex(where: { !$0.isStar && $0.fingerprint == fingerprint }) {
            return .target(index)
        }
        if let index = hidden.firstIndex(where: { $0.fingerprint == fingerprint }) {
            return .hidden(index)
        }
        return nil
    }

    /// Appends a hidden column (or finds the same one).
    mutating func hiddenColumn(_ text: String, fingerprint: String?) throws(RouteError) -> Slot {
        if let fingerprint, let index = hidden.firstIndex(where: { $0.fingerprint == fingerprint }) {
            return .hidden(index)
        }
        guard clauses.select != nil else {
            throw RouteError.unsupported("this query across shards without a SELECT list to extend (write SELECT ... FROM)")
        }
        hidden.append(Hidden(text: text, fingerprint: fingerprint))
        return .hidden(hidden.count - 1)
    }

    var pendingSort: [(Slot, SortOptions)] = []
    var pendingDistinct: PendingDistinct?
    var pendingGrouping: GroupedState?

    enum PendingDistinct {
        case rows
        case on([Slot])
    }
}
