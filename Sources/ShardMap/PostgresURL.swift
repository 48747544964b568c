import Foundation

/// A libpq connection URI (`postgresql://user:password@host:port/database?sslmode=require`).
///
/// Parsing follows libpq's `conninfo_uri_parse`: both `postgresql://` and `postgres://`, percent-decoding
/// of every component, IPv6 hosts in brackets, a Unix-socket directory as host (`?host=/path` or a
/// percent-encoded `/path` in the host position), and query parameters `host`, `port`, `user`,
/// `password` and `dbname` overriding the URI's components. Defaults are libpq's, except that no
/// environment variables are consulted: port 5432, user `postgres`, database = user, and the default
/// socket directory when no host is given.
public struct PostgresURL: Sendable, Hashable, CustomStringConvertible {
    /// A host name, an IP address (IPv6 without brackets), or a Unix-socket directory (starts with `/`).
    public var host: String
    /// TCP port, or the number in the socket file name `.s.PGSQL.<port>`.
    public var port: Int
    /// Role to log in as.
    public var user: String
    /// Clear-text password, if the URI has one (else look in `PGPassFile`).
    public var password: String?
    /// Database to connect to.
    public var database: String
    /// Other query-string parameters, decoded (e.g. `sslmode`, `application_name`).
    public var parameters: [String: String]

    /// libpq's default port.
    public static let defaultPort = 5432
    /// Where libpq looks for the server's socket when no host is given (Debian's build; `/tmp` upstream).
    #if os(Linux)
    public static let defaultSocketDirectory = "/var/run/postgresql"
    #else
    public static let defaultSocketDirectory = "/tmp"
    #endif

    /// Creates a URL from its parts.
    public init(
        host: String, port: Int = PostgresURL.defaultPort, user: String = "postgres", password: String? = nil,
        database: String? = nil, parameters: [String: String] = [:]
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database ?? user
        self.parameters = parameters
    }

    /// Whether `host` names a Unix-socket directory rather than a TCP host.
    public var isUnixSocket: Bool {
        host.hasPrefix("/")
    }

    /// The socket file for a Unix-socket host (`<dir>/.s.PGSQL.<port>`), else `nil`.
    public var unixSocketPath: String? {
        isUnixSocket ? (host.hasSuffix("/") ? host : host + "/") + ".s.PGSQL.\(port)" : nil
    }

    /// `host:port` for logs (`[::1]:5432` for IPv6, the socket directory for Unix sockets).
    public var endpoint: String {
        if isUnixSocket { return "\(host):\(port)" }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The URL without the password, for logs and admin output.
    public var redacted: String {
        render(encodedPassword: nil)
    }

    /// The complete URL, password included; parsing it gives back an equal value.
    public var connectionString: String {
        render(encodedPassword: password.map { Self.encode($0) })
    }

    /// The URL with the password, if any, replaced by `***`.
    public var masked: String {
        render(encodedPassword: password == nil ? nil : "***")
    }

    /// Same as `redacted`, so a URL printed by accident never shows the password.
    public var description: String {
        redacted
    }

    /// Renders a canonical URI: every component explicit, parameters sorted by name.
    private func render(encodedPassword: String?) -> String {
        var out = "postgresql://" + Self.encode(user)
        if let encodedPassword {
            out += ":" + encodedPassword
        }
        out += "@"
        var query = parameters.sorted { $0.key < $1.key }.map { (key: $0.key, value: Self.encode($0.value)) }
        if isUnixSocket {
            query.insert((key: "host", value: Self.encode(host, keeping: "/")), at: 0)
        } else if host.contains(":") {
            out += "[\(host)]"
        } else {
            out += Self.encode(host)
        }
        out += ":\(port)/" + Self.encode(database)
        if !query.isEmpty {
            out += "?" + query.map { "\(Self.encode($0.key))=\($0.value)" }.joined(separator: "&")
        }
        return out
    }

    /// Percent-encodes everything but RFC 3986 unreserved characters (and `keeping`).
    static func encode(_ text: String, keeping: String = "") -> String {
        let keep = Set(keeping.utf8)
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case _ where keep.contains(byte):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }
}
