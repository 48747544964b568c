import PGWire

/// Why a merge failed, as the PostgreSQL error the client receives.
public struct MergeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The SQLSTATE, e.g. `0A000`.
    public var sqlState: String
    /// The primary message.
    public var message: String
    /// An optional detail line.
    public var detail: String?
    /// An optional hint line.
    public var hint: String?

    /// Creates an error.
    public init(sqlState: String, message: String, detail: String? = nil, hint: String? = nil) {
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
    }

    /// A result ShardGate cannot merge exactly (SQLSTATE `0A000`, feature not supported).
    public static func unsupported(_ what: String, detail: String? = nil, hint: String? = nil) -> MergeError {
        MergeError(sqlState: "0A000", message: "ShardGate does not support \(what)", detail: detail, hint: hint)
    }

    /// The buffering limit was exceeded (SQLSTATE `54000`, program limit exceeded).
    public static func bufferLimit(_ maxBytes: Int) -> MergeError {
        MergeError(
            sqlState: "54000",
            message: "ShardGate's merge buffer limit (merge.max_bytes = \(maxBytes)) was exceeded while merging the "
                + "shards' results",
            detail: "GROUP BY, DISTINCT and aggregate queries over several shards hold their groups or distinct values "
                + "in the proxy's memory until every shard has answered.",
            hint: "Raise \"merge\": {\"max_bytes\": ...} in the shard map, or narrow the query: fewer groups or "
                + "distinct values, or a shard key condition so that it runs on one shard."
        )
    }

    /// The shards sent something a merge cannot work with (SQLSTATE `XX000`, internal error).
    public static func internalError(_ message: String) -> MergeError {
        MergeError(sqlState: "XX000", message: "ShardGate could not merge the shards' results: \(message)")
    }

    /// A value out of its type's range while combining (SQLSTATE `22003`), as PostgreSQL reports it.
    public static func outOfRange(_ message: String) -> MergeError {
        MergeError(sqlState: "22003", message: message)
    }

    /// The ErrorResponse fields (severity ERROR).
    public var errorFields: ErrorNoticeFields {
        ErrorNoticeFields(severity: "ERROR", sqlState: sqlState, message: message, detail: detail, hint: hint)
    }

    /// `ERROR 0A000: message`.
    public var description: String {
        "ERROR \(sqlState): \(message)"
    }
}

/// What the merger gives the client, in order.
public enum MergeOutput: Sendable, Equatable {
    /// The result's columns (once, before any row; hidden columns removed).
    case rowDescription(RowDescription)
    /// A merged row.
    case dataRow(DataRow)
    /// The end of a complete result: `SELECT n` with the merged row count.
    case commandComplete(String)
    /// The result failed: one ErrorResponse, after which nothing else is sent for this statement.
    case errorResponse(ErrorNoticeFields)
}
