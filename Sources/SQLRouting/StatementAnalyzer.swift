import ShardMap

/// Walks one statement of libpg_query's parse tree and produces its `StatementAnalysis`.
///
/// Scoping follows PostgreSQL's: each SELECT level has its own FROM items; qualified column references
/// resolve outward through enclosing levels, unqualified ones only against the level's own sharded
/// tables (a valid query cannot mean another table's column by a sharded table's key name). CTE names
/// shadow tables only where PostgreSQL makes them visible.
struct StatementAnalyzer {
    /// A name visible in a FROM list: a table occurrence, or a subquery/CTE/function (`nil`), which
    /// stops outward resolution of a qualifier that names it.
    struct RangeEntry {
        var name: String
        var occurrence: Int?
    }

    let tree: ParseTree
    let tables: [String: TableRule]
    let literals: [SQLLiteral]
    let sql: UnsafeBufferPointer<UInt8>

    var analysis = StatementAnalysis(kind: .empty)
    var scopes: [[RangeEntry]] = []
    var cteFrames: [[String]] = []
    var shapes: [ResultShape] = []
    var writes = false
    /// `key IN (SELECT key ...)` sublinks by parse-tree body.
    var keySubLinks: [Int: KeySubLink] = [:]

    struct KeySubLink {
        var outer: Int
        var inner: Int
        /// The subquery's shape, to record once it is known whether the link is a key join.
        var shape: ResultShape
        /// Found at the top level of a WHERE/ON AND, so a key join.
        var joined = false
    }

    init(tree: ParseTree, tables: [String: TableRule], literals: [SQLLiteral], sql: UnsafeBufferPointer<UInt8>) {
        self.tree = tree
        self.tables = tables
        self.literals = literals
        self.sql = sql
    }

    /// Analyzes the statement node `statement` (a `{"SelectStmt": {...}}`-style wrapper).
    mutating func analyze(_ statement: Int) -> StatementAnalysis {
        guard let (typeKey, body) = tree.node(statement) else { return analysis }
        let type = tree.string(typeKey)
        analysis.kind = analyzeStatement(type: type, body: body, top: true)
        analysis.preparedCommand = preparedCommand(type: type, body: body)
        analysis.discardsAll = type == "DiscardStmt" && tree.string(body, "target") == "DISCARD_ALL"
        recordKeySubLinkShapes()
        if type == "DeclareCursorStmt", let options = tree.int(body, "options"), options & Self.cursorOptionHold != 0 {
            analysis.createsSessionObject = true
        }
        if containsTemporaryRelation(body) {
            analysis.createsSessionObject = true
        }
        analysis.runsOutsideTransaction = Self.outsideTransaction.contains(type) || tree.bool(body, "concurrent")
            || (type == "ReindexStmt" && tree.elements(body, "params").contains { option in
                tree.node(option).map { tree.string($0.body, "defname") == "concurrently" } ?? false
            })
        return analysis
    }

    /// Statements PostgreSQL runs only outside a transaction block (PreventInTransactionBlock).
    static let outsideTransaction: Set<String> = [
        "VacuumStmt", "CreatedbStmt", "DropdbStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt", "AlterSystemStmt",
        "CreateSubscriptionStmt", "DropSubscriptionStmt",
    ]

    /// CURSOR_OPT_HOLD in PostgreSQL's parsenodes.h: the cursor outlives its transaction.
    static let cursorOptionHold = 0x0020

    /// Whether any relation in the subtree is temporary (`relpersistence` "t": CREATE TEMP TABLE / VIEW /
    /// SEQUENCE, CREATE TEMP TABLE AS, SELECT ... INTO TEMP).
    private func containsTemporaryRelation(_ node: Int) -> Bool {
        switch tree.kind(node) {
        case .object:
            for (key, value) in tree.members(node) {
                if tree.equals(key, "relpersistence") {
                    if tree.kind(value) == .string, tree.string(value) == "t" { return true }
                } else if containsTemporaryRelation(value) {
                    return true
                }
            }
            return false
        case .array:
            for element in tree.elements(node) where containsTemporaryRelation(element) {
                return true
            }
            return false
        case .string, .number, .bool, .null:
            return false
        }
    }

    /// Walks a statement and returns its kind.
    mutating func analyzeStatement(type: String, body: Int, top: Bool) -> StatementKind {
        switch type {
        case "SelectStmt":
            if top {
                analysis.resultShape = walkSelect(body).shape
            } else {
                _ = walkNestedSelect(body, correlatable: false)
            }
            if tree.member(body, "intoClause") != nil {
                if let into = tree.member(body, "intoClause"), let rel = tree.member(into, "rel") {
                    addDDLTarget(rel)
                }
                return .ddl
            }
            return writes ? .write : .read
        case "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt":
            walkModification(type: type, body: body)
            return .write
        case "TransactionStmt":
            return .transaction(transactionControl(body))
        case "VariableSetStmt":
            let name = (tree.string(body, "name") ?? "").lowercased()
            switch tree.string(body, "kind") {
            case "VAR_RESET": return .reset(name: name)
            case "VAR_RESET_ALL": return .reset(name: nil)
            default: return .set(name: name, isLocal: tree.bool(body, "is_local"))
            }
        case "VariableShowStmt":
            return .show(name: tree.string(body, "name") ?? "")
        case "ExplainStmt":
            return analyzeExplain(body)
        case "CopyStmt":
            return analyzeCopy(body)
        case "TruncateStmt":
            for relation in tree.elements(body, "relations") { addOccurrence(relation, role: .written) }
            return .write
        case "LockStmt":
            for relation in tree.elements(body, "relations") { addOccurrence(relation, role: .written) }
            return .utility(type)
        case "DeclareCursorStmt":
            if let query = tree.member(body, "query"), let (key, inner) = tree.node(query) {
                _ = analyzeStatement(type: tree.string(key), body: inner, top: top)
            }
            // FETCH reads from one backend's portal: a cursor cannot span shards.
            analysis.singleShardOnly = "a cursor over several shards"
            return .read
        case "PrepareStmt", "ExecuteStmt", "DeallocateStmt":
            // Kept by ShardGate itself (`SQLPreparedCommand`) when it is a simple query string of its own.
            analysis.unsupported = "SQL-level PREPARE, EXECUTE or DEALLOCATE inside another statement, in a query "
                + "string with other statements, or through the extended query protocol; send it as a query of its own"
            return .utility(type)
        case "DoStmt", "CallStmt":
            analysis.unsupported = (type == "DoStmt" ? "DO blocks" : "CALL")
                + " (the statements inside cannot be routed); add a /* shard: name */ comment to run it on one shard"
            return .utility(type)
        case "VacuumStmt", "CheckPointStmt":
            analysis.broadcast = true
            for relation in tree.elements(body, "rels") {
                if let (_, vacuumRelation) = tree.node(relation), let rangeVar = tree.member(vacuumRelation, "relation") {
                    addDDLTarget(rangeVar)
                }
            }
            return .utility(type)
        default:
            if Self.isDDL(type) {
                analysis.broadcast = true
                collectDDLTargets(type: type, body: body)
                return .ddl
            }
            return .utility(type)
        }
    }

    private static let ddlPrefixes = [
        "Create", "Alter", "Drop", "Define", "Rename", "Comment", "Grant", "Reindex", "Cluster", "Refresh",
        "Import", "Reassign", "SecLabel", "CompositeType", "Index", "View", "Rule",
    ]

    static func isDDL(_ type: String) -> Bool {
        ddlPrefixes.contains { type.hasPrefix($0) }
    }

    private mutating func transactionControl(_ body: Int) -> TransactionControl {
        let name = tree.string(body, "savepoint_name") ?? ""
        let gid = tree.string(body, "gid") ?? ""
        switch tree.string(body, "kind") {
        case "TRANS_STMT_BEGIN", "TRANS_STMT_START":
            var readOnly = false
            for option in tree.elements(body, "options") {
                guard let (_, def) = tree.node(option), tree.string(def, "defname") == "transaction_read_only",
                      let arg = tree.member(def, "arg"), let (_, constant) = tree.node(arg),
                      let ival = tree.member(constant, "ival") else { continue }
                readOnly = tree.int(ival, "ival") == 1
            }
            return .begin(readOnly: readOnly)
        case "TRANS_STMT_COMMIT": return .commit
        case "TRANS_STMT_SAVEPOINT": return .savepoint(name)
        case "TRANS_STMT_RELEASE": return .release(name)
        case "TRANS_STMT_ROLLBACK_TO": return .rollbackTo(name)
        case "TRANS_STMT_PREPARE":
            analysis.cacheable = false
            return .prepare(gid: gid)
        case "TRANS_STMT_COMMIT_PREPARED":
            analysis.cacheable = false
            return .commitPrepared(gid: gid)
        case "TRANS_STMT_ROLLBACK_PREPARED":
            analysis.cacheable = false
            return .rollbackPrepared(gid: gid)
        default: return .rollback
        }
    }

    private mutating func analyzeExplain(_ body: Int) -> StatementKind {
        var executes = false
        for option in tree.elements(body, "options") {
            guard let (_, def) = tree.node(option), tree.string(def, "defname") == "analyze" else { continue }
            executes = true
            // `ANALYZE false` / `off` / `0` / `no` (the grammar gives the word as a String node).
            if let arg = tree.member(def, "arg"), let (_, value) = tree.node(arg),
               let text = tree.string(value, "sval") {
                executes = !["false", "off", "0", "no"].contains(text.lowercased())
            }
        }
        guard let query = tree.member(body, "query"), let (key, inner) = tree.node(query) else { return .read }
        let kind = analyzeStatement(type: tree.string(key), body: inner, top: true)
        if executes { return kind }
        // Plain EXPLAIN runs nothing: it reads, and writes nowhere.
        for index in analysis.occurrences.indices where analysis.occurrences[index].role == .written {
            analysis.occurrences[index].role = .read
        }
        analysis.updatedShardKey = nil
        return .read
    }

    private mutating func analyzeCopy(_ body: Int) -> StatementKind {
        let from = tree.bool(body, "is_from")
        if let relation = tree.member(body, "relation") {
            let index = addOccurrence(relation, role: from ? .written : .read)
            if from, let index, case .sharded(let key, let type) = analysis.occurrences[index].placement {
                let table = analysis.occurrences[index].table.mapName
                switch copyInFormat(body, table: table, key: key, type: type) {
                case .success(let format): analysis.copyIn = format
                case .failure(let refusal): analysis.unsupported = refusal.reason
                }
            }
        }
        if let query = tree.member(body, "query"), let (key, inner) = tree.node(query) {
            _ = analyzeStatement(type: tree.string(key), body: inner, top: true)
        }
        return from ? .write : .read
    }

    /// The data format of `COPY table FROM STDIN` into a sharded table, or why its rows cannot be split.
    private func copyInFormat(_ body: Int, table: String, key: String, type: ShardKeyType) -> Result<CopyInFormat, CopyRefusal> {
        let into = "COPY FROM into sharded table \"\(table)\""
        if tree.member(body, "filename") != nil || tree.bool(body, "is_program") {
            return .failure(CopyRefusal(into + " from a server-side file or program (each shard would read its own); "
                + "send the data from the client (COPY FROM STDIN, psql's \\copy)"))
        }
        var columns: [String] = []
        for column in tree.elements(body, "attlist") {
            if let (_, string) = tree.node(column), let name = tree.string(string, "sval") { columns.append(name) }
        }
        var keyColumn: Int?
        if !columns.isEmpty {
            guard let position = columns.firstIndex(of: key) else {
                return .failure(CopyRefusal(into + " whose column list does not include its shard key \"\(key)\""))
            }
            keyColumn = position
        }
        var options: [String: String] = [:]
        for option in tree.elements(body, "options") {
            guard let (_, def) = tree.node(option), let name = tree.string(def, "defname") else { continue }
            var value = "true"
            if let arg = tree.member(def, "arg"), let (argType, argBody) = tree.node(arg) {
                if tree.equals(argType, "Boolean") {
                    value = tree.bool(argBody, "boolval") ? "true" : "false"
                } else if let text = tree.string(argBody, "sval") {
                    value = text
                } else if let number = tree.int(argBody, "ival") {
                    value = String(number)
                }
            }
            options[name] = value
        }
        let formatName = options["format"]?.lowercased() ?? "text"
        let format: CopyInFormat.Format
        switch formatName {
        case "text": format = .text
        case "csv": format = .csv
        default:
            return .failure(CopyRefusal(into + " in \(formatName) format (ShardGate splits text and CSV rows by key)"))
        }
        if let encoding = options["encoding"], !["utf8", "utf-8", "unicode"].contains(encoding.lowercased()) {
            return .failure(CopyRefusal(into + " with ENCODING \(encoding) (ShardGate reads the keys as UTF-8)"))
        }
        func byte(_ name: String, default fallback: UInt8) -> UInt8? {
            guard let text = options[name] else { return fallback }
            let bytes = Array(text.utf8)
            return bytes.count == 1 ? bytes[0] : nil
        }
        let defaultDelimiter = UInt8(ascii: format == .csv ? "," : "\t")
        guard let delimiter = byte("delimiter", default: defaultDelimiter),
              let quote = byte("quote", default: UInt8(ascii: "\"")) else {
            return .failure(CopyRefusal(into + " with a DELIMITER or QUOTE that is not one single-byte character"))
        }
        guard let escape = byte("escape", default: quote) else {
            return .failure(CopyRefusal(into + " with an ESCAPE that is not one single-byte character"))
        }
        let header = options["header"].map { ["true", "on", "1", "yes", "match"].contains($0.lowercased()) } ?? false
        return .success(CopyInFormat(table: table, key: key, keyType: type, keyColumn: keyColumn, format: format,
                                     delimiter: delimiter, null: options["null"] ?? (format == .csv ? "" : "\\N"),
                                     header: header, quote: quote, escape: escape))
    }

    // MARK: - DDL

    private mutating func collectDDLTargets(type: String, body: Int) {
        switch type {
        case "CreateStmt", "IndexStmt", "CreateTrigStmt", "RuleStmt":
            if let relation = tree.member(body, "relation") { addDDLTarget(relation) }
        case "CreatePolicyStmt", "AlterPolicyStmt":
            if let relation = tree.member(body, "table") { addDDLTarget(relation) }
        case "AlterTableStmt":
            if tree.string(body, "objtype") == "OBJECT_TABLE", let relation = tree.member(body, "relation") {
                addDDLTarget(relation)
            }
        case "RenameStmt":
            if tree.string(body, "renameType") == "OBJECT_TABLE" || tree.string(body, "relationType") == "OBJECT_TABLE",
               let relation = tree.member(body, "relation") {
                addDDLTarget(relation)
            }
        case "CreateTableAsStmt":
            if tree.string(body, "objtype") == "OBJECT_TABLE", let into = tree.member(body, "into"),
               let relation = tree.member(into, "rel") {
                addDDLTarget(relation)
            }
        case "DropStmt":
            guard tree.string(body, "removeType") == "OBJECT_TABLE" else { return }
            for object in tree.elements(body, "objects") {
                guard let (_, list) = tree.node(object) else { continue }
                var parts: [String] = []
                for item in tree.elements(list, "items") {
                    if let (_, string) = tree.node(item), let part = tree.string(string, "sval") { parts.append(part) }
                }
                guard let name = parts.last else { continue }
                let schema = parts.count >= 2 ? parts[parts.count - 2] : nil
                appendOccurrence(TableReference(schema: schema, name: name), role: .ddl)
            }
        default:
            break
        }
    }

    private mutating func addDDLTarget(_ relation: Int) {
        analysis.broadcast = true
        addOccurrence(relation, role: .ddl)
    }

    // MARK: - Occurrences

    /// Adds a table occurrence for a RangeVar (wrapped or not); `nil` for a CTE reference.
    @discardableResult
    mutating func addOccurrence(_ relation: Int, role: TableRole) -> Int? {
        let rangeVar = tree.node(relation).map(\.body) ?? relation
        guard let name = tree.string(rangeVar, "relname") else { return nil }
        let schema = tree.string(rangeVar, "schemaname")
        let alias = tree.member(rangeVar, "alias").flatMap { tree.string($0, "aliasname") }
        if schema == nil, role != .ddl, cteFrames.contains(where: { $0.contains(name) }) {
            if !scopes.isEmpty { scopes[scopes.count - 1].append(RangeEntry(name: alias ?? name, occurrence: nil)) }
            return nil
        }
        let index = appendOccurrence(TableReference(schema: schema, name: name, alias: alias), role: role)
        if !scopes.isEmpty { scopes[scopes.count - 1].append(RangeEntry(name: alias ?? name, occurrence: index)) }
        return index
    }

    @discardableResult
    mutating func appendOccurrence(_ table: TableReference, role: TableRole) -> Int {
        let placement: TablePlacement
        switch tables[table.mapName] {
        case .sharded(let key, let type)?: placement = .sharded(key: key, type: type)
        case .reference?: placement = .reference
        case nil: placement = table.isCatalog ? .catalog : .unlisted
        }
        analysis.occurrences.append(TableOccurrence(table: table, placement: placement, role: role))
        return analysis.occurrences.count - 1
    }

    /// The key column and type of occurrence `index` when it is sharded.
    func shardKey(of index: Int) -> (key: String, type: ShardKeyType)? {
        if case .sharded(let key, let type) = analysis.occurrences[index].placement { return (key, type) }
        return nil
    }
}

/// Why a COPY into a sharded table cannot be split.
struct CopyRefusal: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
