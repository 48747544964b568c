import Foundation
import NIOHTTP1
import ShardCtlKit
import Testing

@Suite("AdminClient against a real local HTTP server")
struct AdminClientTests {
    static func statusServer() async throws -> AdminTestHTTPServer {
        try await AdminTestHTTPServer { request in
            switch (request.method, request.uri) {
            case (.GET, "/status"):
                return .init(status: .ok, body: StatusGolden.json)
            case (.GET, "/shardmap"):
                return .init(status: .ok, body: "{\n  \"version\": 3\n}\n")
            case (.PUT, "/shardmap"), (.POST, "/slots/pause"):
                guard request.headers.first(name: "Authorization") == "Bearer tok" else {
                    return .init(status: .unauthorized, body: #"{"error":"missing or wrong admin token: send Authorization: Bearer <token>"}"#)
                }
                return .init(status: .ok, body: request.body)
            case (_, "/hang"):
                return nil
            case (_, "/text-error"):
                return .init(status: .internalServerError, contentType: "text/plain", body: "boom\n")
            case (.GET, "/admin/health"):
                return .init(status: .ok, body: #"{"status":"ok"}"#)
            default:
                return .init(status: .notFound, body: #"{"error":"no such endpoint"}"#)
            }
        }
    }

    @Test func getsAndDecodesStatus() async throws {
        let server = try await Self.statusServer()
        let client = try AdminClient(proxy: "http://127.0.0.1:\(server.port)", token: "tok")
        let report = try await client.status()
        await server.stop()
        #expect(report.mapVersion == 3)
        #expect(report.shards.map(\.name) == ["s0", "s1"])
        let request = try #require(server.requests.first)
        #expect(request.method == .GET)
        #expect(request.uri == "/status")
        #expect(request.headers.first(name: "Authorization") == "Bearer tok", "the token goes along")
        #expect(request.headers.first(name: "Host") == "127.0.0.1:\(server.port)")
    }

    @Test func putsAndPostsJSONWithTheToken() async throws {
        let server = try await Self.statusServer()
        let client = try AdminClient(proxy: "127.0.0.1:\(server.port)", token: "tok")
        let put = try await client.put("/shardmap", json: Data(#"{"version": 4}"#.utf8))
        #expect(put.text == #"{"version": 4}"#)
        let post = try await client.post("/slots/pause", json: Data(#"{"slots":"0-9"}"#.utf8))
        #expect(post.status == .ok)
        await server.stop()
        let requests = server.requests
        #expect(requests.map(\.method) == [.PUT, .POST])
        #expect(requests.first?.headers.first(name: "Content-Type") == "application/json")
        #expect(requests.last?.body == #"{"slots":"0-9"}"#)
    }

    @Test func anErrorStatusCarriesTheServersMessage() async throws {
        let server = try await Self.statusServer()
        let client = try AdminClient(proxy: "http://127.0.0.1:\(server.port)", token: nil)
        do {
            _ = try await client.put("/shardmap", json: Data("{}".utf8))
            Issue.record("a 401 was not an error")
        } catch let error as AdminClientError {
            #expect(error == .http("http://127.0.0.1:\(server.port)", path: "/shardmap", status: 401,
                                   message: "missing or wrong admin token: send Authorization: Bearer <token>"))
            #expect(error.description.hasPrefix("proxy http://127.0.0.1:\(server.port) answered 401 to /shardmap: missing"))
        }
        do {
            _ = try await client.get("/text-error")
            Issue.record("a 500 was not an error")
        } catch let error as AdminClientError {
            #expect(error == .http("http://127.0.0.1:\(server.port)", path: "/text-error", status: 500, message: "boom"))
        }
        #expect(server.requests.first?.headers.first(name: "Authorization") == nil, "no token, no header")
        await server.stop()
    }

    @Test func aPathPrefixInTheURLIsKept() async throws {
        let server = try await Self.statusServer()
        let client = try AdminClient(proxy: "http://127.0.0.1:\(server.port)/admin/")
        #expect(try await client.get("/health").text == #"{"status":"ok"}"#)
        await server.stop()
    }

    @Test func aRefusedConnectionSaysSo() async throws {
        let server = try await Self.statusServer()
        let port = server.port
        await server.stop()
        let client = try AdminClient(proxy: "http://127.0.0.1:\(port)")
        do {
            _ = try await client.status()
            Issue.record("connected to a closed port")
        } catch let error as AdminClientError {
            #expect(error.description == "cannot reach proxy http://127.0.0.1:\(port): connection refused")
        }
    }

    @Test func aServerThatNeverAnswersTimesOut() async throws {
        let server = try await Self.statusServer()
        let client = try AdminClient(proxy: "http://127.0.0.1:\(server.port)", timeout: .milliseconds(300))
        do {
            _ = try await client.get("/hang")
            Issue.record("got an answer from /hang")
        } catch let error as AdminClientError {
            #expect(error == .timeout("http://127.0.0.1:\(server.port)", 300))
            #expect(error.description == "proxy http://127.0.0.1:\(server.port) did not answer within 300 ms")
        }
        await server.stop()
    }

    @Test(arguments: ["https://127.0.0.1:9930", "http://", "ftp://x", "http://u:p@127.0.0.1:9930", "http://h:1/?q=1"])
    func badProxyURLsAreRefused(url: String) {
        #expect(throws: AdminClientError.self) { try AdminClient(proxy: url) }
    }

    @Test func theDefaultPortIsTheAdminPort() throws {
        let client = try AdminClient(proxy: "http://127.0.0.1")
        #expect(client.port == 9930)
        #expect(client.host == "127.0.0.1")
        #expect(try AdminClient(proxy: "[::1]:9931").host == "::1")
    }
}
