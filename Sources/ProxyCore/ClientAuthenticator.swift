import NIOCore
import PGAuth
import PGWire
import ShardMap

/// Credentials of the map's `auth` section, prepared once per map load so that a login costs no PBKDF2.
public struct ClientAuthSettings: Sendable {
    public enum Method: Sendable {
        case trust
        case md5(passwords: [String: String])
        case scram(credentials: [String: SCRAMServerCredentials])
    }

    public var method: Method

    public init(method: Method) {
        self.method = method
    }

    /// Builds the settings from a map's `auth` section (nil = trust).
    public init(_ config: AuthConfig?) {
        guard let config else {
            self.method = .trust
            return
        }
        switch config.method {
        case .trust:
            self.method = .trust
        case .md5:
            self.method = .md5(passwords: Dictionary(config.users.map { ($0.name, $0.password) }, uniquingKeysWith: { a, _ in a }))
        case .scramSHA256:
            self.method = .scram(credentials: Dictionary(
                config.users.map { ($0.name, SCRAMServerCredentials(password: $0.password)) },
                uniquingKeysWith: { a, _ in a }))
        }
    }
}

/// The proxy's side of client authentication for one login.
///
/// `begin` says what to ask the client; each password-type message ('p') is fed to `receive`.
public struct ClientAuthenticator {
    public enum Step: Equatable {
        /// Send this Authentication request and wait for the next 'p' message.
        case challenge(Authentication)
        /// Authentication succeeded; send these (the last is always AuthenticationOk).
        case succeeded([Authentication])
        /// Refuse the login with this FATAL error.
        case failed(ErrorNoticeFields)
    }

    private enum State {
        case md5(expected: String?, salt: (UInt8, UInt8, UInt8, UInt8))
        case scramStart(SCRAMServerExchange?)
        case scramContinue(SCRAMServerExchange?)
        case done
    }

    private var state: State
    public let user: String

    /// Starts authenticating `user`. For trust the login succeeds at once.
    public static func begin(user: String, settings: ClientAuthSettings,
                             random: () -> UInt32 = { UInt32.random(in: .min ... .max) }) -> (ClientAuthenticator, Step) {
        switch settings.method {
        case .trust:
            return (ClientAuthenticator(state: .done, user: user), .succeeded([.ok]))
        case .md5(let passwords):
            let r = random()
            let salt = (UInt8(truncatingIfNeeded: r >> 24), UInt8(truncatingIfNeeded: r >> 16),
                        UInt8(truncatingIfNeeded: r >> 8), UInt8(truncatingIfNeeded: r))
            // An unknown user still gets the challenge, so a client cannot probe which users exist.
            let expected = passwords[user].map { MD5Password.response(user: user, password: $0, salt: salt) }
            return (ClientAuthenticator(state: .md5(expected: expected, salt: salt), user: user), .challenge(.md5Password(salt: salt)))
        case .scram(let credentials):
            let exchange = credentials[user].map { SCRAMServerExchange(credentials: $0) }
            return (ClientAuthenticator(state: .scramStart(exchange), user: user), .challenge(.sasl(mechanisms: ["SCRAM-SHA-256"])))
        }
    }

    private init(state: State, user: String) {
        self.state = state
        self.user = user
    }

    /// Feeds the payload of a 'p' message.
    public mutating func receive(_ payload: ByteBuffer) -> Step {
        switch self.state {
        case .done:
            self.state = .done
            return .failed(ProxyErrors.protocolViolation("unexpected password message after authentication"))

        case .md5(let expected, _):
            self.state = .done
            var buffer = payload
            guard let response = buffer.readNullTerminatedString() else {
                return .failed(ProxyErrors.protocolViolation("malformed password message"))
            }
            guard let expected, Self.constantTimeEquals(response, expected) else {
                return .failed(ProxyErrors.passwordFailed(user: self.user))
            }
            return .succeeded([.ok])

        case .scramStart(var exchange):
            var buffer = payload
            let initial: SASLInitialResponse
            do {
                initial = try SASLInitialResponse.decode(from: &buffer)
            } catch {
                self.state = .done
                return .failed(ProxyErrors.protocolViolation("malformed SASLInitialResponse: \(error)"))
            }
            guard initial.mechanism == "SCRAM-SHA-256" else {
                self.state = .done
                return .failed(ProxyErrors.protocolViolation(
                    "client selected an invalid SASL authentication mechanism \"\(initial.mechanism)\""))
            }
            guard let data = initial.data else {
                self.state = .done
                return .failed(ProxyErrors.protocolViolation("SASLInitialResponse carries no client-first-message"))
            }
            guard exchange != nil else {
                // Unknown user: answer with a plausible challenge and fail at the proof, as PostgreSQL does.
                var mock = SCRAMServerExchange(credentials: .mock(username: self.user, secret: Self.mockSecret))
                guard let first = try? mock.receiveClientFirst(Array(data.readableBytesView)) else {
                    self.state = .done
                    return .failed(ProxyErrors.passwordFailed(user: self.user))
                }
                self.state = .scramContinue(nil)
                return .challenge(.saslContinue(ByteBuffer(bytes: first)))
            }
            do {
                let first = try exchange!.receiveClientFirst(Array(data.readableBytesView))
                self.state = .scramContinue(exchange)
                return .challenge(.saslContinue(ByteBuffer(bytes: first)))
            } catch {
                self.state = .done
                return .failed(Self.scramFailure(error, user: self.user))
            }

        case .scramContinue(var exchange):
            self.state = .done
            guard exchange != nil else {
                return .failed(ProxyErrors.passwordFailed(user: self.user))
            }
            do {
                let final = try exchange!.receiveClientFinal(Array(payload.readableBytesView))
                return .succeeded([.saslFinal(ByteBuffer(bytes: final)), .ok])
            } catch {
                return .failed(Self.scramFailure(error, user: self.user))
            }
        }
    }

    /// Secret for the mock credentials of users the map does not list. Their salt is derived from the user name
    /// (as PostgreSQL's mock authentication does): one shared salt for every unknown name would tell a client
    /// which names do not exist.
    private static let mockSecret: [UInt8] = (0..<32).map { _ in UInt8.random(in: .min ... .max) }

    private static func scramFailure(_ error: SCRAMError, user: String) -> ErrorNoticeFields {
        if error.code == .invalidProof {
            return ProxyErrors.passwordFailed(user: user)
        }
        return ProxyErrors.protocolViolation("SCRAM authentication failed: \(error)")
    }

    private static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}

extension ClientAuthenticator.Step {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.challenge(let l), .challenge(let r)): return l == r
        case (.succeeded(let l), .succeeded(let r)): return l == r
        case (.failed(let l), .failed(let r)): return l == r
        default: return false
        }
    }
}
