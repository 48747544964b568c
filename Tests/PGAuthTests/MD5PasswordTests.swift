import PGAuth
import Testing

/// Expected values computed with Python's hashlib:
/// `"md5" + md5(md5(b"secretpostgres").hexdigest().encode() + salt).hexdigest()`.
@Suite struct MD5PasswordTests {
    @Test func storedHashMatchesPostgres() {
        // What PostgreSQL 15 stored in pg_authid.rolpassword for
        // `SET password_encryption = md5; ALTER ROLE postgres PASSWORD 'secret'`.
        #expect(MD5Password.storedHash(user: "postgres", password: "secret") == "md553f48b7c4b76a86ce72276c5755f217d")
    }

    @Test func saltedResponseMatchesHashlib() {
        #expect(
            MD5Password.response(user: "postgres", password: "secret", salt: (0x01, 0x02, 0x03, 0x04))
                == "md5bb41a296aab6baccb36ff243a562abff"
        )
        #expect(
            MD5Password.response(user: "postgres", password: "secret", salt: (0xDE, 0xAD, 0xBE, 0xEF))
                == "md5c546d0bbed2af888b328536b45c76348"
        )
        #expect(
            MD5Password.response(storedHash: "md553f48b7c4b76a86ce72276c5755f217d", salt: (0xDE, 0xAD, 0xBE, 0xEF))
                == "md5c546d0bbed2af888b328536b45c76348"
        )
    }

    @Test func verifyAcceptsOnlyTheRightResponse() {
        let salt: (UInt8, UInt8, UInt8, UInt8) = (0xDE, 0xAD, 0xBE, 0xEF)
        let good = "md5c546d0bbed2af888b328536b45c76348"
        #expect(MD5Password.verify(response: good, user: "postgres", password: "secret", salt: salt))
        #expect(MD5Password.verify(response: good, storedHash: "md553f48b7c4b76a86ce72276c5755f217d", salt: salt))
        #expect(!MD5Password.verify(response: good, user: "postgres", password: "Secret", salt: salt))
        #expect(!MD5Password.verify(response: good, user: "postgre", password: "secret", salt: salt))
        #expect(
            !MD5Password.verify(response: good, user: "postgres", password: "secret", salt: (0xDE, 0xAD, 0xBE, 0xEE))
        )
        #expect(
            !MD5Password.verify(
                response: "md5c546d0bbed2af888b328536b45c76349",
                user: "postgres",
                password: "secret",
                salt: salt
            )
        )
        #expect(!MD5Password.verify(response: "", user: "postgres", password: "secret", salt: salt))
        #expect(!MD5Password.verify(response: good + "0", user: "postgres", password: "secret", salt: salt))
        #expect(!MD5Password.verify(response: good, storedHash: "secret", salt: salt))
    }
}
