import Logging
import NIOCore
import NIOSSL
import PGWire
import ProxyCore

/// Startup, authentication and login: the actions of `ClientSessionStateMachine`.
extension ClientChannelHandler {
    /// The lease number of the login backend (session leases start at 1).
    static let loginLease = 0

    func perform(_ action: ClientSessionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .answerSSLRequest(let accept):
            var answer = context.channel.allocator.buffer(capacity: 1)
            answer.writeInteger(UInt8(ascii: accept ? "S" : "N"))
            context.writeAndFlush(self.wrapOutboundOut(answer), promise: nil)
            if accept, let tls = self.loop.shared.tls {
                // The 'S' is already on its way in clear text; everything after it is TLS.
                do {
                    try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .first)
                } catch {
                    self.logger.info("could not start TLS", metadata: ["error": "\(error)"])
                    context.close(promise: nil)
                }
            }
        case .refuseGSSEncryption:
            var answer = context.channel.allocator.buffer(capacity: 1)
            answer.writeInteger(UInt8(ascii: "N"))
            context.writeAndFlush(self.wrapOutboundOut(answer), promise: nil)
        case .forwardCancel(let key):
            self.loop.shared.cancelRegistry.cancel(key)
            context.close(promise: nil)
        case .sendAuthentication(let requests, let acquire):
            var out = context.channel.allocator.buffer(capacity: 64)
            for request in requests {
                BackendMessage.authentication(request).encode(into: &out)
            }
            context.writeAndFlush(self.wrapOutboundOut(out), promise: nil)
            if acquire {
                self.logger[metadataKey: "user"] = "\(self.machine.user)"
                let pool = self.loop.pool(for: self.loop.shared.defaultServer)
                self.acquiring.append((Self.loginLease, pool))
                pool.lease(for: self, lease: Self.loginLease)
            }
        case .startBackend(let sync, _):
            guard let backend = self.loginBackend, let sync else { preconditionFailure("startBackend without a backend") }
            var out = context.channel.allocator.buffer(capacity: 256)
            FrontendMessage.query(sync).encode(into: &out)
            self.machine.parameters.applySynchronization(to: &backend.state.parameters)
            backend.handler.writeAndFlush(out)
        case .finishLogin:
            guard let backend = self.loginBackend else { preconditionFailure("finishLogin without a backend") }
            let key = self.loop.shared.cancelRegistry.register(self, on: context.eventLoop)
            self.cancelKey = key
            var out = context.channel.allocator.buffer(capacity: 512)
            // The parameters the server reports (its defaults' keys), with this session's values.
            let parameters = backend.state.parameters
            for name in parameters.defaults.keys.sorted() {
                BackendMessage.parameterStatus(name: name, value: parameters[name] ?? "").encode(into: &out)
            }
            BackendMessage.backendKeyData(key).encode(into: &out)
            BackendMessage.readyForQuery(.idle).encode(into: &out)
            context.writeAndFlush(self.wrapOutboundOut(out), promise: nil)
            self.loginBackend = nil
            backend.resetRelay()
            backend.pool.release(backend)
            self.engine = SessionEngine(parameters: self.machine.parameters, shardNames: self.loop.routing.map.shards.map(\.name))
        case .releaseBackend:
            if let backend = self.loginBackend {
                self.loginBackend = nil
                backend.pool.release(backend)
            }
        case .closeClient(let error, let disposition):
            self.disposeLogin(disposition)
            self.closeClient(error)
        }
    }

    func disposeLogin(_ disposition: ClientSessionStateMachine.BackendDisposition) {
        switch disposition {
        case .none:
            break
        case .release:
            if let backend = self.loginBackend {
                self.loginBackend = nil
                backend.resetRelay()
                backend.pool.release(backend)
            }
        case .close:
            if let backend = self.loginBackend {
                self.loginBackend = nil
                backend.resetRelay()
                backend.pool.discard(backend)
            }
        case .cancelLease:
            if let index = self.acquiring.firstIndex(where: { $0.id == Self.loginLease }) {
                self.acquiring[index].pool.cancelLease(for: self, lease: Self.loginLease)
                self.acquiring.remove(at: index)
            }
        }
    }

    /// Output of the login backend: the internal statement's results are not shown; its ReadyForQuery,
    /// ParameterStatus and errors go to the login machine.
    func loginBytesReceived(_ incoming: ByteBuffer, from connection: BackendConnection) {
        guard let context = self.clientContext else { return }
        var buffer = incoming
        if var partial = connection.relayPartial {
            connection.relayPartial = nil
            partial.writeImmutableBuffer(buffer)
            buffer = partial
        }
        while buffer.readableBytes >= 5 {
            let start = buffer.readerIndex
            let id: UInt8 = buffer.getInteger(at: start)!
            let length = Int(buffer.getInteger(at: start + 1, as: Int32.self)!)
            guard length >= 4 else {
                self.backendProtocolViolation(connection, "invalid message length \(length)")
                return
            }
            guard buffer.readableBytes >= length + 1 else { break }
            var payload = buffer.getSlice(at: start + 5, length: length - 4)!
            buffer.moveReaderIndex(forwardBy: length + 1)
            switch id {
            case BackendMessageID.readyForQuery.rawValue:
                let status = payload.readInteger(as: UInt8.self).flatMap(BackendMessage.TransactionStatus.init(rawValue:)) ?? .idle
                self.perform(self.machine.backendReadyForQuery(status), context: context)
                if self.loginBackend !== connection { return }
            case BackendMessageID.parameterStatus.rawValue:
                if let name = payload.readNullTerminatedString(), let value = payload.readNullTerminatedString() {
                    connection.state.parameters.set(name, value)
                    self.machine.backendParameterStatus(name: name, value: value)
                }
            case BackendMessageID.errorResponse.rawValue:
                if let fields = try? ErrorNoticeFields.decode(from: &payload, message: "ErrorResponse") {
                    self.machine.internalStatementFailed(fields)
                }
            default:
                break
            }
        }
        if buffer.readableBytes > 0 { connection.relayPartial = buffer.slice() }
    }
}

extension ClientChannelHandler: BackendLeaser {
    func backendLeased(_ connection: BackendConnection, lease: Int) {
        if let index = self.acquiring.firstIndex(where: { $0.id == lease }) { self.acquiring.remove(at: index) }
        guard let context = self.clientContext else {
            // The client is gone already.
            connection.pool.release(connection)
            return
        }
        connection.leaseID = lease
        connection.resetRelay()
        connection.handler.attach(to: self)
        if lease == Self.loginLease {
            self.loginBackend = connection
            self.perform(self.machine.backendAttached(synchronization: self.machine.parameters.synchronization(for: connection.state.parameters)), context: context)
            return
        }
        guard self.engine != nil else {
            connection.pool.release(connection)
            return
        }
        self.leases.append((lease, connection))
        self.engine!.leaseGranted(lease, backend: connection.state, context: &self.loop.routing)
        self.performEngineActions()
        self.flushUnlessReading()
    }

    func backendUnavailable(_ error: ErrorNoticeFields, lease: Int) {
        if let index = self.acquiring.firstIndex(where: { $0.id == lease }) { self.acquiring.remove(at: index) }
        guard let context = self.clientContext else { return }
        if lease == Self.loginLease {
            self.perform(self.machine.backendUnavailable(error), context: context)
            return
        }
        guard self.engine != nil else { return }
        self.engine!.leaseFailed(lease, error: error, context: &self.loop.routing)
        self.performEngineActions()
        self.flushUnlessReading()
    }
}
