import NIOCore

/// Bind ('B'): create portal `portal` from statement `statement` with parameter values.
public struct Bind: Sendable, Equatable {
    public var portal: String
    public var statement: String
    /// 0 = text, 1 = binary; empty = all text, one entry = applies to all.
    public var parameterFormats: [Int16]
    /// Values as slices of the received message; nil = NULL.
    public var parameters: [ByteBuffer?]
    public var resultFormats: [Int16]

    public init(portal: String, statement: String, parameterFormats: [Int16] = [], parameters: [ByteBuffer?] = [],
                resultFormats: [Int16] = []) {
        self.portal = portal
        self.statement = statement
        self.parameterFormats = parameterFormats
        self.parameters = parameters
        self.resultFormats = resultFormats
    }

    /// The format code that applies to parameter `index`.
    public func format(ofParameter index: Int) -> Int16 {
        switch self.parameterFormats.count {
        case 0: return 0
        case 1: return self.parameterFormats[0]
        default: return self.parameterFormats[index]
        }
    }

    public static func decode(from buffer: inout ByteBuffer) throws(PGWireError) -> Bind {
        guard let portal = buffer.readNullTerminatedString(), let statement = buffer.readNullTerminatedString() else {
            throw .malformed(message: "Bind", reason: "truncated names")
        }
        let formats = try Self.readInt16Array(&buffer)
        // The counts are unsigned 16-bit on the wire: PostgreSQL accepts up to 65,535 parameters.
        guard let count: UInt16 = buffer.readInteger() else {
            throw .malformed(message: "Bind", reason: "missing parameter count")
        }
        guard formats.count <= 1 || formats.count == Int(count) else {
            throw .malformed(message: "Bind", reason: "\(formats.count) parameter formats for \(count) parameters")
        }
        var parameters: [ByteBuffer?] = []
        // Each value takes at least its 4-byte length, so a lying count cannot make us reserve more than that.
        parameters.reserveCapacity(min(Int(count), buffer.readableBytes / 4))
        for _ in 0..<count {
            guard let length: Int32 = buffer.readInteger(), length >= -1 else {
                throw .malformed(message: "Bind", reason: "bad parameter length")
            }
            if length == -1 {
                parameters.append(nil)
            } else {
                guard let value = buffer.readSlice(length: Int(length)) else {
                    throw .malformed(message: "Bind", reason: "parameter overruns message")
                }
                parameters.append(value)
            }
        }
        let results = try Self.readInt16Array(&buffer)
        return Bind(portal: portal, statement: statement, parameterFormats: formats, parameters: parameters,
                    resultFormats: results)
    }

    private static func readInt16Array(_ buffer: inout ByteBuffer) throws(PGWireError) -> [Int16] {
        guard let count: UInt16 = buffer.readInteger() else {
            throw .malformed(message: "Bind", reason: "missing format count")
        }
        var values: [Int16] = []
        values.reserveCapacity(min(Int(count), buffer.readableBytes / 2))
        for _ in 0..<count {
            guard let value: Int16 = buffer.readInteger() else {
                throw .malformed(message: "Bind", reason: "truncated format codes")
            }
            values.append(value)
        }
        return values
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeNullTerminatedString(self.portal)
        buffer.writeNullTerminatedString(self.statement)
        buffer.writeInteger(UInt16(self.parameterFormats.count))
        for format in self.parameterFormats { buffer.writeInteger(format) }
        buffer.writeInteger(UInt16(self.parameters.count))
        for parameter in self.parameters {
            if let parameter {
                buffer.writeInteger(Int32(parameter.readableBytes))
                buffer.writeImmutableBuffer(parameter)
            } else {
                buffer.writeInteger(Int32(-1))
            }
        }
        buffer.writeInteger(UInt16(self.resultFormats.count))
        for format in self.resultFormats { buffer.writeInteger(format) }
    }
}
