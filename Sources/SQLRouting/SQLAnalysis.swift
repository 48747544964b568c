import ShardMap

/// The analysis of one query string (usually one statement; a simple-protocol string may hold several),
/// together with the literal values of this particular text.
///
/// The `statements` part depends only on the text's shape and the map's table rules, so it is shared by
/// every text of the same shape (`AnalysisCache`); the literals are read from this text when a route is
/// planned.
public struct SQLAnalysis: Sendable {
    /// One analysis per statement, in text order (empty for an empty query string).
    public var statements: [StatementAnalysis]
    /// The leading-comment override, if any.
    public var override: RouteOverride?
    /// The query text (contiguous UTF-8).
    let text: String
    /// The literal tokens of `text`.
    let literals: [SQLLiteral]

    init(statements: [StatementAnalysis], override: RouteOverride?, text: String, literals: [SQLLiteral]) {
        self.statements = statements
        self.override = override
        self.text = text
        self.literals = literals
    }

    /// The kind of the first statement (`.empty` for an empty query string).
    public var kind: StatementKind {
        statements.first?.kind ?? .empty
    }

    /// The value of the `index`-th literal token as PostgreSQL's scanner reads it (quotes removed,
    /// escapes processed), or `nil` for literal kinds routing does not decode.
    public func literalValue(_ index: Int) -> String? {
        guard literals.indices.contains(index) else { return nil }
        var text = text
        return text.withUTF8 { literals[index].value(in: $0) }
    }

    /// The literal token's kind, for value interpretation.
    func literalKind(_ index: Int) -> SQLLiteral.Kind? {
        literals.indices.contains(index) ? literals[index].kind : nil
    }
}

/// Turns SQL into `SQLAnalysis` with PostgreSQL's own parser (libpg_query), without caching.
public enum SQLAnalyzer {
    /// Analyzes `sql` for a map whose tables are `tables`.
    ///
    /// Throws PostgreSQL's syntax error (SQLSTATE 42601, message and 1-based cursor position) when the
    /// text does not parse.
    public static func analyze(_ sql: String, tables: [String: TableRule]) throws(RouteError) -> SQLAnalysis {
        var text = sql
        let lexed = text.withUTF8 { SQLLexer.lex($0) }
        return try analyze(text: text, lexed: lexed, tables: tables).analysis
    }

    /// Parses and analyzes `text` (already lexed); also says whether the result may be cached.
    static func analyze(
        text: String, lexed: LexedSQL, tables: [String: TableRule]
    ) throws(RouteError) -> (analysis: SQLAnalysis, cacheable: Bool) {
        var text = text
        let count = text.utf8.count
        let result: Result<[StatementAnalysis], RouteError> = text.withCString { cString in
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(cString).assumingMemoryBound(to: UInt8.self),
                                            count: count)
            guard !bytes.contains(0) else {
                return .failure(RouteError.syntaxError("query text contains a zero byte", position: nil))
            }
            return Result { () throws(RouteError) -> [StatementAnalysis] in
                try PgQueryParser.withParseTree(cString) { tree in
                    analyzeTree(tree, tables: tables, literals: lexed.literals, sql: bytes)
                }
            }
        }
        let statements = try result.get()
        let override = text.withUTF8 { bytes in
            lexed.leadingEnd > 0 ? RouteOverride.parse(UnsafeBufferPointer(rebasing: bytes[..<lexed.leadingEnd])) : nil
        }
        let analysis = SQLAnalysis(statements: statements, override: override, text: text, literals: lexed.literals)
        return (analysis, lexed.cacheable && statements.allSatisfy(\.cacheable))
    }

    private static func analyzeTree(
        _ tree: ParseTree, tables: [String: TableRule], literals: [SQLLiteral], sql: UnsafeBufferPointer<UInt8>
    ) -> [StatementAnalysis] {
        var statements: [StatementAnalysis] = []
        for raw in tree.elements(tree.root, "stmts") {
            guard let statement = tree.member(raw, "stmt") else { continue }
            var analyzer = StatementAnalyzer(tree: tree, tables: tables, literals: literals, sql: sql)
            statements.append(analyzer.analyze(statement))
        }
        return statements
    }
}
