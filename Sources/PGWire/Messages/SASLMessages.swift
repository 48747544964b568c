import NIOCore

/// SASLInitialResponse ('p' during SASL): the chosen mechanism and the client-first-message.
public struct SASLInitialResponse: Sendable, Equatable {
    public var mechanism: String
    /// nil when the client sent length -1 (no initial response).
    public var data: ByteBuffer?

    public init(mechanism: String, data: ByteBuffer?) {
        self.mechanism = mechanism
        self.data = data
    }

    public static func decode(from buffer: inout ByteBuffer) throws(PGWireError) -> SASLInitialResponse {
        guard let mechanism = buffer.readNullTerminatedString(), let length: Int32 = buffer.readInteger(), length >= -1 else {
            throw .malformed(message: "SASLInitialResponse", reason: "truncated")
        }
        if length == -1 { return SASLInitialResponse(mechanism: mechanism, data: nil) }
        guard let data = buffer.readSlice(length: Int(length)) else {
            throw .malformed(message: "SASLInitialResponse", reason: "data overruns message")
        }
        return SASLInitialResponse(mechanism: mechanism, data: data)
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeNullTerminatedString(self.mechanism)
        if let data = self.data {
            buffer.writeInteger(Int32(data.readableBytes))
            buffer.writeImmutableBuffer(data)
        } else {
            buffer.writeInteger(Int32(-1))
        }
    }
}
