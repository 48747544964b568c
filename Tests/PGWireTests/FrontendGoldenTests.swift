import NIOCore
import Testing
@testable import PGWire

/// One frontend message and its exact bytes on the wire, written out by hand from "Message Formats".
struct FrontendGolden: Sendable, CustomTestStringConvertible {
    let name: String
    let message: FrontendMessage
    let bytes: [UInt8]
    /// See `BackendGolden.opaqueFrom`.
    let opaqueFrom: Int?

    init(_ name: String, _ message: FrontendMessage, _ bytes: [UInt8], opaqueFrom: Int? = nil) {
        self.name = name
        self.message = message
        self.bytes = bytes
        self.opaqueFrom = opaqueFrom
    }

    var testDescription: String { self.name }
    var payload: [UInt8] { Array(self.bytes.dropFirst(5)) }

    static let all: [FrontendGolden] = [
        FrontendGolden("Bind binary int4 and NULL",
                       .bind(Bind(portal: "", statement: "s1", parameterFormats: [1],
                                  parameters: [buffer([0, 0, 0, 42]), nil], resultFormats: [1])),
                       wire([b("B"), 0, 0, 0, 30], [0], cstr("s1"), [0, 1, 0, 1], [0, 2],
                            [0, 0, 0, 4, 0, 0, 0, 42], [0xFF, 0xFF, 0xFF, 0xFF], [0, 1, 0, 1])),
        FrontendGolden("Bind with nothing", .bind(Bind(portal: "", statement: "")),
                       [b("B"), 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]),
        FrontendGolden("Bind per-parameter formats",
                       .bind(Bind(portal: "p", statement: "", parameterFormats: [0, 1],
                                  parameters: [buffer("ab"), buffer([])], resultFormats: [0, 1, 0])),
                       wire([b("B"), 0, 0, 0, 33], cstr("p"), [0], [0, 2, 0, 0, 0, 1], [0, 2],
                            [0, 0, 0, 2, b("a"), b("b")], [0, 0, 0, 0], [0, 3, 0, 0, 0, 1, 0, 0])),
        FrontendGolden("Close statement", .close(.statement("s1")), wire([b("C"), 0, 0, 0, 8, b("S")], cstr("s1"))),
        FrontendGolden("Close unnamed portal", .close(.portal("")), [b("C"), 0, 0, 0, 6, b("P"), 0]),
        FrontendGolden("CopyData", .copyData(buffer("a\tb\n")), wire([b("d"), 0, 0, 0, 8], ascii("a\tb\n")),
                       opaqueFrom: 0),
        FrontendGolden("CopyDone", .copyDone, [b("c"), 0, 0, 0, 4]),
        FrontendGolden("CopyFail", .copyFail("oops"), wire([b("f"), 0, 0, 0, 9], cstr("oops"))),
        FrontendGolden("Describe unnamed portal", .describe(.portal("")), [b("D"), 0, 0, 0, 6, b("P"), 0]),
        FrontendGolden("Describe statement", .describe(.statement("s1")), wire([b("D"), 0, 0, 0, 8, b("S")], cstr("s1"))),
        FrontendGolden("Execute unnamed portal, all rows", .execute(Execute(portal: "")),
                       [b("E"), 0, 0, 0, 9, 0, 0, 0, 0, 0]),
        FrontendGolden("Execute 100 rows", .execute(Execute(portal: "p1", maxRows: 100)),
                       wire([b("E"), 0, 0, 0, 11], cstr("p1"), [0, 0, 0, 100])),
        FrontendGolden("Flush", .flush, [b("H"), 0, 0, 0, 4]),
        // FunctionCall of OID 1598 with no arguments, text result; kept raw by the proxy.
        FrontendGolden("FunctionCall", .functionCall(buffer([0, 0, 0x06, 0x3E, 0, 0, 0, 0, 0, 0])),
                       [b("F"), 0, 0, 0, 14, 0, 0, 0x06, 0x3E, 0, 0, 0, 0, 0, 0], opaqueFrom: 0),
        FrontendGolden("Parse named with int4 parameter",
                       .parse(Parse(name: "s1", query: "SELECT $1", parameterTypes: [23])),
                       wire([b("P"), 0, 0, 0, 23], cstr("s1"), cstr("SELECT $1"), [0, 1, 0, 0, 0, 23])),
        FrontendGolden("Parse unnamed", .parse(Parse(name: "", query: "SELECT 1")),
                       wire([b("P"), 0, 0, 0, 16], [0], cstr("SELECT 1"), [0, 0])),
        FrontendGolden("PasswordMessage", .password(buffer(cstr("secret"))),
                       wire([b("p"), 0, 0, 0, 11], cstr("secret")), opaqueFrom: 0),
        FrontendGolden("Query", .query("SELECT 1"), wire([b("Q"), 0, 0, 0, 13], cstr("SELECT 1"))),
        FrontendGolden("Query empty", .query(""), [b("Q"), 0, 0, 0, 5, 0]),
        FrontendGolden("Sync", .sync, [b("S"), 0, 0, 0, 4]),
        FrontendGolden("Terminate", .terminate, [b("X"), 0, 0, 0, 4]),
    ]
}

@Suite("Frontend messages: golden bytes")
struct FrontendGoldenTests {
    @Test("encode writes the documented bytes", arguments: FrontendGolden.all)
    func encodeMatchesGolden(_ golden: FrontendGolden) {
        #expect(golden.message.encodedBytes == golden.bytes)
        #expect(golden.message.id.rawValue == golden.bytes[0])
    }

    @Test("decode reads the documented bytes", arguments: FrontendGolden.all)
    func decodeMatchesGolden(_ golden: FrontendGolden) throws {
        var input = buffer(golden.bytes)
        let frame = try #require(try PGFrame.decode(from: &input, limits: .default))
        #expect(input.readableBytes == 0)
        #expect(frame.id == golden.bytes[0])
        #expect(frame.payload.bytes == golden.payload)
        #expect(try FrontendMessage.decode(frame) == golden.message)
    }

    @Test("the golden set covers every frontend message type")
    func goldenCoversEveryKind() {
        let allIDs = Set((0...255).compactMap { FrontendMessageID(rawValue: UInt8($0)) }.map(\.rawValue))
        #expect(allIDs.count == 14)
        #expect(Set(FrontendGolden.all.map(\.bytes[0])) == allIDs)
    }

    static let saslInitial = wire(
        [b("p"), 0, 0, 0, 50], cstr("SCRAM-SHA-256"), [0, 0, 0, 28], ascii("n,,n=,r=rOprNGfwEbeRWgbNEkqO"))

    @Test("SASLInitialResponse is read from the payload of a 'p' message")
    func saslInitialResponseGolden() throws {
        let frame = try #require(try singleFrame(Self.saslInitial))
        guard case .password(var payload) = try FrontendMessage.decode(frame) else {
            Issue.record("not a 'p' message")
            return
        }
        let response = try SASLInitialResponse.decode(from: &payload)
        #expect(payload.readableBytes == 0)
        #expect(response.mechanism == "SCRAM-SHA-256")
        #expect(response.data == buffer("n,,n=,r=rOprNGfwEbeRWgbNEkqO"))

        var out = ByteBuffer()
        out.writePGMessage(id: FrontendMessageID.password.rawValue) { response.encode(into: &$0) }
        #expect(out.bytes == Self.saslInitial)
    }

    @Test("SASLInitialResponse without initial data uses length -1")
    func saslInitialResponseWithoutData() throws {
        let payload = wire(cstr("SCRAM-SHA-256"), [0xFF, 0xFF, 0xFF, 0xFF])
        var input = buffer(payload)
        let response = try SASLInitialResponse.decode(from: &input)
        #expect(response == SASLInitialResponse(mechanism: "SCRAM-SHA-256", data: nil))
        #expect(input.readableBytes == 0)

        var out = ByteBuffer()
        response.encode(into: &out)
        #expect(out.bytes == payload)
    }

    @Test("SASLInitialResponse with empty initial data is not the same as none")
    func saslInitialResponseEmptyData() throws {
        let payload = wire(cstr("SCRAM-SHA-256"), [0, 0, 0, 0])
        var input = buffer(payload)
        let response = try SASLInitialResponse.decode(from: &input)
        #expect(response == SASLInitialResponse(mechanism: "SCRAM-SHA-256", data: ByteBuffer()))
        #expect(response != SASLInitialResponse(mechanism: "SCRAM-SHA-256", data: nil))
    }
}
