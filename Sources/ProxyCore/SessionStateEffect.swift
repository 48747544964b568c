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

    /// A cheap necessary condition: SQL that changes session state contains one of these words (every
    /// statement above has one: SET, RESET, set_config, DISCARD, LISTEN, PREPARE, LOAD, TEMP/TEMPORARY,
    /// HOLD, advisory). Text without any of them needs no parsing for this question.
    public static func mayChangeSessionState(_ sql: UnsafeBufferPointer<UInt8>) -> Bool {
        guard sql.count >= 3 else { return false }
        for index in 0..<(sql.count - 2) {
            let c = sql[index] | 0x20   // ASCII lower case; harmless for other bytes
            if c == UInt8(ascii: "s"), sql[index + 1] | 0x20 == UInt8(ascii: "e"), sql[index + 2] | 0x20 == UInt8(ascii: "t") {
                return true
            }
            if c == UInt8(ascii: "d") || c == UInt8(ascii: "l") || c == UInt8(ascii: "p") || c == UInt8(ascii: "t")
                || c == UInt8(ascii: "h") || c == UInt8(ascii: "a") {
                for word in Self.otherWords where Self.matches(word, in: sql, at: index) {
                    return true
                }
            }
        }
        return false
    }

    private static let otherWords: [[UInt8]] = ["discard", "listen", "prepare", "load", "temp", "hold", "advisory"]
        .map { Array($0.utf8) }

    private static func matches(_ word: [UInt8], in sql: UnsafeBufferPointer<UInt8>, at index: Int) -> Bool {
        guard index + word.count <= sql.count else { return false }
        for offset in 0..<word.count where sql[index + offset] | 0x20 != word[offset] {
            return false
        }
        return true
    }

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
