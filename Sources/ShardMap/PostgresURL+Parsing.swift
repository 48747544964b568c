import Foundation

extension PostgresURL {
    /// Parses a `postgresql://` or `postgres://` URI like libpq does (see the type's documentation).
    ///
    /// Throws `ShardMapError` with an empty field (callers re-scope it to theirs); the message never
    /// repeats the URL, which may hold a password. Several hosts (`h1,h2`) are refused: a shard has one
    /// primary, and replicas are listed separately.
    public init(parsing string: String) throws {
        let schemes = ["postgresql://", "postgres://"]
        guard let scheme = schemes.first(where: { string.hasPrefix($0) }) else {
            throw Self.failure("not a connection URL; it must start with postgresql:// or postgres://")
        }
        var remainder = string.dropFirst(scheme.count)

        // Credentials: libpq looks for '@' before the first '/'.
        var user: String?
        var password: String?
        if let at = remainder.firstIndex(where: { $0 == "@" || $0 == "/" }), remainder[at] == "@" {
            let credentials = remainder[..<at]
            if let colon = credentials.firstIndex(of: ":") {
                user = try Self.decode(credentials[..<colon], "user name")
                password = try Self.decode(credentials[credentials.index(after: colon)...], "password")
            } else {
                user = try Self.decode(credentials, "user name")
            }
            remainder = remainder[remainder.index(after: at)...]
        }

        // Host: a bracketed IPv6 address or anything up to ':', '/', '?' or ','.
        var host: String?
        if remainder.first == "[" {
            guard let close = remainder.firstIndex(of: "]") else {
                throw Self.failure("missing \"]\" after the IPv6 address")
            }
            let address = remainder[remainder.index(after: remainder.startIndex)..<close]
            guard !address.isEmpty else {
                throw Self.failure("the IPv6 address between [] is empty")
            }
            host = try Self.decode(address, "host")
            remainder = remainder[remainder.index(after: close)...]
            if let next = remainder.first, !":/?,".contains(next) {
                throw Self.failure("unexpected \"\(next)\" after the IPv6 address; expected \":\" or \"/\"")
            }
        } else {
            let end = remainder.firstIndex(where: { ":/?,".contains($0) }) ?? remainder.endIndex
            host = try Self.decode(remainder[..<end], "host")
            remainder = remainder[end...]
        }

        var port: String?
        if remainder.first == ":" {
            remainder = remainder.dropFirst()
            let end = remainder.firstIndex(where: { "/?,".contains($0) }) ?? remainder.endIndex
            port = try Self.decode(remainder[..<end], "port")
            remainder = remainder[end...]
        }
        if remainder.first == "," {
            throw Self.failure("several hosts are not supported; give one host per URL")
        }

        var database: String?
        if remainder.first == "/" {
            remainder = remainder.dropFirst()
            let end = remainder.firstIndex(of: "?") ?? remainder.endIndex
            database = try Self.decode(remainder[..<end], "database name")
            remainder = remainder[end...]
        }

        var parameters: [String: String] = [:]
        if remainder.first == "?" {
            for item in remainder.dropFirst().split(separator: "&", omittingEmptySubsequences: true) {
                let pieces = item.split(separator: "=", omittingEmptySubsequences: false)
                guard pieces.count == 2 else {
                    throw Self.failure(
                        pieces.count < 2
                            ? "query parameter without \"=\"" : "query parameter with more than one \"=\"")
                }
                let key = try Self.decode(pieces[0], "query parameter name")
                let value = try Self.decode(pieces[1], "query parameter \(key)")
                guard !key.isEmpty else {
                    throw Self.failure("query parameter with an empty name")
                }
                switch key {
                case "host": host = value
                case "port": port = value
                case "user": user = value
                case "password": password = value
                case "dbname": database = value
                case "ssl" where value == "true": parameters["sslmode"] = "require"  // as libpq does
                default: parameters[key] = value
                }
            }
        }
        if let sslmode = parameters["sslmode"] {
            let modes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
            guard modes.contains(sslmode) else {
                throw Self.failure("sslmode \"\(sslmode)\" is not one of \(modes.joined(separator: ", "))")
            }
        }

        var portNumber = Self.defaultPort
        if let port, !port.isEmpty {
            guard port.utf8.count <= 5, port.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let number = Int(port), (1...65535).contains(number) else {
                throw Self.failure("port \"\(port)\" is not a number in 1-65535")
            }
            portNumber = number
        }
        // libpq treats an empty component as an absent one.
        func given(_ value: String?) -> String? {
            value.flatMap { $0.isEmpty ? nil : $0 }
        }
        let userName = given(user) ?? "postgres"
        self.init(
            host: given(host) ?? Self.defaultSocketDirectory, port: portNumber, user: userName,
            password: given(password), database: given(database) ?? userName, parameters: parameters
        )
    }

    /// libpq's `conninfo_uri_decode`: `%XX` escapes, `+` kept as is, `%00` refused.
    private static func decode(_ text: Substring, _ what: String) throws -> String {
        guard text.contains("%") else { return String(text) }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%") {
                guard index + 2 < bytes.count,
                      let high = JSONParser.hexValue(bytes[index + 1]),
                      let low = JSONParser.hexValue(bytes[index + 2]) else {
                    throw failure("invalid percent-encoding in the \(what)")
                }
                let byte = high << 4 | low
                guard byte != 0 else {
                    throw failure("%00 is not allowed in the \(what)")
                }
                out.append(byte)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        guard let decoded = String(bytes: out, encoding: .utf8) else {
            throw failure("the \(what) is not valid UTF-8 after percent-decoding")
        }
        return decoded
    }

    private static func failure(_ problem: String) -> ShardMapError {
        ShardMapError(field: "", problem: problem)
    }
}
