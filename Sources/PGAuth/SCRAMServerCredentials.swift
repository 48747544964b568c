/// What a SCRAM-SHA-256 server needs to know about one user's password.
///
/// Precomputed per user at map load so a login costs no PBKDF2. These are the same values PostgreSQL keeps in
/// `pg_authid.rolpassword` (see ``verifier`` and ``init(verifier:)``): knowing them lets a server check a
/// client but not log in as it, so they may be stored where a plaintext password should not be.
public struct SCRAMServerCredentials: Sendable, Equatable, CustomStringConvertible {
    /// The salt sent to clients in `s=`.
    public let salt: [UInt8]
    /// The PBKDF2 iteration count sent to clients in `i=`.
    public let iterations: Int
    /// `H(ClientKey)`: checks the client's proof.
    public let storedKey: [UInt8]
    /// `HMAC(SaltedPassword, "Server Key")`: signs the server-final-message.
    public let serverKey: [UInt8]

    /// Derives the credentials from a plaintext password (one PBKDF2 run, so do it once per user, not per login).
    ///
    /// The password is used as raw UTF-8 without SASLprep. That matches PostgreSQL for every ASCII password and
    /// for non-ASCII ones SASLprep leaves alone; a password that SASLprep would rewrite (no-break spaces,
    /// compatibility characters like ligatures, soft hyphens) derives other keys than PostgreSQL would.
    ///
    /// - Parameters:
    ///   - password: The user's password.
    ///   - salt: The salt; 16 random bytes when `nil`, like PostgreSQL. Must not be empty.
    ///   - iterations: The PBKDF2 iteration count; PostgreSQL's default is 4096. Must be at least 1.
    public init(password: String, salt: [UInt8]? = nil, iterations: Int = 4096) {
        let salt = salt ?? SCRAMCrypto.randomBytes(SCRAMCrypto.defaultSaltLength)
        precondition(!salt.isEmpty, "SCRAM salt must not be empty")
        precondition(iterations >= 1, "SCRAM iteration count must be positive")
        let salted = SCRAMCrypto.saltedPassword(
            password: SCRAMCrypto.normalizedPassword(password),
            salt: salt,
            iterations: iterations
        )
        let keys = SCRAMCrypto.keys(saltedPassword: salted)
        self.init(salt: salt, iterations: iterations, storedKey: keys.storedKey, serverKey: keys.serverKey)
    }

    /// Wraps already derived values, e.g. read from a configuration file.
    ///
    /// - Precondition: `salt` is not empty, `iterations >= 1`, and both keys are 32 bytes.
    public init(salt: [UInt8], iterations: Int, storedKey: [UInt8], serverKey: [UInt8]) {
        precondition(!salt.isEmpty, "SCRAM salt must not be empty")
        precondition(iterations >= 1, "SCRAM iteration count must be positive")
        precondition(storedKey.count == SCRAMCrypto.keyLength, "StoredKey must be 32 bytes")
        precondition(serverKey.count == SCRAMCrypto.keyLength, "ServerKey must be 32 bytes")
        self.salt = salt
        self.iterations = iterations
        self.storedKey = storedKey
        self.serverKey = serverKey
    }

    /// Parses PostgreSQL's stored form, `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64
    /// fields), as found in `pg_authid.rolpassword` or written by `CREATE ROLE ... PASSWORD 'SCRAM-SHA-256$...'`.
    ///
    /// Returns `nil` for anything else, including md5 hashes and plaintext.
    public init?(verifier: String) {
        let parts = verifier.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "SCRAM-SHA-256" else { return nil }
        let saltPart = parts[1].split(separator: ":", omittingEmptySubsequences: false)
        let keyPart = parts[2].split(separator: ":", omittingEmptySubsequences: false)
        guard saltPart.count == 2, keyPart.count == 2,
            saltPart[0].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let iterations = Int(saltPart[0]), iterations >= 1,
            let salt = SCRAMCrypto.base64Decode(saltPart[1].utf8), !salt.isEmpty,
            let storedKey = SCRAMCrypto.base64Decode(keyPart[0].utf8), storedKey.count == SCRAMCrypto.keyLength,
            let serverKey = SCRAMCrypto.base64Decode(keyPart[1].utf8), serverKey.count == SCRAMCrypto.keyLength
        else { return nil }
        self.init(salt: salt, iterations: iterations, storedKey: storedKey, serverKey: serverKey)
    }

    /// PostgreSQL's stored form, `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    public var verifier: String {
        "SCRAM-SHA-256$\(self.iterations):\(SCRAMCrypto.base64Encode(self.salt))"
            + "$\(SCRAMCrypto.base64Encode(self.storedKey)):\(SCRAMCrypto.base64Encode(self.serverKey))"
    }

    /// Credentials for a user that does not exist, so that the exchange runs to the proof and fails there with
    /// ``SCRAMError/invalidProof`` exactly as a wrong password does: a client cannot tell unknown users apart.
    ///
    /// Like PostgreSQL's mock authentication, the salt is derived from the user name and a server secret, so
    /// repeated attempts for the same name see the same salt. The keys are random: no password matches.
    ///
    /// - Parameters:
    ///   - username: The user name from the startup packet.
    ///   - secret: Bytes that stay the same for the life of the process (or longer) and are unknown to clients.
    ///   - iterations: Should equal the iteration count real users have, so the answer looks the same.
    public static func mock(username: String, secret: [UInt8], iterations: Int = 4096) -> SCRAMServerCredentials {
        let digest = SCRAMCrypto.hash(Array(username.utf8) + [0] + secret)
        return SCRAMServerCredentials(
            salt: Array(digest.prefix(SCRAMCrypto.defaultSaltLength)),
            iterations: iterations,
            storedKey: SCRAMCrypto.randomBytes(SCRAMCrypto.keyLength),
            serverKey: SCRAMCrypto.randomBytes(SCRAMCrypto.keyLength)
        )
    }

    /// Shows the salt and iteration count only: the keys are secrets and stay out of logs.
    public var description: String {
        "SCRAMServerCredentials(iterations: \(self.iterations), salt: \(SCRAMCrypto.base64Encode(self.salt)))"
    }
}
