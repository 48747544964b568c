/// A violation of the wire protocol by the peer. The connection cannot continue after one.
public enum PGWireError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidLength(messageID: UInt8, length: Int)
    case messageTooLarge(messageID: UInt8, length: Int, limit: Int)
    case invalidStartupLength(Int)
    case unsupportedProtocolVersion(major: Int, minor: Int)
    case malformed(message: String, reason: String)
    case unexpectedMessage(UInt8)

    public var description: String {
        switch self {
        case .invalidLength(let id, let length):
            return "invalid length \(length) in message \(Self.name(id))"
        case .messageTooLarge(let id, let length, let limit):
            return "message \(Self.name(id)) of \(length) bytes exceeds the limit of \(limit) bytes"
        case .invalidStartupLength(let length):
            return "invalid length of startup packet: \(length)"
        case .unsupportedProtocolVersion(let major, let minor):
            return "unsupported frontend protocol \(major).\(minor): server supports 3.0 to 3.0"
        case .malformed(let message, let reason):
            return "malformed \(message) message: \(reason)"
        case .unexpectedMessage(let id):
            return "unexpected message type \(Self.name(id))"
        }
    }

    static func name(_ id: UInt8) -> String {
        if id >= 0x20 && id < 0x7F {
            return "'\(Character(Unicode.Scalar(id)))'"
        }
        return "0x" + String(id, radix: 16)
    }
}
