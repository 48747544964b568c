/// Why a statement cannot be routed, as the PostgreSQL error the proxy answers with (no backend is asked).
public struct RouteError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The SQLSTATE of the ErrorResponse, e.g. `42601`.
    public var sqlState: String
    /// The primary message, as a person reads it.
    public var message: String
    /// 1-based character position in the statement text (the ErrorResponse `P` field), when known.
    public var position: Int?

    /// Creates an error.
    public init(sqlState: String, message: String, position: Int? = nil) {
        self.sqlState = sqlState
        self.message = message
        self.position = position
    }

    /// A syntax error with PostgreSQL's own message and cursor position (SQLSTATE `42601`).
    public static func syntaxError(_ message: String, position: Int?) -> RouteError {
        RouteError(sqlState: "42601", message: message, position: position)
    }

    /// A table missing from the shard map (SQLSTATE `42P01`, as for an undefined table).
    public static func tableNotInMap(_ table: String) -> RouteError {
        RouteError(
            sqlState: "42P01",
            message: "relation \"\(table)\" is not in the shard map (add it to \"tables\", or set \"unlisted_tables\")"
        )
    }

    /// A statement shape ShardGate cannot run exactly (SQLSTATE `0A000`, feature not supported).
    public static func unsupported(_ what: String) -> RouteError {
        RouteError(sqlState: "0A000", message: "ShardGate does not support \(what)")
    }

    /// A value PostgreSQL's input function would reject (SQLSTATE `22P02`).
    public static func invalidKey(_ literal: String, type: String) -> RouteError {
        RouteError(sqlState: "22P02", message: "invalid input syntax for type \(type): \"\(literal)\"")
    }

    /// An operator override naming a shard the map does not have (SQLSTATE `22023`).
    public static func unknownShard(_ name: String) -> RouteError {
        RouteError(sqlState: "22023", message: "shard \"\(name)\" named in the /* shard: */ comment is not in the shard map")
    }

    /// A human-readable form: `ERROR 42601: message (at 12)`.
    public var description: String {
        "ERROR \(sqlState): \(message)" + (position.map { " (at \($0))" } ?? "")
    }
}
