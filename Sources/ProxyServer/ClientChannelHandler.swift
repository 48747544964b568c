import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PGWire
import ProxyCore
import SQLRouting

/// One client connection. Performs what `ClientSessionStateMachine` (startup, authentication, login) and
/// then `SessionEngine` (routing, transactions, combining) decide, and relays bytes between the client and
/// the backends it leases; all of them live on the same event loop.
///
/// A duplex handler, not an inbound one: only outbound handlers see the channel's `read` event, and
/// intercepting it is how reading from the client pauses while a backend cannot take more bytes.
final class ClientChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var machine: ClientSessionStateMachine
    /// Set once the login is done.
    var engine: SessionEngine?
    let loop: LoopContext
    var logger: Logger
    private(set) var clientContext: ChannelHandlerContext?
    /// The backend of the login, until it is done.
    var loginBackend: BackendConnection?
    /// Leased backends by lease id (a handful at most).
    var leases: [(id: Int, connection: BackendConnection)] = []
    /// Lease requests in flight, with the pool asked.
    var acquiring: [(id: Int, pool: BackendPool)] = []
    var cancelKey: BackendKey?
    private var decoder: ClientFrameDecoder
    /// The start of a client message that has not fully arrived.
    private var inbound: ByteBuffer?
    /// Backends written to since the last flush.
    var backendsToFlush: [BackendConnection] = []
    /// Bytes written to the client but not flushed yet.
    var clientFlushPending = false
    /// A client read held back because a backend could not take more bytes.
    private var readPending = false
    /// While a client read is processed: its buffer, the frame being processed, and the run of frames to
    /// be forwarded to one lease as one slice.
    private var readBuffer: ByteBuffer?
    private var currentFrame = 0..<0
    private var forwardLease: Int?
    private var forwardRange = 0..<0

    /// Keep at most this much in memory up front for a client message still arriving (it may grow past it).
    static let inboundReserve = 16 << 20

    init(loop: LoopContext, logger: Logger) {
        self.loop = loop
        self.logger = logger
        self.machine = ClientSessionStateMachine(tlsAvailable: loop.shared.tls != nil)
        self.decoder = ClientFrameDecoder(limits: loop.shared.limits)
    }

    var isClientWritable: Bool { self.clientContext?.channel.isWritable ?? false }

    func connection(_ id: Int) -> BackendConnection? {
        for lease in self.leases where lease.id == id { return lease.connection }
        return nil
    }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.clientContext = context
    }

    /// The loop learns of the client only once its channel is active: a shutdown that reached it before
    /// (the handler is added before the channel registers) could neither write to nor close it.
    func channelActive(context: ChannelHandlerContext) {
        self.loop.clientOpened(self)
        context.fireChannelActive()
    }

    /// Decodes what the client sent and hands each message to the login machine or the session engine.
    /// Consecutive frames for one backend are written to it as one slice of the received buffer.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        if var pending = self.inbound {
            // Take the partial message out first, so that appending does not copy it (it was sized for
            // the whole message when kept).
            self.inbound = nil
            pending.writeImmutableBuffer(buffer)
            buffer = pending
        }
        self.readBuffer = buffer
        defer { self.readBuffer = nil }
        while self.clientContext != nil {
            let start = buffer.readerIndex
            let inbound: ClientInbound?
            do {
                inbound = try self.decoder.decode(buffer: &buffer)
            } catch {
                self.flushForward()
                self.protocolError(error, context: context)
                return
            }
            guard let inbound else { break }
            switch inbound {
            case .startup(let packet):
                if case .startup(let message) = packet {
                    self.negotiateProtocolVersion(message, context: context)
                }
                self.perform(self.machine.startupPacketReceived(packet, settings: self.loop.shared.auth,
                                                                databaseName: self.loop.shared.databaseName),
                             context: context)
            case .frame(let frame):
                if self.engine != nil {
                    self.currentFrame = start..<buffer.readerIndex
                    self.engine!.clientFrame(frame, context: &self.loop.routing)
                    self.performEngineActions()
                    self.engine?.clientFrameHandled()
                } else {
                    self.perform(self.machine.clientFrameReceived(frame), context: context)
                }
            }
        }
        self.flushForward()
        if buffer.readableBytes > 0, self.clientContext != nil {
            self.keepPartial(buffer, allocator: context.channel.allocator)
        }
    }

    /// Keeps the start of a message that has not fully arrived in a buffer of its own, sized for the
    /// whole message (up to `inboundReserve`), so that the rest is appended without copying it again.
    private func keepPartial(_ buffer: ByteBuffer, allocator: ByteBufferAllocator) {
        var wanted = buffer.readableBytes
        if buffer.readableBytes >= 5, let length: Int32 = buffer.getInteger(at: buffer.readerIndex + 1), length > 0 {
            wanted = max(wanted, min(Int(length) + 1, Self.inboundReserve))
        }
        var kept = allocator.buffer(capacity: wanted)
        kept.writeImmutableBuffer(buffer)
        self.inbound = kept
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.flushBackends()
        self.flushClient()
    }

    func flushBackends() {
        guard !self.backendsToFlush.isEmpty else { return }
        for connection in self.backendsToFlush { connection.handler.flush() }
        self.backendsToFlush.removeAll(keepingCapacity: true)
    }

    /// Flushes after a pool called back. A pool that answers at once does so while the client's read is
    /// processed: the rest of that read (a Bind's Describe, Execute and Sync) is still to be written, and
    /// channelReadComplete flushes it all in one write.
    func flushUnlessReading() {
        guard self.readBuffer == nil else { return }
        self.flushBackends()
        self.flushClient()
    }

    func flushClient() {
        guard self.clientFlushPending else { return }
        self.clientFlushPending = false
        self.clientContext?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.engine != nil {
            self.engine!.clientClosed(context: &self.loop.routing)
            self.performEngineActions()
        }
        self.disposeLogin(self.machine.clientClosed())
        for (id, pool) in self.acquiring { pool.cancelLease(for: self, lease: id) }
        self.acquiring.removeAll()
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

    /// The client broke the protocol: FATAL 08P01 and close, as PostgreSQL does. No backend it used goes
    /// back to a pool (its state is unknown).
    private func protocolError(_ error: PGWireError, context: ChannelHandlerContext) {
        self.logger.debug("closing client after protocol error", metadata: ["error": "\(error)"])
        for (_, connection) in self.leases { connection.pool.discard(connection) }
        self.leases.removeAll()
        self.engine = nil
        let disposition = self.machine.clientClosed()
        self.perform(.closeClient(ProxyErrors.protocolViolation("invalid message from client: \(error)"),
                                  backend: disposition == .release ? .close : disposition), context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            for (_, connection) in self.leases { connection.handler.resumeReading() }
            self.loginBackend?.handler.resumeReading()
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

    // MARK: backpressure toward the backends

    func read(context: ChannelHandlerContext) {
        if self.leases.contains(where: { !$0.connection.channel.isWritable }) {
            self.readPending = true
            return
        }
        context.read()
    }

    func backendBecameWritable() {
        guard self.readPending, let context = self.clientContext,
              !self.leases.contains(where: { !$0.connection.channel.isWritable }) else { return }
        self.readPending = false
        context.read()
    }

    // MARK: engine actions

    func performEngineActions() {
        while let action = self.engine?.nextAction() {
            if case .forward(let id) = action {
                if self.forwardLease == id, self.forwardRange.upperBound == self.currentFrame.lowerBound {
                    self.forwardRange = self.forwardRange.lowerBound..<self.currentFrame.upperBound
                } else {
                    self.flushForward()
                    self.forwardLease = id
                    self.forwardRange = self.currentFrame
                }
                continue
            }
            self.flushForward()
            self.perform(action)
        }
    }

    /// Writes the run of forwarded client frames to its backend.
    private func flushForward() {
        guard let id = self.forwardLease else { return }
        self.forwardLease = nil
        guard let connection = self.connection(id), let buffer = self.readBuffer,
              let slice = buffer.getSlice(at: self.forwardRange.lowerBound, length: self.forwardRange.count) else { return }
        connection.handler.write(slice)
        self.noteWritten(connection)
    }

    func noteWritten(_ connection: BackendConnection) {
        if !self.backendsToFlush.contains(where: { $0 === connection }) {
            self.backendsToFlush.append(connection)
        }
    }

    private func perform(_ action: SessionEngine.Action) {
        switch action {
        case .acquire(let id, let target, let claim):
            let pool = self.loop.pool(for: target)
            self.acquiring.append((id, pool))
            pool.lease(for: self, lease: id, claim: claim)
        case .cancelAcquire(let id):
            if let index = self.acquiring.firstIndex(where: { $0.id == id }) {
                self.acquiring[index].pool.cancelLease(for: self, lease: id)
                self.acquiring.remove(at: index)
            }
        case .release(let id):
            guard let connection = self.removeLease(id) else { return }
            connection.pool.release(connection)
        case .discard(let id):
            guard let connection = self.removeLease(id) else { return }
            connection.pool.discard(connection)
        case .forward:
            preconditionFailure("forward is performed by performEngineActions")
        case .write(let id, let bytes):
            guard let connection = self.connection(id) else { return }
            connection.handler.write(bytes)
            self.noteWritten(connection)
        case .send(let bytes):
            guard let context = self.clientContext else { return }
            context.write(self.wrapOutboundOut(bytes), promise: nil)
            self.clientFlushPending = true
        case .pauseReading(let id):
            self.connection(id)?.handler.pause()
        case .resumeReading(let id):
            self.connection(id)?.handler.unpause()
        case .closeClient(let error):
            self.closeClient(error)
        case .waitForPause:
            self.loop.waitForPause(self)
        case .logCommitDecision(let decision):
            self.logCommitDecision(decision)
        case .twoPhaseFinished(let id, let complete):
            self.loop.control?.registry?.finish(id)
            if complete { self.loop.control?.twoPhaseLog?.recordDone(id) }
        }
    }

    /// The crash-recovery tests' fault: the process ends at once, as on a power cut (no shutdown).
    static func crashForTest(_ fault: String) -> Never {
        FileHandle.standardError.write(Data("shardgate: SHARDGATE_FAULT=\(fault): exiting now\n".utf8))
        _exit(70)
    }

    /// Writes a commit decision on the file thread, then lets the session commit (or roll back if it failed).
    private func logCommitDecision(_ decision: TwoPhaseDecision) {
        guard let eventLoop = self.clientContext?.eventLoop, let control = self.loop.control,
              let log = control.twoPhaseLog else {
            self.engine?.decisionFailed("no decision log is configured", context: &self.loop.routing)
            self.performEngineActions()
            return
        }
        let fault = control.fault
        control.fileIO.runIfActive(eventLoop: eventLoop) {
            if fault == "crash-before-decision" { Self.crashForTest(fault!) }
            try log.recordCommit(decision)
            if fault == "crash-after-decision" { Self.crashForTest(fault!) }
        }
            .assumeIsolated()
            .whenComplete { result in
                guard self.engine != nil else { return }
                switch result {
                case .success:
                    self.engine!.decisionLogged(context: &self.loop.routing)
                case .failure(let error):
                    self.engine!.decisionFailed("\(error)", context: &self.loop.routing)
                }
                self.performEngineActions()
                self.flushBackends()
                self.flushClient()
            }
    }

    /// Paused slots were resumed: statements that waited go on.
    func pauseEnded() {
        guard self.engine != nil else { return }
        self.engine!.resume(context: &self.loop.routing)
        self.performEngineActions()
        self.flushBackends()
        self.flushClient()
    }

    /// Whether this session has a transaction or statement in flight on any of `slots`.
    func touches(_ slots: Set<Int>) -> Bool {
        self.engine?.touches(slots) ?? false
    }

    private func removeLease(_ id: Int) -> BackendConnection? {
        guard let index = self.leases.firstIndex(where: { $0.id == id }) else { return nil }
        let connection = self.leases.remove(at: index).connection
        connection.resetRelay()
        if self.readPending, let context = self.clientContext,
           !self.leases.contains(where: { !$0.connection.channel.isWritable }) {
            self.readPending = false
            context.read()
        }
        return connection
    }

    func closeClient(_ error: ErrorNoticeFields?) {
        guard let context = self.clientContext else { return }
        self.inbound = nil
        self.flushBackends()
        if let error {
            var out = context.channel.allocator.buffer(capacity: 128)
            BackendMessage.errorResponse(error).encode(into: &out)
            context.writeAndFlush(self.wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            self.flushClient()
            context.close(promise: nil)
        }
    }

    // MARK: cancel and shutdown

    /// A CancelRequest carrying this session's key arrived: pass it to the backends running its statements.
    func cancelRunningStatement() {
        guard let eventLoop = self.clientContext?.eventLoop else { return }
        for (_, connection) in self.leases {
            guard let key = connection.key else { continue }
            let server = connection.server
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
    }

    func shutdown() {
        guard let context = self.clientContext else { return }
        if self.engine != nil {
            self.engine!.shutdown(context: &self.loop.routing)
            self.performEngineActions()
            self.flushBackends()
            self.flushClient()
        } else {
            self.perform(self.machine.shutdown(), context: context)
        }
    }

    func forceClose() {
        guard let context = self.clientContext else { return }
        if self.engine != nil {
            self.engine!.forceClose(context: &self.loop.routing)
            self.performEngineActions()
        } else {
            self.perform(self.machine.forceClose(), context: context)
        }
    }
}
