import NIOCore

/// The first packet a client sends: it has no type byte, only a length and a request code.
public enum StartupPacket: Sendable, Equatable {
    /// Protocol 3.0 StartupMessage with its parameters in the order sent (`user`, `database`, ...).
    case startup(StartupMessage)
    case sslRequest
    case gssEncRequest
    case cancel(BackendKey)

    static let protocol3: Int32 = 196_608          // 3 << 16
    static let sslRequestCode: Int32 = 80_877_103
    static let gssEncRequestCode: Int32 = 80_877_104
    static let cancelRequestCode: Int32 = 80_877_102

    /// Decodes a startup packet, or returns nil (consuming nothing) when it is not complete yet.
    public static func decode(from buffer: inout ByteBuffer, limits: PGWireLimits) throws(PGWireError) -> StartupPacket? {
        guard let length: Int32 = buffer.getInteger(at: buffer.readerIndex) else { return nil }
        guard length >= 8, Int(length) <= limits.maxStartupBytes else {
            throw .invalidStartupLength(Int(length))
        }
        guard buffer.readableBytes >= Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        var body = buffer.readSlice(length: Int(length) - 4)!
        let code: Int32 = body.readInteger()!
        switch code {
        case sslRequestCode:
            return .sslRequest
        case gssEncRequestCode:
            return .gssEncRequest
        case cancelRequestCode:
            guard let pid: Int32 = body.readInteger(), let secret: Int32 = body.readInteger() else {
                throw .malformed(message: "CancelRequest", reason: "too short")
            }
            // Protocol 3.0 keys are exactly 4 bytes; PostgreSQL refuses a cancel packet of any other length.
            guard body.readableBytes == 0 else {
                throw .malformed(message: "CancelRequest", reason: "\(body.readableBytes) unexpected trailing bytes")
            }
            return .cancel(BackendKey(processID: pid, secretKey: secret))
        default:
            // Split the code as unsigned halves, so e.g. 0xFFFF0000 reports version 65535.0, not -1.0.
            let version = UInt32(bitPattern: code)
            let major = Int(version >> 16), minor = Int(version & 0xFFFF)
            guard major == 3 else {
                throw .unsupportedProtocolVersion(major: major, minor: minor)
            }
            var parameters: [(String, String)] = []
            while true {
                guard let name = body.readNullTerminatedString() else {
                    throw .malformed(message: "StartupMessage", reason: "missing terminator")
                }
                if name.isEmpty { break }
                guard let value = body.readNullTerminatedString() else {
                    throw .malformed(message: "StartupMessage", reason: "missing value for parameter \"\(name)\"")
                }
                parameters.append((name, value))
            }
            // As PostgreSQL: "invalid startup packet layout: expected terminator as last byte".
            guard body.readableBytes == 0 else {
                throw .malformed(message: "StartupMessage", reason: "\(body.readableBytes) bytes after the terminator")
            }
            return .startup(StartupMessage(protocolMinor: minor, parameters: parameters))
        }
    }

    /// Encodes the packet as a client would send it.
    public func encode(into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        buffer.writeInteger(Int32(0))
        switch self {
        case .startup(let message):
            buffer.writeInteger(Self.protocol3 | Int32(message.protocolMinor))
            for (name, value) in message.parameters {
                buffer.writeNullTerminatedString(name)
                buffer.writeNullTerminatedString(value)
            }
            buffer.writeInteger(UInt8(0))
        case .sslRequest:
            buffer.writeInteger(Self.sslRequestCode)
        case .gssEncRequest:
            buffer.writeInteger(Self.gssEncRequestCode)
        case .cancel(let key):
            buffer.writeInteger(Self.cancelRequestCode)
            buffer.writeInteger(key.processID)
            buffer.writeInteger(key.secretKey)
        }
        buffer.setInteger(Int32(buffer.writerIndex - start), at: start)
    }
}

/// A protocol 3.x StartupMessage.
public struct StartupMessage: Sendable {
    /// Minor version the client asked for; the proxy speaks 3.0 and answers NegotiateProtocolVersion above it.
    public var protocolMinor: Int
    public var parameters: [(String, String)]

    public init(protocolMinor: Int = 0, parameters: [(String, String)]) {
        self.protocolMinor = protocolMinor
        self.parameters = parameters
    }

    public subscript(name: String) -> String? {
        self.parameters.first(where: { $0.0 == name })?.1
    }
}

extension StartupMessage: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.protocolMinor == rhs.protocolMinor
            && lhs.parameters.elementsEqual(rhs.parameters, by: { $0.0 == $1.0 && $0.1 == $1.1 })
    }
}

/// Process ID and secret key identifying a session for CancelRequest.
public struct BackendKey: Sendable, Hashable {
    public var processID: Int32
    public var secretKey: Int32

    public init(processID: Int32, secretKey: Int32) {
        self.processID = processID
        self.secretKey = secretKey
    }
}
