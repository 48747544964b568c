/// Run-time parameters (GUCs) that follow a client across pooled backend connections.
///
/// A client's parameters are the ones it set in its startup packet plus every change the server reported
/// with ParameterStatus while serving it. Before a backend serves a client, `synchronization(...)` gives
/// the SET/RESET statements that make the backend's values equal the client's.
///
/// What is not tracked here (until the SQL-aware routing layer exists): `SET` of parameters that PostgreSQL
/// does not report with ParameterStatus (search_path, statement_timeout, ...) issued as SQL.
public struct SessionParameters: Sendable, Equatable {
    /// Parameters PostgreSQL reports with ParameterStatus that a client may change and expect to keep.
    public static let reportedSettable: Set<String> = [
        "application_name", "client_encoding", "DateStyle", "IntervalStyle", "TimeZone",
        "standard_conforming_strings", "default_transaction_read_only",
    ]

    /// Startup packet keys that are not run-time parameters.
    public static let nonParameterStartupKeys: Set<String> = ["user", "database", "replication", "options"]

    /// Values the client wants, by parameter name as PostgreSQL reports it.
    public private(set) var values: [String: String]

    public init(values: [String: String] = [:]) {
        self.values = values
    }

    /// The parameters of a startup packet, without `user`, `database` and the like.
    public init(startup parameters: [(String, String)]) {
        var values: [String: String] = [:]
        for (name, value) in parameters where !Self.nonParameterStartupKeys.contains(name) {
            values[Self.canonicalName(name)] = value
        }
        self.values = values
    }

    /// Records a ParameterStatus seen while this client owned the backend.
    public mutating func observe(name: String, value: String) {
        if Self.reportedSettable.contains(name) || self.values[name] != nil {
            self.values[name] = value
        }
    }

    /// SQL making a backend whose current values are `backend` (and whose values at connection start were
    /// `backendDefaults`) match this client; nil when nothing differs.
    ///
    /// A parameter the client never set but a previous client changed is RESET to the server default.
    public func synchronization(backend: [String: String], backendDefaults: [String: String]) -> String? {
        var statements: [String] = []
        for name in self.values.keys.sorted() {
            let wanted = self.values[name]!
            if backend[name] != wanted {
                statements.append("SET \(Self.quoteIdentifier(name)) TO \(Self.quoteLiteral(wanted))")
            }
        }
        for name in backend.keys.sorted() where self.values[name] == nil {
            if Self.reportedSettable.contains(name), backend[name] != backendDefaults[name] {
                statements.append("RESET \(Self.quoteIdentifier(name))")
            }
        }
        return statements.isEmpty ? nil : statements.joined(separator: "; ")
    }

    /// PostgreSQL's GUC names are case-insensitive; ParameterStatus uses these spellings.
    static func canonicalName(_ name: String) -> String {
        switch name.lowercased() {
        case "datestyle": return "DateStyle"
        case "intervalstyle": return "IntervalStyle"
        case "timezone": return "TimeZone"
        default: return name
        }
    }

    static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func quoteLiteral(_ value: String) -> String {
        // E'' is not needed: standard_conforming_strings is on unless a client turned it off, and then
        // a backslash in a value is doubled so both readings agree.
        let escaped = value.replacingOccurrences(of: "'", with: "''")
        if escaped.contains("\\") {
            return "E'" + escaped.replacingOccurrences(of: "\\", with: "\\\\") + "'"
        }
        return "'" + escaped + "'"
    }
}
