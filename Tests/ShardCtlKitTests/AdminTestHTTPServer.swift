import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A tiny HTTP/1.1 server on a loopback port for AdminClient's tests: answers each request with what
/// `respond` returns (or never, for `nil`), and records what it received.
final class AdminTestHTTPServer: Sendable {
    struct Received: Sendable {
        var method: HTTPMethod
        var uri: String
        var headers: HTTPHeaders
        var body: String
    }

    struct Reply: Sendable {
        var status: HTTPResponseStatus
        var contentType: String = "application/json"
        var body: String
    }

    let port: Int
    private let channel: any Channel
    private let received: NIOLockedValueBox<[Received]>

    var requests: [Received] { self.received.withLockedValue { $0 } }

    init(respond: @escaping @Sendable (Received) -> Reply?) async throws {
        let received = NIOLockedValueBox<[Received]>([])
        self.received = received
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(respond: respond, received: received))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.port = self.channel.localAddress?.port ?? 0
    }

    func stop() async {
        try? await self.channel.close()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let respond: @Sendable (Received) -> Reply?
        let received: NIOLockedValueBox<[Received]>
        var head: HTTPRequestHead?
        var body = ByteBuffer()

        init(respond: @escaping @Sendable (Received) -> Reply?, received: NIOLockedValueBox<[Received]>) {
            self.respond = respond
            self.received = received
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                self.body.clear()
            case .body(var chunk):
                self.body.writeBuffer(&chunk)
            case .end:
                guard let head = self.head else { return }
                let request = Received(method: head.method, uri: head.uri, headers: head.headers,
                                       body: String(buffer: self.body))
                self.received.withLockedValue { $0.append(request) }
                guard let reply = self.respond(request) else { return }  // never answer
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: reply.contentType)
                headers.add(name: "Content-Length", value: "\(reply.body.utf8.count)")
                context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: reply.status,
                                                                          headers: headers))), promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: reply.body)))), promise: nil)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
