import PGAuth
import Testing

/// Hostile or broken input must end in a SCRAMError, never a crash or a success.
@Suite struct SCRAMMalformedMessageTests {
    static let zeroProof = String(repeating: "A", count: 43) + "="

    static func freshServer() -> SCRAMServerExchange {
        SCRAMServerExchange(
            credentials: SCRAMServerCredentials(password: "secret", salt: [1, 2, 3], iterations: 1),
            serverNonce: "S"
        )
    }

    @Test(arguments: [
        ("", SCRAMError.Code.malformedMessage),
        ("n", .malformedMessage),
        ("n,", .malformedMessage),
        ("n,,", .malformedMessage),
        ("n,,n=", .malformedMessage),
        ("n,,n=,", .malformedMessage),
        ("n,,n=,r=", .malformedMessage),  // empty nonce
        ("n,,r=abc", .malformedMessage),  // missing n=
        ("n,,n=,x=abc", .malformedMessage),  // missing r=
        ("n,,n=,r=ab\u{7F}c", .malformedMessage),  // non-printable nonce
        ("n,,n=,r=ab c", .malformedMessage),  // space is not printable in SCRAM's sense
        ("n,,n=,r=abc,", .malformedMessage),  // trailing comma
        ("n,,n=,r=abc,bogus", .malformedMessage),  // extension without '='
        ("x,,n=,r=abc", .malformedMessage),  // unknown gs2 flag
        ("nn,,n=,r=abc", .malformedMessage),
        ("n,x,n=,r=abc", .malformedMessage),  // junk in the authzid slot
        ("p=tls-server-end-point,,n=,r=abc", .channelBindingUnsupported),
        ("p=tls-unique,,n=,r=abc", .channelBindingUnsupported),
        ("p=", .channelBindingUnsupported),
        ("n,a=admin,n=,r=abc", .authorizationIdentityUnsupported),
        ("n,,m=ext,n=,r=abc", .mandatoryExtensionUnsupported),
    ])
    func malformedClientFirst(message: String, expected: SCRAMError.Code) {
        var server = Self.freshServer()
        let error = scramError { _ = try server.receiveClientFirst(bytes(message)) }
        #expect(error?.code == expected, "\(message)")
        #expect(!server.isAuthenticated)
    }

    @Test func clientFirstWithExtensionsAndUsernameIsAccepted() throws {
        var server = Self.freshServer()
        let serverFirst = try server.receiveClientFirst(bytes("n,,n=some=2Cuser,r=abc,x=ignored"))
        #expect(text(serverFirst) == "r=abcS,s=AQID,i=1")
    }

    @Test func clientFirstWithInvalidUTF8DoesNotCrash() throws {
        var server = Self.freshServer()
        // Raw bytes in the (ignored) user name are allowed; they just travel into AuthMessage untouched.
        let serverFirst = try server.receiveClientFirst([
            0x6E, 0x2C, 0x2C, 0x6E, 0x3D, 0xFF, 0xFE, 0x2C, 0x72, 0x3D, 0x61,
        ])
        #expect(text(serverFirst) == "r=aS,s=AQID,i=1")
    }

    @Test(arguments: [
        ("", SCRAMError.Code.malformedMessage),
        ("c=biws", .malformedMessage),
        ("c=biws,r=abcS", .malformedMessage),  // missing proof
        ("r=abcS,c=biws,p=\(zeroProof)", .malformedMessage),  // wrong order
        ("c=biws,p=\(zeroProof)", .malformedMessage),  // missing r=
        ("c=bi*s,r=abcS,p=\(zeroProof)", .malformedMessage),  // bad base64 in c=
        ("c=biws,r=abcS,p=not*base64", .malformedMessage),  // bad base64 in p=
        ("c=biws,r=abcS,p=AAAA", .malformedMessage),  // proof of the wrong length
        ("c=biws,r=abcS,p=\(zeroProof),x=1", .malformedMessage),  // garbage after proof
        ("c=biws,r=abcS,p=\(zeroProof),p=\(zeroProof)", .malformedMessage),
        ("c=biws,r=abcS,bogus,p=\(zeroProof)", .malformedMessage),
        ("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAAAA,r=abcS,p=\(zeroProof)", .malformedMessage),  // cbind data
        ("c=eSws,r=abcS,p=\(zeroProof)", .malformedMessage),  // y,, but the client sent n,,
        ("c=biws,r=abcX,p=\(zeroProof)", .nonceMismatch),
        ("c=biws,r=abc,p=\(zeroProof)", .nonceMismatch),
        ("c=biws,r=abcSS,p=\(zeroProof)", .nonceMismatch),
        ("c=biws,r=abcS,p=\(zeroProof)", .invalidProof),  // well formed, wrong proof
        ("c=biws,r=abcS,x=ext,p=\(zeroProof)", .invalidProof),  // extensions are allowed before p=
    ])
    func malformedClientFinal(message: String, expected: SCRAMError.Code) throws {
        var server = Self.freshServer()
        _ = try server.receiveClientFirst(bytes("n,,n=,r=abc"))
        let error = scramError { _ = try server.receiveClientFinal(bytes(message)) }
        #expect(error?.code == expected, "\(message)")
        #expect(!server.isAuthenticated)
    }

    @Test(arguments: [
        ("", SCRAMError.Code.malformedMessage),
        ("r=CLIENTSERVER", .malformedMessage),
        ("r=CLIENTSERVER,s=QSXCR+Q6sek8bf92", .malformedMessage),
        ("s=QSXCR+Q6sek8bf92,r=CLIENTSERVER,i=4096", .malformedMessage),
        ("r=CLIENTSERVER,s=,i=4096", .malformedMessage),  // empty salt
        ("r=CLIENTSERVER,s=QSX*R+Q6sek8bf92,i=4096", .malformedMessage),  // bad base64
        ("r=CLIENTSERVER,s=QSXCR+Q6sek8bf9,i=4096", .malformedMessage),  // bad base64 length
        ("r=CLIENTSERVER,s=QSXCR+Q6sek8bf92,i=0", .malformedMessage),
        ("r=CLIENTSERVER,s=QSXCR+Q6sek8bf92,i=-1", .malformedMessage),
        ("r=CLIENTSERVER,s=QSXCR+Q6sek8bf92,i=+5", .malformedMessage),
        ("r=CLIENTSERVER,s=QSXCR+Q6sek8bf92,i=", .malformedMessage),
        ("r=CLIENTSERVER,s=QSXCR+Q6sek8bf92,i=4k", .malformedMessage),
        ("r=CLIENTSERVER,s=QSXCR+Q6sek8bf92,i=99999999999999999999999", .malformedMessage),
        ("r=CLIENTSERVER,s=QSXCR+Q6sek8bf92,i=4096,", .malformedMessage),
        ("r=,s=QSXCR+Q6sek8bf92,i=4096", .malformedMessage),
        ("m=ext,r=CLIENTSERVER,s=QSXCR+Q6sek8bf92,i=4096", .mandatoryExtensionUnsupported),
        ("r=SERVER,s=QSXCR+Q6sek8bf92,i=4096", .nonceMismatch),
    ])
    func malformedServerFirst(message: String, expected: SCRAMError.Code) {
        var client = SCRAMClientExchange(password: "secret", clientNonce: "CLIENT")
        let error = scramError { _ = try client.receiveServerFirst(bytes(message)) }
        #expect(error?.code == expected, "\(message)")
    }

    @Test func serverFirstExtensionsAfterIterationsAreIgnored() throws {
        var client = SCRAMClientExchange(password: "secret", clientNonce: "CLIENT")
        let clientFinal = try client.receiveServerFirst(bytes("r=CLIENTSERVER,s=QSXCR+Q6sek8bf92,i=1,x=future"))
        #expect(text(clientFinal).hasPrefix("c=biws,r=CLIENTSERVER,p="))
    }

    @Test(arguments: [
        ("", SCRAMError.Code.malformedMessage),
        ("v=", .malformedMessage),
        ("v=not*base64", .malformedMessage),
        ("v=AAAA", .malformedMessage),  // wrong length
        ("x=AAAA", .malformedMessage),
        ("v=\(zeroProof),", .malformedMessage),
        ("v=\(zeroProof)", .invalidServerSignature),
        ("e=other-error", .serverError),
    ])
    func malformedServerFinal(message: String, expected: SCRAMError.Code) throws {
        var client = SCRAMClientExchange(password: "secret", clientNonce: "CLIENT")
        _ = try client.receiveServerFirst(bytes("r=CLIENTSERVER,s=QSXCR+Q6sek8bf92,i=1"))
        let error = scramError { try client.verifyServerFinal(bytes(message)) }
        #expect(error?.code == expected, "\(message)")
    }

    @Test func errorDescriptionsAreActionable() {
        #expect(SCRAMError.malformedMessage("missing nonce").description == "malformed SCRAM message (missing nonce)")
        #expect(SCRAMError.channelBindingUnsupported.description.contains("channel binding"))
        #expect(SCRAMError.invalidProof.description.contains("wrong password"))
        #expect(SCRAMError.malformedMessage("a") != SCRAMError.malformedMessage("b"))
        #expect(SCRAMError.malformedMessage("a").code == SCRAMError.malformedMessage("b").code)
    }
}
