import Crypto
import Foundation

/// The SCRAM-SHA-256 primitives of RFC 5802 section 2.2, and the small helpers around them.
enum SCRAMCrypto {
    /// Length of SHA-256 output, and so of every SCRAM key, signature and proof.
    static let keyLength = 32
    /// Raw bytes of a generated nonce before base64; PostgreSQL uses 18 (`SCRAM_RAW_NONCE_LEN`).
    static let rawNonceLength = 18
    /// Bytes of a generated salt; PostgreSQL uses 16 (`SCRAM_DEFAULT_SALT_LEN`).
    static let defaultSaltLength = 16

    /// The password bytes that enter `Hi()`.
    ///
    /// SASLprep (RFC 4013) is deliberately not applied: the password is used as its raw UTF-8 bytes. PostgreSQL
    /// runs SASLprep but falls back to the raw bytes whenever SASLprep fails (invalid UTF-8, prohibited
    /// characters such as ASCII control characters), so the two agree for every ASCII password and for non-ASCII
    /// passwords that SASLprep leaves unchanged (already NFKC, no non-ASCII spaces or "mapped to nothing"
    /// characters). Checked against PostgreSQL 15: "secret", "a<TAB>b" and "p\u{E4}ssword" log in; "a\u{A0}b"
    /// (no-break space, SASLprep maps it to " ") and "\u{FB01}sh" (ligature, NFKC gives "fish") do not, because
    /// PostgreSQL stored the keys of the SASLprep'd text.
    static func normalizedPassword(_ password: String) -> [UInt8] {
        Array(password.utf8)
    }

    /// `HMAC(key, message)` with SHA-256.
    static func hmac(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    /// `H(data)`: SHA-256.
    static func hash(_ data: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: data))
    }

    /// `Hi(password, salt, i)`: PBKDF2-HMAC-SHA-256 with a single output block.
    static func saltedPassword(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        precondition(iterations >= 1, "SCRAM iteration count must be positive")
        // Keying HMAC once and copying the keyed state per round avoids re-deriving the pads 4096 times.
        let keyed = HMAC<SHA256>(key: SymmetricKey(data: password))
        var first = keyed
        first.update(data: salt)
        first.update(data: [0, 0, 0, 1] as [UInt8])  // INT(1), big-endian block index
        var block = Array(first.finalize())
        var result = block
        for _ in 1..<iterations {
            var round = keyed
            round.update(data: block)
            block = Array(round.finalize())
            for index in 0..<result.count {
                result[index] ^= block[index]
            }
        }
        return result
    }

    /// `ClientKey`, `StoredKey` and `ServerKey` from a salted password.
    static func keys(saltedPassword: [UInt8]) -> (clientKey: [UInt8], storedKey: [UInt8], serverKey: [UInt8]) {
        let clientKey = self.hmac(key: saltedPassword, Array("Client Key".utf8))
        let serverKey = self.hmac(key: saltedPassword, Array("Server Key".utf8))
        return (clientKey, self.hash(clientKey), serverKey)
    }

    /// Byte-wise XOR of two equally long arrays.
    static func xor(_ lhs: [UInt8], _ rhs: [UInt8]) -> [UInt8] {
        precondition(lhs.count == rhs.count, "XOR of unequal lengths")
        return zip(lhs, rhs).map { $0 ^ $1 }
    }

    /// Compares without an early exit, so the time taken does not tell how many leading bytes matched.
    ///
    /// Lengths are public in SCRAM (always 32), so a length mismatch may return early.
    static func constantTimeEquals(_ lhs: some Collection<UInt8>, _ rhs: some Collection<UInt8>) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for (left, right) in zip(lhs, rhs) {
            difference |= left ^ right
        }
        return difference == 0
    }

    /// `count` bytes from the system's cryptographically secure generator.
    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// A fresh nonce: 18 random bytes, base64 encoded, like PostgreSQL and libpq generate.
    static func randomNonce() -> String {
        self.base64Encode(self.randomBytes(self.rawNonceLength))
    }

    /// Standard base64 with padding (RFC 4648 section 4), as SCRAM requires.
    static func base64Encode(_ bytes: some Collection<UInt8>) -> String {
        Data(bytes).base64EncodedString()
    }

    /// Strict standard base64: `nil` on any character outside the alphabet, missing padding or whitespace.
    static func base64Decode(_ bytes: some Collection<UInt8>) -> [UInt8]? {
        // Re-encoding and comparing also rejects non-canonical spellings (non-zero bits in the last character
        // before padding), so each value has exactly one accepted form whatever Foundation tolerates.
        guard let data = Data(base64Encoded: Data(bytes)) else { return nil }
        let decoded = Array(data)
        guard Array(Data(decoded).base64EncodedString().utf8) == Array(bytes) else { return nil }
        return decoded
    }

    /// RFC 5802 `printable`: ASCII 0x21...0x7E except `,`. Nonces must consist of these.
    static func isPrintableNonce(_ bytes: some Collection<UInt8>) -> Bool {
        !bytes.isEmpty && bytes.allSatisfy { $0 >= 0x21 && $0 <= 0x7E && $0 != UInt8(ascii: ",") }
    }
}
