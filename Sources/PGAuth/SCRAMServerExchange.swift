/// Server side of one SCRAM-SHA-256 exchange: the proxy authenticating a client.
///
/// Drive it with the SASL payloads of the PostgreSQL messages:
///
/// | client sends | call | server sends |
/// |---|---|---|
/// | SASLInitialResponse (`SCRAM-SHA-256`) | ``receiveClientFirst(_:)`` | AuthenticationSASLContinue |
/// | SASLResponse | ``receiveClientFinal(_:)`` | AuthenticationSASLFinal, then AuthenticationOk |
///
/// Any thrown error ends the exchange; the caller answers with an ErrorResponse (SQLSTATE 28P01 for
/// ``SCRAMError/invalidProof``, 08P01 for protocol violations) and closes the connection.
///
/// The user name in the client-first-message is ignored, as PostgreSQL does: the startup packet's user is
/// authoritative, and the caller picked the ``SCRAMServerCredentials`` for it. Clients may send gs2 flag `n`
/// or `y` (`y` means "I could bind but you did not offer -PLUS", which is true as long as the proxy only
/// advertises `SCRAM-SHA-256`); `p` is refused with ``SCRAMError/channelBindingUnsupported``.
public struct SCRAMServerExchange: Sendable {
    private enum State: Sendable {
        case awaitingClientFirst
        case awaitingClientFinal(AwaitingClientFinal)
        case finished
        case failed
    }

    private struct AwaitingClientFinal: Sendable {
        var gs2Header: [UInt8]
        var clientFirstBare: [UInt8]
        var serverFirst: [UInt8]
        /// Client nonce followed by server nonce.
        var combinedNonce: [UInt8]
    }

    private let credentials: SCRAMServerCredentials
    private let serverNonce: String
    private var state: State

    /// Starts an exchange for one login attempt.
    ///
    /// - Parameters:
    ///   - credentials: The user's precomputed credentials, or
    ///     ``SCRAMServerCredentials/mock(username:secret:iterations:)`` for an unknown user.
    ///   - serverNonce: The server's part of the nonce; 18 random bytes in base64 when `nil`, like PostgreSQL.
    ///     Pass a fixed value only in tests. Must be printable ASCII without `,`.
    public init(credentials: SCRAMServerCredentials, serverNonce: String? = nil) {
        let serverNonce = serverNonce ?? SCRAMCrypto.randomNonce()
        precondition(SCRAMCrypto.isPrintableNonce(serverNonce.utf8), "SCRAM nonce must be printable ASCII without ','")
        self.credentials = credentials
        self.serverNonce = serverNonce
        self.state = .awaitingClientFirst
    }

    /// `true` once ``receiveClientFinal(_:)`` has accepted the client's proof.
    public var isAuthenticated: Bool {
        switch self.state {
        case .finished: true
        case .awaitingClientFirst, .awaitingClientFinal, .failed: false
        }
    }

    /// Takes the client-first-message (the SASLInitialResponse data) and returns the server-first-message
    /// (the AuthenticationSASLContinue data).
    public mutating func receiveClientFirst(_ message: [UInt8]) throws(SCRAMError) -> [UInt8] {
        switch self.state {
        case .awaitingClientFirst:
            break
        case .awaitingClientFinal, .finished, .failed:
            self.state = .failed
            throw .unexpectedMessage
        }
        // Any throw below leaves the exchange failed; success replaces this state.
        self.state = .failed
        let clientFirst = try SCRAMClientFirstMessage(parsing: message)
        let combinedNonce = clientFirst.nonce + Array(self.serverNonce.utf8)
        let serverFirst = SCRAMServerFirstMessage.build(
            nonce: SCRAMMessages.string(combinedNonce),
            salt: self.credentials.salt,
            iterations: self.credentials.iterations
        )
        self.state = .awaitingClientFinal(
            AwaitingClientFinal(
                gs2Header: clientFirst.gs2Header,
                clientFirstBare: clientFirst.bare,
                serverFirst: serverFirst,
                combinedNonce: combinedNonce
            )
        )
        return serverFirst
    }

    /// Takes the client-final-message (the SASLResponse data), checks the proof and returns the
    /// server-final-message `v=<ServerSignature>` (the AuthenticationSASLFinal data).
    ///
    /// Throws ``SCRAMError/invalidProof`` on a wrong password, ``SCRAMError/nonceMismatch`` if the nonce is not
    /// the one sent in the server-first-message.
    public mutating func receiveClientFinal(_ message: [UInt8]) throws(SCRAMError) -> [UInt8] {
        let pending: AwaitingClientFinal
        switch self.state {
        case .awaitingClientFinal(let value):
            pending = value
        case .awaitingClientFirst, .finished, .failed:
            self.state = .failed
            throw .unexpectedMessage
        }
        // Until the proof checks out the exchange has failed; only success below moves on to `.finished`.
        self.state = .failed
        let clientFinal = try SCRAMClientFinalMessage(parsing: message)
        guard clientFinal.channelBinding == pending.gs2Header else {
            // c= must repeat the gs2 header; anything else is a channel-binding downgrade or a confused client.
            throw .malformedMessage("channel-binding data in client-final-message does not match the gs2 header")
        }
        guard clientFinal.nonce == pending.combinedNonce else {
            throw .nonceMismatch
        }
        let authMessage =
            pending.clientFirstBare + [UInt8(ascii: ",")] + pending.serverFirst + [UInt8(ascii: ",")]
            + clientFinal.withoutProof
        let clientSignature = SCRAMCrypto.hmac(key: self.credentials.storedKey, authMessage)
        let clientKey = SCRAMCrypto.xor(clientFinal.proof, clientSignature)
        guard SCRAMCrypto.constantTimeEquals(SCRAMCrypto.hash(clientKey), self.credentials.storedKey) else {
            throw .invalidProof
        }
        let serverSignature = SCRAMCrypto.hmac(key: self.credentials.serverKey, authMessage)
        self.state = .finished
        return Array("v=\(SCRAMCrypto.base64Encode(serverSignature))".utf8)
    }
}
