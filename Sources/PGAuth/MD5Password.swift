import Crypto

/// PostgreSQL's legacy `md5` password authentication (AuthenticationMD5Password).
///
/// The server stores `"md5" + md5hex(password + user)` and sends a 4-byte random salt; the client answers
/// with `"md5" + md5hex(md5hex(password + user) + salt)` in a PasswordMessage. MD5 is broken as a hash; this
/// exists only for clients and servers that cannot do SCRAM.
public enum MD5Password {
    /// `"md5" + md5hex(md5hex(password + user) + salt)`, as sent in PasswordMessage for AuthenticationMD5Password.
    public static func response(user: String, password: String, salt: (UInt8, UInt8, UInt8, UInt8)) -> String {
        self.response(storedHash: self.storedHash(user: user, password: password), salt: salt)
    }

    /// Checks a client's PasswordMessage against the plaintext password, comparing in constant time.
    public static func verify(
        response: String,
        user: String,
        password: String,
        salt: (UInt8, UInt8, UInt8, UInt8)
    ) -> Bool {
        self.verify(response: response, storedHash: self.storedHash(user: user, password: password), salt: salt)
    }

    /// `"md5" + md5hex(password + user)`: the form PostgreSQL keeps in `pg_authid.rolpassword` for md5 users.
    public static func storedHash(user: String, password: String) -> String {
        "md5" + self.md5Hex(Array(password.utf8) + Array(user.utf8))
    }

    /// The salted response computed from a stored hash (`md5...`, as returned by ``storedHash(user:password:)``),
    /// so a server can check md5 logins without knowing the plaintext password.
    ///
    /// - Precondition: `storedHash` starts with `md5`.
    public static func response(storedHash: String, salt: (UInt8, UInt8, UInt8, UInt8)) -> String {
        precondition(storedHash.hasPrefix("md5"), "an md5 stored hash starts with \"md5\"")
        let inner = Array(storedHash.utf8.dropFirst(3))
        return "md5" + self.md5Hex(inner + [salt.0, salt.1, salt.2, salt.3])
    }

    /// Checks a client's PasswordMessage against a stored hash (`md5...`), comparing in constant time.
    /// Returns `false` when `storedHash` is not an md5 hash.
    public static func verify(response: String, storedHash: String, salt: (UInt8, UInt8, UInt8, UInt8)) -> Bool {
        guard storedHash.hasPrefix("md5") else { return false }
        let expected = self.response(storedHash: storedHash, salt: salt)
        return SCRAMCrypto.constantTimeEquals(Array(response.utf8), Array(expected.utf8))
    }

    private static func md5Hex(_ bytes: [UInt8]) -> String {
        let hexDigits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(32)
        for byte in Insecure.MD5.hash(data: bytes) {
            hex.append(hexDigits[Int(byte >> 4)])
            hex.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
