import NIOCore
import Testing
@testable import PGWire

struct StartupGolden: Sendable, CustomTestStringConvertible {
    let name: String
    let packet: StartupPacket
    let bytes: [UInt8]
    var testDescription: String { self.name }

    init(_ name: String, _ packet: StartupPacket, _ bytes: [UInt8]) {
        self.name = name
        self.packet = packet
        self.bytes = bytes
    }

    static let all: [StartupGolden] = [
        // 80877103 = 1234 << 16 | 5679
        StartupGolden("SSLRequest", .sslRequest, [0, 0, 0, 8, 4, 0xD2, 0x16, 0x2F]),
        // 80877104 = 1234 << 16 | 5680
        StartupGolden("GSSENCRequest", .gssEncRequest, [0, 0, 0, 8, 4, 0xD2, 0x16, 0x30]),
        // 80877102 = 1234 << 16 | 5678, then process ID and secret key
        StartupGolden("CancelRequest",
                      .cancel(BackendKey(processID: 12345, secretKey: Int32(bitPattern: 0xDEAD_BEEF))),
                      [0, 0, 0, 16, 4, 0xD2, 0x16, 0x2E, 0, 0, 0x30, 0x39, 0xDE, 0xAD, 0xBE, 0xEF]),
        StartupGolden("StartupMessage user and database",
                      .startup(StartupMessage(parameters: [("user", "alice"), ("database", "shop")])),
                      wire([0, 0, 0, 34, 0, 3, 0, 0], cstr("user"), cstr("alice"), cstr("database"), cstr("shop"), [0])),
        StartupGolden("StartupMessage 3.2 with options",
                      .startup(StartupMessage(protocolMinor: 2, parameters: [
                          ("user", "bob"), ("application_name", "psql"), ("_pq_.x", ""),
                      ])),
                      wire([0, 0, 0, 48, 0, 3, 0, 2], cstr("user"), cstr("bob"), cstr("application_name"), cstr("psql"),
                           cstr("_pq_.x"), cstr(""), [0])),
        StartupGolden("StartupMessage without parameters", .startup(StartupMessage(parameters: [])),
                      [0, 0, 0, 9, 0, 3, 0, 0, 0]),
    ]
}

@Suite("StartupPacket")
struct StartupPacketTests {
    @Test("encode writes the documented bytes", arguments: StartupGolden.all)
    func encodeMatchesGolden(_ golden: StartupGolden) {
        #expect(golden.packet.encodedBytes == golden.bytes)
    }

    @Test("decode reads the documented bytes and consumes exactly the packet", arguments: StartupGolden.all)
    func decodeMatchesGolden(_ golden: StartupGolden) throws {
        var input = buffer(golden.bytes + [b("Q")])  // the next message's first byte must stay
        let packet = try StartupPacket.decode(from: &input, limits: .default)
        #expect(packet == golden.packet)
        #expect(input.bytes == [b("Q")])
    }

    @Test("round trip", arguments: [
        StartupPacket.sslRequest,
        .gssEncRequest,
        .cancel(BackendKey(processID: 0, secretKey: 0)),
        .cancel(BackendKey(processID: .max, secretKey: .min)),
        .startup(StartupMessage(parameters: [("user", "ünïcødé"), ("options", "-c search_path=a,b"), ("user", "dup")])),
        .startup(StartupMessage(protocolMinor: 0xFFFF, parameters: [("replication", "database")])),
    ])
    func roundTrip(_ packet: StartupPacket) throws {
        var encoded = ByteBuffer()
        packet.encode(into: &encoded)
        let decoded = try StartupPacket.decode(from: &encoded, limits: .default)
        #expect(decoded == packet)
        #expect(encoded.readableBytes == 0)
    }

    @Test("StartupMessage lookup by name and order-sensitive equality")
    func startupMessageAccessors() {
        let message = StartupMessage(parameters: [("user", "alice"), ("database", "shop")])
        #expect(message["user"] == "alice")
        #expect(message["database"] == "shop")
        #expect(message["options"] == nil)
        #expect(message.protocolMinor == 0)
        #expect(message != StartupMessage(parameters: [("database", "shop"), ("user", "alice")]))
        #expect(message != StartupMessage(protocolMinor: 1, parameters: message.parameters))
    }

    @Test("the default startup limit is PostgreSQL's 10,000 bytes")
    func defaultLimits() {
        #expect(PGWireLimits.default.maxStartupBytes == 10_000)
        #expect(PGWireLimits(maxMessageBytes: 1).maxStartupBytes == 10_000)
    }

    @Test("a packet of exactly the limit is accepted")
    func exactlyAtLimit() throws {
        // 10000 = 0x2710: length 4 + code 4 + "user\0" 5 + value 9985 + NUL 1 + terminator 1.
        let value = String(repeating: "v", count: 9985)
        var input = buffer(wire([0, 0, 0x27, 0x10, 0, 3, 0, 0], cstr("user"), cstr(value), [0]))
        #expect(input.readableBytes == 10_000)
        let packet = try StartupPacket.decode(from: &input, limits: .default)
        #expect(packet == .startup(StartupMessage(parameters: [("user", value)])))
    }

    // MARK: Malformed

    @Test("length beyond the limit fails from the length word alone", arguments: [
        ([0, 0, 0x27, 0x11] as [UInt8], 10_001),          // 10001
        ([0x7F, 0xFF, 0xFF, 0xFF], Int(Int32.max)),
        ([0x00, 0x10, 0x00, 0x00], 1 << 20),
    ])
    func tooLong(_ header: [UInt8], _ length: Int) {
        var input = buffer(header)
        #expect(throws: PGWireError.invalidStartupLength(length)) {
            try StartupPacket.decode(from: &input, limits: .default)
        }
    }

    @Test("a custom startup limit applies")
    func customLimit() throws {
        let limits = PGWireLimits(maxMessageBytes: 1 << 20, maxStartupBytes: 16)
        var ok = buffer(StartupGolden.all[2].bytes)  // CancelRequest: 16 bytes
        #expect(try StartupPacket.decode(from: &ok, limits: limits) != nil)
        var tooLong = buffer(StartupGolden.all[3].bytes)  // 34 bytes
        #expect(throws: PGWireError.invalidStartupLength(34)) {
            try StartupPacket.decode(from: &tooLong, limits: limits)
        }
    }

    @Test("length shorter than length word plus code fails at once", arguments: [
        ([0, 0, 0, 0] as [UInt8], 0),
        ([0, 0, 0, 4], 4),
        ([0, 0, 0, 7], 7),
        ([0xFF, 0xFF, 0xFF, 0xFF], -1),
        ([0x80, 0, 0, 0], Int(Int32.min)),
    ])
    func tooShort(_ header: [UInt8], _ length: Int) {
        var input = buffer(header)
        #expect(throws: PGWireError.invalidStartupLength(length)) {
            try StartupPacket.decode(from: &input, limits: .default)
        }
    }

    @Test("protocol versions other than 3.x are refused", arguments: [
        ([0, 2, 0, 0] as [UInt8], 2, 0),       // protocol 2.0 (its startup packet is 296 bytes)
        ([0, 4, 0, 0], 4, 0),
        ([0, 1, 0, 0], 1, 0),
        ([0, 0, 0, 0], 0, 0),
        ([0xFF, 0xFF, 0, 0], 65535, 0),
        ([4, 0xD2, 0x16, 0x31], 1234, 5681),   // an unknown special request code
    ])
    func unsupportedVersion(_ code: [UInt8], _ major: Int, _ minor: Int) {
        var packet = wire([0, 0, 0, 9], code, [0])
        if major == 2 {
            packet = wire([0, 0, 0x01, 0x28], code, [UInt8](repeating: 0, count: 288))  // 296 = 0x128
        }
        var input = buffer(packet)
        #expect(throws: PGWireError.unsupportedProtocolVersion(major: major, minor: minor)) {
            try StartupPacket.decode(from: &input, limits: .default)
        }
    }

    @Test("StartupMessage layout errors", arguments: [
        ("no terminator", wire([0, 0, 0, 17, 0, 3, 0, 0], cstr("user"), cstr("bob"))),
        ("name without value", wire([0, 0, 0, 13, 0, 3, 0, 0], cstr("user"))),
        ("unterminated name", wire([0, 0, 0, 12, 0, 3, 0, 0], ascii("user"))),
        ("unterminated value", wire([0, 0, 0, 16, 0, 3, 0, 0], cstr("user"), ascii("bob"))),
        ("nothing after the version", [0, 0, 0, 8, 0, 3, 0, 0]),
        ("bytes after the terminator", wire([0, 0, 0, 19, 0, 3, 0, 0], cstr("user"), cstr("bob"), [0, b("x")])),
        ("empty block after the terminator", wire([0, 0, 0, 10, 0, 3, 0, 0], [0, 0])),
    ] as [(String, [UInt8])])
    func startupLayout(_ name: String, _ bytes: [UInt8]) {
        var input = buffer(bytes)
        let error = #expect(throws: PGWireError.self) {
            try StartupPacket.decode(from: &input, limits: .default)
        }
        #expect(malformedReason(error)?.message == "StartupMessage", "\(name): \(String(describing: error))")
    }

    @Test("CancelRequest of the wrong length", arguments: [
        [0, 0, 0, 8, 4, 0xD2, 0x16, 0x2E] as [UInt8],
        [0, 0, 0, 12, 4, 0xD2, 0x16, 0x2E, 0, 0, 0, 1],
        [0, 0, 0, 15, 4, 0xD2, 0x16, 0x2E, 0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, 20, 4, 0xD2, 0x16, 0x2E, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3],
    ])
    func cancelWrongLength(_ bytes: [UInt8]) {
        var input = buffer(bytes)
        let error = #expect(throws: PGWireError.self) {
            try StartupPacket.decode(from: &input, limits: .default)
        }
        #expect(malformedReason(error)?.message == "CancelRequest")
    }

    // MARK: Incremental input

    @Test("fed one byte at a time: nil until complete, nothing consumed early, then exactly the packets")
    func byteByByte() throws {
        // What a client sends when the server answers 'N' to SSLRequest: the SSLRequest, then a StartupMessage.
        // A cancel connection follows in the same stream only to exercise the decoder back to back.
        let ssl = StartupGolden.all[0], startup = StartupGolden.all[3], cancel = StartupGolden.all[2]
        let stream = ssl.bytes + startup.bytes + cancel.bytes
        var changedAt: [Int] = []
        let decoded = try feedByteByByte(stream, decode: { buffer in
            try StartupPacket.decode(from: &buffer, limits: .default)
        }, onPartialInputChanged: { changedAt.append($0) })
        #expect(changedAt.isEmpty)
        #expect(decoded.map(\.value) == [ssl.packet, startup.packet, cancel.packet])
        #expect(decoded.map(\.afterBytes) == [8, 8 + 34, 8 + 34 + 16])
    }

    @Test("a startup packet followed by typed messages splits cleanly")
    func startupThenTypedMessages() throws {
        var input = buffer(StartupGolden.all[3].bytes + wire([b("p"), 0, 0, 0, 11], cstr("secret"), [b("X"), 0, 0, 0, 4]))
        #expect(try StartupPacket.decode(from: &input, limits: .default) == StartupGolden.all[3].packet)
        let password = try #require(try PGFrame.decode(from: &input, limits: .default))
        #expect(try FrontendMessage.decode(password) == .password(buffer(cstr("secret"))))
        let terminate = try #require(try PGFrame.decode(from: &input, limits: .default))
        #expect(try FrontendMessage.decode(terminate) == .terminate)
        #expect(input.readableBytes == 0)
    }
}
