@testable import AdminServer
import Foundation
import Hummingbird
import HummingbirdTesting
import ProxyCore
import ShardMap
import Testing

@Suite("Admin port: token-protected endpoints")
struct AdminMutatingEndpointTests {
    static let token = "s3cret-token"
    static var bearer: HTTPFields { [.authorization: "Bearer \(token)"] }

    static func mapJSON(version: Int, extra: String = "") -> String {
        AdminFixtures.mapJSON.replacingOccurrences(of: "\"version\": 3", with: "\"version\": \(version)\(extra)")
    }

    @Test(arguments: [("/shardmap", HTTPRequest.Method.put), ("/slots/pause", .post), ("/slots/resume", .post)])
    func withoutAConfiguredTokenTheyAreForbidden(path: String, method: HTTPRequest.Method) async throws {
        let harness = await AdminHarness(token: nil)
        try await harness.test { client in
            // Even with some Authorization header: nothing can match when no token is configured.
            let response = try await client.execute(uri: path, method: method, headers: [.authorization: "Bearer x"],
                                                    body: body(#"{"slots":"0"}"#))
            #expect(response.status == .forbidden)
            let message = try #require(try json(response)["error"] as? String)
            #expect(message.contains("--admin-token"))
            #expect(message.contains("SHARDGATE_ADMIN_TOKEN"))
        }
        #expect(await harness.backend.pauseCalls.isEmpty)
        #expect(await harness.backend.replaced.isEmpty)
    }

    @Test(arguments: [("/shardmap", HTTPRequest.Method.put), ("/slots/pause", .post), ("/slots/resume", .post)])
    func aMissingOrWrongTokenIsUnauthorized(path: String, method: HTTPRequest.Method) async throws {
        let harness = await AdminHarness(token: Self.token)
        try await harness.test { client in
            for headers: HTTPFields in [[:], [.authorization: "Bearer wrong"], [.authorization: "Bearer s3cret-toke"],
                                        [.authorization: "Bearer s3cret-token2"], [.authorization: "Basic czNjcmV0LXRva2Vu"],
                                        [.authorization: "Bearer "], [.authorization: Self.token]] {
                let response = try await client.execute(uri: path, method: method, headers: headers, body: body(#"{"slots":"0"}"#))
                #expect(response.status == .unauthorized, "\(headers)")
                #expect(response.headers[.wwwAuthenticate] == "Bearer realm=\"shardgate\"")
                #expect((try json(response)["error"] as? String)?.contains("admin token") == true)
            }
        }
        #expect(await harness.backend.pauseCalls.isEmpty)
        #expect(await harness.backend.resumeCalls.isEmpty)
        #expect(await harness.backend.replaced.isEmpty)
    }

    @Test func theBearerSchemeIsCaseInsensitive() async throws {
        let harness = await AdminHarness(token: Self.token)
        try await harness.test { client in
            let response = try await client.execute(uri: "/slots/resume", method: .post,
                                                    headers: [.authorization: "bearer \(Self.token)"], body: body(#"{"slots":"5"}"#))
            #expect(response.status == .ok)
        }
    }

    @Test func putShardMapSwapsInAHigherVersion() async throws {
        let harness = await AdminHarness(token: Self.token)
        try await harness.test { client in
            let response = try await client.execute(uri: "/shardmap", method: .put, headers: Self.bearer,
                                                    body: body(Self.mapJSON(version: 4)))
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let shown = try ShardMap.decode(Data(response.body.readableBytesView), environment: [:])
            #expect(shown.version == 4)
            #expect(!String(buffer: response.body).contains("pw0"))
        }
        let replaced = await harness.backend.replaced
        #expect(replaced.map(\.version) == [4])
        #expect(replaced.first?.shards[0].primary.password == "pw0")
    }

    @Test func putShardMapTakesReadFencesWithTheMap() async throws {
        let harness = await AdminHarness(token: Self.token)
        try await harness.test { client in
            let wrapped = #"{"map": \#(Self.mapJSON(version: 4)), "fences": {"s1": "0/3000060"}}"#
            let response = try await client.execute(uri: "/shardmap", method: .put, headers: Self.bearer, body: body(wrapped))
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let cases: [(String, String)] = [
                (#"{"map": \#(Self.mapJSON(version: 5)), "fences": {"s9": "0/1"}}"#, #"fences: the new map has no shard "s9""#),
                (#"{"map": \#(Self.mapJSON(version: 5)), "fences": {"s1": "zz"}}"#, #"fences.s1: "zz" is not a WAL position"#),
                (#"{"map": \#(Self.mapJSON(version: 5)), "fences": ["s1"]}"#, #""fences" must map shard names"#),
                (#"{"map": \#(Self.mapJSON(version: 5)), "fence": {}}"#, #"unknown key "fence""#),
            ]
            for (text, expected) in cases {
                let refused = try await client.execute(uri: "/shardmap", method: .put, headers: Self.bearer, body: body(text))
                #expect(refused.status == .badRequest)
                let message = try #require(try json(refused)["error"] as? String)
                #expect(message.contains(expected), "\(message)")
            }
        }
        #expect(await harness.backend.replaced.map(\.version) == [4])
        #expect(await harness.backend.fences == [[1: LSN(0x3000060)]])
    }

    @Test func putShardMapRefusesAVersionThatDoesNotGrow() async throws {
        let harness = await AdminHarness(token: Self.token)
        try await harness.test { client in
            for version in [3, 2] {
                let response = try await client.execute(uri: "/shardmap", method: .put, headers: Self.bearer,
                                                        body: body(Self.mapJSON(version: version)))
                #expect(response.status == .conflict)
                let message = try #require(try json(response)["error"] as? String)
                #expect(message.contains("version \(version) is not higher than the live map's version 3"))
            }
        }
        #expect(await harness.backend.replaced.isEmpty)
    }

    @Test func putShardMapRefusesAnInvalidMapWithTheShardMapError() async throws {
        let harness = await AdminHarness(token: Self.token)
        try await harness.test { client in
            let overlapping = Self.mapJSON(version: 4).replacingOccurrences(of: "\"512-1023\"", with: "\"511-1023\"")
            let cases: [(String, String)] = [
                ("{not json", "shardmap: invalid JSON at line 1"),
                (overlapping, "shardmap: slots.s1: slot 511 is owned by both \"s0\" and \"s1\""),
                (Self.mapJSON(version: 4, extra: ", \"slot_cuont\": 1024"), "slot_cuont"),
            ]
            for (text, expected) in cases {
                let response = try await client.execute(uri: "/shardmap", method: .put, headers: Self.bearer, body: body(text))
                #expect(response.status == .badRequest)
                let message = try #require(try json(response)["error"] as? String)
                #expect(message.contains(expected), "\(message)")
            }
        }
        #expect(await harness.backend.replaced.isEmpty)
    }

    @Test func redactedPasswordsInAPutMapKeepTheLiveOnes() async throws {
        let harness = await AdminHarness(token: Self.token)
        try await harness.test { client in
            // What GET /shardmap shows, with a new version: the *** placeholders stand for the live secrets.
            let shown = String(buffer: try await client.execute(uri: "/shardmap", method: .get).body)
            let edited = shown.replacingOccurrences(of: "\"version\": 3", with: "\"version\": 9")
            #expect(edited != shown)
            let response = try await client.execute(uri: "/shardmap", method: .put, headers: Self.bearer, body: body(edited))
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            // A *** for a server the live map does not have cannot be filled in.
            let unknown = edited.replacingOccurrences(of: "\"version\": 9", with: "\"version\": 10")
                .replacingOccurrences(of: "127.0.0.1:5503", with: "127.0.0.1:5999")
            let refused = try await client.execute(uri: "/shardmap", method: .put, headers: Self.bearer, body: body(unknown))
            #expect(refused.status == .badRequest)
            #expect((try json(refused)["error"] as? String)?.contains("shards[1].replicas[0]") == true)
        }
        let replaced = await harness.backend.replaced
        #expect(replaced.count == 1)
        #expect(replaced.first?.shards.map(\.primary.password) == ["pw0", "pw1"])
        #expect(replaced.first?.shards[1].replicas[0].password == "pw1")
        #expect(replaced.first?.auth?.users.first?.password == "secret-app")
    }

    @Test func putShardMapExpandsEnvironmentVariablesFromTheProxysEnvironment() async throws {
        let harness = await AdminHarness(token: Self.token, environment: ["NEW_PW": "from-env"])
        try await harness.test { client in
            let text = Self.mapJSON(version: 5).replacingOccurrences(of: "secret-app", with: "${NEW_PW}")
            let response = try await client.execute(uri: "/shardmap", method: .put, headers: Self.bearer, body: body(text))
            #expect(response.status == .ok)
        }
        #expect(await harness.backend.replaced.first?.auth?.users.first?.password == "from-env")
    }

    @Test func pauseAndResumeSlots() async throws {
        let harness = await AdminHarness(token: Self.token)
        try await harness.test { client in
            let paused = try await client.execute(uri: "/slots/pause", method: .post, headers: Self.bearer,
                                                  body: body(#"{"slots":"0-99,300","timeout_ms":1500}"#))
            #expect(paused.status == .ok)
            let object = try json(paused)
            #expect(object["paused_slots"] as? String == "0-99,300")
            #expect(object["drained"] as? Bool == true)
            #expect(object["waited_ms"] as? Int == 3)
            let resumed = try await client.execute(uri: "/slots/resume", method: .post, headers: Self.bearer,
                                                   body: body(#"{"slots":"0-49"}"#))
            #expect(resumed.status == .ok)
            #expect(try json(resumed)["paused_slots"] as? String == "50-99,300")
        }
        let calls = await harness.backend.pauseCalls
        #expect(calls.count == 1)
        #expect(calls.first?.slots == Array(0...99) + [300])
        #expect(calls.first?.timeout == .milliseconds(1500))
        #expect(await harness.backend.resumeCalls == [Array(0...49)])
    }

    @Test func aPauseThatCannotDrainAnswers504AndSaysTheSlotsStayPaused() async throws {
        let harness = await AdminHarness(token: Self.token)
        await harness.backend.set(inFlightOnPause: 2)
        try await harness.test { client in
            let response = try await client.execute(uri: "/slots/pause", method: .post, headers: Self.bearer,
                                                    body: body(#"{"slots":"7"}"#))
            #expect(response.status == .gatewayTimeout)
            let object = try json(response)
            #expect(object["drained"] as? Bool == false)
            #expect(object["in_flight"] as? Int == 2)
            #expect((object["error"] as? String)?.contains("stay paused") == true)
        }
        #expect(await harness.backend.pauseCalls.first?.timeout == .milliseconds(5000), "default timeout")
    }

    @Test func badSlotBodiesAre400() async throws {
        let harness = await AdminHarness(token: Self.token)
        try await harness.test { client in
            let cases: [(String, String)] = [
                ("", "JSON object"),
                ("[1,2]", "JSON object"),
                (#"{"slots": 5}"#, "must be a string"),
                (#"{"slot": "5"}"#, "unknown key \"slot\""),
                (#"{}"#, "\"slots\" is missing"),
                (#"{"slots": ""}"#, "is empty"),
                (#"{"slots": "0-2000"}"#, "slot 2000 is out of range 0-1023"),
                (#"{"slots": "9-3"}"#, "reversed"),
                (#"{"slots": "1", "timeout_ms": -1}"#, "timeout_ms"),
                (#"{"slots": "1", "timeout_ms": "5"}"#, "timeout_ms"),
                (#"{"slots": "1", "timeout_ms": 1.5}"#, "timeout_ms"),
            ]
            for (text, expected) in cases {
                let response = try await client.execute(uri: "/slots/pause", method: .post, headers: Self.bearer, body: body(text))
                #expect(response.status == .badRequest, "\(text)")
                let message = (try? json(response)["error"] as? String) ?? ""
                #expect(message.contains(expected), "\(text): \(message)")
            }
            let resume = try await client.execute(uri: "/slots/resume", method: .post, headers: Self.bearer,
                                                  body: body(#"{"slots": "1", "timeout_ms": 5}"#))
            #expect(resume.status == .badRequest, "resume takes no timeout")
        }
        #expect(await harness.backend.pauseCalls.isEmpty)
    }

    @Test func aTooLargeBodyIs413() async throws {
        let harness = await AdminHarness(token: Self.token)
        try await harness.test { client in
            let huge = String(repeating: " ", count: (16 << 20) + 1)
            let response = try await client.execute(uri: "/shardmap", method: .put, headers: Self.bearer, body: body(huge))
            #expect(response.status == .contentTooLarge)
            #expect(try json(response)["error"] as? String != nil)
        }
    }

    @Test func tokenComparisonNeedsEveryByte() {
        let secret = Array("abcdef".utf8)
        #expect(AdminAuthProbe.equal("abcdef", secret))
        #expect(!AdminAuthProbe.equal("abcdeF", secret))
        #expect(!AdminAuthProbe.equal("abcde", secret))
        #expect(!AdminAuthProbe.equal("abcdefabcdef", secret), "a repeat of the secret is not the secret")
        #expect(!AdminAuthProbe.equal("", secret))
    }
}

/// Reaches the internal comparison.
enum AdminAuthProbe {
    static func equal(_ presented: String, _ secret: [UInt8]) -> Bool {
        AdminAuth.constantTimeEqual(Array(presented.utf8), secret)
    }
}
