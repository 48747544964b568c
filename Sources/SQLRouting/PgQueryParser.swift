import CPgQuery
import Foundation

/// PostgreSQL's own parser, through libpg_query.
///
/// libpg_query keeps a per-thread memory context, so concurrent calls from different threads are safe.
/// Every result it returns is heap memory that is freed here before returning.
enum PgQueryParser {
    /// Parses `sql` and runs `body` with the JSON parse tree, or returns PostgreSQL's syntax error.
    static func withParseTree<R>(
        _ sql: UnsafePointer<CChar>, _ body: (ParseTree) throws(RouteError) -> R
    ) throws(RouteError) -> R {
        let result = pg_query_parse(sql)
        defer { pg_query_free_parse_result(result) }
        if let error = result.error {
            let message = error.pointee.message.map { String(cString: $0) } ?? "syntax error"
            let cursor = Int(error.pointee.cursorpos)
            throw RouteError.syntaxError(message, position: cursor > 0 ? cursor : nil)
        }
        guard let json = result.parse_tree else {
            throw RouteError(sqlState: "XX000", message: "the SQL parser returned no parse tree")
        }
        let length = strlen(json)
        let buffer = UnsafeRawPointer(json).assumingMemoryBound(to: UInt8.self)
        guard let tree = ParseTree(json: UnsafeBufferPointer(start: buffer, count: length)) else {
            throw RouteError(sqlState: "XX000", message: "the SQL parser returned a parse tree that could not be read")
        }
        return try body(tree)
    }
}
