/// Parsers and builders for the four SCRAM messages (RFC 5802 section 7), working on raw bytes so that the
/// exact bytes received are the ones that enter `AuthMessage`.
enum SCRAMMessages {
    /// Splits at `,`, keeping empty fields (they are significant in the gs2 header).
    static func fields(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        bytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
    }

    /// `true` when `field` is `<name>=...`.
    static func hasName(_ field: ArraySlice<UInt8>, _ name: Unicode.Scalar) -> Bool {
        field.count >= 2 && field.first == UInt8(ascii: name) && field.dropFirst().first == UInt8(ascii: "=")
    }

    /// The value of a `<name>=value` field, or `.malformedMessage` naming what was expected.
    static func value(
        of field: ArraySlice<UInt8>,
        named name: Unicode.Scalar,
        in message: String
    ) throws(SCRAMError) -> ArraySlice<UInt8> {
        guard self.hasName(field, name) else {
            throw .malformedMessage("expected attribute \"\(name)\" in \(message)")
        }
        return field.dropFirst(2)
    }

    /// Checks an optional extension field: `<letter>=value`. Unknown extensions are ignored, as PostgreSQL does.
    static func checkExtension(_ field: ArraySlice<UInt8>, in message: String) throws(SCRAMError) {
        guard field.count >= 2, let name = field.first, self.isLetter(name),
            field.dropFirst().first == UInt8(ascii: "=")
        else {
            throw .malformedMessage("invalid attribute in \(message)")
        }
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }

    /// RFC 5802 `saslname`: `,` and `=` escaped as `=2C` and `=3D`.
    static func saslName(_ username: String) -> String {
        var escaped = ""
        for character in username {
            switch character {
            case ",": escaped += "=2C"
            case "=": escaped += "=3D"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    static func string(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}

/// `gs2-header client-first-message-bare`, as received by the server.
struct SCRAMClientFirstMessage {
    /// `n,,` or `y,,` exactly as received; `c=` in the client-final-message must be its base64.
    var gs2Header: [UInt8]
    /// Everything after the gs2 header; the first part of `AuthMessage`.
    var bare: [UInt8]
    /// The client's nonce (`r=`).
    var nonce: [UInt8]

    init(parsing bytes: [UInt8]) throws(SCRAMError) {
        let message = "client-first-message"
        let fields = SCRAMMessages.fields(bytes[...])
        let flag = fields[0]  // split always yields at least one field
        if SCRAMMessages.hasName(flag, "p") {
            throw .channelBindingUnsupported
        }
        guard fields.count >= 2 else {
            throw .malformedMessage("missing gs2 header in \(message)")
        }
        guard flag.elementsEqual("n".utf8) || flag.elementsEqual("y".utf8) else {
            throw .malformedMessage("unexpected channel-binding flag in \(message)")
        }
        let authzid = fields[1]
        if SCRAMMessages.hasName(authzid, "a") {
            throw .authorizationIdentityUnsupported
        }
        guard authzid.isEmpty else {
            throw .malformedMessage("unexpected attribute in gs2 header of \(message)")
        }
        guard fields.count >= 4 else {
            throw .malformedMessage("missing username or nonce in \(message)")
        }
        if SCRAMMessages.hasName(fields[2], "m") {
            throw .mandatoryExtensionUnsupported
        }
        // The username is read for syntax only: PostgreSQL uses the startup packet's user name instead.
        _ = try SCRAMMessages.value(of: fields[2], named: "n", in: message)
        let nonce = try SCRAMMessages.value(of: fields[3], named: "r", in: message)
        guard SCRAMCrypto.isPrintableNonce(nonce) else {
            throw .malformedMessage("non-printable or empty nonce in \(message)")
        }
        for field in fields.dropFirst(4) {
            try SCRAMMessages.checkExtension(field, in: message)
        }
        let bareStart = fields[2].startIndex
        self.gs2Header = Array(bytes[..<bareStart])
        self.bare = Array(bytes[bareStart...])
        self.nonce = Array(nonce)
    }
}

/// `r=...,s=...,i=...`, as received by the client.
struct SCRAMServerFirstMessage {
    var nonce: [UInt8]
    var salt: [UInt8]
    var iterations: Int

    init(parsing bytes: [UInt8]) throws(SCRAMError) {
        let message = "server-first-message"
        let fields = SCRAMMessages.fields(bytes[...])
        if let first = fields.first, SCRAMMessages.hasName(first, "m") {
            throw .mandatoryExtensionUnsupported
        }
        guard fields.count >= 3 else {
            throw .malformedMessage("missing nonce, salt or iteration count in \(message)")
        }
        let nonce = try SCRAMMessages.value(of: fields[0], named: "r", in: message)
        guard SCRAMCrypto.isPrintableNonce(nonce) else {
            throw .malformedMessage("non-printable or empty nonce in \(message)")
        }
        let encodedSalt = try SCRAMMessages.value(of: fields[1], named: "s", in: message)
        guard let salt = SCRAMCrypto.base64Decode(encodedSalt), !salt.isEmpty else {
            throw .malformedMessage("invalid salt in \(message)")
        }
        let iterationText = try SCRAMMessages.value(of: fields[2], named: "i", in: message)
        guard !iterationText.isEmpty,
            iterationText.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let iterations = Int(SCRAMMessages.string(iterationText)), iterations >= 1
        else {
            throw .malformedMessage("invalid iteration count in \(message)")
        }
        for field in fields.dropFirst(3) {
            try SCRAMMessages.checkExtension(field, in: message)
        }
        self.nonce = Array(nonce)
        self.salt = salt
        self.iterations = iterations
    }

    /// The message as the server builds it.
    static func build(nonce: String, salt: [UInt8], iterations: Int) -> [UInt8] {
        Array("r=\(nonce),s=\(SCRAMCrypto.base64Encode(salt)),i=\(iterations)".utf8)
    }
}

/// `c=...,r=...[,extensions],p=...`, as received by the server.
struct SCRAMClientFinalMessage {
    /// The decoded `c=` value: the gs2 header (channel binding data is not supported).
    var channelBinding: [UInt8]
    var nonce: [UInt8]
    var proof: [UInt8]
    /// Everything before `,p=`; the last part of `AuthMessage`.
    var withoutProof: [UInt8]

    init(parsing bytes: [UInt8]) throws(SCRAMError) {
        let message = "client-final-message"
        let fields = SCRAMMessages.fields(bytes[...])
        guard fields.count >= 3 else {
            throw .malformedMessage("missing channel binding, nonce or proof in \(message)")
        }
        let encodedBinding = try SCRAMMessages.value(of: fields[0], named: "c", in: message)
        guard let channelBinding = SCRAMCrypto.base64Decode(encodedBinding) else {
            throw .malformedMessage("invalid channel-binding data in \(message)")
        }
        let nonce = try SCRAMMessages.value(of: fields[1], named: "r", in: message)
        let proofField = fields[fields.count - 1]
        for field in fields.dropFirst(2).dropLast() {
            try SCRAMMessages.checkExtension(field, in: message)
            if SCRAMMessages.hasName(field, "p") {
                throw .malformedMessage("garbage after proof in \(message)")
            }
        }
        let encodedProof = try SCRAMMessages.value(of: proofField, named: "p", in: message)
        guard let proof = SCRAMCrypto.base64Decode(encodedProof), proof.count == SCRAMCrypto.keyLength else {
            throw .malformedMessage("malformed proof in \(message)")
        }
        self.channelBinding = channelBinding
        self.nonce = Array(nonce)
        self.proof = proof
        // proofField.startIndex points just past the comma that precedes "p=".
        self.withoutProof = Array(bytes[..<(proofField.startIndex - 1)])
    }

    /// `c=<base64 gs2 header>,r=<nonce>`: the message minus its proof.
    static func buildWithoutProof(gs2Header: [UInt8], nonce: [UInt8]) -> [UInt8] {
        Array("c=\(SCRAMCrypto.base64Encode(gs2Header)),r=".utf8) + nonce
    }
}

/// `v=...` or `e=...`, as received by the client.
enum SCRAMServerFinalMessage {
    case verifier([UInt8])
    case error(String)

    init(parsing bytes: [UInt8]) throws(SCRAMError) {
        let message = "server-final-message"
        let fields = SCRAMMessages.fields(bytes[...])
        guard let first = fields.first, !first.isEmpty else {
            throw .malformedMessage("empty \(message)")
        }
        for field in fields.dropFirst() {
            try SCRAMMessages.checkExtension(field, in: message)
        }
        if SCRAMMessages.hasName(first, "e") {
            self = .error(SCRAMMessages.string(first.dropFirst(2)))
            return
        }
        let encoded = try SCRAMMessages.value(of: first, named: "v", in: message)
        guard let signature = SCRAMCrypto.base64Decode(encoded), signature.count == SCRAMCrypto.keyLength else {
            throw .malformedMessage("invalid server signature encoding in \(message)")
        }
        self = .verifier(signature)
    }
}
