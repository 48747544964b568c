import NIOCore

/// Every message a PostgreSQL server sends after the startup packet (protocol 3.0).
public enum BackendMessage: Sendable, Equatable {
    public enum TransactionStatus: UInt8, Sendable {
        case idle = 0x49               // 'I'
        case inTransaction = 0x54      // 'T'
        case failedTransaction = 0x45  // 'E'
    }

    case authentication(Authentication)
    case backendKeyData(BackendKey)
    case bindComplete
    case closeComplete
    case commandComplete(String)
    case copyData(ByteBuffer)
    case copyDone
    case copyInResponse(CopyResponse)
    case copyOutResponse(CopyResponse)
    case copyBothResponse(CopyResponse)
    case dataRow(DataRow)
    case emptyQueryResponse
    case errorResponse(ErrorNoticeFields)
    case functionCallResponse(ByteBuffer?)
    case negotiateProtocolVersion(NegotiateProtocolVersion)
    case noData
    case noticeResponse(ErrorNoticeFields)
    case notificationResponse(NotificationResponse)
    case parameterDescription([UInt32])
    case parameterStatus(name: String, value: String)
    case parseComplete
    case portalSuspended
    case readyForQuery(TransactionStatus)
    case rowDescription(RowDescription)

    public var id: BackendMessageID {
        switch self {
        case .authentication: .authentication
        case .backendKeyData: .backendKeyData
        case .bindComplete: .bindComplete
        case .closeComplete: .closeComplete
        case .commandComplete: .commandComplete
        case .copyData: .copyData
        case .copyDone: .copyDone
        case .copyInResponse: .copyInResponse
        case .copyOutResponse: .copyOutResponse
        case .copyBothResponse: .copyBothResponse
        case .dataRow: .dataRow
        case .emptyQueryResponse: .emptyQueryResponse
        case .errorResponse: .errorResponse
        case .functionCallResponse: .functionCallResponse
        case .negotiateProtocolVersion: .negotiateProtocolVersion
        case .noData: .noData
        case .noticeResponse: .noticeResponse
        case .notificationResponse: .notificationResponse
        case .parameterDescription: .parameterDescription
        case .parameterStatus: .parameterStatus
        case .parseComplete: .parseComplete
        case .portalSuspended: .portalSuspended
        case .readyForQuery: .readyForQuery
        case .rowDescription: .rowDescription
        }
    }

    /// Decodes the payload of `frame`. Trailing bytes after a well-formed payload are refused.
    public static func decode(_ frame: PGFrame) throws(PGWireError) -> BackendMessage {
        guard let id = BackendMessageID(rawValue: frame.id) else {
            throw .unexpectedMessage(frame.id)
        }
        var buffer = frame.payload
        let message: BackendMessage
        switch id {
        case .authentication:
            message = .authentication(try Authentication.decode(from: &buffer))
        case .backendKeyData:
            guard let (pid, secret) = buffer.readMultipleIntegers(as: (Int32, Int32).self) else {
                throw .malformed(message: "BackendKeyData", reason: "truncated")
            }
            message = .backendKeyData(BackendKey(processID: pid, secretKey: secret))
        case .bindComplete: message = .bindComplete
        case .closeComplete: message = .closeComplete
        case .commandComplete:
            guard let tag = buffer.readNullTerminatedString() else {
                throw .malformed(message: "CommandComplete", reason: "unterminated tag")
            }
            message = .commandComplete(tag)
        case .copyData: message = .copyData(buffer.readSlice(length: buffer.readableBytes)!)
        case .copyDone: message = .copyDone
        case .copyInResponse: message = .copyInResponse(try CopyResponse.decode(from: &buffer))
        case .copyOutResponse: message = .copyOutResponse(try CopyResponse.decode(from: &buffer))
        case .copyBothResponse: message = .copyBothResponse(try CopyResponse.decode(from: &buffer))
        case .dataRow: message = .dataRow(try DataRow.decode(from: &buffer))
        case .emptyQueryResponse: message = .emptyQueryResponse
        case .errorResponse: message = .errorResponse(try ErrorNoticeFields.decode(from: &buffer, message: "ErrorResponse"))
        case .functionCallResponse:
            guard let length: Int32 = buffer.readInteger(), length >= -1 else {
                throw .malformed(message: "FunctionCallResponse", reason: "bad length")
            }
            if length == -1 {
                message = .functionCallResponse(nil)
            } else {
                guard let value = buffer.readSlice(length: Int(length)) else {
                    throw .malformed(message: "FunctionCallResponse", reason: "value overruns message")
                }
                message = .functionCallResponse(value)
            }
        case .negotiateProtocolVersion:
            message = .negotiateProtocolVersion(try NegotiateProtocolVersion.decode(from: &buffer))
        case .noData: message = .noData
        case .noticeResponse: message = .noticeResponse(try ErrorNoticeFields.decode(from: &buffer, message: "NoticeResponse"))
        case .notificationResponse: message = .notificationResponse(try NotificationResponse.decode(from: &buffer))
        case .parameterDescription:
            // Unsigned on the wire: a statement may have up to 65,535 parameters.
            guard let count: UInt16 = buffer.readInteger() else {
                throw .malformed(message: "ParameterDescription", reason: "bad count")
            }
            var oids: [UInt32] = []
            oids.reserveCapacity(min(Int(count), buffer.readableBytes / 4))
            for _ in 0..<count {
                guard let oid: UInt32 = buffer.readInteger() else {
                    throw .malformed(message: "ParameterDescription", reason: "truncated")
                }
                oids.append(oid)
            }
            message = .parameterDescription(oids)
        case .parameterStatus:
            guard let name = buffer.readNullTerminatedString(), let value = buffer.readNullTerminatedString() else {
                throw .malformed(message: "ParameterStatus", reason: "truncated")
            }
            message = .parameterStatus(name: name, value: value)
        case .parseComplete: message = .parseComplete
        case .portalSuspended: message = .portalSuspended
        case .readyForQuery:
            guard let byte: UInt8 = buffer.readInteger(), let status = TransactionStatus(rawValue: byte) else {
                throw .malformed(message: "ReadyForQuery", reason: "bad transaction status")
            }
            message = .readyForQuery(status)
        case .rowDescription: message = .rowDescription(try RowDescription.decode(from: &buffer))
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
            case .authentication(let auth): auth.encode(into: &buffer)
            case .backendKeyData(let key): buffer.writeMultipleIntegers(key.processID, key.secretKey)
            case .bindComplete, .closeComplete, .copyDone, .emptyQueryResponse, .noData, .parseComplete, .portalSuspended:
                break
            case .commandComplete(let tag): buffer.writeNullTerminatedString(tag)
            case .copyData(let data): buffer.writeImmutableBuffer(data)
            case .copyInResponse(let r), .copyOutResponse(let r), .copyBothResponse(let r): r.encode(into: &buffer)
            case .dataRow(let row): row.encode(into: &buffer)
            case .errorResponse(let fields), .noticeResponse(let fields): fields.encode(into: &buffer)
            case .functionCallResponse(let value):
                if let value {
                    buffer.writeInteger(Int32(value.readableBytes))
                    buffer.writeImmutableBuffer(value)
                } else {
                    buffer.writeInteger(Int32(-1))
                }
            case .negotiateProtocolVersion(let n): n.encode(into: &buffer)
            case .notificationResponse(let n): n.encode(into: &buffer)
            case .parameterDescription(let oids):
                buffer.writeInteger(UInt16(oids.count))
                for oid in oids { buffer.writeInteger(oid) }
            case .parameterStatus(let name, let value):
                buffer.writeNullTerminatedString(name)
                buffer.writeNullTerminatedString(value)
            case .readyForQuery(let status): buffer.writeInteger(status.rawValue)
            case .rowDescription(let d): d.encode(into: &buffer)
            }
        }
    }
}
