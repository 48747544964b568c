import ShardMap

/// libpq connection parameters for the shard URLs of a map.
///
/// The admin port shows passwords as `***`; such a password (or none) is left out, so libpq finds it
/// as it always does: `PGPASSWORD`, then `PGPASSFILE` / `~/.pgpass`.
public enum PGConnectionInfo {
    /// The password placeholder of a redacted map.
    public static let redactedPassword = "***"

    /// Keyword/value parameters for `PQconnectdbParams`.
    public static func parameters(for url: PostgresURL, applicationName: String = "shardctl",
                                  connectTimeoutSeconds: Int = 10) -> [(key: String, value: String)] {
        var parameters: [(key: String, value: String)] = [
            ("host", url.host), ("port", String(url.port)), ("user", url.user), ("dbname", url.database),
        ]
        if let password = self.realPassword(of: url) {
            parameters.append(("password", password))
        }
        var extra = url.parameters
        extra["application_name"] = extra["application_name"] ?? applicationName
        extra["connect_timeout"] = extra["connect_timeout"] ?? String(connectTimeoutSeconds)
        for key in extra.keys.sorted() where !["host", "port", "user", "dbname", "password"].contains(key) {
            parameters.append((key, extra[key] ?? ""))
        }
        return parameters
    }

    /// The URL's password unless it is missing, empty or the redaction placeholder.
    public static func realPassword(of url: PostgresURL) -> String? {
        guard let password = url.password, !password.isEmpty, password != self.redactedPassword else { return nil }
        return password
    }

    /// A conninfo string (`host='…' port='…' …`) for a subscription on another server to reach `url`.
    ///
    /// `password` is the one shardctl's own connection used (from the URL, `PGPASSWORD` or a password
    /// file), since the subscribing server does not read this machine's password file. It is stored in
    /// `pg_subscription` on the target, visible to superusers only, until the subscription is dropped.
    public static func conninfo(for url: PostgresURL, password: String?, applicationName: String) -> String {
        var pairs = self.parameters(for: url, applicationName: applicationName).filter {
            $0.key != "password" && $0.key != "connect_timeout"
        }
        if let password = password ?? self.realPassword(of: url) {
            pairs.append(("password", password))
        }
        return pairs.map { "\($0.key)=\(self.quote($0.value))" }.joined(separator: " ")
    }

    /// A conninfo value in single quotes with `\` and `'` escaped by a backslash, as libpq parses it.
    public static func quote(_ value: String) -> String {
        var out = "'"
        for character in value {
            if character == "\\" || character == "'" { out.append("\\") }
            out.append(character)
        }
        return out + "'"
    }
}
