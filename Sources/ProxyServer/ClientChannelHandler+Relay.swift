import NIOCore
import PGWire
import ProxyCore

extension ClientChannelHandler {
    /// Bytes from the attached backend. Messages are forwarded as slices of `incoming`, never re-encoded;
    /// only ReadyForQuery and ParameterStatus (and all output of internal statements) are looked into.
    /// A message that is not looked into is passed on before it has fully arrived, so a huge row is never
    /// held in memory whole.
    func backendBytesReceived(_ incoming: ByteBuffer) {
        guard let context = self.clientContext else { return }
        var buffer = incoming
        if self.relayPassThrough > 0 {
            let count = min(self.relayPassThrough, buffer.readableBytes)
            context.write(self.wrapOutboundOut(buffer.readSlice(length: count)!), promise: nil)
            self.clientFlushPending = true
            self.relayPassThrough -= count
            if buffer.readableBytes == 0 { return }
        }
        if var partial = self.relayPartial {
            partial.writeImmutableBuffer(buffer)
            buffer = partial
            self.relayPartial = nil
        }

        // `buffer` advances as messages are scanned; `whole` keeps every scanned byte addressable for slicing.
        let whole = buffer
        var forwardFrom = buffer.readerIndex
        while buffer.readableBytes >= 5 {
            let start = buffer.readerIndex
            let id: UInt8 = buffer.getInteger(at: start)!
            let length = Int(buffer.getInteger(at: start + 1, as: Int32.self)!)
            guard length >= 4 else {
                self.backendProtocolViolation("invalid message length \(length)")
                return
            }
            let total = length + 1
            let swallowing = self.isSwallowingBackendOutput
            let inspect = swallowing || id == BackendMessageID.readyForQuery.rawValue || id == BackendMessageID.parameterStatus.rawValue
            guard buffer.readableBytes >= total else {
                if !inspect {
                    // Pass the incomplete message on as it streams in.
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    self.relayPassThrough = total - (buffer.writerIndex - start)
                }
                break
            }
            guard inspect else {
                buffer.moveReaderIndex(forwardBy: total)
                continue
            }
            if swallowing {
                // Relay what came before, drop this message.
                if start > forwardFrom {
                    context.write(self.wrapOutboundOut(whole.getSlice(at: forwardFrom, length: start - forwardFrom)!), promise: nil)
                    self.clientFlushPending = true
                }
                forwardFrom = start + total
            }
            let payload = buffer.getSlice(at: start + 5, length: length - 4)!
            buffer.moveReaderIndex(forwardBy: total)
            switch id {
            case BackendMessageID.readyForQuery.rawValue:
                guard let byte = payload.getInteger(at: payload.readerIndex, as: UInt8.self),
                      let status = BackendMessage.TransactionStatus(rawValue: byte)
                else {
                    self.backendProtocolViolation("malformed ReadyForQuery")
                    return
                }
                if !swallowing {
                    // Deliver everything up to and including this ReadyForQuery before the backend may go back to the pool.
                    context.write(self.wrapOutboundOut(whole.getSlice(at: forwardFrom, length: buffer.readerIndex - forwardFrom)!), promise: nil)
                    forwardFrom = buffer.readerIndex
                    context.flush()
                    self.clientFlushPending = false
                }
                self.readyForQueryFromBackend(status)
                if !self.hasAttachedBackend {
                    if buffer.readableBytes > 0 {
                        self.logger.debug("backend sent data after its final ReadyForQuery; dropped",
                                          metadata: ["bytes": "\(buffer.readableBytes)"])
                    }
                    return
                }
            case BackendMessageID.parameterStatus.rawValue:
                var payload = payload
                if let name = payload.readNullTerminatedString(), let value = payload.readNullTerminatedString() {
                    self.parameterStatusFromBackend(name: name, value: value)
                }
            case BackendMessageID.errorResponse.rawValue:
                var payload = payload
                if let fields = try? ErrorNoticeFields.decode(from: &payload, message: "ErrorResponse") {
                    self.internalStatementFailed(fields)
                }
            default:
                break
            }
        }
        if buffer.readerIndex > forwardFrom {
            context.write(self.wrapOutboundOut(whole.getSlice(at: forwardFrom, length: buffer.readerIndex - forwardFrom)!), promise: nil)
            self.clientFlushPending = true
        }
        if buffer.readableBytes > 0 {
            self.relayPartial = buffer.slice()
        }
    }

    /// The backend's read burst ended: push what was relayed to the client.
    func backendReadComplete() {
        // Usually the ReadyForQuery that ended the burst flushed already; a flush costs a pipeline walk.
        guard self.clientFlushPending else { return }
        self.clientFlushPending = false
        self.clientContext?.flush()
    }
}
