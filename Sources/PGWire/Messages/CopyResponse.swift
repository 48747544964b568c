import NIOCore

/// CopyInResponse ('G'), CopyOutResponse ('H') and CopyBothResponse ('W').
public struct CopyResponse: Sendable, Equatable {
    /// 0 = textual, 1 = binary.
    public var overallFormat: Int8
    public var columnFormats: [Int16]

    public init(overallFormat: Int8, columnFormats: [Int16]) {
        self.overallFormat = overallFormat
        self.columnFormats = columnFormats
    }

    public static func decode(from buffer: inout ByteBuffer) throws(PGWireError) -> CopyResponse {
        guard let format: Int8 = buffer.readInteger(), let count: Int16 = buffer.readInteger(), count >= 0 else {
            throw .malformed(message: "CopyResponse", reason: "truncated")
        }
        var formats: [Int16] = []
        for _ in 0..<count {
            guard let value: Int16 = buffer.readInteger() else {
                throw .malformed(message: "CopyResponse", reason: "truncated column formats")
            }
            formats.append(value)
        }
        return CopyResponse(overallFormat: format, columnFormats: formats)
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.overallFormat)
        buffer.writeInteger(Int16(self.columnFormats.count))
        for format in self.columnFormats { buffer.writeInteger(format) }
    }
}

/// NotificationResponse ('A'): a NOTIFY delivered to a LISTENing session.
public struct NotificationResponse: Sendable, Equatable {
    public var processID: Int32
    public var channel: String
    public var payload: String

    public init(processID: Int32, channel: String, payload: String) {
        self.processID = processID
        self.channel = channel
        self.payload = payload
    }

    public static func decode(from buffer: inout ByteBuffer) throws(PGWireError) -> NotificationResponse {
        guard let pid: Int32 = buffer.readInteger(), let channel = buffer.readNullTerminatedString(),
              let payload = buffer.readNullTerminatedString()
        else { throw .malformed(message: "NotificationResponse", reason: "truncated") }
        return NotificationResponse(processID: pid, channel: channel, payload: payload)
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.processID)
        buffer.writeNullTerminatedString(self.channel)
        buffer.writeNullTerminatedString(self.payload)
    }
}

/// NegotiateProtocolVersion ('v'): the newest minor version the server supports and the options it ignored.
public struct NegotiateProtocolVersion: Sendable, Equatable {
    public var newestMinorVersion: Int32
    public var unrecognizedOptions: [String]

    public init(newestMinorVersion: Int32, unrecognizedOptions: [String]) {
        self.newestMinorVersion = newestMinorVersion
        self.unrecognizedOptions = unrecognizedOptions
    }

    public static func decode(from buffer: inout ByteBuffer) throws(PGWireError) -> NegotiateProtocolVersion {
        guard let minor: Int32 = buffer.readInteger(), let count: Int32 = buffer.readInteger(), count >= 0 else {
            throw .malformed(message: "NegotiateProtocolVersion", reason: "truncated")
        }
        var options: [String] = []
        for _ in 0..<count {
            guard let option = buffer.readNullTerminatedString() else {
                throw .malformed(message: "NegotiateProtocolVersion", reason: "truncated options")
            }
            options.append(option)
        }
        return NegotiateProtocolVersion(newestMinorVersion: minor, unrecognizedOptions: options)
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.newestMinorVersion)
        buffer.writeInteger(Int32(self.unrecognizedOptions.count))
        for option in self.unrecognizedOptions { buffer.writeNullTerminatedString(option) }
    }
}
