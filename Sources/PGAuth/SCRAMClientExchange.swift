/// Client side of one SCRAM-SHA-256 exchange: the proxy logging in to a backend PostgreSQL server.
///
/// | server sends | call | client sends |
/// |---|---|---|
/// | AuthenticationSASL (lists `SCRAM-SHA-256`) | ``clientFirstMessage()`` | SASLInitialResponse |
/// | AuthenticationSASLContinue | ``receiveServerFirst(_:)`` | SASLResponse |
/// | AuthenticationSASLFinal | ``verifyServerFinal(_:)`` | (nothing; AuthenticationOk follows) |
///
/// Skipping ``verifyServerFinal(_:)`` would let anyone who can answer on the backend's address pose as it,
/// so a caller must not treat AuthenticationOk as success before the server signature was checked.
public struct SCRAMClientExchange: Sendable {
    private enum State: Sendable {
        case awaitingServerFirst
        case awaitingServerFinal(expectedServerSignature: [UInt8])
        case failed
    }

    /// The gs2 header this client always sends: no channel binding support, no authorization identity.
    private static let gs2Header: [UInt8] = Array("n,,".utf8)

    private let password: String
    private let clientNonce: String
    private let clientFirstBare: [UInt8]
    private var state: State

    /// Starts an exchange.
    ///
    /// - Parameters:
    ///   - username: Sent in `n=`. PostgreSQL ignores it (the startup packet's user counts) and libpq sends it
    ///     empty, which is the default; other values are escaped as RFC 5802 requires.
    ///   - password: The user's password, used as raw UTF-8 without SASLprep: exact for ASCII passwords; a
    ///     password that SASLprep would rewrite (e.g. containing a no-break space) fails against PostgreSQL.
    ///   - clientNonce: The client nonce; 18 random bytes in base64 when `nil`, like libpq. Pass a fixed value
    ///     only in tests. Must be printable ASCII without `,`.
    public init(username: String = "", password: String, clientNonce: String? = nil) {
        let clientNonce = clientNonce ?? SCRAMCrypto.randomNonce()
        precondition(SCRAMCrypto.isPrintableNonce(clientNonce.utf8), "SCRAM nonce must be printable ASCII without ','")
        self.password = password
        self.clientNonce = clientNonce
        self.clientFirstBare = Array("n=\(SCRAMMessages.saslName(username)),r=\(clientNonce)".utf8)
        self.state = .awaitingServerFirst
    }

    /// The client-first-message, `n,,n=,r=<nonce>`: the data of the SASLInitialResponse.
    public func clientFirstMessage() -> [UInt8] {
        Self.gs2Header + self.clientFirstBare
    }

    /// Takes the server-first-message (the AuthenticationSASLContinue data) and returns the
    /// client-final-message (the SASLResponse data).
    ///
    /// This runs PBKDF2 with the server's iteration count. Throws ``SCRAMError/nonceMismatch`` when the server's
    /// nonce does not extend this client's nonce.
    public mutating func receiveServerFirst(_ message: [UInt8]) throws(SCRAMError) -> [UInt8] {
        switch self.state {
        case .awaitingServerFirst:
            break
        case .awaitingServerFinal, .failed:
            self.state = .failed
            throw .unexpectedMessage
        }
        self.state = .failed
        let serverFirst = try SCRAMServerFirstMessage(parsing: message)
        let clientNonce = Array(self.clientNonce.utf8)
        // The server must append a nonce of its own; echoing ours back would let it replay old exchanges.
        guard serverFirst.nonce.count > clientNonce.count, serverFirst.nonce.starts(with: clientNonce) else {
            throw .nonceMismatch
        }
        let salted = SCRAMCrypto.saltedPassword(
            password: SCRAMCrypto.normalizedPassword(self.password),
            salt: serverFirst.salt,
            iterations: serverFirst.iterations
        )
        let keys = SCRAMCrypto.keys(saltedPassword: salted)
        let withoutProof = SCRAMClientFinalMessage.buildWithoutProof(
            gs2Header: Self.gs2Header,
            nonce: serverFirst.nonce
        )
        let authMessage = self.clientFirstBare + [UInt8(ascii: ",")] + message + [UInt8(ascii: ",")] + withoutProof
        let clientSignature = SCRAMCrypto.hmac(key: keys.storedKey, authMessage)
        let proof = SCRAMCrypto.xor(keys.clientKey, clientSignature)
        let serverSignature = SCRAMCrypto.hmac(key: keys.serverKey, authMessage)
        self.state = .awaitingServerFinal(expectedServerSignature: serverSignature)
        return withoutProof + Array(",p=\(SCRAMCrypto.base64Encode(proof))".utf8)
    }

    /// Checks the server-final-message (the AuthenticationSASLFinal data): returns when `v=` carries the
    /// expected server signature, throws ``SCRAMError/invalidServerSignature`` when it does not, and
    /// ``SCRAMError/serverError(_:)`` when the server sent `e=`.
    public func verifyServerFinal(_ message: [UInt8]) throws(SCRAMError) {
        let expected: [UInt8]
        switch self.state {
        case .awaitingServerFinal(let signature):
            expected = signature
        case .awaitingServerFirst, .failed:
            throw .unexpectedMessage
        }
        switch try SCRAMServerFinalMessage(parsing: message) {
        case .error(let value):
            throw .serverError(value)
        case .verifier(let signature):
            guard SCRAMCrypto.constantTimeEquals(signature, expected) else {
                throw .invalidServerSignature
            }
        }
    }
}
