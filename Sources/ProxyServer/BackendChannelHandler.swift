import Logging
import NIOCore
import PGWire
import ProxyCore

/// The pipeline handler of a backend connection: runs the startup exchange, then hands bytes to the
/// client session that leases the connection, untouched.
final class BackendChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case starting(BackendStartupStateMachine, pending: ByteBuffer?)
        case idle
        case attached(ClientChannelHandler)
        case closed
    }

    private var state: State
    private let server: BackendServer
    private let limits: PGWireLimits
    private var ready: EventLoopPromise<BackendConnection>?
    private var logger: Logger
    private(set) var context: ChannelHandlerContext?
    /// The connection object, set once startup is done; the cycle with it is broken when the channel closes.
    /// (Not weak: a weak reference would slow every retain of the connection on the hot path.)
    var connection: BackendConnection?
    /// Told when the channel closes, so the pool forgets the connection.
    var onClose: ((BackendConnection) -> Void)?
    /// A read the client side held back because it could not take more bytes.
    private var readPending = false
    /// The session asked not to read for now (its combined answer is ahead of another shard's).
    private var paused = false

    init(server: BackendServer, limits: PGWireLimits, ready: EventLoopPromise<BackendConnection>, logger: Logger) {
        self.server = server
        self.limits = limits
        self.ready = ready
        self.logger = logger
        self.logger[metadataKey: "backend"] = "\(server)"
        self.state = .starting(BackendStartupStateMachine(user: server.user, database: server.database, password: server.password), pending: nil)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        guard case .starting(let machine, _) = self.state else { return }
        var buffer = context.channel.allocator.buffer(capacity: 64)
        machine.startupMessage.encode(into: &buffer)
        context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        switch self.state {
        case .attached(let client):
            client.backendBytesReceived(bytes, from: self.connection!)
        case .starting(var machine, let pending):
            var buffer = bytes
            if var pending {
                pending.writeImmutableBuffer(bytes)
                buffer = pending
            }
            self.state = .starting(machine, pending: nil)
            do {
                while let frame = try PGFrame.decode(from: &buffer, limits: self.limits) {
                    let message = try BackendMessage.decode(frame)
                    switch machine.receive(message) {
                    case .none:
                        continue
                    case .send(let reply):
                        var out = context.channel.allocator.buffer(capacity: 128)
                        reply.encode(into: &out)
                        context.writeAndFlush(self.wrapOutboundOut(out), promise: nil)
                    case .ready(let parameters, let key):
                        self.state = .idle
                        let connection = BackendConnection(server: self.server, channel: context.channel, handler: self,
                                                           parameters: parameters, key: key)
                        self.connection = connection
                        self.logger.debug("backend connection ready", metadata: ["pid": "\(key?.processID ?? 0)"])
                        let promise = self.ready
                        self.ready = nil
                        promise?.assumeIsolated().succeed(connection)
                        return
                    case .fail(let reason):
                        self.failStartup(context: context, reason: reason)
                        return
                    }
                }
                self.state = .starting(machine, pending: buffer.readableBytes > 0 ? buffer : nil)
            } catch {
                self.failStartup(context: context, reason: "protocol error during startup: \(error)")
            }
        case .idle:
            // An idle server speaks only to say it is going away (e.g. pg_terminate_backend, shutdown).
            self.logger.debug("idle backend sent data; closing it")
            context.close(promise: nil)
        case .closed:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .attached(let client) = self.state {
            client.backendReadComplete()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let previous = self.state
        self.state = .closed
        switch previous {
        case .starting:
            self.failStartup(context: context, reason: "the server closed the connection during startup")
        case .attached(let client):
            if let connection = self.connection {
                client.backendLost(connection, reason: "the server closed the connection")
            }
        case .idle, .closed:
            break
        }
        if let connection = self.connection {
            self.onClose?(connection)
            self.onClose = nil
            self.connection = nil
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.logger.debug("backend connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: lease

    func attach(to client: ClientChannelHandler) {
        self.state = .attached(client)
    }

    /// Whether the connection is leased by `client` now.
    func isAttached(to client: ClientChannelHandler) -> Bool {
        if case .attached(let current) = self.state { return current === client }
        return false
    }

    func detach() {
        if case .attached = self.state {
            self.state = .idle
        }
        self.paused = false
        if self.readPending {
            self.readPending = false
            self.context?.read()
        }
    }

    // MARK: writes from the client side (same event loop)

    /// Writes client bytes to the server from this handler's own context, skipping the pipeline's tail.
    func write(_ buffer: ByteBuffer) {
        self.context?.write(self.wrapOutboundOut(buffer), promise: nil)
    }

    func flush() {
        self.context?.flush()
    }

    func writeAndFlush(_ buffer: ByteBuffer) {
        self.context?.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
    }

    // MARK: backpressure

    func read(context: ChannelHandlerContext) {
        if case .attached(let client) = self.state, self.paused || !client.isClientWritable {
            self.readPending = true
            return
        }
        context.read()
    }

    /// The client can take more bytes again.
    func resumeReading() {
        guard self.readPending, !self.paused, let context = self.context else { return }
        self.readPending = false
        context.read()
    }

    /// Stops reading until `unpause()` (reads already in flight are still delivered).
    func pause() {
        self.paused = true
    }

    func unpause() {
        self.paused = false
        self.resumeReading()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .attached(let client) = self.state {
            client.backendBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    private func failStartup(context: ChannelHandlerContext, reason: String) {
        self.state = .closed
        let promise = self.ready
        self.ready = nil
        promise?.fail(BackendConnectError(server: self.server, reason: reason))
        context.close(promise: nil)
    }
}
