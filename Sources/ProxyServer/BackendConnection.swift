import Logging
import NIOCore
import NIOPosix
import PGWire
import ProxyCore

/// An authenticated connection to a backend server, owned by the pool of its event loop.
final class BackendConnection {
    let server: BackendServer
    let channel: any Channel
    let handler: BackendChannelHandler
    /// Session state of the connection (parameters, prepared statements), kept across leases.
    let state: BackendState
    /// The server's process ID and secret, for forwarding a client's CancelRequest.
    let key: BackendKey?
    /// The lease of the session using it (set while leased).
    var leaseID = 0
    /// Relay state while leased: bytes of a message being passed through before it has fully arrived, the
    /// start of a message that must be complete to be looked at, and whether rows may be relayed unasked.
    var relayPassThrough = 0
    var relayPartial: ByteBuffer?
    var relayRows = false
    /// The pool this connection belongs to (set when the pool adopts it). Pools live as long as their
    /// event loop, so they always outlive their connections.
    unowned(unsafe) var pool: BackendPool!

    init(server: BackendServer, channel: any Channel, handler: BackendChannelHandler, parameters: [String: String], key: BackendKey?) {
        self.server = server
        self.channel = channel
        self.handler = handler
        self.state = BackendState(server: "\(server)", parameters: BackendParameters(defaults: parameters))
        self.key = key
    }

    var id: ObjectIdentifier { ObjectIdentifier(self) }

    /// Forgets the relay state of the last lease.
    func resetRelay() {
        self.relayPassThrough = 0
        self.relayPartial = nil
        self.relayRows = false
    }

    /// Opens, authenticates and readies a connection on `eventLoop`.
    static func connect(to server: BackendServer, on eventLoop: any EventLoop, limits: PGWireLimits, logger: Logger) -> EventLoopFuture<BackendConnection> {
        let ready = eventLoop.makePromise(of: BackendConnection.self)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = BackendChannelHandler(server: server, limits: limits, ready: ready, logger: logger)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        bootstrap.connect(host: server.host, port: server.port).whenFailure { error in
            ready.fail(BackendConnectError(server: server, reason: "\(error)"))
        }
        return ready.futureResult
    }
}

/// Why a backend connection could not be opened.
struct BackendConnectError: Error, CustomStringConvertible {
    var server: BackendServer
    var reason: String
    var description: String { "\(self.server): \(self.reason)" }
}
