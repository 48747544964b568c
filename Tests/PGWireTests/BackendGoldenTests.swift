import NIOCore
import Testing
@testable import PGWire

/// One backend message and its exact bytes on the wire, written out by hand from the PostgreSQL protocol
/// documentation ("Message Formats"). Lengths are literals on purpose: the test must not compute them.
struct BackendGolden: Sendable, CustomTestStringConvertible {
    let name: String
    let message: BackendMessage
    let bytes: [UInt8]
    /// Payload offset from which the bytes are opaque data (CopyData, SASL data): a payload cut there or
    /// later is still valid, and extra bytes are more data. nil = the payload delimits itself completely.
    let opaqueFrom: Int?

    init(_ name: String, _ message: BackendMessage, _ bytes: [UInt8], opaqueFrom: Int? = nil) {
        self.name = name
        self.message = message
        self.bytes = bytes
        self.opaqueFrom = opaqueFrom
    }

    var testDescription: String { self.name }
    var payload: [UInt8] { Array(self.bytes.dropFirst(5)) }

    static let all: [BackendGolden] = [
        BackendGolden("AuthenticationOk", .authentication(.ok), [b("R"), 0, 0, 0, 8, 0, 0, 0, 0]),
        BackendGolden("AuthenticationKerberosV5", .authentication(.kerberosV5), [b("R"), 0, 0, 0, 8, 0, 0, 0, 2]),
        BackendGolden("AuthenticationCleartextPassword", .authentication(.cleartextPassword),
                      [b("R"), 0, 0, 0, 8, 0, 0, 0, 3]),
        BackendGolden("AuthenticationMD5Password", .authentication(.md5Password(salt: (0x93, 0x1A, 0x07, 0xFE))),
                      [b("R"), 0, 0, 0, 12, 0, 0, 0, 5, 0x93, 0x1A, 0x07, 0xFE]),
        BackendGolden("AuthenticationGSS", .authentication(.gss), [b("R"), 0, 0, 0, 8, 0, 0, 0, 7]),
        BackendGolden("AuthenticationGSSContinue", .authentication(.gssContinue(buffer([0x60, 0x81, 0x02]))),
                      [b("R"), 0, 0, 0, 11, 0, 0, 0, 8, 0x60, 0x81, 0x02], opaqueFrom: 4),
        BackendGolden("AuthenticationSSPI", .authentication(.sspi), [b("R"), 0, 0, 0, 8, 0, 0, 0, 9]),
        BackendGolden("AuthenticationSASL SCRAM-SHA-256", .authentication(.sasl(mechanisms: ["SCRAM-SHA-256"])),
                      wire([b("R"), 0, 0, 0, 23, 0, 0, 0, 10], cstr("SCRAM-SHA-256"), [0])),
        BackendGolden("AuthenticationSASL with -PLUS",
                      .authentication(.sasl(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])),
                      wire([b("R"), 0, 0, 0, 42, 0, 0, 0, 10], cstr("SCRAM-SHA-256-PLUS"), cstr("SCRAM-SHA-256"), [0])),
        BackendGolden("AuthenticationSASLContinue",
                      .authentication(.saslContinue(buffer("r=nonce,s=c2FsdA==,i=4096"))),
                      wire([b("R"), 0, 0, 0, 33, 0, 0, 0, 11], ascii("r=nonce,s=c2FsdA==,i=4096")), opaqueFrom: 4),
        BackendGolden("AuthenticationSASLFinal",
                      .authentication(.saslFinal(buffer("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="))),
                      wire([b("R"), 0, 0, 0, 38, 0, 0, 0, 12], ascii("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")), opaqueFrom: 4),
        BackendGolden("BackendKeyData",
                      .backendKeyData(BackendKey(processID: 12345, secretKey: Int32(bitPattern: 0xDEAD_BEEF))),
                      [b("K"), 0, 0, 0, 12, 0, 0, 0x30, 0x39, 0xDE, 0xAD, 0xBE, 0xEF]),
        BackendGolden("BindComplete", .bindComplete, [b("2"), 0, 0, 0, 4]),
        BackendGolden("CloseComplete", .closeComplete, [b("3"), 0, 0, 0, 4]),
        BackendGolden("CommandComplete SELECT", .commandComplete("SELECT 1"),
                      wire([b("C"), 0, 0, 0, 13], cstr("SELECT 1"))),
        BackendGolden("CommandComplete INSERT", .commandComplete("INSERT 0 5"),
                      wire([b("C"), 0, 0, 0, 15], cstr("INSERT 0 5"))),
        BackendGolden("CopyData", .copyData(buffer("1\tfoo\n")),
                      wire([b("d"), 0, 0, 0, 10], ascii("1\tfoo\n")), opaqueFrom: 0),
        BackendGolden("CopyDone", .copyDone, [b("c"), 0, 0, 0, 4]),
        BackendGolden("CopyInResponse text", .copyInResponse(CopyResponse(overallFormat: 0, columnFormats: [0, 0])),
                      [b("G"), 0, 0, 0, 11, 0, 0, 2, 0, 0, 0, 0]),
        BackendGolden("CopyOutResponse binary", .copyOutResponse(CopyResponse(overallFormat: 1, columnFormats: [1])),
                      [b("H"), 0, 0, 0, 9, 1, 0, 1, 0, 1]),
        BackendGolden("CopyBothResponse", .copyBothResponse(CopyResponse(overallFormat: 0, columnFormats: [])),
                      [b("W"), 0, 0, 0, 7, 0, 0, 0]),
        BackendGolden("DataRow '42', NULL, ''",
                      .dataRow(DataRow(columnCount: 3, bytes: buffer([0, 0, 0, 2, 0x34, 0x32, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]))),
                      [b("D"), 0, 0, 0, 20, 0, 3, 0, 0, 0, 2, b("4"), b("2"), 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]),
        BackendGolden("DataRow no columns", .dataRow(DataRow(columnCount: 0, bytes: ByteBuffer())),
                      [b("D"), 0, 0, 0, 6, 0, 0]),
        BackendGolden("EmptyQueryResponse", .emptyQueryResponse, [b("I"), 0, 0, 0, 4]),
        BackendGolden("ErrorResponse",
                      .errorResponse(ErrorNoticeFields(fields: [
                          (b("S"), "ERROR"), (b("V"), "ERROR"), (b("C"), "42P01"),
                          (b("M"), "relation \"t\" does not exist"),
                      ])),
                      wire([b("E"), 0, 0, 0, 55],
                           [b("S")], cstr("ERROR"), [b("V")], cstr("ERROR"), [b("C")], cstr("42P01"),
                           [b("M")], cstr("relation \"t\" does not exist"), [0])),
        BackendGolden("FunctionCallResponse value", .functionCallResponse(buffer([0x01, 0x02])),
                      [b("V"), 0, 0, 0, 10, 0, 0, 0, 2, 0x01, 0x02]),
        BackendGolden("FunctionCallResponse empty", .functionCallResponse(ByteBuffer()),
                      [b("V"), 0, 0, 0, 8, 0, 0, 0, 0]),
        BackendGolden("FunctionCallResponse NULL", .functionCallResponse(nil),
                      [b("V"), 0, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF]),
        BackendGolden("NegotiateProtocolVersion",
                      .negotiateProtocolVersion(NegotiateProtocolVersion(newestMinorVersion: 0, unrecognizedOptions: ["_pq_.foo"])),
                      wire([b("v"), 0, 0, 0, 21, 0, 0, 0, 0, 0, 0, 0, 1], cstr("_pq_.foo"))),
        BackendGolden("NoData", .noData, [b("n"), 0, 0, 0, 4]),
        BackendGolden("NoticeResponse",
                      .noticeResponse(ErrorNoticeFields(fields: [
                          (b("S"), "NOTICE"), (b("V"), "NOTICE"), (b("C"), "00000"), (b("M"), "hi"),
                      ])),
                      wire([b("N"), 0, 0, 0, 32],
                           [b("S")], cstr("NOTICE"), [b("V")], cstr("NOTICE"), [b("C")], cstr("00000"),
                           [b("M")], cstr("hi"), [0])),
        BackendGolden("NotificationResponse",
                      .notificationResponse(NotificationResponse(processID: 7, channel: "ch", payload: "hello")),
                      wire([b("A"), 0, 0, 0, 17, 0, 0, 0, 7], cstr("ch"), cstr("hello"))),
        BackendGolden("ParameterDescription int4, text", .parameterDescription([23, 25]),
                      [b("t"), 0, 0, 0, 14, 0, 2, 0, 0, 0, 23, 0, 0, 0, 25]),
        BackendGolden("ParameterStatus", .parameterStatus(name: "client_encoding", value: "UTF8"),
                      wire([b("S"), 0, 0, 0, 25], cstr("client_encoding"), cstr("UTF8"))),
        BackendGolden("ParseComplete", .parseComplete, [b("1"), 0, 0, 0, 4]),
        BackendGolden("PortalSuspended", .portalSuspended, [b("s"), 0, 0, 0, 4]),
        BackendGolden("ReadyForQuery idle", .readyForQuery(.idle), [0x5A, 0, 0, 0, 5, 0x49]),
        BackendGolden("ReadyForQuery in transaction", .readyForQuery(.inTransaction), [0x5A, 0, 0, 0, 5, 0x54]),
        BackendGolden("ReadyForQuery failed transaction", .readyForQuery(.failedTransaction), [0x5A, 0, 0, 0, 5, 0x45]),
        BackendGolden("RowDescription id int4, name text",
                      .rowDescription(RowDescription(columns: [
                          .init(name: "id", tableOID: 16384, columnAttributeNumber: 1, dataTypeOID: 23,
                                dataTypeSize: 4, dataTypeModifier: -1, format: 0),
                          .init(name: "name", tableOID: 0, columnAttributeNumber: 0, dataTypeOID: 25,
                                dataTypeSize: -1, dataTypeModifier: -1, format: 1),
                      ])),
                      wire([b("T"), 0, 0, 0, 50, 0, 2],
                           cstr("id"), [0, 0, 0x40, 0x00, 0, 1, 0, 0, 0, 23, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0],
                           cstr("name"), [0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 1])),
        BackendGolden("RowDescription no columns", .rowDescription(RowDescription(columns: [])),
                      [b("T"), 0, 0, 0, 6, 0, 0]),
    ]
}

@Suite("Backend messages: golden bytes")
struct BackendGoldenTests {
    @Test("encode writes the documented bytes", arguments: BackendGolden.all)
    func encodeMatchesGolden(_ golden: BackendGolden) {
        #expect(golden.message.encodedBytes == golden.bytes)
        #expect(golden.message.id.rawValue == golden.bytes[0])
    }

    @Test("decode reads the documented bytes", arguments: BackendGolden.all)
    func decodeMatchesGolden(_ golden: BackendGolden) throws {
        var input = buffer(golden.bytes)
        let frame = try #require(try PGFrame.decode(from: &input, limits: .default))
        #expect(input.readableBytes == 0)
        #expect(frame.id == golden.bytes[0])
        #expect(frame.payload.bytes == golden.payload)
        #expect(frame.wireLength == golden.bytes.count)
        #expect(try BackendMessage.decode(frame) == golden.message)
    }

    @Test("the golden set covers every backend message type and authentication request")
    func goldenCoversEveryKind() {
        let allIDs = Set((0...255).compactMap { BackendMessageID(rawValue: UInt8($0)) }.map(\.rawValue))
        #expect(allIDs.count == 24)
        #expect(Set(BackendGolden.all.map(\.bytes[0])) == allIDs)

        let authCodes = BackendGolden.all.filter { $0.bytes[0] == b("R") }.map { $0.bytes[8] }
        #expect(Set(authCodes) == [0, 2, 3, 5, 7, 8, 9, 10, 11, 12])
    }

    @Test("DataRow(values:) builds the same row the server sends")
    func dataRowFromValues() {
        let row = DataRow(values: [buffer("42"), nil, buffer("")])
        let golden = BackendGolden.all.first { $0.name == "DataRow '42', NULL, ''" }!
        #expect(BackendMessage.dataRow(row).encodedBytes == golden.bytes)
    }

    @Test("an ErrorResponse built by the proxy carries S, V, C, M, then D, H, P")
    func proxyBuiltErrorResponse() {
        let fields = ErrorNoticeFields(severity: "FATAL", sqlState: "28P01", message: "bad password",
                                       detail: "d", hint: "h", position: 42)
        let expected = wire(
            [b("E"), 0, 0, 0, 50],
            [b("S")], cstr("FATAL"), [b("V")], cstr("FATAL"), [b("C")], cstr("28P01"), [b("M")], cstr("bad password"),
            [b("D")], cstr("d"), [b("H")], cstr("h"), [b("P")], cstr("42"), [0])
        #expect(BackendMessage.errorResponse(fields).encodedBytes == expected)
        #expect(fields.severity == "FATAL")
        #expect(fields.sqlState == "28P01")
        #expect(fields.message == "bad password")
        #expect(fields[.detail] == "d")
        #expect(fields[.hint] == "h")
        #expect(fields[.position] == "42")
        #expect(fields[.routine] == nil)
    }

    @Test("ErrorResponse keeps unknown field codes and prefers the non-localized severity")
    func errorFieldsUnknownCodes() throws {
        let bytes = wire([b("E"), 0, 0, 0, 35],
                         [b("S")], cstr("FEHLER"), [b("V")], cstr("ERROR"), [b("Z")], cstr("future"),
                         [b("C")], cstr("XX000"), [0])
        let frame = try #require(try singleFrame(bytes))
        guard case .errorResponse(let fields) = try BackendMessage.decode(frame) else {
            Issue.record("not an ErrorResponse")
            return
        }
        #expect(fields.fields.map(\.0) == [b("S"), b("V"), b("Z"), b("C")])
        #expect(fields.fields[2].1 == "future")
        #expect(fields.severity == "ERROR")
        #expect(fields[.severity] == "FEHLER")
        #expect(fields.sqlState == "XX000")
        #expect(fields.message == nil)
        #expect(BackendMessage.errorResponse(fields).encodedBytes == bytes)
    }
}
