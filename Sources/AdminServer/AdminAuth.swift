import Hummingbird

/// The bearer-token check of the mutating endpoints (`PUT /shardmap`, `POST /slots/pause|resume`).
struct AdminAuth: Sendable {
    /// The configured token's bytes; `nil` when no token is configured (mutating endpoints refused).
    private let token: [UInt8]?

    init(token: String?) {
        guard let token, !token.isEmpty else {
            self.token = nil
            return
        }
        self.token = Array(token.utf8)
    }

    var isEnabled: Bool { self.token != nil }

    /// Throws 403 when no token is configured, 401 when the request's `Authorization: Bearer` token is
    /// missing or different.
    func check(_ request: Request) throws {
        guard let token = self.token else {
            throw AdminHTTPError(.forbidden, """
                mutating endpoints are disabled until an admin token is set: start shardgate with \
                --admin-token or SHARDGATE_ADMIN_TOKEN, then send Authorization: Bearer <token>
                """)
        }
        let unauthorized = AdminHTTPError(.unauthorized, "missing or wrong admin token: send Authorization: Bearer <token>",
                                          headers: [.wwwAuthenticate: "Bearer realm=\"shardgate\""])
        guard let header = request.headers[.authorization] else { throw unauthorized }
        let prefix = "bearer "
        guard header.utf8.count > prefix.utf8.count,
              header.prefix(prefix.count).lowercased() == prefix else { throw unauthorized }
        let presented = Array(header.utf8.dropFirst(prefix.utf8.count))
        guard Self.constantTimeEqual(presented, token) else { throw unauthorized }
    }

    /// Compares in time that depends only on the length of `presented` (the caller's input), never on
    /// where the first differing byte of the secret is.
    static func constantTimeEqual(_ presented: [UInt8], _ secret: [UInt8]) -> Bool {
        guard !secret.isEmpty else { return false }
        var difference: UInt8 = presented.count == secret.count ? 0 : 1
        for index in presented.indices {
            difference |= presented[index] ^ secret[index % secret.count]
        }
        return difference == 0
    }
}
