import ShardMap

/// One PostgreSQL server the proxy connects to, with the credentials it uses there.
public struct BackendServer: Hashable, Sendable, CustomStringConvertible {
    public enum Role: String, Sendable {
        case primary
        case replica
    }

    public var shard: String
    public var role: Role
    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    public var password: String?

    public init(shard: String, role: Role, url: PostgresURL, environment: [String: String]) {
        self.shard = shard
        self.role = role
        self.host = url.host
        self.port = url.port
        self.user = url.user
        self.database = url.database
        self.password = url.password
            ?? PGPassFile.password(host: url.host, port: url.port, database: url.database, user: url.user, environment: environment)
            ?? environment["PGPASSWORD"]
    }

    /// "s0 primary 127.0.0.1:5500" — never the password.
    public var description: String { "\(self.shard) \(self.role.rawValue) \(self.host):\(self.port)" }
}
