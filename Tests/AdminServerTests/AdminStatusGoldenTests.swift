import Foundation
import HummingbirdTesting
import ProxyCore
import Testing

/// `/status` must stay what shardctl decodes: the expected body lives once, in
/// Tests/ShardCtlKitTests/StatusGolden.swift (where ShardCtlKitTests decodes and renders it); this test
/// checks that the server writes exactly that JSON for the same fixture.
@Suite("Admin port: /status matches what shardctl reads")
struct AdminStatusGoldenTests {
    /// The backend state the golden body was written from.
    static func goldenBackend() async throws -> FakeAdminBackend {
        let backend = FakeAdminBackend()
        await backend.set(
            pools: [
                ProxyStatus.PoolInfo(shard: "s0", role: .primary, server: "postgresql://postgres@127.0.0.1:5500/app",
                                     size: 20, busy: 2, idle: 3, waiting: 0),
                ProxyStatus.PoolInfo(shard: "s0", role: .replica, server: "postgresql://postgres@127.0.0.1:5501/app",
                                     size: 20, busy: 1, idle: 4, waiting: 0),
            ],
            clients: 5,
            counters: ProxyCounters(queries: [.single: 120, .multi: 3, .all: 7, .any: 10], errors: 2, replicaReads: 90,
                                    primaryReads: 50, fencedReads: 12))
        _ = try await backend.pause(slots: Array(0...99) + [300], timeout: .seconds(1))
        return backend
    }

    static func goldenText() throws -> String {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("ShardCtlKitTests/StatusGolden.swift")
        let source = try String(contentsOf: path, encoding: .utf8)
        guard let start = source.range(of: "#\"\"\"\n"), let end = source.range(of: "\n    \"\"\"#") else {
            throw ExpectationFailure("no raw string literal in \(path.path)")
        }
        return String(source[start.upperBound..<end.lowerBound])
    }

    @Test func statusIsTheGoldenBody() async throws {
        let harness = await AdminHarness(backend: try await Self.goldenBackend())
        let golden = try Self.goldenText()
        try await harness.test { client in
            let response = try await client.execute(uri: "/status", method: .get)
            let actual = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? NSDictionary
            let expected = try JSONSerialization.jsonObject(with: Data(golden.utf8)) as? NSDictionary
            #expect(actual != nil && actual == expected, "server wrote:\n\(String(buffer: response.body))")
        }
    }
}
