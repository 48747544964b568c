import AdminServer
import Foundation
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import Prometheus
import ProxyCore
import Testing

/// Receives the bound address from `AdminServer.run(onListening:)`.
final class AddressBox: Sendable {
    private let stream: AsyncStream<SocketAddress>
    private let continuation: AsyncStream<SocketAddress>.Continuation

    init() {
        (self.stream, self.continuation) = AsyncStream.makeStream()
    }

    func deliver(_ address: SocketAddress) { self.continuation.yield(address) }

    func next() async -> SocketAddress? {
        var iterator = self.stream.makeAsyncIterator()
        return await iterator.next()
    }
}

@Suite("Admin port: a real listening server")
struct AdminServerRunTests {
    static func server(port: Int, token: String? = nil) -> AdminServer {
        var logger = Logger(label: "admin-run-tests")
        logger.logLevel = .critical
        return AdminServer(configuration: .init(host: "127.0.0.1", port: port, token: token),
                           backend: FakeAdminBackend(), metrics: nil, registry: PrometheusCollectorRegistry(), logger: logger)
    }

    @Test func servesOverTCPAndStopsWhenCancelled() async throws {
        let addresses = AddressBox()
        let task = Task { try await Self.server(port: 0).run { addresses.deliver($0) } }
        let address = try #require(await addresses.next())
        let port = try #require(address.port)
        try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
            let health = try await client.get("/health")
            #expect(health.status == .ok)
            #expect(String(buffer: health.body ?? ByteBuffer()) == #"{"status":"ok"}"#)
            let lag = try await client.get("/lag")
            #expect(String(buffer: lag.body ?? ByteBuffer()).contains("\"replicas\""))
        }
        task.cancel()
        try await task.value
    }

    @Test func aPortInUseIsReportedClearly() async throws {
        let addresses = AddressBox()
        let first = Task { try await Self.server(port: 0).run { addresses.deliver($0) } }
        defer { first.cancel() }
        let port = try #require(await addresses.next()?.port)
        do {
            try await Self.server(port: port).run()
            Issue.record("a second server bound the same port")
        } catch let error as AdminServerError {
            guard case .cannotListen(let host, let failedPort, let reason) = error else { return }
            #expect(host == "127.0.0.1")
            #expect(failedPort == port)
            #expect(reason.lowercased().contains("address already in use"), "\(reason)")
            #expect(error.description.hasPrefix("admin port: cannot listen on 127.0.0.1:\(port): "))
        }
    }
}
