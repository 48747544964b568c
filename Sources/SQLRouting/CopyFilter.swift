import ShardMap

/// Hides a rebalance's copies from a statement that runs on several shards (DECISIONS.md, "Rebalance").
///
/// While slots move, a shard holds rows of slots it does not own (the map's `"copies"`): the target
/// before the cutover, the source until the cleanup. A read sent to every shard would see those rows
/// twice. On such a shard, each sharded table in a FROM clause (by its parse-tree location) becomes a
/// subquery without the copied slots:
///
/// ```sql
/// SELECT count(*) FROM items i JOIN users u ON ...
/// -- on a shard with copies of slots 5 and 9:
/// SELECT count(*) FROM (SELECT * FROM items AS sg_rows WHERE COALESCE(<slot of sg_rows.id> <> ALL ('{5,9}'::int[]), true)) i JOIN ...
/// ```
///
/// Rows with a NULL key stay (they are never copied). What cannot be rewritten exactly is refused with
/// `0A000` while the copies exist: UPDATE, DELETE, MERGE and COPY TO of a sharded table without its key,
/// `ONLY`, `TABLESAMPLE`, and a CTE named like a sharded table. DDL is passed through untouched (a view
/// must not keep a filter of one rebalance).
public enum CopyFilter {
    /// `sql` as shard `shard` must run it (unchanged when `map` records no copies there, or nothing in
    /// `sql` reads a sharded table).
    public static func rewrite(_ sql: String, map: ShardMap, shard: Int) throws(RouteError) -> String {
        let copies = map.copies(on: shard)
        guard !copies.isEmpty else { return sql }
        var bytes = Array(sql.utf8)
        guard !bytes.contains(0) else { throw RouteError.syntaxError("query text contains a zero byte", position: nil) }
        bytes.append(0)
        let edits: [Edit] = try bytes.withUnsafeBufferPointer { (buffer) throws(RouteError) -> [Edit] in
            let text = UnsafeBufferPointer(rebasing: buffer[0..<(buffer.count - 1)])
            let cString = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            return try PgQueryParser.withParseTree(cString) { tree throws(RouteError) -> [Edit] in
                var walker = Walker(tree: tree, sql: text, map: map, copies: copies.sorted())
                try walker.walkStatements()
                return walker.edits
            }
        }
        guard !edits.isEmpty else { return sql }
        bytes.removeLast()
        for edit in edits.sorted(by: { $0.range.lowerBound > $1.range.lowerBound }) {
            bytes.replaceSubrange(edit.range, with: Array(edit.text.utf8))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    struct Edit {
        var range: Range<Int>
        var text: String
    }

    /// The statement kinds whose FROM clauses are filtered; everything else (DDL, utility) passes.
    static let filteredStatements: Set<String> = [
        "SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "CopyStmt", "ExplainStmt",
        "DeclareCursorStmt",
    ]

    /// Statements whose `relation` is written (or, for COPY, read whole) and cannot be filtered.
    static let targetStatements: Set<String> = ["UpdateStmt", "DeleteStmt", "MergeStmt", "CopyStmt"]

    struct Walker {
        let tree: ParseTree
        let sql: UnsafeBufferPointer<UInt8>
        let map: ShardMap
        let copies: [Int]
        var edits: [Edit] = []

        init(tree: ParseTree, sql: UnsafeBufferPointer<UInt8>, map: ShardMap, copies: [Int]) {
            self.tree = tree
            self.sql = sql
            self.map = map
            self.copies = copies
        }

        mutating func walkStatements() throws(RouteError) {
            guard let stmts = tree.member(0, "stmts") else { return }
            for raw in tree.elements(stmts) {
                guard let stmt = tree.member(raw, "stmt"), let (typeKey, _) = tree.node(stmt) else { continue }
                guard CopyFilter.filteredStatements.contains(tree.string(typeKey)) else { continue }
                try checkCTENames(stmt)
                try walk(stmt, parentType: nil)
            }
        }

        /// A CTE that shadows a sharded table's name would make the scope rules matter; refused.
        func checkCTENames(_ i: Int) throws(RouteError) {
            var k = i
            let end = tree.next(i)
            while k < end {
                if tree.kind(k) == .object, let name = tree.string(k, "ctename"), sharded(schema: nil, name: name) != nil {
                    throw RouteError.unsupported("a WITH query named like the sharded table \"\(name)\" while a rebalance copies its rows (rename the WITH query)")
                }
                k += 1
            }
        }

        func sharded(schema: String?, name: String) -> (key: String, type: ShardKeyType)? {
            let reference = TableReference(schema: schema, name: name)
            if case .sharded(let key, let type)? = map.tables[reference.mapName] { return (key, type) }
            return nil
        }

        mutating func walk(_ i: Int, parentType: String?) throws(RouteError) {
            switch tree.kind(i) {
            case .array:
                for element in tree.elements(i) { try walk(element, parentType: parentType) }
            case .object:
                if let (typeKey, body) = tree.node(i), isNodeName(typeKey) {
                    let type = tree.string(typeKey)
                    if type == "RangeVar" {
                        try rangeVar(body, parentType: parentType)
                        return
                    }
                    for (key, value) in tree.members(body) {
                        if tree.equals(key, "relation"), CopyFilter.targetStatements.contains(type) {
                            try target(value, statement: type)
                            continue
                        }
                        if tree.equals(key, "relation"), type == "InsertStmt" { continue }
                        try walk(value, parentType: type)
                    }
                    return
                }
                for (_, value) in tree.members(i) { try walk(value, parentType: parentType) }
            default:
                return
            }
        }

        func isNodeName(_ key: Int) -> Bool {
            let first = tree.bytes[Int(tree.entries[key].start)]
            return first >= UInt8(ascii: "A") && first <= UInt8(ascii: "Z")
        }

        func target(_ relation: Int, statement: String) throws(RouteError) {
            let body = tree.node(relation).map(\.body) ?? relation
            guard let name = tree.string(body, "relname"),
                  sharded(schema: tree.string(body, "schemaname"), name: name) != nil else { return }
            let what: String
            switch statement {
            case "UpdateStmt": what = "UPDATE"
            case "DeleteStmt": what = "DELETE"
            case "MergeStmt": what = "MERGE"
            default: what = "COPY"
            }
            throw RouteError.unsupported("\(what) of the sharded table \"\(name)\" on several shards while a rebalance copies its rows (its counts would include the copies); give the shard key, or repeat it after the rebalance's cleanup")
        }

        mutating func rangeVar(_ body: Int, parentType: String?) throws(RouteError) {
            guard let name = tree.string(body, "relname") else { return }
            let schema = tree.string(body, "schemaname")
            guard let (key, type) = sharded(schema: schema, name: name) else { return }
            if parentType == "RangeTableSample" {
                throw RouteError.unsupported("TABLESAMPLE on the sharded table \"\(name)\" while a rebalance copies its rows")
            }
            if !tree.bool(body, "inh") {
                throw RouteError.unsupported("ONLY on the sharded table \"\(name)\" on several shards while a rebalance copies its rows")
            }
            guard let location = tree.int(body, "location"), let end = Self.nameEnd(sql, from: location) else {
                throw RouteError.unsupported("a reference to the sharded table \"\(name)\" that ShardGate cannot locate in the query text while a rebalance copies its rows")
            }
            let written = String(decoding: UnsafeBufferPointer(rebasing: sql[location..<end]), as: UTF8.self)
            let slot = SlotExpression(column: key, type: type, slotCount: map.slotCount, qualifier: "sg_rows")
            let list = "'{" + copies.map(String.init).joined(separator: ",") + "}'::int[]"
            var text = "(SELECT * FROM \(written) AS sg_rows WHERE COALESCE(\(slot.sql) <> ALL (\(list)), true))"
            if tree.member(body, "alias") == nil {
                text += " AS \"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            }
            edits.append(Edit(range: location..<end, text: text))
        }

        /// The end of a (possibly qualified, possibly quoted) relation name starting at `start`.
        static func nameEnd(_ b: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
            var i = start
            while true {
                guard i < b.count else { return nil }
                if b[i] == UInt8(ascii: "\"") {
                    i += 1
                    while true {
                        guard i < b.count else { return nil }
                        if b[i] == UInt8(ascii: "\"") {
                            if i + 1 < b.count, b[i + 1] == UInt8(ascii: "\"") { i += 2; continue }
                            i += 1
                            break
                        }
                        i += 1
                    }
                } else if SQLLexer.isIdentStart(b[i]) {
                    i += 1
                    while i < b.count, SQLLexer.isIdentContinue(b[i]) { i += 1 }
                } else {
                    return nil
                }
                var j = i
                while j < b.count, SQLLexer.isSpace(b[j]) { j += 1 }
                guard j < b.count, b[j] == UInt8(ascii: ".") else { return i }
                j += 1
                while j < b.count, SQLLexer.isSpace(b[j]) { j += 1 }
                i = j
            }
        }
    }
}
