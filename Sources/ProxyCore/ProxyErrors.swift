import PGWire

/// ErrorResponses that ShardGate itself sends, with the SQLSTATE a PostgreSQL client expects.
public enum ProxyErrors {
    public static func fatal(_ sqlState: String, _ message: String, detail: String? = nil, hint: String? = nil) -> ErrorNoticeFields {
        ErrorNoticeFields(severity: "FATAL", sqlState: sqlState, message: message, detail: detail, hint: hint)
    }

    public static func error(_ sqlState: String, _ message: String, detail: String? = nil, hint: String? = nil) -> ErrorNoticeFields {
        ErrorNoticeFields(severity: "ERROR", sqlState: sqlState, message: message, detail: detail, hint: hint)
    }

    /// 28P01, worded as PostgreSQL words it so that drivers and people recognise it.
    public static func passwordFailed(user: String) -> ErrorNoticeFields {
        fatal("28P01", "password authentication failed for user \"\(user)\"")
    }

    public static func protocolViolation(_ what: String) -> ErrorNoticeFields {
        fatal("08P01", what)
    }

    /// The backend serving this client could not be reached or was lost.
    public static func backendUnavailable(_ server: String, reason: String) -> ErrorNoticeFields {
        error("08006", "ShardGate could not reach backend \(server): \(reason)",
              hint: "The statement was not executed. Retry when the server is back.")
    }

    public static func poolTimeout(_ server: String, waitedMs: Int) -> ErrorNoticeFields {
        error("53300", "no backend connection to \(server) became free within \(waitedMs) ms",
              hint: "Raise pool.size or pool.checkout_timeout_ms in the shard map, or shorten transactions.")
    }

    /// A backend died while this client had a transaction open on it: the transaction is gone.
    public static func transactionLost(_ server: String) -> ErrorNoticeFields {
        fatal("08006", "connection to backend \(server) was lost inside a transaction; the transaction was rolled back",
              hint: "Reconnect and retry the transaction.")
    }

    /// A backend died that held this session's state (named prepared statements, SET, ...).
    public static func sessionLost(_ server: String) -> ErrorNoticeFields {
        fatal("08006", "connection to backend \(server) was lost; it held this session's state (prepared statements or settings)",
              hint: "Reconnect and prepare or set them again.")
    }

    public static func warning(_ sqlState: String, _ message: String) -> ErrorNoticeFields {
        ErrorNoticeFields(severity: "WARNING", sqlState: sqlState, message: message)
    }

    /// A shape ShardGate cannot run exactly (SQLSTATE 0A000), worded as RouteError words it.
    public static func unsupported(_ what: String, hint: String? = nil) -> ErrorNoticeFields {
        error("0A000", "ShardGate does not support \(what)", hint: hint)
    }

    /// What PostgreSQL answers in a failed transaction until it ends.
    public static let transactionAborted = error(
        "25P02", "current transaction is aborted, commands ignored until end of transaction block")

    public static let shuttingDown = fatal("57P01", "terminating connection because ShardGate is shutting down")
}
