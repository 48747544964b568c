import NIOCore
import PGWire

/// What a client sends: first startup packets (untyped), then typed frames.
enum ClientInbound {
    case startup(StartupPacket)
    case frame(PGFrame)
}

/// Splits the client byte stream into startup packets and frames, enforcing the size limits.
struct ClientFrameDecoder {
    let limits: PGWireLimits
    private var startupDone = false

    init(limits: PGWireLimits) {
        self.limits = limits
    }

    /// Decodes the next packet or frame, or returns nil (consuming nothing) when it is not complete yet.
    mutating func decode(buffer: inout ByteBuffer) throws(PGWireError) -> ClientInbound? {
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
                throw .malformed(message: "SSLRequest", reason: "unencrypted data after an encryption request")
            }
        }
        return .startup(packet)
    }
}
