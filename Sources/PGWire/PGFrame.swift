import NIOCore

/// One complete protocol message: its type byte and its payload, without the length word.
///
/// `payload` is a slice of the buffer the bytes arrived in; nothing is copied.
public struct PGFrame: Sendable, Equatable {
    public var id: UInt8
    public var payload: ByteBuffer

    @inlinable
    public init(id: UInt8, payload: ByteBuffer) {
        self.id = id
        self.payload = payload
    }

    /// Bytes on the wire: type byte, Int32 length (counting itself), payload.
    @inlinable
    public var wireLength: Int { 5 + self.payload.readableBytes }

    /// Appends the frame, header included, to `buffer`.
    @inlinable
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.id)
        buffer.writeInteger(Int32(4 + self.payload.readableBytes))
        buffer.writeImmutableBuffer(self.payload)
    }
}

/// Limits applied while decoding, so a hostile length word cannot make the proxy allocate it.
public struct PGWireLimits: Sendable, Equatable {
    /// Largest accepted message, header included. PostgreSQL's own limit for most messages is 1 GiB.
    public var maxMessageBytes: Int
    /// Largest accepted startup packet; PostgreSQL uses 10,000 bytes (MAX_STARTUP_PACKET_LENGTH).
    public var maxStartupBytes: Int

    public static let `default` = PGWireLimits(maxMessageBytes: 256 << 20, maxStartupBytes: 10_000)

    public init(maxMessageBytes: Int, maxStartupBytes: Int = 10_000) {
        self.maxMessageBytes = maxMessageBytes
        self.maxStartupBytes = maxStartupBytes
    }
}

extension PGFrame {
    /// Decodes one typed frame from the front of `buffer`, or returns nil (consuming nothing) when the
    /// frame is not complete yet.
    ///
    /// The length word is checked before waiting for the body, so an absurd length fails at once.
    @inlinable
    public static func decode(from buffer: inout ByteBuffer, limits: PGWireLimits) throws(PGWireError) -> PGFrame? {
        guard buffer.readableBytes >= 5,
              let id: UInt8 = buffer.getInteger(at: buffer.readerIndex),
              let length: Int32 = buffer.getInteger(at: buffer.readerIndex + 1)
        else { return nil }
        guard length >= 4 else {
            throw .invalidLength(messageID: id, length: Int(length))
        }
        guard Int(length) + 1 <= limits.maxMessageBytes else {
            throw .messageTooLarge(messageID: id, length: Int(length) + 1, limit: limits.maxMessageBytes)
        }
        guard buffer.readableBytes >= Int(length) + 1 else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        let payload = buffer.readSlice(length: Int(length) - 4)!
        return PGFrame(id: id, payload: payload)
    }
}
