/// An error raised while running one side of a SCRAM-SHA-256 exchange.
///
/// Compare errors with `==` against the static members (`.invalidProof`, `.nonceMismatch`, ...). Errors that
/// carry a detail (``malformedMessage(_:)``, ``serverError(_:)``) compare equal only when the detail matches
/// too; to match any of them, compare ``code`` instead.
///
/// The detail never contains secret material (passwords, keys, proofs), so the ``description`` may be logged
/// and shown to the peer.
public struct SCRAMError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure, without its detail.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: Hashable, Sendable {
            case malformedMessage
            case channelBindingUnsupported
            case authorizationIdentityUnsupported
            case mandatoryExtensionUnsupported
            case nonceMismatch
            case invalidProof
            case invalidServerSignature
            case serverError
            case unexpectedMessage
        }

        fileprivate let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// A message does not follow the RFC 5802 grammar.
        public static let malformedMessage = Code(.malformedMessage)
        /// The client asked for channel binding (gs2 flag `p=`), which is not offered.
        public static let channelBindingUnsupported = Code(.channelBindingUnsupported)
        /// The client sent an authorization identity (`a=` in the gs2 header), which PostgreSQL does not support.
        public static let authorizationIdentityUnsupported = Code(.authorizationIdentityUnsupported)
        /// The peer requires a mandatory extension (`m=`), none of which are supported.
        public static let mandatoryExtensionUnsupported = Code(.mandatoryExtensionUnsupported)
        /// The nonce in a later message does not continue the nonce of an earlier one.
        public static let nonceMismatch = Code(.nonceMismatch)
        /// The client proof is wrong: the client does not know the password.
        public static let invalidProof = Code(.invalidProof)
        /// The server signature is wrong: the server does not know the password's keys.
        public static let invalidServerSignature = Code(.invalidServerSignature)
        /// The server ended the exchange with `e=...`.
        public static let serverError = Code(.serverError)
        /// A message arrived in a state where it is not expected (for example a second client-first-message).
        public static let unexpectedMessage = Code(.unexpectedMessage)

        /// A short name of the code.
        public var description: String {
            switch self.base {
            case .malformedMessage: "malformedMessage"
            case .channelBindingUnsupported: "channelBindingUnsupported"
            case .authorizationIdentityUnsupported: "authorizationIdentityUnsupported"
            case .mandatoryExtensionUnsupported: "mandatoryExtensionUnsupported"
            case .nonceMismatch: "nonceMismatch"
            case .invalidProof: "invalidProof"
            case .invalidServerSignature: "invalidServerSignature"
            case .serverError: "serverError"
            case .unexpectedMessage: "unexpectedMessage"
            }
        }
    }

    /// The kind of failure.
    public let code: Code
    /// What exactly was wrong, for ``Code/malformedMessage`` and ``Code/serverError``; `nil` otherwise.
    public let detail: String?

    private init(code: Code, detail: String? = nil) {
        self.code = code
        self.detail = detail
    }

    /// A message does not follow the RFC 5802 grammar; `what` says which part is wrong.
    public static func malformedMessage(_ what: String) -> SCRAMError {
        SCRAMError(code: .malformedMessage, detail: what)
    }

    /// The server sent `e=<value>` in its final message.
    public static func serverError(_ value: String) -> SCRAMError {
        SCRAMError(code: .serverError, detail: value)
    }

    /// The client asked for channel binding (gs2 flag `p=`); only `SCRAM-SHA-256` without `-PLUS` is offered.
    public static let channelBindingUnsupported = SCRAMError(code: .channelBindingUnsupported)
    /// The client sent an authorization identity (`a=`), which PostgreSQL does not support.
    public static let authorizationIdentityUnsupported = SCRAMError(code: .authorizationIdentityUnsupported)
    /// The peer requires a mandatory extension (`m=`).
    public static let mandatoryExtensionUnsupported = SCRAMError(code: .mandatoryExtensionUnsupported)
    /// A nonce does not continue the nonce of the previous message.
    public static let nonceMismatch = SCRAMError(code: .nonceMismatch)
    /// The client proof is wrong (wrong password).
    public static let invalidProof = SCRAMError(code: .invalidProof)
    /// The server signature is wrong (the server does not know the password, or a man in the middle).
    public static let invalidServerSignature = SCRAMError(code: .invalidServerSignature)
    /// A message arrived out of order.
    public static let unexpectedMessage = SCRAMError(code: .unexpectedMessage)

    /// A sentence a person can act on, modelled on PostgreSQL's own messages.
    public var description: String {
        switch self.code.base {
        case .malformedMessage:
            "malformed SCRAM message (\(self.detail ?? "unknown"))"
        case .channelBindingUnsupported:
            "SCRAM channel binding is not supported: use SCRAM-SHA-256 without channel binding"
        case .authorizationIdentityUnsupported:
            "client uses authorization identity, but it is not supported"
        case .mandatoryExtensionUnsupported:
            "SCRAM peer requires a mandatory extension, but none are supported"
        case .nonceMismatch:
            "SCRAM nonce mismatch"
        case .invalidProof:
            "SCRAM client proof is invalid (wrong password)"
        case .invalidServerSignature:
            "SCRAM server signature is invalid"
        case .serverError:
            "SCRAM server reported an error: \(self.detail ?? "unknown")"
        case .unexpectedMessage:
            "SCRAM message received out of order"
        }
    }
}
