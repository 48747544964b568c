import PGAuth
import Testing

@Suite struct SCRAMServerCredentialsTests {
    /// Stored by PostgreSQL 15 for `ALTER ROLE ... PASSWORD 'secret'` (password_encryption = scram-sha-256).
    static let postgresVerifier =
        "SCRAM-SHA-256$4096:K/8SCNvuPGTv71ka25dORQ==$H5Yo5SJnEB8+1iAvdtZJ9UtoFMZC9H1ikJGIqU8+wn8=:"
        + "DjJ8cuWb0A/hG5pdy1f2gxJfxAYbWCjPDmCJhsBYxzc="

    @Test func parsesAndReproducesPostgresVerifier() throws {
        let parsed = try #require(SCRAMServerCredentials(verifier: Self.postgresVerifier))
        #expect(parsed.iterations == 4096)
        #expect(parsed.salt.count == 16)
        #expect(parsed.verifier == Self.postgresVerifier)
        let derived = SCRAMServerCredentials(password: "secret", salt: parsed.salt, iterations: parsed.iterations)
        #expect(derived == parsed)
    }

    @Test func verifierCredentialsAuthenticateAClient() throws {
        let credentials = try #require(SCRAMServerCredentials(verifier: Self.postgresVerifier))
        var server = SCRAMServerExchange(credentials: credentials)
        var client = SCRAMClientExchange(password: "secret")
        let clientFinal = try client.receiveServerFirst(try server.receiveClientFirst(client.clientFirstMessage()))
        try client.verifyServerFinal(try server.receiveClientFinal(clientFinal))
        #expect(server.isAuthenticated)
    }

    static let salt = "K/8SCNvuPGTv71ka25dORQ=="
    static let storedKey = "H5Yo5SJnEB8+1iAvdtZJ9UtoFMZC9H1ikJGIqU8+wn8="
    static let serverKey = "DjJ8cuWb0A/hG5pdy1f2gxJfxAYbWCjPDmCJhsBYxzc="

    @Test(arguments: [
        "",
        "secret",
        "md553f48b7c4b76a86ce72276c5755f217d",
        "SCRAM-SHA-1$4096:\(salt)$\(storedKey):\(serverKey)",
        "SCRAM-SHA-256$0:\(salt)$\(storedKey):\(serverKey)",
        "SCRAM-SHA-256$x:\(salt)$\(storedKey):\(serverKey)",
        "SCRAM-SHA-256$+4096:\(salt)$\(storedKey):\(serverKey)",
        "SCRAM-SHA-256$4096:$\(storedKey):\(serverKey)",
        "SCRAM-SHA-256$4096:\(salt)$AAAA:\(serverKey)",
        "SCRAM-SHA-256$4096:\(salt)$\(storedKey):\(serverKey.dropLast())",
        "SCRAM-SHA-256$4096:\(salt)$\(storedKey)",
        "SCRAM-SHA-256$4096:\(salt)$\(storedKey):\(serverKey)$",
        "SCRAM-SHA-256$4096$\(salt)$\(storedKey):\(serverKey)",
    ])
    func rejectsOtherStrings(verifier: String) {
        #expect(SCRAMServerCredentials(verifier: verifier) == nil)
    }

    @Test func descriptionHidesKeys() throws {
        let credentials = try #require(SCRAMServerCredentials(verifier: Self.postgresVerifier))
        #expect(credentials.description == "SCRAMServerCredentials(iterations: 4096, salt: K/8SCNvuPGTv71ka25dORQ==)")
        #expect(!credentials.description.contains("H5Yo5SJnEB8"))
        #expect(!credentials.description.contains("DjJ8cuWb0A"))
    }
}
