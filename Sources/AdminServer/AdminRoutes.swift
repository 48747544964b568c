import Foundation
import Hummingbird
import NIOCore
import ProxyCore
import ShardMap

/// The endpoints of DESIGN §7 and what each does; `router()` builds the Hummingbird router.
struct AdminRoutes: Sendable {
    let server: AdminServer
    let auth: AdminAuth

    init(server: AdminServer) {
        self.server = server
        self.auth = AdminAuth(token: server.configuration.token)
    }

    /// Paths and the methods they answer (also what a 405 lists in `Allow`).
    static let routes: [String: [HTTPRequest.Method]] = [
        "/": [.get], "/health": [.get], "/lag": [.get], "/status": [.get], "/metrics": [.get],
        "/shardmap": [.get, .put], "/slots/pause": [.post], "/slots/resume": [.post],
    ]

    /// The longest a pause may wait for in-flight transactions.
    static let maxPauseTimeoutMs = 600_000
    static let defaultPauseTimeoutMs = 5000

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: AdminErrorMiddleware(routes: Self.routes))
        router.get("/") { _, _ in AdminResponse.html(AdminDashboard.html) }
        router.get("/health") { _, _ in AdminResponse.json(AdminJSON.Message(status: "ok")) }
        router.get("/lag") { _, _ in await self.lag() }
        router.get("/status") { _, _ in await self.status() }
        router.get("/metrics") { _, _ in await self.metrics() }
        router.get("/shardmap") { _, _ in await self.shardMap() }
        router.put("/shardmap") { request, _ in try await self.replaceShardMap(request) }
        router.post("/slots/pause") { request, _ in try await self.pause(request) }
        router.post("/slots/resume") { request, _ in try await self.resume(request) }
        return router
    }

    // MARK: Reading

    func lag() async -> Response {
        AdminResponse.json(AdminJSON.Lag(await self.server.backend.lag()))
    }

    func status() async -> Response {
        let status = await self.server.backend.status()
        let lag = await self.server.backend.lag()
        return AdminResponse.json(AdminJSON.Status(status: status, lag: lag))
    }

    func metrics() async -> Response {
        if let metrics = self.server.metrics {
            metrics.record(status: await self.server.backend.status())
            metrics.record(lag: await self.server.backend.lag())
        }
        let bytes = self.server.registry.emitToBuffer()
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    func shardMap() async -> Response {
        let map = await self.server.backend.shardMap()
        return AdminResponse.json(data: map.jsonData(redactingSecrets: true))
    }

    // MARK: Changing (token required)

    func replaceShardMap(_ request: Request) async throws -> Response {
        try self.auth.check(request)
        let (body, fenceTexts) = try Self.mapAndFences(try await self.body(of: request))
        let decoded = try ShardMap.decode(body, environment: self.server.configuration.environment,
                                          baseDirectory: self.server.configuration.mapDirectory)
        let live = await self.server.backend.shardMap()
        let map = try AdminSecrets.restore(decoded, from: live)
        var fences: [Int: LSN] = [:]
        for (name, text) in fenceTexts {
            guard let shard = map.shardIndex(named: name) else {
                throw AdminHTTPError(.badRequest, "fences: the new map has no shard \"\(name)\"")
            }
            guard let lsn = LSN(text) else {
                throw AdminHTTPError(.badRequest, "fences.\(name): \"\(text)\" is not a WAL position like \"0/3000060\"")
            }
            fences[shard] = lsn
        }
        guard map.version > live.version else {
            throw AdminHTTPError(.conflict, """
                version \(map.version) is not higher than the live map's version \(live.version): every change \
                needs a new, higher version
                """)
        }
        let applied = try await self.server.backend.replaceShardMap(map, fences: fences)
        self.server.logger.notice("admin: shard map replaced",
                                  metadata: ["from_version": "\(live.version)", "to_version": "\(applied.version)"])
        return AdminResponse.json(data: applied.jsonData(redactingSecrets: true))
    }

    func pause(_ request: Request) async throws -> Response {
        try self.auth.check(request)
        let (slots, timeoutMs) = try await self.slotsRequest(request, allowsTimeout: true)
        let result = try await self.server.backend.pause(slots: slots, timeout: .milliseconds(timeoutMs))
        self.server.logger.notice("admin: slots paused", metadata: [
            "slots": "\(SlotRanges.format(slots))", "drained": "\(result.drained)", "waited_ms": "\(result.waitedMs)",
        ])
        guard result.drained else {
            let message = """
                \(result.inFlight) transaction(s) on slots \(SlotRanges.format(slots)) still running after \(timeoutMs) ms; \
                the slots stay paused (POST /slots/resume releases them)
                """
            return AdminResponse.json(AdminJSON.Paused(result: result, error: message), status: .gatewayTimeout)
        }
        return AdminResponse.json(AdminJSON.Paused(result: result))
    }

    func resume(_ request: Request) async throws -> Response {
        try self.auth.check(request)
        let (slots, _) = try await self.slotsRequest(request, allowsTimeout: false)
        let remaining = try await self.server.backend.resume(slots: slots)
        self.server.logger.notice("admin: slots resumed", metadata: ["slots": "\(SlotRanges.format(slots))"])
        return AdminResponse.json(AdminJSON.Resumed(pausedSlots: remaining))
    }

    // MARK: Bodies

    /// The body of `PUT /shardmap`: a map, or `{"map": {...}, "fences": {"s2": "0/3000060"}}` (a rebalance
    /// cutover's). Returns the map's JSON and the fences by shard name.
    static func mapAndFences(_ body: Data) throws -> (map: Data, fences: [String: String]) {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any], object["map"] != nil else {
            return (body, [:])
        }
        if let unknown = object.keys.sorted().first(where: { $0 != "map" && $0 != "fences" }) {
            throw AdminHTTPError(.badRequest, #"unknown key "\#(unknown)"; expected a shard map or {"map": {...}, "fences": {"s2": "0/3000060"}}"#)
        }
        guard let map = object["map"] as? [String: Any], let data = try? JSONSerialization.data(withJSONObject: map) else {
            throw AdminHTTPError(.badRequest, #""map" must be a shard map object"#)
        }
        guard let fences = (object["fences"] ?? [String: String]()) as? [String: String] else {
            throw AdminHTTPError(.badRequest, #""fences" must map shard names to WAL positions, e.g. {"s2": "0/3000060"}"#)
        }
        return (data, fences)
    }

    private func body(of request: Request) async throws -> Data {
        do {
            let buffer = try await request.body.collect(upTo: self.server.configuration.maxBodyBytes)
            return Data(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw AdminHTTPError(.contentTooLarge, "request body is larger than \(self.server.configuration.maxBodyBytes) bytes")
        }
    }

    /// `{"slots": "0-99,300", "timeout_ms": 5000}` (`timeout_ms` only for pause).
    private func slotsRequest(_ request: Request, allowsTimeout: Bool) async throws -> (slots: [Int], timeoutMs: Int) {
        let body = try await self.body(of: request)
        let allowed = allowsTimeout ? ["slots", "timeout_ms"] : ["slots"]
        let example = allowsTimeout ? #"{"slots": "0-99,300", "timeout_ms": 5000}"# : #"{"slots": "0-99,300"}"#
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw AdminHTTPError(.badRequest, "the body must be a JSON object like \(example)")
        }
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw AdminHTTPError(.badRequest, "unknown key \"\(unknown)\"; expected \(example)")
        }
        let fields: SlotsBody
        do {
            fields = try JSONDecoder().decode(SlotsBody.self, from: body)
        } catch {
            throw AdminHTTPError(.badRequest, """
                "slots" must be a string in slot-list notation and "timeout_ms" an integer, e.g. \(example)
                """)
        }
        guard let text = fields.slots else {
            throw AdminHTTPError(.badRequest, "\"slots\" is missing, e.g. \(example)")
        }
        let slotCount = await self.server.backend.shardMap().slotCount
        let slots: [Int]
        do {
            slots = SlotRanges.slots(in: try SlotRanges.parse(text, slotCount: slotCount))
        } catch let error as ShardMapError {
            throw AdminHTTPError(.badRequest, "\"slots\": \(error.problem)")
        }
        guard !slots.isEmpty else {
            throw AdminHTTPError(.badRequest, "\"slots\" is empty; name the slots, e.g. \(example)")
        }
        let timeoutMs = fields.timeoutMs ?? Self.defaultPauseTimeoutMs
        guard (0...Self.maxPauseTimeoutMs).contains(timeoutMs) else {
            throw AdminHTTPError(.badRequest, "\"timeout_ms\" must be from 0 to \(Self.maxPauseTimeoutMs)")
        }
        return (slots, timeoutMs)
    }
}

/// The fields of a pause or resume body.
private struct SlotsBody: Decodable {
    var slots: String?
    var timeoutMs: Int?

    enum CodingKeys: String, CodingKey {
        case slots
        case timeoutMs = "timeout_ms"
    }
}

/// Response builders.
enum AdminResponse {
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        do {
            return json(data: try AdminJSON.encoder().encode(value), status: status)
        } catch {
            let fallback = #"{"error":"cannot encode the response"}"#
            return json(data: Data(fallback.utf8), status: .internalServerError)
        }
    }

    static func json(data: Data, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func html(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
