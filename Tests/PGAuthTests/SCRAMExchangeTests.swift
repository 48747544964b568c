import PGAuth
import Testing

/// Both sides of this library talking to each other with random nonces and salts.
@Suite struct SCRAMExchangeTests {
    /// Runs a full exchange; returns the server's exchange so callers can inspect it.
    @discardableResult
    static func exchange(
        serverPassword: String,
        clientPassword: String,
        iterations: Int = 4096
    ) throws(SCRAMError) -> SCRAMServerExchange {
        let credentials = SCRAMServerCredentials(password: serverPassword, iterations: iterations)
        var server = SCRAMServerExchange(credentials: credentials)
        var client = SCRAMClientExchange(password: clientPassword)
        let serverFirst = try server.receiveClientFirst(client.clientFirstMessage())
        let clientFinal = try client.receiveServerFirst(serverFirst)
        let serverFinal = try server.receiveClientFinal(clientFinal)
        try client.verifyServerFinal(serverFinal)
        return server
    }

    @Test(arguments: [
        "secret", "", "with,comma=and=equals", "p\u{E4}ssw\u{00F6}rd \u{1F511}", String(repeating: "x", count: 200),
    ])
    func roundTrip(password: String) throws {
        let server = try Self.exchange(serverPassword: password, clientPassword: password)
        #expect(server.isAuthenticated)
    }

    @Test func roundTripWithOtherIterationCount() throws {
        let server = try Self.exchange(serverPassword: "secret", clientPassword: "secret", iterations: 1)
        #expect(server.isAuthenticated)
    }

    @Test func randomValuesDiffer() {
        let first = SCRAMServerCredentials(password: "secret")
        let second = SCRAMServerCredentials(password: "secret")
        #expect(first.salt.count == 16)
        #expect(first.iterations == 4096)
        #expect(first.salt != second.salt)
        #expect(first.storedKey != second.storedKey)
        let nonceA = text(SCRAMClientExchange(password: "x").clientFirstMessage())
        let nonceB = text(SCRAMClientExchange(password: "x").clientFirstMessage())
        #expect(nonceA.hasPrefix("n,,n=,r="))
        #expect(nonceA.count == "n,,n=,r=".count + 24)  // base64 of 18 bytes
        #expect(nonceA != nonceB)
    }

    @Test func wrongPasswordIsInvalidProof() {
        let error = scramError { try Self.exchange(serverPassword: "secret", clientPassword: "Secret") }
        #expect(error == .invalidProof)
    }

    @Test func serverRejectsTamperedNonceInClientFinal() throws {
        var server = SCRAMServerExchange(credentials: SCRAMServerCredentials(password: "secret"), serverNonce: "SERVER")
        var client = SCRAMClientExchange(password: "secret", clientNonce: "CLIENT")
        let serverFirst = try server.receiveClientFirst(client.clientFirstMessage())
        let clientFinal = text(try client.receiveServerFirst(serverFirst))
        #expect(clientFinal.hasPrefix("c=biws,r=CLIENTSERVER,p="))
        let tampered = clientFinal.replacingOccurrences(of: "r=CLIENTSERVER", with: "r=CLIENTSERVEX")
        #expect(scramError { _ = try server.receiveClientFinal(bytes(tampered)) } == .nonceMismatch)
        #expect(!server.isAuthenticated)
    }

    @Test func serverRejectsTamperedProof() throws {
        var server = SCRAMServerExchange(credentials: SCRAMServerCredentials(password: "secret"), serverNonce: "SERVER")
        var client = SCRAMClientExchange(password: "secret", clientNonce: "CLIENT")
        let clientFinal = try client.receiveServerFirst(try server.receiveClientFirst(client.clientFirstMessage()))
        var tampered = clientFinal
        let proofStart = tampered.count - 44
        tampered[proofStart] = tampered[proofStart] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(scramError { _ = try server.receiveClientFinal(tampered) } == .invalidProof)
    }

    @Test func clientRejectsServerNonceThatDoesNotExtendItsOwn() {
        for serverFirst in ["r=OTHERSERVER,s=QSXCR+Q6sek8bf92,i=4096", "r=CLIENT,s=QSXCR+Q6sek8bf92,i=4096"] {
            var client = SCRAMClientExchange(password: "secret", clientNonce: "CLIENT")
            #expect(scramError { _ = try client.receiveServerFirst(bytes(serverFirst)) } == .nonceMismatch)
        }
    }

    @Test func clientRejectsWrongServerSignature() throws {
        var server = SCRAMServerExchange(credentials: SCRAMServerCredentials(password: "other"))
        var client = SCRAMClientExchange(password: "secret")
        let clientFinal = try client.receiveServerFirst(try server.receiveClientFirst(client.clientFirstMessage()))
        _ = clientFinal
        // A server that does not know the password cannot produce the signature; any 32 bytes fail.
        let forged = "v=" + String(repeating: "A", count: 43) + "="
        #expect(scramError { try client.verifyServerFinal(bytes(forged)) } == .invalidServerSignature)
    }

    @Test func clientReportsServerError() throws {
        var client = SCRAMClientExchange(password: "secret", clientNonce: "CLIENT")
        _ = try client.receiveServerFirst(bytes("r=CLIENTSERVER,s=QSXCR+Q6sek8bf92,i=1"))
        let error = scramError { try client.verifyServerFinal(bytes("e=invalid-proof")) }
        #expect(error == .serverError("invalid-proof"))
        #expect(error?.description.contains("invalid-proof") == true)
    }

    @Test func clientEscapesUsername() {
        let client = SCRAMClientExchange(username: "a,b=c", password: "x", clientNonce: "N")
        #expect(text(client.clientFirstMessage()) == "n,,n=a=2Cb=3Dc,r=N")
    }

    @Test func serverIgnoresClientFirstUsername() throws {
        // PostgreSQL clients may send any n=; the startup packet's user chose the credentials.
        var server = SCRAMServerExchange(credentials: SCRAMServerCredentials(password: "secret"), serverNonce: "S")
        var client = SCRAMClientExchange(username: "somebody-else", password: "secret", clientNonce: "C")
        let serverFinal = try server.receiveClientFinal(
            try client.receiveServerFirst(try server.receiveClientFirst(client.clientFirstMessage()))
        )
        try client.verifyServerFinal(serverFinal)
    }

    @Test func messagesOutOfOrderAreRejected() throws {
        var server = SCRAMServerExchange(credentials: SCRAMServerCredentials(password: "secret", iterations: 1))
        #expect(scramError { _ = try server.receiveClientFinal(bytes("c=biws,r=x,p=y")) } == .unexpectedMessage)

        var again = SCRAMServerExchange(credentials: SCRAMServerCredentials(password: "secret", iterations: 1))
        _ = try again.receiveClientFirst(bytes("n,,n=,r=abc"))
        #expect(scramError { _ = try again.receiveClientFirst(bytes("n,,n=,r=abc")) } == .unexpectedMessage)

        let fresh = SCRAMClientExchange(password: "secret")
        #expect(scramError { try fresh.verifyServerFinal(bytes("v=abc")) } == .unexpectedMessage)
    }

    @Test func failedExchangeCannotBeResumed() throws {
        var server = SCRAMServerExchange(credentials: SCRAMServerCredentials(password: "secret", iterations: 1))
        var client = SCRAMClientExchange(password: "wrong")
        let clientFinal = try client.receiveServerFirst(try server.receiveClientFirst(client.clientFirstMessage()))
        #expect(scramError { _ = try server.receiveClientFinal(clientFinal) } == .invalidProof)
        #expect(scramError { _ = try server.receiveClientFinal(clientFinal) } == .unexpectedMessage)
        #expect(!server.isAuthenticated)
    }

    @Test func mockCredentialsFailLikeAWrongPassword() {
        let secret: [UInt8] = Array(0..<32)
        let mock = SCRAMServerCredentials.mock(username: "nobody", secret: secret)
        #expect(mock.salt == SCRAMServerCredentials.mock(username: "nobody", secret: secret).salt)
        #expect(mock.salt != SCRAMServerCredentials.mock(username: "somebody", secret: secret).salt)
        #expect(mock.salt.count == 16 && mock.iterations == 4096)
        for password in ["", "secret", "nobody"] {
            var server = SCRAMServerExchange(credentials: mock)
            var client = SCRAMClientExchange(password: password)
            let error = scramError {
                let serverFirst = try server.receiveClientFirst(client.clientFirstMessage())
                _ = try server.receiveClientFinal(try client.receiveServerFirst(serverFirst))
            }
            #expect(error == .invalidProof)
        }
    }

    @Test func mechanismNames() {
        #expect(SCRAMMechanism.sha256 == "SCRAM-SHA-256")
        #expect(SCRAMMechanism.sha256Plus == "SCRAM-SHA-256-PLUS")
    }
}
