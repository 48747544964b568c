/// Settings PostgreSQL does not report with ParameterStatus (`search_path`, `statement_timeout`, `ROLE`,
/// `SESSION AUTHORIZATION`, ...), kept as the SET statements that made them and replayed, in order, on
/// every backend that serves the client — so they follow the client across pooled backends and across
/// shards, exactly as PostgreSQL parsed them the first time.
///
/// Reported parameters (TimeZone, DateStyle, application_name, ...) follow the client through
/// `SessionParameters` instead.
public struct SessionSettings: Sendable, Equatable {
    public struct Setting: Sendable, Equatable {
        /// The parameter as the parser names it, lower case (`search_path`, `role`, `session characteristics`).
        public var name: String
        /// The statement that set it, as the client sent it.
        public var sql: String
    }

    /// In the order first set.
    public private(set) var settings: [Setting] = []

    public init() {}

    public var isEmpty: Bool { self.settings.isEmpty }

    public mutating func apply(_ change: SettingChange) {
        switch change {
        case .set(let name, let sql):
            if let index = self.settings.firstIndex(where: { $0.name == name }) {
                self.settings[index].sql = sql
            } else {
                self.settings.append(Setting(name: name, sql: sql))
            }
        case .reset(let name):
            self.settings.removeAll { $0.name == name }
        case .resetAll:
            self.settings.removeAll()
        }
    }

    /// Statements that make `backend` (what was replayed there, by name) match this session: a reset for
    /// each setting the backend has that this session does not, then the session's SETs that differ.
    public func synchronization(backend replayed: [String: String]) -> [String] {
        var statements: [String] = []
        for name in replayed.keys.sorted() where !self.settings.contains(where: { $0.name == name }) {
            statements.append(Self.resetStatement(name))
        }
        // A changed setting is replayed with the ones after it, so that their order stays the client's
        // (SET ROLE before a SET that the role may run, for example).
        if let first = self.settings.firstIndex(where: { replayed[$0.name] != $0.sql }) {
            statements += self.settings[first...].map(\.sql)
        }
        return statements
    }

    /// Whether `backend` already matches (the common case: nothing to run).
    public func matches(backend replayed: [String: String]) -> Bool {
        replayed.count == self.settings.count && self.settings.allSatisfy { replayed[$0.name] == $0.sql }
    }

    /// What `backend.replayed` becomes after `synchronization`.
    public var replayed: [String: String] {
        Dictionary(self.settings.map { ($0.name, $0.sql) }, uniquingKeysWith: { $1 })
    }

    /// The statement that undoes setting `name` on a backend.
    static func resetStatement(_ name: String) -> String {
        switch name {
        case "role": return "RESET ROLE"
        case "session_authorization": return "RESET SESSION AUTHORIZATION"
        case "session characteristics":
            return "RESET default_transaction_isolation; RESET default_transaction_read_only; RESET default_transaction_deferrable"
        default: return "RESET " + SessionParameters.quoteIdentifier(name)
        }
    }
}

/// A change to the session's settings made by one statement.
public enum SettingChange: Sendable, Equatable {
    case set(name: String, sql: String)
    case reset(name: String)
    case resetAll
}
