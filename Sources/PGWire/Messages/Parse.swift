import NIOCore

/// Parse ('P'): prepare `query` as statement `name` ("" = the unnamed statement).
public struct Parse: Sendable, Equatable {
    public var name: String
    public var query: String
    public var parameterTypes: [UInt32]

    public init(name: String, query: String, parameterTypes: [UInt32] = []) {
        self.name = name
        self.query = query
        self.parameterTypes = parameterTypes
    }

    public static func decode(from buffer: inout ByteBuffer) throws(PGWireError) -> Parse {
        guard let name = buffer.readNullTerminatedString(), let query = buffer.readNullTerminatedString(),
              let count: UInt16 = buffer.readInteger()  // unsigned on the wire, as in Bind
        else { throw .malformed(message: "Parse", reason: "truncated") }
        var types: [UInt32] = []
        types.reserveCapacity(min(Int(count), buffer.readableBytes / 4))
        for _ in 0..<count {
            guard let oid: UInt32 = buffer.readInteger() else {
                throw .malformed(message: "Parse", reason: "truncated parameter types")
            }
            types.append(oid)
        }
        return Parse(name: name, query: query, parameterTypes: types)
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeNullTerminatedString(self.name)
        buffer.writeNullTerminatedString(self.query)
        buffer.writeInteger(UInt16(self.parameterTypes.count))
        for oid in self.parameterTypes { buffer.writeInteger(oid) }
    }
}
