import SQLRouting

/// Whether SQL changes session state that ShardGate cannot carry to another pooled backend.
///
/// Parameters PostgreSQL reports with ParameterStatus follow the client (see `SessionParameters`). Other
/// session state — `SET` of unreported parameters (search_path, statement_timeout, ROLE, SESSION
/// AUTHORIZATION, ...), `RESET` of them or `RESET ALL`, `set_config()`, `DISCARD`, `LISTEN`, SQL-level
/// `PREPARE`, `LOAD` — lives only on the backend that ran it. A client that creates such state keeps its
/// backend for the rest of its session (it is closed, not pooled, afterwards), so no other client ever
/// sees it and the client never loses it to a pool hand-off.
///
/// Also pinning: what lives as long as the session — temporary tables, views and sequences, cursors
/// `WITH HOLD`, session-level advisory locks (`pg_advisory_lock`, `pg_try_advisory_lock`, `_shared`).
public enum SessionStateEffect {
    /// Parameters whose changes PostgreSQL reports, in the lower case the parser gives SET names.
    static let trackedParameters: Set<String> = Set(SessionParameters.reportedSettable.map { $0.lowercased() })

    /// Statement types (libpg_query node names) whose effect outlives the transaction.
    static let sessionUtilities: Set<String> = ["DiscardStmt", "ListenStmt", "PrepareStmt", "LoadStmt"]

    /// True when `analysis` changes session state that must stay on its backend.
    public static func pinsBackend(_ analysis: SQLAnalysis) -> Bool {
        analysis.statements.contains { statement in
            if statement.callsSetConfig || statement.createsSessionObject { return true }
            switch statement.kind {
            case .set(let name, let isLocal):
                return !isLocal && !Self.trackedParameters.contains(name)
            case .reset(let name):
                return name.map { !Self.trackedParameters.contains($0) } ?? true
            case .utility(let type):
                return Self.sessionUtilities.contains(type)
            case .read, .write, .ddl, .transaction, .show, .empty:
                return false
            }
        }
    }
}
