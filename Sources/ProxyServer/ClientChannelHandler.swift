import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PGWire
import ProxyCore
import SQLRouting

/// One client connection. Performs what `ClientSessionStateMachine` decides and relays bytes between the
/// client and the backend it leases; both channels live on the same event loop.
///
/// A duplex handler, not an inbound one: only outbound handlers see the channel's `read` event, and
/// intercepting it is how reading from the client pauses while the backend cannot take more bytes.
final class ClientChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var machine: ClientSessionStateMachine
    private let loop: LoopContext
    private(set) var logger: Logger
    private(set) var clientContext: ChannelHandlerContext?
    private var backend: BackendConnection?
    private var cancelKey: BackendKey?
    private var decoder: ClientFrameDecoder
    /// The start of a client message that has not fully arrived.
    private var inbound: ByteBuffer?
    /// Whether anything was written to the backend in this read burst (flushed at its end).
    private var backendWritePending = false
    /// Bytes of a backend message that is being passed through without being complete in memory.
    var relayPassThrough = 0
    /// The start of a backend message that must be inspected but has not fully arrived.
    var relayPartial: ByteBuffer?
    /// Relayed bytes written to the client but not flushed yet.
    var clientFlushPending = false
    /// A client read held back because the backend could not take more bytes.
    private var readPending = false

    /// The pool statements go to (until shard-key routing: the first shard's primary).
    private let pool: BackendPool

    init(loop: LoopContext, logger: Logger) {
        self.loop = loop
        self.pool = loop.pool(for: loop.shared.defaultServer)
        self.logger = logger
        self.machine = ClientSessionStateMachine(tlsAvailable: loop.shared.tls != nil)
        self.decoder = ClientFrameDecoder(limits: loop.shared.limits)
    }

    var isClientWritable: Bool { self.clientContext?.channel.isWritable ?? false }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.clientContext = context
        self.loop.clientOpened(self)
    }

    /// Decodes what the client sent and runs each packet through the state machine. Consecutive frames
    /// for the attached backend are written to it as one slice of the received buffer, without copying.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        if var pending = self.inbound {
            pending.writeImmutableBuffer(buffer)
            buffer = pending
            self.inbound = nil
        }
        // `buffer` advances; `whole` keeps the consumed bytes addressable for forwarding.
        let whole = buffer
        var forward = 0..<0
        while self.clientContext != nil {
            let start = buffer.readerIndex
            let inbound: ClientInbound?
            do {
                inbound = try self.decoder.decode(buffer: &buffer)
            } catch {
                self.forwardToBackend(whole, forward)
                self.protocolError(error, context: context)
                return
            }
            guard let inbound else { break }
            let action: ClientSessionStateMachine.Action
            switch inbound {
            case .startup(let packet):
                if case .startup(let message) = packet {
                    self.negotiateProtocolVersion(message, context: context)
                }
                action = self.machine.startupPacketReceived(packet, settings: self.loop.shared.auth,
                                                            databaseName: self.loop.shared.databaseName)
            case .frame(let frame):
                action = self.machine.clientFrameReceived(frame, changesSessionState: self.changesSessionState(frame))
            }
            if case .forward = action {
                if forward.upperBound != start {
                    self.forwardToBackend(whole, forward)
                    forward = start..<start
                }
                forward = forward.lowerBound..<buffer.readerIndex
                continue
            }
            self.forwardToBackend(whole, forward)
            forward = 0..<0
            self.perform(action, context: context)
        }
        self.forwardToBackend(whole, forward)
        if buffer.readableBytes > 0, self.clientContext != nil {
            self.inbound = buffer
        }
    }

    /// Whether the SQL of a Query or Parse changes session state that must stay on its backend. Most SQL is
    /// ruled out by a byte scan; the rest is parsed (through the loop's cache of analyses).
    private func changesSessionState(_ frame: PGFrame) -> Bool {
        guard !self.machine.holdsSessionState else { return false }
        var payload = frame.payload
        switch frame.id {
        case FrontendMessageID.query.rawValue:
            break
        case FrontendMessageID.parse.rawValue:
            // Skip the statement name without building a String for it.
            guard let nul = payload.readableBytesView.firstIndex(of: 0) else { return false }
            payload.moveReaderIndex(to: nul + 1)
        default:
            return false
        }
        let candidate = payload.withUnsafeReadableBytes { raw in
            SessionStateEffect.mayChangeSessionState(raw.bindMemory(to: UInt8.self))
        }
        guard candidate, let sql = payload.readNullTerminatedString() else { return false }
        // SQL that does not parse changes nothing: PostgreSQL will refuse it too.
        guard let analysis = try? self.loop.router.analyze(sql) else { return false }
        return SessionStateEffect.pinsBackend(analysis)
    }

    private func forwardToBackend(_ whole: ByteBuffer, _ range: Range<Int>) {
        guard !range.isEmpty, let backend = self.backend else { return }
        backend.handler.write(whole.getSlice(at: range.lowerBound, length: range.count)!)
        self.backendWritePending = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.backendWritePending {
            self.backendWritePending = false
            self.backend?.handler.flush()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.dispose(self.machine.clientClosed())
        if let key = self.cancelKey {
            self.loop.shared.cancelRegistry.unregister(key)
            self.cancelKey = nil
        }
        self.loop.clientClosed(self)
        self.clientContext = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.logger.debug("client connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    /// The client broke the protocol: FATAL 08P01 and close, as PostgreSQL does.
    private func protocolError(_ error: PGWireError, context: ChannelHandlerContext) {
        self.logger.debug("closing client after protocol error", metadata: ["error": "\(error)"])
        let disposition = self.machine.clientClosed()
        self.perform(.closeClient(ProxyErrors.protocolViolation("invalid message from client: \(error)"),
                                  backend: disposition == .release ? .close : disposition), context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.backend?.handler.resumeReading()
        }
        context.fireChannelWritabilityChanged()
    }

    /// ShardGate speaks protocol 3.0 and no protocol extensions: a client asking for a newer minor version
    /// or for `_pq_.` options is told so, as PostgreSQL does, and continues with 3.0.
    private func negotiateProtocolVersion(_ message: StartupMessage, context: ChannelHandlerContext) {
        let extensions = message.parameters.map(\.0).filter { $0.hasPrefix("_pq_.") }
        guard message.protocolMinor > 0 || !extensions.isEmpty else { return }
        var out = context.channel.allocator.buffer(capacity: 64)
        BackendMessage.negotiateProtocolVersion(NegotiateProtocolVersion(newestMinorVersion: 0, unrecognizedOptions: extensions))
            .encode(into: &out)
        context.write(self.wrapOutboundOut(out), promise: nil)
    }

    // MARK: backpressure toward the backend

    func read(context: ChannelHandlerContext) {
        if let backend = self.backend, !backend.channel.isWritable {
            self.readPending = true
            return
        }
        context.read()
    }

    func backendBecameWritable() {
        guard self.readPending, let context = self.clientContext else { return }
        self.readPending = false
        context.read()
    }

    // MARK: actions

    private func perform(_ action: ClientSessionStateMachine.Action, context: ChannelHandlerContext) {
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
                self.pool.lease(for: self)
            }
        case .acquireBackend:
            self.pool.lease(for: self)
        case .startBackend(let sync, let frames):
            guard let backend = self.backend else { preconditionFailure("startBackend without a backend") }
            var out = context.channel.allocator.buffer(capacity: 256)
            if let sync {
                FrontendMessage.query(sync).encode(into: &out)
                self.machine.parameters.applySynchronization(to: &backend.parameters)
            }
            for frame in frames {
                frame.write(into: &out)
            }
            backend.handler.writeAndFlush(out)
        case .forward:
            // Handled in channelRead, where the frame's bytes are forwarded as a slice.
            preconditionFailure("forward is performed by channelRead")
        case .finishLogin:
            guard let backend = self.backend else { preconditionFailure("finishLogin without a backend") }
            let key = self.loop.shared.cancelRegistry.register(self, on: context.eventLoop)
            self.cancelKey = key
            var out = context.channel.allocator.buffer(capacity: 512)
            // The parameters the server reports (its defaults' keys), with this session's values.
            for name in backend.parameters.defaults.keys.sorted() {
                BackendMessage.parameterStatus(name: name, value: backend.parameters[name] ?? "").encode(into: &out)
            }
            BackendMessage.backendKeyData(key).encode(into: &out)
            BackendMessage.readyForQuery(.idle).encode(into: &out)
            context.writeAndFlush(self.wrapOutboundOut(out), promise: nil)
            self.releaseBackend()
        case .releaseBackend:
            self.releaseBackend()
        case .send(let messages):
            self.send(messages, context: context)
        case .sendAndCloseBackend(let messages):
            if !messages.isEmpty { self.send(messages, context: context) }
            if let backend = self.backend {
                self.backend = nil
                self.resetRelay()
                backend.pool.discard(backend)
            }
        case .closeClient(let error, let disposition):
            self.inbound = nil
            self.dispose(disposition)
            if let error {
                var out = context.channel.allocator.buffer(capacity: 128)
                BackendMessage.errorResponse(error).encode(into: &out)
                context.writeAndFlush(self.wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            } else {
                context.close(promise: nil)
            }
        }
    }

    private func send(_ messages: [BackendMessage], context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: 128)
        for message in messages { message.encode(into: &out) }
        context.writeAndFlush(self.wrapOutboundOut(out), promise: nil)
    }

    private func dispose(_ disposition: ClientSessionStateMachine.BackendDisposition) {
        switch disposition {
        case .none:
            break
        case .release:
            self.releaseBackend()
        case .close:
            if let backend = self.backend {
                self.backend = nil
                self.resetRelay()
                backend.pool.discard(backend)
            }
        case .cancelLease:
            self.pool.cancelLease(for: self)
        }
    }

    private func releaseBackend() {
        guard let backend = self.backend else { return }
        self.backend = nil
        self.resetRelay()
        backend.pool.release(backend)
        if self.readPending, let context = self.clientContext {
            self.readPending = false
            context.read()
        }
    }

    private func resetRelay() {
        self.relayPartial = nil
        self.relayPassThrough = 0
    }

    // MARK: backend events (called by the relay and the backend handler, on this event loop)

    var isSwallowingBackendOutput: Bool { self.machine.isSwallowingBackendOutput }
    var hasAttachedBackend: Bool { self.backend != nil }

    func readyForQueryFromBackend(_ status: BackendMessage.TransactionStatus) {
        guard let context = self.clientContext else { return }
        self.perform(self.machine.backendReadyForQuery(status), context: context)
    }

    func parameterStatusFromBackend(name: String, value: String) {
        self.backend?.parameters.set(name, value)
        self.machine.backendParameterStatus(name: name, value: value)
    }

    func internalStatementFailed(_ fields: ErrorNoticeFields) {
        self.machine.internalStatementFailed(fields)
    }

    /// The backend sent bytes that are not protocol 3.0; it cannot be trusted any more.
    func backendProtocolViolation(_ reason: String) {
        self.logger.warning("backend protocol violation; closing it", metadata: ["reason": "\(reason)"])
        self.backend?.channel.close(promise: nil)
    }

    /// The attached backend's connection closed.
    func backendLost(reason: String) {
        guard let backend = self.backend, let context = self.clientContext else { return }
        let midMessage = self.relayPassThrough > 0
        self.backend = nil
        self.resetRelay()
        let action = self.machine.backendLost(server: "\(backend.server)", reason: reason)
        guard !midMessage else {
            // Part of a message already reached the client; nothing valid can follow it on this stream.
            self.logger.info("backend lost in the middle of a message; closing the client", metadata: ["reason": "\(reason)"])
            _ = self.machine.clientClosed()
            context.close(promise: nil)
            return
        }
        self.perform(action, context: context)
    }

    // MARK: cancel and shutdown

    /// A CancelRequest carrying this session's key arrived: pass it to the backend running its statement.
    func cancelRunningStatement() {
        guard let backend = self.backend, let key = backend.key, let eventLoop = self.clientContext?.eventLoop else { return }
        let server = backend.server
        self.logger.debug("forwarding cancel request", metadata: ["backend": "\(server)"])
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(5))
            .connect(host: server.host, port: server.port)
            .whenSuccess { channel in
                var packet = channel.allocator.buffer(capacity: 16)
                StartupPacket.cancel(key).encode(into: &packet)
                channel.writeAndFlush(packet).whenComplete { _ in channel.close(promise: nil) }
            }
    }

    func shutdown() {
        guard let context = self.clientContext else { return }
        self.perform(self.machine.shutdown(), context: context)
    }

    func forceClose() {
        guard let context = self.clientContext else { return }
        self.perform(self.machine.forceClose(), context: context)
    }
}

extension ClientChannelHandler: BackendLeaser {
    func backendLeased(_ connection: BackendConnection) {
        guard let context = self.clientContext else {
            // The client is gone already.
            connection.pool.release(connection)
            return
        }
        self.backend = connection
        connection.handler.attach(to: self)
        let sync = self.machine.parameters.synchronization(for: connection.parameters)
        self.perform(self.machine.backendAttached(synchronization: sync), context: context)
    }

    func backendUnavailable(_ error: ErrorNoticeFields) {
        guard let context = self.clientContext else { return }
        self.perform(self.machine.backendUnavailable(error), context: context)
    }
}
