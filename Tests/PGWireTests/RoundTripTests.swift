import NIOCore
import Testing
@testable import PGWire

/// Values unlike the golden ones: empty and non-ASCII strings, extreme integers, binary data.
enum RoundTripSamples {
    static let backend: [BackendMessage] = [
        .authentication(.ok),
        .authentication(.kerberosV5),
        .authentication(.cleartextPassword),
        .authentication(.md5Password(salt: (0, 0xFF, 0x80, 0x7F))),
        .authentication(.gss),
        .authentication(.gssContinue(ByteBuffer())),
        .authentication(.gssContinue(buffer([0, 0, 0, 0, 0xFF]))),
        .authentication(.sspi),
        .authentication(.sasl(mechanisms: [])),
        .authentication(.sasl(mechanisms: ["SCRAM-SHA-256", "OAUTHBEARER"])),
        .authentication(.saslContinue(buffer([0, 1, 2]))),
        .authentication(.saslFinal(ByteBuffer())),
        .backendKeyData(BackendKey(processID: .min, secretKey: .max)),
        .bindComplete,
        .closeComplete,
        .commandComplete(""),
        .commandComplete("COPY 1000000"),
        .copyData(ByteBuffer()),
        .copyData(buffer([0, 0, 0, 0xFF, 0x0A])),
        .copyDone,
        .copyInResponse(CopyResponse(overallFormat: 1, columnFormats: [1, 1, 1])),
        .copyOutResponse(CopyResponse(overallFormat: 0, columnFormats: [])),
        .copyBothResponse(CopyResponse(overallFormat: 0, columnFormats: [0])),
        .dataRow(DataRow(values: [])),
        .dataRow(DataRow(values: [nil, nil])),
        .dataRow(DataRow(values: [buffer("ü"), buffer([0, 0xFF]), ByteBuffer(), nil])),
        .emptyQueryResponse,
        .errorResponse(ErrorNoticeFields(fields: [])),
        .errorResponse(ErrorNoticeFields(severity: "ERROR", sqlState: "0A000", message: "cross-shard join: »t«",
                                         detail: "", hint: "add the shard key", position: 1)),
        .functionCallResponse(nil),
        .functionCallResponse(buffer([0xFF, 0xFF, 0xFF, 0xFF])),
        .negotiateProtocolVersion(NegotiateProtocolVersion(newestMinorVersion: 2, unrecognizedOptions: [])),
        .negotiateProtocolVersion(NegotiateProtocolVersion(newestMinorVersion: 0, unrecognizedOptions: ["_pq_.a", "_pq_.b"])),
        .noData,
        .noticeResponse(ErrorNoticeFields(severity: "WARNING", sqlState: "01000", message: "")),
        .notificationResponse(NotificationResponse(processID: -1, channel: "", payload: "")),
        .notificationResponse(NotificationResponse(processID: 1, channel: "Ch ü", payload: "{\"k\": 1}")),
        .parameterDescription([]),
        .parameterDescription([0, UInt32.max, 1700]),
        .parameterStatus(name: "TimeZone", value: ""),
        .parseComplete,
        .portalSuspended,
        .readyForQuery(.idle),
        .readyForQuery(.inTransaction),
        .readyForQuery(.failedTransaction),
        .rowDescription(RowDescription(columns: [
            .init(name: "", dataTypeOID: 0, dataTypeSize: 0),
            .init(name: "ünï", tableOID: .max, columnAttributeNumber: .min, dataTypeOID: .max,
                  dataTypeSize: .max, dataTypeModifier: .min, format: 1),
        ])),
    ]

    static let frontend: [FrontendMessage] = [
        .bind(Bind(portal: "", statement: "")),
        .bind(Bind(portal: "pörtal", statement: "stmt", parameterFormats: [0, 1, 1],
                   parameters: [buffer("1"), nil, ByteBuffer()], resultFormats: [1])),
        .bind(Bind(portal: "", statement: "s", parameterFormats: [1], parameters: [nil, nil, nil])),
        .close(.statement("")),
        .close(.portal("p ü")),
        .copyData(ByteBuffer()),
        .copyData(buffer([0, 0xFF])),
        .copyDone,
        .copyFail(""),
        .copyFail("client gave up: ü"),
        .describe(.statement("s")),
        .describe(.portal("")),
        .execute(Execute(portal: "p", maxRows: .max)),
        .execute(Execute(portal: "", maxRows: -1)),
        .flush,
        .functionCall(ByteBuffer()),
        .parse(Parse(name: "", query: "")),
        .parse(Parse(name: "ü", query: "SELECT $1::text, $2", parameterTypes: [0, UInt32.max])),
        .password(ByteBuffer()),
        .password(buffer(ascii("p=c2VjcmV0"))),
        .query(""),
        .query("SELECT 'ü'; SELECT 2"),
        .sync,
        .terminate,
    ]
}

@Suite("Round trips")
struct RoundTripTests {
    @Test("backend: encode, frame, decode gives the same message", arguments: RoundTripSamples.backend)
    func backend(_ message: BackendMessage) throws {
        var encoded = ByteBuffer()
        message.encode(into: &encoded)
        let wireBytes = encoded.readableBytes
        let frame = try #require(try PGFrame.decode(from: &encoded, limits: .default))
        #expect(encoded.readableBytes == 0)
        #expect(frame.id == message.id.rawValue)
        #expect(frame.wireLength == wireBytes)
        #expect(try BackendMessage.decode(frame) == message)
    }

    @Test("frontend: encode, frame, decode gives the same message", arguments: RoundTripSamples.frontend)
    func frontend(_ message: FrontendMessage) throws {
        var encoded = ByteBuffer()
        message.encode(into: &encoded)
        let wireBytes = encoded.readableBytes
        let frame = try #require(try PGFrame.decode(from: &encoded, limits: .default))
        #expect(encoded.readableBytes == 0)
        #expect(frame.id == message.id.rawValue)
        #expect(frame.wireLength == wireBytes)
        #expect(try FrontendMessage.decode(frame) == message)
    }

    @Test("the round-trip samples cover every case of both enums")
    func samplesCoverEveryCase() {
        let backendIDs = Set((0...255).compactMap { BackendMessageID(rawValue: UInt8($0)) }.map(\.rawValue))
        #expect(Set(RoundTripSamples.backend.map(\.id.rawValue)) == backendIDs)
        let frontendIDs = Set((0...255).compactMap { FrontendMessageID(rawValue: UInt8($0)) }.map(\.rawValue))
        #expect(Set(RoundTripSamples.frontend.map(\.id.rawValue)) == frontendIDs)
        let authCodes = RoundTripSamples.backend.compactMap { message -> UInt8? in
            guard case .authentication = message else { return nil }
            return message.encodedBytes[8]
        }
        #expect(Set(authCodes) == [0, 2, 3, 5, 7, 8, 9, 10, 11, 12])
    }

    @Test("equality tells different payloads apart")
    func equalityIsNotTrivial() {
        #expect(BackendMessage.authentication(.md5Password(salt: (1, 2, 3, 4)))
                != .authentication(.md5Password(salt: (1, 2, 3, 5))))
        #expect(BackendMessage.authentication(.saslContinue(buffer("a"))) != .authentication(.saslFinal(buffer("a"))))
        #expect(BackendMessage.authentication(.ok) != .authentication(.gss))
        #expect(BackendMessage.copyInResponse(CopyResponse(overallFormat: 0, columnFormats: []))
                != .copyOutResponse(CopyResponse(overallFormat: 0, columnFormats: [])))
        #expect(BackendMessage.functionCallResponse(nil) != .functionCallResponse(ByteBuffer()))
        #expect(BackendMessage.dataRow(DataRow(values: [nil])) != .dataRow(DataRow(values: [ByteBuffer()])))
        #expect(BackendMessage.errorResponse(ErrorNoticeFields(fields: [(b("M"), "a")]))
                != .noticeResponse(ErrorNoticeFields(fields: [(b("M"), "a")])))
        #expect(ErrorNoticeFields(fields: [(b("M"), "a")]) != ErrorNoticeFields(fields: [(b("M"), "b")]))
        #expect(ErrorNoticeFields(fields: [(b("M"), "a")]) != ErrorNoticeFields(fields: [(b("D"), "a")]))
        #expect(FrontendMessage.close(.portal("x")) != .close(.statement("x")))
        #expect(FrontendMessage.bind(Bind(portal: "", statement: "", parameters: [nil]))
                != .bind(Bind(portal: "", statement: "", parameters: [ByteBuffer()])))
    }

    // PostgreSQL reads the counts of Bind, Parse and ParameterDescription as unsigned 16-bit integers:
    // a statement may have up to 65,535 parameters.

    @Test("Bind with more than 32,767 parameters")
    func bindManyParameters() throws {
        var payload = ByteBuffer()
        payload.writeBytes([0, 0])                  // portal "", statement ""
        payload.writeBytes([0, 1, 0, 1])            // one format code: binary
        payload.writeBytes([0x80, 0x00])            // 32768 parameters
        for _ in 0..<32768 { payload.writeBytes([0xFF, 0xFF, 0xFF, 0xFF]) }
        payload.writeBytes([0, 0])                  // no result formats
        let message = try FrontendMessage.decode(PGFrame(id: b("B"), payload: payload))
        guard case .bind(let bind) = message else {
            Issue.record("not a Bind")
            return
        }
        #expect(bind.parameters.count == 32768)
        #expect(bind.parameters.allSatisfy { $0 == nil })
        #expect(bind.format(ofParameter: 32767) == 1)

        let max = Bind(portal: "", statement: "", parameterFormats: Array(repeating: 1, count: 65535),
                       parameters: Array(repeating: nil, count: 65535))
        var encoded = ByteBuffer()
        FrontendMessage.bind(max).encode(into: &encoded)
        #expect(encoded.getBytes(at: 7, length: 2) == [0xFF, 0xFF])  // after 'B', length, "\0", "\0"
        let frame = try #require(try PGFrame.decode(from: &encoded, limits: .default))
        #expect(try FrontendMessage.decode(frame) == .bind(max))
    }

    @Test("Parse and ParameterDescription with 65,535 parameter types")
    func manyParameterTypes() throws {
        let oids = (0..<65535).map { UInt32($0) }
        let parse = FrontendMessage.parse(Parse(name: "", query: "q", parameterTypes: oids))
        var encoded = ByteBuffer()
        parse.encode(into: &encoded)
        #expect(encoded.getBytes(at: 8, length: 2) == [0xFF, 0xFF])  // after 'P', length, "\0", "q\0"
        var frame = try #require(try PGFrame.decode(from: &encoded, limits: .default))
        #expect(try FrontendMessage.decode(frame) == parse)

        let description = BackendMessage.parameterDescription(oids)
        encoded.clear()
        description.encode(into: &encoded)
        #expect(encoded.getBytes(at: 5, length: 2) == [0xFF, 0xFF])
        frame = try #require(try PGFrame.decode(from: &encoded, limits: .default))
        #expect(try BackendMessage.decode(frame) == description)
    }
}
