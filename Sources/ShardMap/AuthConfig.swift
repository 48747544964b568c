import Foundation

/// Client authentication at the proxy (the `auth` section).
public struct AuthConfig: Sendable, Equatable {
    /// How clients prove who they are.
    public var method: AuthMethod
    /// The accepted users; may be empty only for `trust`.
    public var users: [AuthUser]

    /// Creates an auth configuration.
    public init(method: AuthMethod, users: [AuthUser]) {
        self.method = method
        self.users = users
    }

    /// The user called `name`, if configured.
    public func user(named name: String) -> AuthUser? {
        users.first { $0.name == name }
    }
}

/// One client user the proxy accepts.
public struct AuthUser: Sendable, Equatable {
    /// The user name clients send in their startup message.
    public var name: String
    /// The clear-text password (usually `${ENV}`-expanded from the map).
    public var password: String

    /// Creates a user.
    public init(name: String, password: String) {
        self.name = name
        self.password = password
    }
}

/// Client authentication methods, spelled as in `pg_hba.conf`.
public enum AuthMethod: String, Sendable, CaseIterable {
    /// SCRAM-SHA-256 (RFC 7677), PostgreSQL's default since version 14.
    case scramSHA256 = "scram-sha-256"
    /// The legacy MD5 challenge-response.
    case md5
    /// No password; DESIGN §2 allows it only while listening on loopback.
    case trust
}
