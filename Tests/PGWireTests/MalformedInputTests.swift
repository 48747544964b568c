import NIOCore
import Testing
@testable import PGWire

@Suite("Malformed input")
struct MalformedInputTests {
    // MARK: Truncation and trailing bytes, for every message kind

    @Test("every truncation of a backend payload is refused as malformed", arguments: BackendGolden.all)
    func backendTruncated(_ golden: BackendGolden) {
        let payload = golden.payload
        for cut in 0..<payload.count where cut < (golden.opaqueFrom ?? .max) {
            let frame = PGFrame(id: golden.bytes[0], payload: buffer(Array(payload.prefix(cut))))
            let error = #expect(throws: PGWireError.self, "payload cut to \(cut) bytes") {
                try BackendMessage.decode(frame)
            }
            #expect(malformedReason(error) != nil, "cut to \(cut): \(String(describing: error))")
        }
    }

    @Test("every truncation of a frontend payload is refused as malformed", arguments: FrontendGolden.all)
    func frontendTruncated(_ golden: FrontendGolden) {
        let payload = golden.payload
        for cut in 0..<payload.count where cut < (golden.opaqueFrom ?? .max) {
            let frame = PGFrame(id: golden.bytes[0], payload: buffer(Array(payload.prefix(cut))))
            let error = #expect(throws: PGWireError.self, "payload cut to \(cut) bytes") {
                try FrontendMessage.decode(frame)
            }
            #expect(malformedReason(error) != nil, "cut to \(cut): \(String(describing: error))")
        }
    }

    @Test("opaque payloads are still valid when cut inside their data", arguments:
        BackendGolden.all.filter { $0.opaqueFrom != nil })
    func opaqueTruncation(_ golden: BackendGolden) throws {
        let cut = golden.opaqueFrom!
        let frame = PGFrame(id: golden.bytes[0], payload: buffer(Array(golden.payload.prefix(cut))))
        _ = try BackendMessage.decode(frame)
    }

    @Test("a byte after a complete backend payload is refused", arguments:
        BackendGolden.all.filter { $0.opaqueFrom == nil })
    func backendTrailing(_ golden: BackendGolden) {
        let frame = PGFrame(id: golden.bytes[0], payload: buffer(golden.payload + [0]))
        let error = #expect(throws: PGWireError.self) { try BackendMessage.decode(frame) }
        #expect(malformedReason(error)?.reason.contains("trailing") == true, "\(String(describing: error))")
    }

    @Test("a byte after a complete frontend payload is refused", arguments:
        FrontendGolden.all.filter { $0.opaqueFrom == nil })
    func frontendTrailing(_ golden: FrontendGolden) {
        let frame = PGFrame(id: golden.bytes[0], payload: buffer(golden.payload + [0]))
        let error = #expect(throws: PGWireError.self) { try FrontendMessage.decode(frame) }
        #expect(malformedReason(error)?.reason.contains("trailing") == true, "\(String(describing: error))")
    }

    @Test("every truncation of a SASLInitialResponse is refused")
    func saslInitialResponseTruncated() {
        let payload = Array(FrontendGoldenTests.saslInitial.dropFirst(5))
        for cut in 0..<payload.count {
            var input = buffer(Array(payload.prefix(cut)))
            let error = #expect(throws: PGWireError.self, "cut to \(cut)") {
                try SASLInitialResponse.decode(from: &input)
            }
            #expect(malformedReason(error)?.message == "SASLInitialResponse")
        }
    }

    // MARK: Unknown type bytes

    @Test("every type byte that is not a backend message is refused")
    func unknownBackendType() {
        let known = Set(BackendGolden.all.map(\.bytes[0]))
        for id in UInt8.min...UInt8.max where !known.contains(id) {
            #expect(throws: PGWireError.unexpectedMessage(id)) {
                try BackendMessage.decode(PGFrame(id: id, payload: ByteBuffer()))
            }
        }
    }

    @Test("every type byte that is not a frontend message is refused")
    func unknownFrontendType() {
        let known = Set(FrontendGolden.all.map(\.bytes[0]))
        for id in UInt8.min...UInt8.max where !known.contains(id) {
            #expect(throws: PGWireError.unexpectedMessage(id)) {
                try FrontendMessage.decode(PGFrame(id: id, payload: ByteBuffer()))
            }
        }
    }

    // MARK: Individual fields

    @Test("bad backend payloads", arguments: [
        ("DataRow column overruns the message", b("D"), [0, 1, 0, 0, 0, 5, b("a"), b("b")] as [UInt8], "DataRow"),
        ("DataRow column of length Int32.max", b("D"), [0, 1, 0x7F, 0xFF, 0xFF, 0xFF, b("a")], "DataRow"),
        ("DataRow second column overruns", b("D"), [0, 2, 0, 0, 0, 1, b("a"), 0, 0, 0, 2, b("b")], "DataRow"),
        ("DataRow column length -2", b("D"), [0, 1, 0xFF, 0xFF, 0xFF, 0xFE], "DataRow"),
        ("DataRow negative column count", b("D"), [0xFF, 0xFF], "DataRow"),
        ("DataRow fewer columns than counted", b("D"), [0, 2, 0xFF, 0xFF, 0xFF, 0xFF], "DataRow"),
        ("RowDescription negative count", b("T"), [0x80, 0x00], "RowDescription"),
        ("RowDescription column without its integers", b("T"), wire([0, 1], cstr("id"), [0, 0, 0, 0]), "RowDescription"),
        ("FunctionCallResponse length -2", b("V"), [0xFF, 0xFF, 0xFF, 0xFE], "FunctionCallResponse"),
        ("FunctionCallResponse value overruns", b("V"), [0, 0, 0, 3, 1, 2], "FunctionCallResponse"),
        ("ReadyForQuery unknown status", b("Z"), [b("X")], "ReadyForQuery"),
        ("Authentication code 6 (SCM, removed)", b("R"), [0, 0, 0, 6], "Authentication"),
        ("Authentication code 13", b("R"), [0, 0, 0, 13], "Authentication"),
        ("Authentication code -1", b("R"), [0xFF, 0xFF, 0xFF, 0xFF], "Authentication"),
        ("AuthenticationMD5Password short salt", b("R"), [0, 0, 0, 5, 1, 2, 3], "AuthenticationMD5Password"),
        ("AuthenticationSASL without list terminator", b("R"), wire([0, 0, 0, 10], cstr("SCRAM-SHA-256")), "AuthenticationSASL"),
        ("NegotiateProtocolVersion negative count", b("v"), [0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF], "NegotiateProtocolVersion"),
        ("NegotiateProtocolVersion fewer options than counted", b("v"), wire([0, 0, 0, 0, 0, 0, 0, 2], cstr("_pq_.a")),
         "NegotiateProtocolVersion"),
        ("NegotiateProtocolVersion Int32.max options", b("v"), [0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF], "NegotiateProtocolVersion"),
        ("ParameterDescription fewer OIDs than counted", b("t"), [0, 2, 0, 0, 0, 23], "ParameterDescription"),
        ("ParameterDescription 65535 OIDs, none present", b("t"), [0xFF, 0xFF], "ParameterDescription"),
        ("CopyResponse negative count", b("G"), [0, 0xFF, 0xFF], "CopyResponse"),
        ("CopyResponse fewer formats than counted", b("H"), [0, 0, 2, 0, 0], "CopyResponse"),
        ("ErrorResponse unterminated field", b("E"), wire([b("S")], ascii("ERROR")), "ErrorResponse"),
        ("NoticeResponse without final terminator", b("N"), wire([b("S")], cstr("NOTICE")), "NoticeResponse"),
        ("NotificationResponse without payload", b("A"), wire([0, 0, 0, 1], cstr("ch")), "NotificationResponse"),
        ("BackendKeyData short", b("K"), [0, 0, 0, 1, 0, 0, 0], "BackendKeyData"),
        ("ParameterStatus without value", b("S"), cstr("TimeZone"), "ParameterStatus"),
        ("CommandComplete unterminated", b("C"), ascii("SELECT 1"), "CommandComplete"),
    ] as [(String, UInt8, [UInt8], String)])
    func badBackendPayload(_ name: String, _ id: UInt8, _ payload: [UInt8], _ messageName: String) {
        let error = #expect(throws: PGWireError.self) {
            try BackendMessage.decode(PGFrame(id: id, payload: buffer(payload)))
        }
        #expect(malformedReason(error)?.message == messageName, "\(name): \(String(describing: error))")
    }

    @Test("bad frontend payloads", arguments: [
        ("Bind with 2 formats for 3 parameters", b("B"),
         wire([0, 0], [0, 2, 0, 0, 0, 1], [0, 3], [0xFF, 0xFF, 0xFF, 0xFF], [0xFF, 0xFF, 0xFF, 0xFF], [0xFF, 0xFF, 0xFF, 0xFF],
              [0, 0]) as [UInt8], "Bind"),
        ("Bind with 3 formats for 1 parameter", b("B"),
         wire([0, 0], [0, 3, 0, 0, 0, 1, 0, 1], [0, 1], [0xFF, 0xFF, 0xFF, 0xFF], [0, 0]), "Bind"),
        ("Bind with 2 formats for no parameters", b("B"), wire([0, 0], [0, 2, 0, 0, 0, 0], [0, 0], [0, 0]), "Bind"),
        ("Bind parameter length -2", b("B"), wire([0, 0], [0, 0], [0, 1], [0xFF, 0xFF, 0xFF, 0xFE], [0, 0]), "Bind"),
        ("Bind parameter overruns", b("B"), wire([0, 0], [0, 0], [0, 1], [0, 0, 0, 9, 1, 2, 3]), "Bind"),
        ("Bind 65535 parameters, none present", b("B"), wire([0, 0], [0, 0], [0xFF, 0xFF]), "Bind"),
        ("Bind 65535 result formats, none present", b("B"), wire([0, 0], [0, 0], [0, 0], [0xFF, 0xFF]), "Bind"),
        ("Bind missing portal terminator", b("B"), ascii("portal"), "Bind"),
        ("Parse fewer types than counted", b("P"), wire([0], cstr("SELECT $1, $2"), [0, 2, 0, 0, 0, 23]), "Parse"),
        ("Parse 65535 types, none present", b("P"), wire([0], cstr("q"), [0xFF, 0xFF]), "Parse"),
        ("Parse without parameter count", b("P"), wire([0], cstr("SELECT 1")), "Parse"),
        ("Close of unknown kind", b("C"), wire([b("X")], cstr("s1")), "Close"),
        ("Describe of unknown kind", b("D"), wire([0], cstr("s1")), "Describe"),
        ("Describe without name", b("D"), [b("S")], "Describe"),
        ("Execute without row limit", b("E"), wire(cstr("p"), [0, 0]), "Execute"),
        ("Query unterminated", b("Q"), ascii("SELECT 1"), "Query"),
        ("CopyFail unterminated", b("f"), ascii("oops"), "CopyFail"),
    ] as [(String, UInt8, [UInt8], String)])
    func badFrontendPayload(_ name: String, _ id: UInt8, _ payload: [UInt8], _ messageName: String) {
        let error = #expect(throws: PGWireError.self) {
            try FrontendMessage.decode(PGFrame(id: id, payload: buffer(payload)))
        }
        #expect(malformedReason(error)?.message == messageName, "\(name): \(String(describing: error))")
    }

    @Test("SASLInitialResponse with a bad data length", arguments: [
        wire(cstr("SCRAM-SHA-256"), [0xFF, 0xFF, 0xFF, 0xFE]),
        wire(cstr("SCRAM-SHA-256"), [0, 0, 0, 5], ascii("n,,")),
        wire(cstr("SCRAM-SHA-256"), [0x7F, 0xFF, 0xFF, 0xFF]),
    ])
    func saslInitialResponseBadLength(_ payload: [UInt8]) {
        var input = buffer(payload)
        let error = #expect(throws: PGWireError.self) { try SASLInitialResponse.decode(from: &input) }
        #expect(malformedReason(error)?.message == "SASLInitialResponse")
    }

    // MARK: Descriptions

    @Test("errors describe themselves in words a log reader can use", arguments: [
        (PGWireError.invalidLength(messageID: b("Q"), length: 2), "invalid length 2 in message 'Q'"),
        (.messageTooLarge(messageID: 0x00, length: 11, limit: 10), "message 0x0 of 11 bytes exceeds the limit of 10 bytes"),
        (.invalidStartupLength(7), "invalid length of startup packet: 7"),
        (.unsupportedProtocolVersion(major: 2, minor: 0), "unsupported frontend protocol 2.0: server supports 3.0 to 3.0"),
        (.malformed(message: "Bind", reason: "x"), "malformed Bind message: x"),
        (.unexpectedMessage(0xFF), "unexpected message type 0xff"),
    ])
    func descriptions(_ error: PGWireError, _ text: String) {
        #expect(error.description == text)
    }
}
