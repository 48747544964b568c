import NIOCore
import PGWire

/// What a client sends: first startup packets (untyped), then typed frames.
enum ClientInbound {
    case startup(StartupPacket)
    case frame(PGFrame)
}

/// Splits the client byte stream into startup packets and frames, enforcing the size limits.
struct ClientFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = ClientInbound

    let limits: PGWireLimits
    private var startupDone = false

    init(limits: PGWireLimits) {
        self.limits = limits
    }

    mutating func decode(buffer: inout ByteBuffer) throws -> ClientInbound? {
        if self.startupDone {
            return try PGFrame.decode(from: &buffer, limits: self.limits).map(ClientInbound.frame)
        }
        guard let packet = try StartupPacket.decode(from: &buffer, limits: self.limits) else { return nil }
        switch packet {
        case .startup, .cancel:
            self.startupDone = true
        case .sslRequest, .gssEncRequest:
            // Bytes sent before the answer to an encryption request would be read as if they had come
            // through the encrypted channel (CVE-2021-23214): refuse them.
            if buffer.readableBytes > 0 {
                throw PGWireError.malformed(message: "SSLRequest", reason: "unencrypted data after an encryption request")
            }
        }
        return .startup(packet)
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ClientInbound? {
        try self.decode(buffer: &buffer)
    }
}
