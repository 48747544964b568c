/// Run-time parameters (GUCs) that follow a client across pooled backend connections.
///
/// A client's parameters are the ones it set in its startup packet plus every change the server reported
/// with ParameterStatus while serving it. Before a backend serves a client, `synchronization(...)` gives
/// the SET/RESET statements that make the backend's values equal the client's.
///
/// What is not tracked here (until the SQL-aware routing layer exists): `SET` issued as SQL of parameters
/// that PostgreSQL does not report with ParameterStatus (search_path, statement_timeout, ...). Such values
/// given at startup (including `options=-c ...`) are tracked.
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

    /// The parameters of a startup packet, without `user`, `database` and the like; `options` is read the
    /// way PostgreSQL reads it (`-c name=value` and `--name=value`, backslash escapes a space), and protocol
    /// extension keys (`_pq_.*`) are left out: they are answered with NegotiateProtocolVersion instead.
    public init(startup parameters: [(String, String)]) {
        var values: [String: String] = [:]
        for (name, value) in parameters {
            if name == "options" {
                for (optionName, optionValue) in Self.parseOptions(value) {
                    values[Self.canonicalName(optionName)] = optionValue
                }
            } else if !Self.nonParameterStartupKeys.contains(name) && !name.hasPrefix("_pq_.") {
                values[Self.canonicalName(name)] = value
            }
        }
        self.values = values
    }

    /// Splits a startup `options` string into `name=value` settings.
    static func parseOptions(_ options: String) -> [(String, String)] {
        // Words are separated by unescaped white space; "\ " is a literal space.
        var words: [String] = []
        var current = ""
        var escaped = false
        for character in options {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == " " || character == "\t" {
                if !current.isEmpty { words.append(current) }
                current = ""
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { words.append(current) }
        var settings: [(String, String)] = []
        var index = 0
        while index < words.count {
            var setting: String?
            if words[index] == "-c", index + 1 < words.count {
                setting = words[index + 1]
                index += 1
            } else if words[index].hasPrefix("-c") {
                setting = String(words[index].dropFirst(2))
            } else if words[index].hasPrefix("--") {
                setting = String(words[index].dropFirst(2))
            }
            if let setting, let equals = setting.firstIndex(of: "=") {
                let name = setting[..<equals].replacingOccurrences(of: "-", with: "_")
                settings.append((name, String(setting[setting.index(after: equals)...])))
            }
            index += 1
        }
        return settings
    }

    /// Records a ParameterStatus seen while this client owned the backend.
    public mutating func observe(name: String, value: String) {
        if Self.reportedSettable.contains(name) || self.values[name] != nil {
            self.values[name] = value
        }
    }

    /// SQL making `backend` match this client; nil when nothing differs. It runs as one simple-protocol
    /// Query whose results the client never sees.
    ///
    /// A parameter the client never set but a previous client changed is RESET to the server default.
    public func synchronization(for backend: BackendParameters) -> String? {
        // Fast path, taken on almost every lease: nothing differs. Looks only at the client's values and
        // at the backend's differences from its defaults; no sorting, no allocation.
        guard self.differs(from: backend) else { return nil }
        // set_config takes the value as text, exactly as a startup parameter is taken: a list such as
        // search_path 'a, b' stays two schemas (SET name TO 'a, b' would make it one).
        var assignments: [String] = []
        for name in self.values.keys.sorted() {
            let wanted = self.values[name]!
            if backend[name] != wanted {
                assignments.append("pg_catalog.set_config(\(Self.quoteLiteral(name)), \(Self.quoteLiteral(wanted)), false)")
            }
        }
        var statements: [String] = []
        if !assignments.isEmpty {
            statements.append("SELECT " + assignments.joined(separator: ", "))
        }
        for name in backend.changed.keys.sorted() where self.needsReset(name, backend: backend) {
            statements.append("RESET \(Self.quoteIdentifier(name))")
        }
        return statements.isEmpty ? nil : statements.joined(separator: "; ")
    }

    /// Records on `backend` what `synchronization(for:)` sets, so that values PostgreSQL never reports are
    /// still known (and reset for the next client).
    public func applySynchronization(to backend: inout BackendParameters) {
        for name in backend.changed.keys where self.needsReset(name, backend: backend) {
            backend.set(name, nil)
        }
        for (name, value) in self.values {
            backend.set(name, value)
        }
    }

    /// Dictionary form of `synchronization(for:)`: `backend` holds all current values.
    public func synchronization(backend: [String: String], backendDefaults: [String: String]) -> String? {
        self.synchronization(for: BackendParameters(defaults: backendDefaults, current: backend))
    }

    /// Dictionary form of `applySynchronization(to:)`.
    public func stateAfterSynchronization(backend: [String: String], backendDefaults: [String: String]) -> [String: String] {
        var parameters = BackendParameters(defaults: backendDefaults, current: backend)
        self.applySynchronization(to: &parameters)
        return parameters.current
    }

    /// A changed parameter this client did not set: a reportable one a previous client changed, or one the
    /// proxy itself set for a previous client (never reported, so absent from the defaults). Reported
    /// read-only parameters (server_version, is_superuser, ...) are never reset.
    private func needsReset(_ name: String, backend: BackendParameters) -> Bool {
        guard self.values[name] == nil else { return false }
        return backend.defaults[name] == nil || Self.reportedSettable.contains(name)
    }

    private func differs(from backend: BackendParameters) -> Bool {
        for (name, wanted) in self.values where backend[name] != wanted {
            return true
        }
        for name in backend.changed.keys where self.needsReset(name, backend: backend) {
            return true
        }
        return false
    }

    /// PostgreSQL's GUC names are case-insensitive; ParameterStatus uses these spellings.
    static func canonicalName(_ name: String) -> String {
        switch name.lowercased() {
        case "datestyle": return "DateStyle"
        case "intervalstyle": return "IntervalStyle"
        case "timezone": return "TimeZone"
        case let lowered: return lowered
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
