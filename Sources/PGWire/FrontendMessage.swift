import NIOCore

/// Every typed message a client sends after the startup packet (protocol 3.0).
public enum FrontendMessage: Sendable, Equatable {
    case bind(Bind)
    case close(StatementOrPortal)
    case copyData(ByteBuffer)
    case copyDone
    case copyFail(String)
    case describe(StatementOrPortal)
    case execute(Execute)
    case flush
    /// FunctionCall ('F'), kept raw: the proxy relays it and never needs its fields.
    case functionCall(ByteBuffer)
    case parse(Parse)
    /// PasswordMessage, SASLInitialResponse or SASLResponse; see `FrontendMessageID.password`.
    case password(ByteBuffer)
    case query(String)
    case sync
    case terminate

    public var id: FrontendMessageID {
        switch self {
        case .bind: .bind
        case .close: .close
        case .copyData: .copyData
        case .copyDone: .copyDone
        case .copyFail: .copyFail
        case .describe: .describe
        case .execute: .execute
        case .flush: .flush
        case .functionCall: .functionCall
        case .parse: .parse
        case .password: .password
        case .query: .query
        case .sync: .sync
        case .terminate: .terminate
        }
    }

    /// Decodes the payload of `frame`. Trailing bytes after a well-formed payload are refused.
    public static func decode(_ frame: PGFrame) throws(PGWireError) -> FrontendMessage {
        guard let id = FrontendMessageID(rawValue: frame.id) else {
            throw .unexpectedMessage(frame.id)
        }
        var buffer = frame.payload
        let message: FrontendMessage
        switch id {
        case .bind: message = .bind(try Bind.decode(from: &buffer))
        case .close: message = .close(try StatementOrPortal.decode(from: &buffer, message: "Close"))
        case .copyData: message = .copyData(buffer.readSlice(length: buffer.readableBytes)!)
        case .copyDone: message = .copyDone
        case .copyFail:
            guard let reason = buffer.readNullTerminatedString() else {
                throw .malformed(message: "CopyFail", reason: "unterminated message")
            }
            message = .copyFail(reason)
        case .describe: message = .describe(try StatementOrPortal.decode(from: &buffer, message: "Describe"))
        case .execute: message = .execute(try Execute.decode(from: &buffer))
        case .flush: message = .flush
        case .functionCall: message = .functionCall(buffer.readSlice(length: buffer.readableBytes)!)
        case .parse: message = .parse(try Parse.decode(from: &buffer))
        case .password: message = .password(buffer.readSlice(length: buffer.readableBytes)!)
        case .query:
            guard let sql = buffer.readNullTerminatedString() else {
                throw .malformed(message: "Query", reason: "unterminated query string")
            }
            message = .query(sql)
        case .sync: message = .sync
        case .terminate: message = .terminate
        }
        guard buffer.readableBytes == 0 else {
            throw .malformed(message: "\(id)", reason: "\(buffer.readableBytes) unexpected trailing bytes")
        }
        return message
    }

    /// Appends the complete message (type byte, length, payload).
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writePGMessage(id: self.id.rawValue) { buffer in
            switch self {
            case .bind(let bind): bind.encode(into: &buffer)
            case .close(let target), .describe(let target): target.encode(into: &buffer)
            case .copyData(let data), .functionCall(let data), .password(let data): buffer.writeImmutableBuffer(data)
            case .copyDone, .flush, .sync, .terminate: break
            case .copyFail(let reason): buffer.writeNullTerminatedString(reason)
            case .execute(let execute): execute.encode(into: &buffer)
            case .parse(let parse): parse.encode(into: &buffer)
            case .query(let sql): buffer.writeNullTerminatedString(sql)
            }
        }
    }
}
