import NIOCore
import PGAuth
import PGWire

/// The proxy's side of a new backend connection: startup, authentication, then the parameters and key
/// the server reports until its first ReadyForQuery.
public struct BackendStartupStateMachine {
    public enum Action: Equatable {
        case none
        /// Send this frontend message (a 'p' password/SASL message).
        case send(FrontendMessage)
        /// The connection is ready for queries.
        case ready(parameters: [String: String], key: BackendKey?)
        /// Startup failed; close the connection. The text is for logs and for the client's error.
        case fail(String)
    }

    private enum State {
        case started
        case scram(SCRAMClientExchange)
        case authenticated
        case done
    }

    private var state: State = .started
    private var parameters: [String: String] = [:]
    private var key: BackendKey?
    public let user: String
    public let database: String
    private let password: String?

    public init(user: String, database: String, password: String?) {
        self.user = user
        self.database = database
        self.password = password
    }

    /// The StartupMessage to send first.
    public var startupMessage: StartupPacket {
        // No application_name: clients that set none must see PostgreSQL's default, as if connected directly.
        .startup(StartupMessage(parameters: [("user", self.user), ("database", self.database)]))
    }

    public mutating func receive(_ message: BackendMessage) -> Action {
        switch (self.state, message) {
        case (.done, _):
            return .none

        case (_, .errorResponse(let fields)):
            self.state = .done
            return .fail("\(fields.sqlState ?? "?????") \(fields.message ?? "error during startup")")

        case (.started, .authentication(let request)):
            return self.authenticate(request)

        case (.scram(var exchange), .authentication(.saslContinue(let data))):
            do {
                let final = try exchange.receiveServerFirst(Array(data.readableBytesView))
                self.state = .scram(exchange)
                return .send(.password(ByteBuffer(bytes: final)))
            } catch {
                self.state = .done
                return .fail("SCRAM exchange with the server failed: \(error)")
            }

        case (.scram(let exchange), .authentication(.saslFinal(let data))):
            do {
                try exchange.verifyServerFinal(Array(data.readableBytesView))
                self.state = .authenticated
                return .none
            } catch {
                self.state = .done
                return .fail("the server's SCRAM signature did not verify: \(error)")
            }

        case (.scram, .authentication(.ok)):
            // Only AuthenticationSASLFinal, verified, proves the server knows the password's keys (see
            // SCRAMClientExchange): AuthenticationOk before it could come from anyone posing as the server.
            self.state = .done
            return .fail("the server ended SCRAM authentication without sending its signature")

        case (.authenticated, .authentication(.ok)):
            return .none

        case (.authenticated, .parameterStatus(let name, let value)):
            self.parameters[name] = value
            return .none

        case (.authenticated, .backendKeyData(let key)):
            self.key = key
            return .none

        case (.authenticated, .noticeResponse), (.authenticated, .negotiateProtocolVersion):
            return .none

        case (.authenticated, .readyForQuery):
            self.state = .done
            return .ready(parameters: self.parameters, key: self.key)

        default:
            self.state = .done
            return .fail("unexpected message \(message.id) during startup")
        }
    }

    private mutating func authenticate(_ request: Authentication) -> Action {
        switch request {
        case .ok:
            self.state = .authenticated
            return .none
        case .cleartextPassword:
            guard let password = self.password else { return self.missingPassword() }
            self.state = .authenticated
            var payload = ByteBuffer()
            payload.writeNullTerminatedString(password)
            return .send(.password(payload))
        case .md5Password(let salt):
            guard let password = self.password else { return self.missingPassword() }
            self.state = .authenticated
            var payload = ByteBuffer()
            payload.writeNullTerminatedString(MD5Password.response(user: self.user, password: password, salt: salt))
            return .send(.password(payload))
        case .sasl(let mechanisms):
            guard mechanisms.contains("SCRAM-SHA-256") else {
                self.state = .done
                return .fail("the server offers only SASL mechanisms \(mechanisms.joined(separator: ", "))")
            }
            guard let password = self.password else { return self.missingPassword() }
            let exchange = SCRAMClientExchange(password: password)
            var payload = ByteBuffer()
            SASLInitialResponse(mechanism: "SCRAM-SHA-256", data: ByteBuffer(bytes: exchange.clientFirstMessage()))
                .encode(into: &payload)
            self.state = .scram(exchange)
            return .send(.password(payload))
        case .kerberosV5, .gss, .gssContinue, .sspi, .saslContinue, .saslFinal:
            self.state = .done
            return .fail("the server asks for an authentication method ShardGate does not support (\(request))")
        }
    }

    private mutating func missingPassword() -> Action {
        self.state = .done
        return .fail("the server asks for a password for user \"\(self.user)\" but none is configured (put it in the shard URL, as ${ENV_VAR}, or in PGPASSFILE)")
    }
}
