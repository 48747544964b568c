import NIOCore
import PGWire
import ProxyCore

extension ClientChannelHandler {
    /// Bytes from a leased backend. Messages the client gets are forwarded as slices of `incoming`, never
    /// re-encoded; the engine is asked about every message but rows (DataRow, CopyData) of an answer it
    /// relays, and those are passed on before they have fully arrived, so a huge row is never held in
    /// memory whole.
    func backendBytesReceived(_ incoming: ByteBuffer, from connection: BackendConnection) {
        guard let context = self.clientContext else { return }
        if connection === self.loginBackend {
            self.loginBytesReceived(incoming, from: connection)
            return
        }
        guard self.engine != nil else { return }
        var buffer = incoming
        if connection.relayPassThrough > 0 {
            let count = min(connection.relayPassThrough, buffer.readableBytes)
            context.write(self.wrapOutboundOut(buffer.readSlice(length: count)!), promise: nil)
            self.clientFlushPending = true
            connection.relayPassThrough -= count
            if buffer.readableBytes == 0 { return }
        }
        if var partial = connection.relayPartial {
            connection.relayPartial = nil
            partial.writeImmutableBuffer(buffer)
            buffer = partial
        }
        let lease = connection.leaseID
        // `buffer` advances as messages are scanned; `whole` keeps every scanned byte addressable for slicing.
        let whole = buffer
        var forwardFrom = buffer.readerIndex
        while buffer.readableBytes >= 5 {
            let start = buffer.readerIndex
            let id: UInt8 = buffer.getInteger(at: start)!
            let length = Int(buffer.getInteger(at: start + 1, as: Int32.self)!)
            guard length >= 4 else {
                self.backendProtocolViolation(connection, "invalid message length \(length)")
                return
            }
            let total = length + 1
            if connection.relayRows, id == BackendMessageID.dataRow.rawValue || id == BackendMessageID.copyData.rawValue {
                guard buffer.readableBytes >= total else {
                    // Pass the incomplete row on as it streams in.
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    connection.relayPassThrough = total - (buffer.writerIndex - start)
                    break
                }
                buffer.moveReaderIndex(forwardBy: total)
                continue
            }
            guard buffer.readableBytes >= total else { break }
            let payload = buffer.getSlice(at: start + 5, length: length - 4)!
            buffer.moveReaderIndex(forwardBy: total)
            let step = self.engine!.backendMessage(lease, type: id, payload: payload, context: &self.loop.routing)
            connection.relayRows = step.relayRows
            if step.disposition != .relay {
                // Relay what came before; this message is not the client's (or the engine answers for it).
                if start > forwardFrom {
                    context.write(self.wrapOutboundOut(whole.getSlice(at: forwardFrom, length: start - forwardFrom)!), promise: nil)
                    self.clientFlushPending = true
                }
                forwardFrom = buffer.readerIndex
            }
            let readyForQuery = id == BackendMessageID.readyForQuery.rawValue
            if readyForQuery || self.engine?.hasActions == true {
                // Deliver everything up to here before what the engine does next (its answers, a release).
                if buffer.readerIndex > forwardFrom {
                    context.write(self.wrapOutboundOut(whole.getSlice(at: forwardFrom, length: buffer.readerIndex - forwardFrom)!),
                                  promise: nil)
                    self.clientFlushPending = true
                    forwardFrom = buffer.readerIndex
                }
                self.performEngineActions()
                if readyForQuery { self.flushClient() }
            }
            guard connection.handler.isAttached(to: self) else {
                if buffer.readableBytes > 0 {
                    self.logger.debug("backend sent data after its lease ended; dropped",
                                      metadata: ["bytes": "\(buffer.readableBytes)"])
                }
                self.flushBackends()
                return
            }
        }
        if buffer.readerIndex > forwardFrom {
            context.write(self.wrapOutboundOut(whole.getSlice(at: forwardFrom, length: buffer.readerIndex - forwardFrom)!), promise: nil)
            self.clientFlushPending = true
        }
        if buffer.readableBytes > 0 {
            connection.relayPartial = buffer.slice()
        }
        self.flushBackends()
    }

    /// A backend's read burst ended: push what was relayed to the client.
    func backendReadComplete() {
        self.flushBackends()
        self.flushClient()
    }

    /// The backend sent bytes that are not protocol 3.0; it cannot be trusted any more.
    func backendProtocolViolation(_ connection: BackendConnection, _ reason: String) {
        self.logger.warning("backend protocol violation; closing it", metadata: ["reason": "\(reason)"])
        connection.channel.close(promise: nil)
    }

    /// A leased backend's connection closed.
    func backendLost(_ connection: BackendConnection, reason: String) {
        guard let context = self.clientContext else { return }
        if connection === self.loginBackend {
            self.loginBackend = nil
            connection.resetRelay()
            self.perform(self.machine.backendLost(server: "\(connection.server)", reason: reason), context: context)
            return
        }
        guard self.engine != nil, self.leases.contains(where: { $0.connection === connection }) else { return }
        let midMessage = connection.relayPassThrough > 0
        if midMessage {
            self.logger.info("backend lost in the middle of a message; closing the client", metadata: ["reason": "\(reason)"])
        }
        self.engine!.backendLost(connection.leaseID, server: "\(connection.server)", reason: reason, midMessage: midMessage,
                                 context: &self.loop.routing)
        self.performEngineActions()
        self.flushBackends()
        self.flushClient()
    }
}
