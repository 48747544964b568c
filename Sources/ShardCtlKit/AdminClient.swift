import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 client for a proxy's admin port (DESIGN §7): one connection per request, JSON
/// bodies, a bearer token, and one deadline for connect + request + response.
///
/// ```swift
/// let client = try AdminClient(proxy: "http://127.0.0.1:9930", token: token)
/// let status = try await client.status()
/// ```
public struct AdminClient: Sendable {
    /// The proxy as given (`http://127.0.0.1:9930`), for messages.
    public let proxy: String
    /// Host to connect to (IPv6 without brackets).
    public let host: String
    /// Port to connect to (9930 when the URL has none).
    public let port: Int
    /// Path prefix from the URL (`""` for none), prepended to every request path.
    public let basePath: String
    /// Sent as `Authorization: Bearer` when set.
    public let token: String?
    /// For connect, request and response together.
    public let timeout: Duration
    private let group: any EventLoopGroup

    /// The largest response body accepted.
    public static let maxResponseBytes = 64 << 20

    /// A client for the admin port at `proxy` (`http://host:port`, the scheme may be left out).
    public init(proxy: String, token: String? = nil, timeout: Duration = .seconds(10),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        let text = proxy.contains("://") ? proxy : "http://" + proxy
        guard let components = URLComponents(string: text), let host = components.host, !host.isEmpty else {
            throw AdminClientError.invalidProxyURL(proxy, "expected http://host:port")
        }
        guard components.scheme?.lowercased() == "http" else {
            throw AdminClientError.invalidProxyURL(proxy, "only http:// is supported (the admin port speaks plain HTTP)")
        }
        guard components.user == nil, components.query == nil, components.fragment == nil else {
            throw AdminClientError.invalidProxyURL(proxy, "expected http://host:port with no user, query or fragment")
        }
        self.proxy = proxy
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        self.port = components.port ?? 9930
        let path = components.path.hasSuffix("/") ? String(components.path.dropLast()) : components.path
        self.basePath = path
        self.token = token.flatMap { $0.isEmpty ? nil : $0 }
        self.timeout = timeout
        self.group = eventLoopGroup
    }

    /// A response: status, content type and body.
    public struct Response: Sendable {
        /// The HTTP status.
        public var status: HTTPResponseStatus
        /// The `Content-Type` header, if any.
        public var contentType: String?
        /// The whole body.
        public var body: Data

        /// The body as text (lossy UTF-8).
        public var text: String { String(decoding: self.body, as: UTF8.self) }
    }

    /// `GET path`; throws for a status other than 2xx.
    public func get(_ path: String) async throws -> Response {
        try await self.checked(self.send(.GET, path, body: nil), path: path)
    }

    /// `PUT path` with a JSON body; throws for a status other than 2xx.
    public func put(_ path: String, json body: Data) async throws -> Response {
        try await self.checked(self.send(.PUT, path, body: body), path: path)
    }

    /// `POST path` with a JSON body; throws for a status other than 2xx.
    public func post(_ path: String, json body: Data) async throws -> Response {
        try await self.checked(self.send(.POST, path, body: body), path: path)
    }

    /// Sends one request and returns whatever status came back.
    public func send(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> Response {
        let timeout = TimeAmount.nanoseconds(Int64(self.timeout.components.seconds) * 1_000_000_000
            + self.timeout.components.attoseconds / 1_000_000_000)
        let deadline = NIODeadline.now() + timeout
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: self.group)
                .connectTimeout(timeout)
                .connect(host: self.host, port: self.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                            wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw AdminClientError.cannotReach(self.proxy, Self.describe(error))
        }
        // One deadline for the whole exchange: past it the connection is closed, which ends the read.
        let timedOut = TimeoutFlag()
        let timer = channel.channel.eventLoop.scheduleTask(deadline: deadline) {
            timedOut.set()
            channel.channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            return try await self.exchange(on: channel, method: method, path: path, body: body)
        } catch {
            if timedOut.isSet {
                throw AdminClientError.timeout(self.proxy, timeout.nanoseconds / 1_000_000)
            }
            if let error = error as? AdminClientError { throw error }
            throw AdminClientError.cannotReach(self.proxy, Self.describe(error))
        }
    }

    private func exchange(on channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>,
                          method: HTTPMethod, path: String, body: Data?) async throws -> Response {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: self.port == 80 ? self.host : "\(self.host):\(self.port)")
        headers.add(name: "User-Agent", value: "shardctl")
        headers.add(name: "Accept", value: "application/json, text/plain")
        headers.add(name: "Connection", value: "close")
        if let token = self.token {
            headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        if let body {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: "\(body.count)")
        } else if method != .GET {
            headers.add(name: "Content-Length", value: "0")
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: self.basePath + path, headers: headers)
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(.head(head))
            if let body {
                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
            }
            try await outbound.write(.end(nil))
            var response: HTTPResponseHead?
            var collected = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let head):
                    response = head
                case .body(var chunk):
                    guard collected.readableBytes + chunk.readableBytes <= Self.maxResponseBytes else {
                        throw AdminClientError.malformedResponse(self.proxy, "response larger than \(Self.maxResponseBytes) bytes")
                    }
                    collected.writeBuffer(&chunk)
                case .end:
                    guard let response else { break }
                    return Response(status: response.status, contentType: response.headers.first(name: "Content-Type"),
                                    body: Data(collected.readableBytesView))
                }
            }
            throw AdminClientError.malformedResponse(self.proxy, "the connection closed before a complete response")
        }
    }

    private func checked(_ response: Response, path: String) throws -> Response {
        guard (200..<300).contains(response.status.code) else {
            throw AdminClientError.http(self.proxy, path: path, status: Int(response.status.code),
                                        message: Self.errorMessage(in: response))
        }
        return response
    }

    /// The `error` of a JSON error body, else the body text, else the status phrase.
    static func errorMessage(in response: Response) -> String {
        if let object = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any],
           let message = object["error"] as? String {
            return message
        }
        let text = response.text.trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? response.status.reasonPhrase : String(text.prefix(500))
    }

    /// A short reason from NIO's connect errors ("connection refused", "connect timed out", ...).
    static func describe(_ error: any Error) -> String {
        if let error = error as? ChannelError, case .connectTimeout(let amount) = error {
            return "connect timed out after \(amount.nanoseconds / 1_000_000) ms"
        }
        let text = String(describing: error)
        if text.contains("Connection refused") { return "connection refused" }
        if text.contains("connectTimeout") || text.contains("Connection timed out") { return "connect timed out" }
        if text.contains("No route to host") { return "no route to host" }
        if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
            return describe(first.error)
        }
        if let error = error as? SocketAddressError {
            return "cannot resolve the host name (\(error))"
        }
        if text.contains("alreadyClosed") || text.contains("ioOnClosedChannel") || text.contains("eof") {
            return "the proxy closed the connection"
        }
        return text
    }
}

/// Why a request to a proxy's admin port failed; `description` is what shardctl prints.
public enum AdminClientError: Error, Equatable, CustomStringConvertible {
    /// The `--proxy` value is not an `http://host:port` URL (value, problem).
    case invalidProxyURL(String, String)
    /// No connection (proxy, reason such as "connection refused").
    case cannotReach(String, String)
    /// No complete answer within the timeout (proxy, milliseconds).
    case timeout(String, Int64)
    /// An answer other than 2xx, with the `error` of its JSON body.
    case http(String, path: String, status: Int, message: String)
    /// An answer that is not what the admin port sends (proxy, problem).
    case malformedResponse(String, String)

    public var description: String {
        switch self {
        case .invalidProxyURL(let proxy, let problem):
            return "invalid --proxy \"\(proxy)\": \(problem)"
        case .cannotReach(let proxy, let reason):
            return "cannot reach proxy \(proxy): \(reason)"
        case .timeout(let proxy, let ms):
            return "proxy \(proxy) did not answer within \(ms) ms"
        case .http(let proxy, let path, let status, let message):
            return "proxy \(proxy) answered \(status) to \(path): \(message)"
        case .malformedResponse(let proxy, let problem):
            return "proxy \(proxy) sent a malformed response: \(problem)"
        }
    }
}

/// Set from the event loop when the deadline closes the connection.
private final class TimeoutFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func set() {
        self.lock.lock()
        self.value = true
        self.lock.unlock()
    }

    var isSet: Bool {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.value
    }
}
