import NIOCore

/// Execute ('E'): run portal `portal`, returning at most `maxRows` rows (0 = all).
public struct Execute: Sendable, Equatable {
    public var portal: String
    public var maxRows: Int32

    public init(portal: String, maxRows: Int32 = 0) {
        self.portal = portal
        self.maxRows = maxRows
    }

    public static func decode(from buffer: inout ByteBuffer) throws(PGWireError) -> Execute {
        guard let portal = buffer.readNullTerminatedString(), let maxRows: Int32 = buffer.readInteger() else {
            throw .malformed(message: "Execute", reason: "truncated")
        }
        return Execute(portal: portal, maxRows: maxRows)
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeNullTerminatedString(self.portal)
        buffer.writeInteger(self.maxRows)
    }
}

/// What Describe ('D') and Close ('C') name: a prepared statement ('S') or a portal ('P').
public enum StatementOrPortal: Sendable, Equatable {
    case statement(String)
    case portal(String)

    public static func decode(from buffer: inout ByteBuffer, message: String) throws(PGWireError) -> StatementOrPortal {
        guard let kind: UInt8 = buffer.readInteger(), let name = buffer.readNullTerminatedString() else {
            throw .malformed(message: message, reason: "truncated")
        }
        switch kind {
        case UInt8(ascii: "S"): return .statement(name)
        case UInt8(ascii: "P"): return .portal(name)
        default: throw .malformed(message: message, reason: "unknown target kind \(PGWireError.name(kind))")
        }
    }

    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case .statement(let name):
            buffer.writeInteger(UInt8(ascii: "S"))
            buffer.writeNullTerminatedString(name)
        case .portal(let name):
            buffer.writeInteger(UInt8(ascii: "P"))
            buffer.writeNullTerminatedString(name)
        }
    }
}
