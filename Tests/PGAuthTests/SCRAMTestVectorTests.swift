import PGAuth
import Testing

/// Golden exchanges: RFC 7677 section 3, and PostgreSQL-style ones (empty `n=`) computed independently with
/// Python's hashlib/hmac (`hashlib.pbkdf2_hmac("sha256", ...)`).
@Suite struct SCRAMTestVectorTests {
    enum RFC7677 {
        static let password = "pencil"
        static let clientNonce = "rOprNGfwEbeRWgbNEkqO"
        static let serverNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        static let salt: [UInt8] = [
            0x5B, 0x6D, 0x99, 0x68, 0x9D, 0x12, 0x35, 0x8E, 0xEC, 0xA0, 0x4B, 0x14, 0x12, 0x36, 0xFA, 0x81,
        ]  // base64 "W22ZaJ0SNY7soEsUEjb6gQ=="
        static let clientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        static let serverFirst =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        static let clientFinal =
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        static let serverFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    }

    @Test func rfc7677ServerSide() throws {
        let credentials = SCRAMServerCredentials(password: RFC7677.password, salt: RFC7677.salt, iterations: 4096)
        var server = SCRAMServerExchange(credentials: credentials, serverNonce: RFC7677.serverNonce)
        let serverFirst = try server.receiveClientFirst(bytes(RFC7677.clientFirst))
        #expect(text(serverFirst) == RFC7677.serverFirst)
        #expect(!server.isAuthenticated)
        let serverFinal = try server.receiveClientFinal(bytes(RFC7677.clientFinal))
        #expect(text(serverFinal) == RFC7677.serverFinal)
        #expect(server.isAuthenticated)
    }

    @Test func rfc7677ClientSide() throws {
        var client = SCRAMClientExchange(username: "user", password: RFC7677.password, clientNonce: RFC7677.clientNonce)
        #expect(text(client.clientFirstMessage()) == RFC7677.clientFirst)
        let clientFinal = try client.receiveServerFirst(bytes(RFC7677.serverFirst))
        #expect(text(clientFinal) == RFC7677.clientFinal)
        try client.verifyServerFinal(bytes(RFC7677.serverFinal))
    }

    @Test func rfc7677StoredVerifier() {
        // StoredKey and ServerKey of the vector, as PostgreSQL would store them (computed with hashlib).
        let credentials = SCRAMServerCredentials(password: RFC7677.password, salt: RFC7677.salt, iterations: 4096)
        #expect(
            credentials.verifier
                == "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                + "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        )
    }

    /// A PostgreSQL-style exchange: empty `n=`, a non-ASCII password (raw UTF-8, no SASLprep).
    @Test func postgresStyleExchangeMatchesHashlib() throws {
        // base64 "QSXCR+Q6sek8bf92"
        let salt: [UInt8] = [0x41, 0x25, 0xC2, 0x47, 0xE4, 0x3A, 0xB1, 0xE9, 0x3C, 0x6D, 0xFF, 0x76]
        let password = "p\u{E4}ssword"
        let credentials = SCRAMServerCredentials(password: password, salt: salt)
        var server = SCRAMServerExchange(credentials: credentials, serverNonce: "3rfcNHYJY1ZVvWVs7j")
        var client = SCRAMClientExchange(password: password, clientNonce: "fyko+d2lbbFgONRv9qkxdawL")

        let clientFirst = client.clientFirstMessage()
        #expect(text(clientFirst) == "n,,n=,r=fyko+d2lbbFgONRv9qkxdawL")
        let serverFirst = try server.receiveClientFirst(clientFirst)
        #expect(text(serverFirst) == "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
        let clientFinal = try client.receiveServerFirst(serverFirst)
        #expect(
            text(clientFinal)
                == "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=GaTg3FbyZYj1D99f/VygdxbYi0hooCS8n8d3ZDQnbMQ="
        )
        let serverFinal = try server.receiveClientFinal(clientFinal)
        #expect(text(serverFinal) == "v=TA/f8W4GDIYVpAQtwILpZesZXq6YUvIM71WpfUfbjYY=")
        try client.verifyServerFinal(serverFinal)
    }

    /// gs2 flag `y` ("client supports channel binding, thinks the server does not"): `c=` must be "eSws".
    @Test func serverAcceptsYFlagFromHashlibClient() throws {
        let salt: [UInt8] = [0x41, 0x25, 0xC2, 0x47, 0xE4, 0x3A, 0xB1, 0xE9, 0x3C, 0x6D, 0xFF, 0x76]
        let credentials = SCRAMServerCredentials(password: "secret", salt: salt)
        var server = SCRAMServerExchange(credentials: credentials, serverNonce: "3rfcNHYJY1ZVvWVs7j")
        let serverFirst = try server.receiveClientFirst(bytes("y,,n=,r=fyko+d2lbbFgONRv9qkxdawL"))
        #expect(text(serverFirst) == "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
        let serverFinal = try server.receiveClientFinal(
            bytes("c=eSws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=LuYUj91KE/zynFHtL6AePvGSCC1VykCl/cstlsQkSpk=")
        )
        #expect(text(serverFinal) == "v=pV+ZJoCa6XUZuocSXEvCTtoH3h4v8Tf78hlR29j2W6Y=")
    }

    /// The `y` client must repeat `y,,` in `c=`; `biws` ("n,,") would be a downgrade.
    @Test func yFlagWithMismatchedChannelBindingIsRefused() throws {
        let credentials = SCRAMServerCredentials(password: "secret", salt: [1, 2, 3, 4], iterations: 1)
        var server = SCRAMServerExchange(credentials: credentials, serverNonce: "S")
        _ = try server.receiveClientFirst(bytes("y,,n=,r=C"))
        let error = scramError {
            _ = try server.receiveClientFinal(bytes("c=biws,r=CS,p=\(String(repeating: "A", count: 43))="))
        }
        #expect(error?.code == .malformedMessage)
        #expect(!server.isAuthenticated)
    }
}
