import NIOCore
import Testing
@testable import PGWire

@Suite("PGFrame")
struct PGFrameTests {
    @Test("needs the 5-byte header before it can say anything", arguments: 0...4)
    func incompleteHeader(_ count: Int) throws {
        var input = buffer(Array([0x5A, 0, 0, 0, 5, 0x49].prefix(count)))
        #expect(try PGFrame.decode(from: &input, limits: .default) == nil)
        #expect(input.readableBytes == count)
    }

    @Test("a frame with an empty payload")
    func emptyPayload() throws {
        var input = buffer([b("S"), 0, 0, 0, 4])
        let frame = try #require(try PGFrame.decode(from: &input, limits: .default))
        #expect(frame == PGFrame(id: b("S"), payload: ByteBuffer()))
        #expect(frame.wireLength == 5)
        #expect(input.readableBytes == 0)
    }

    @Test("write reproduces the wire bytes and wireLength counts them")
    func writeAndWireLength() {
        let frame = PGFrame(id: 0x5A, payload: buffer([0x49]))
        var out = ByteBuffer()
        out.writeString("prefix")
        frame.write(into: &out)
        #expect(out.bytes == ascii("prefix") + [0x5A, 0, 0, 0, 5, 0x49])
        #expect(frame.wireLength == 6)
    }

    @Test("writePGMessage patches the length after the body")
    func writePGMessage() {
        var out = ByteBuffer()
        out.writeInteger(UInt8(0xEE))  // not at index 0, so the patch must use the right offset
        out.writePGMessage(id: b("Q")) { $0.writeBytes(cstr("SELECT 1")) }
        out.writePGMessage(id: b("S")) { _ in }
        #expect(out.bytes == wire([0xEE], [b("Q"), 0, 0, 0, 13], cstr("SELECT 1"), [b("S"), 0, 0, 0, 4]))
    }

    @Test("the payload is a slice and frames decode back to back from a buffer that was read before")
    func backToBack() throws {
        var input = ByteBuffer()
        input.writeBytes([0xAA, 0xBB])
        input.moveReaderIndex(forwardBy: 2)
        input.writeBytes(wire([b("1"), 0, 0, 0, 4], [b("C"), 0, 0, 0, 13], cstr("SELECT 1"), [0x5A, 0, 0, 0, 5, 0x49]))
        var frames: [PGFrame] = []
        while let frame = try PGFrame.decode(from: &input, limits: .default) { frames.append(frame) }
        #expect(frames.map(\.id) == [b("1"), b("C"), 0x5A])
        #expect(frames.map(\.payload.bytes) == [[], cstr("SELECT 1"), [0x49]])
        #expect(input.readableBytes == 0)
    }

    // MARK: Lengths

    @Test("length below 4 is refused", arguments: [0, 1, 2, 3] as [Int32])
    func lengthBelowFour(_ length: Int32) {
        var input = ByteBuffer()
        input.writeInteger(b("Q"))
        input.writeInteger(length)
        input.writeBytes([0, 0, 0, 0, 0, 0, 0, 0])  // bytes enough for any of these lengths
        #expect(throws: PGWireError.invalidLength(messageID: b("Q"), length: Int(length))) {
            try PGFrame.decode(from: &input, limits: .default)
        }
    }

    @Test("negative length is refused", arguments: [
        ([0xFF, 0xFF, 0xFF, 0xFF] as [UInt8], -1),
        ([0xFF, 0xFF, 0xFF, 0xFC], -4),
        ([0x80, 0x00, 0x00, 0x00], Int(Int32.min)),
    ])
    func negativeLength(_ lengthBytes: [UInt8], _ length: Int) {
        var input = buffer([b("D")] + lengthBytes)
        #expect(throws: PGWireError.invalidLength(messageID: b("D"), length: length)) {
            try PGFrame.decode(from: &input, limits: .default)
        }
    }

    @Test("Int32.max length fails from the header alone, before any body arrives")
    func hugeLengthFailsImmediately() {
        var input = buffer([b("D"), 0x7F, 0xFF, 0xFF, 0xFF])
        #expect(throws: PGWireError.messageTooLarge(messageID: b("D"), length: 2_147_483_648, limit: 256 << 20)) {
            try PGFrame.decode(from: &input, limits: .default)
        }
    }

    @Test("the header of a huge message fed byte by byte: nil for 4 bytes, the error on the 5th")
    func hugeLengthByteByByte() throws {
        let header: [UInt8] = [b("d"), 0x40, 0x00, 0x00, 0x00]  // 1 GiB
        var input = ByteBuffer()
        for byte in header.dropLast() {
            input.writeInteger(byte)
            #expect(try PGFrame.decode(from: &input, limits: .default) == nil)
        }
        input.writeInteger(header.last!)
        #expect(throws: PGWireError.messageTooLarge(messageID: b("d"), length: (1 << 30) + 1, limit: 256 << 20)) {
            try PGFrame.decode(from: &input, limits: .default)
        }
    }

    @Test("the limit counts the whole message, type byte included")
    func limitBoundary() throws {
        let limits = PGWireLimits(maxMessageBytes: 10)
        // Length word 9 = 10 bytes on the wire: at the limit. Nil while the body is missing, then the frame.
        var atLimit = buffer([b("d"), 0, 0, 0, 9, 1, 2, 3])
        #expect(try PGFrame.decode(from: &atLimit, limits: limits) == nil)
        atLimit.writeBytes([4, 5])
        let frame = try #require(try PGFrame.decode(from: &atLimit, limits: limits))
        #expect(frame.payload.bytes == [1, 2, 3, 4, 5])

        var overLimit = buffer([b("d"), 0, 0, 0, 10])
        #expect(throws: PGWireError.messageTooLarge(messageID: b("d"), length: 11, limit: 10)) {
            try PGFrame.decode(from: &overLimit, limits: limits)
        }
    }

    // MARK: Byte by byte

    @Test("a server's reply fed one byte at a time yields exactly its frames, each on its last byte")
    func backendStreamByteByByte() throws {
        let names = ["AuthenticationOk", "ParameterStatus", "BackendKeyData", "ReadyForQuery idle",
                     "RowDescription id int4, name text", "DataRow '42', NULL, ''", "DataRow no columns",
                     "CommandComplete SELECT", "BindComplete", "ReadyForQuery in transaction"]
        let goldens = names.map { name in BackendGolden.all.first { $0.name == name }! }
        try self.checkByteByByte(goldens.map(\.bytes)) { frame in
            try BackendMessage.decode(frame) == goldens.first { $0.bytes == frameBytes(frame) }!.message
        }
    }

    @Test("a client's extended-query pipeline fed one byte at a time yields exactly its frames")
    func frontendStreamByteByByte() throws {
        let names = ["Parse named with int4 parameter", "Bind binary int4 and NULL", "Describe unnamed portal",
                     "Execute unnamed portal, all rows", "Sync", "Query", "Terminate"]
        let goldens = names.map { name in FrontendGolden.all.first { $0.name == name }! }
        try self.checkByteByByte(goldens.map(\.bytes)) { frame in
            try FrontendMessage.decode(frame) == goldens.first { $0.bytes == frameBytes(frame) }!.message
        }
    }

    private func checkByteByByte(_ frames: [[UInt8]], messageMatches: (PGFrame) throws -> Bool) throws {
        let stream = frames.flatMap { $0 }
        var changedAt: [Int] = []
        let decoded = try feedByteByByte(stream, decode: { buffer in
            try PGFrame.decode(from: &buffer, limits: .default)
        }, onPartialInputChanged: { changedAt.append($0) })

        #expect(changedAt.isEmpty, "partial input was consumed after bytes \(changedAt)")
        #expect(decoded.map { frameBytes($0.value) } == frames)
        var end = 0
        let ends = frames.map { end += $0.count; return end }
        #expect(decoded.map(\.afterBytes) == ends)
        for (frame, _) in decoded {
            #expect(try messageMatches(frame))
        }
    }
}

private func frameBytes(_ frame: PGFrame) -> [UInt8] {
    var out = ByteBuffer()
    frame.write(into: &out)
    return out.bytes
}
