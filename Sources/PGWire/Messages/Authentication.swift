import NIOCore

/// AuthenticationXXX ('R'): the server's side of the authentication exchange.
public enum Authentication: Sendable, Equatable {
    case ok
    case kerberosV5
    case cleartextPassword
    case md5Password(salt: (UInt8, UInt8, UInt8, UInt8))
    case gss
    case gssContinue(ByteBuffer)
    case sspi
    case sasl(mechanisms: [String])
    case saslContinue(ByteBuffer)
    case saslFinal(ByteBuffer)

    public static func decode(from buffer: inout ByteBuffer) throws(PGWireError) -> Authentication {
        guard let code: Int32 = buffer.readInteger() else {
            throw .malformed(message: "Authentication", reason: "missing code")
        }
        switch code {
        case 0: return .ok
        case 2: return .kerberosV5
        case 3: return .cleartextPassword
        case 5:
            guard let salt = buffer.readBytes(length: 4) else {
                throw .malformed(message: "AuthenticationMD5Password", reason: "missing salt")
            }
            return .md5Password(salt: (salt[0], salt[1], salt[2], salt[3]))
        case 7: return .gss
        case 8: return .gssContinue(buffer.readSlice(length: buffer.readableBytes)!)
        case 9: return .sspi
        case 10:
            var mechanisms: [String] = []
            while true {
                guard let name = buffer.readNullTerminatedString() else {
                    throw .malformed(message: "AuthenticationSASL", reason: "missing terminator")
                }
                if name.isEmpty { break }
                mechanisms.append(name)
            }
            return .sasl(mechanisms: mechanisms)
        case 11: return .saslContinue(buffer.readSlice(length: buffer.readableBytes)!)
        case 12: return .saslFinal(buffer.readSlice(length: buffer.readableBytes)!)
        default:
            throw .malformed(message: "Authentication", reason: "unknown code \(code)")
        }
    }

    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case .ok: buffer.writeInteger(Int32(0))
        case .kerberosV5: buffer.writeInteger(Int32(2))
        case .cleartextPassword: buffer.writeInteger(Int32(3))
        case .md5Password(let salt):
            buffer.writeInteger(Int32(5))
            buffer.writeBytes([salt.0, salt.1, salt.2, salt.3])
        case .gss: buffer.writeInteger(Int32(7))
        case .gssContinue(let data):
            buffer.writeInteger(Int32(8))
            buffer.writeImmutableBuffer(data)
        case .sspi: buffer.writeInteger(Int32(9))
        case .sasl(let mechanisms):
            buffer.writeInteger(Int32(10))
            for name in mechanisms { buffer.writeNullTerminatedString(name) }
            buffer.writeInteger(UInt8(0))
        case .saslContinue(let data):
            buffer.writeInteger(Int32(11))
            buffer.writeImmutableBuffer(data)
        case .saslFinal(let data):
            buffer.writeInteger(Int32(12))
            buffer.writeImmutableBuffer(data)
        }
    }

    public static func == (lhs: Authentication, rhs: Authentication) -> Bool {
        switch (lhs, rhs) {
        case (.ok, .ok), (.kerberosV5, .kerberosV5), (.cleartextPassword, .cleartextPassword), (.gss, .gss), (.sspi, .sspi):
            return true
        case (.md5Password(let l), .md5Password(let r)):
            return l.0 == r.0 && l.1 == r.1 && l.2 == r.2 && l.3 == r.3
        case (.gssContinue(let l), .gssContinue(let r)), (.saslContinue(let l), .saslContinue(let r)), (.saslFinal(let l), .saslFinal(let r)):
            return l == r
        case (.sasl(let l), .sasl(let r)):
            return l == r
        default:
            return false
        }
    }
}
