import Foundation
import ShardMap

/// Every proxy a rebalance talks to, with the calls of a cutover made to all of them at once.
public struct ProxyFleet: Sendable {
    /// One client per `--proxy`, in order.
    public let clients: [AdminClient]
    private let token: String?
    private let timeout: Duration

    /// Clients for `proxies` with `token` (needed for pause, resume and PUT) and a per-request timeout.
    public init(proxies: [String], token: String?, timeout: Duration = .seconds(10)) throws {
        self.clients = try proxies.map { try AdminClient(proxy: $0, token: token, timeout: timeout) }
        self.token = token
        self.timeout = timeout
    }

    /// The `--proxy` values.
    public var names: [String] { self.clients.map(\.proxy) }

    /// Runs `body` against every proxy concurrently; results in proxy order.
    public func each<T: Sendable>(_ indexes: [Int]? = nil,
                                  _ body: @escaping @Sendable (AdminClient) async throws -> T) async -> [Int: Result<T, any Error>] {
        let chosen = indexes ?? Array(self.clients.indices)
        return await withTaskGroup(of: (Int, Result<T, any Error>).self) { group in
            for index in chosen {
                let client = self.clients[index]
                group.addTask {
                    do { return (index, .success(try await body(client))) } catch { return (index, .failure(error)) }
                }
            }
            var results: [Int: Result<T, any Error>] = [:]
            for await (index, result) in group { results[index] = result }
            return results
        }
    }

    /// The live map, which every proxy must serve at the same version (else `proxiesDisagree`).
    public func agreedMap() async throws -> ShardMap {
        let maps = try await self.liveMaps(sameOwners: true)
        guard Set(maps.map(\.version)).count == 1, let first = maps.first else {
            throw RebalanceError.proxiesDisagree(self.versions(maps))
        }
        return first
    }

    /// Every proxy's live map, in proxy order (throws for a proxy that cannot be asked); with
    /// `sameOwners`, `proxiesDisagree` unless all give every slot the same owner.
    public func liveMaps(sameOwners: Bool) async throws -> [ShardMap] {
        let results = await self.each { try await $0.liveMap() }
        let maps = try self.clients.indices.map { index -> ShardMap in
            switch results[index] {
            case .success(let map): return map
            case .failure(let error): throw error
            case nil: throw AdminClientError.cannotReach(self.clients[index].proxy, "no answer")
            }
        }
        if sameOwners, Set(maps.map(\.slotOwners)).count > 1 {
            throw RebalanceError.proxiesDisagree(self.versions(maps))
        }
        return maps
    }

    /// Proxy → map version, for `proxiesDisagree`.
    func versions(_ maps: [ShardMap]) -> [String: Int] {
        Dictionary(uniqueKeysWithValues: zip(self.clients.map(\.proxy), maps.map(\.version)))
    }

    /// Pauses `slots` on every proxy; each call may take up to `timeoutMs` waiting for transactions.
    public func pauseAll(_ slots: [Int], timeoutMs: Int) async -> [Int: Result<PauseAnswer, any Error>] {
        let token = self.token
        let timeout = self.timeout + .milliseconds(timeoutMs)
        return await self.each { client in
            let patient = try AdminClient(proxy: client.proxy, token: token, timeout: timeout)
            return try await patient.pause(slots: slots, timeoutMs: timeoutMs)
        }
    }

    /// Resumes `slots` on the given proxies (all by default).
    public func resumeAll(_ slots: [Int], only indexes: [Int]? = nil) async -> [Int: Result<Bool, any Error>] {
        await self.each(indexes) { client in
            try await client.resume(slots: slots)
            return true
        }
    }

    /// Pushes `update` to the given proxies (all by default).
    public func pushAll(_ update: ShardMapUpdate, only indexes: [Int]? = nil) async -> [Int: Result<Bool, any Error>] {
        await self.each(indexes) { client in
            try await client.push(update)
            return true
        }
    }

    /// Whether each proxy serves the new map of a move (version at least `version` with `slots` on
    /// `target`), the old one, or cannot be asked.
    public func mapStates(version: Int, slots: [Int], target: String) async -> [RebalanceJournal.ProxyMapState] {
        let results = await self.each { try await $0.liveMap() }
        return self.clients.indices.map { index in
            guard case .success(let map)? = results[index] else { return .unknown }
            guard let targetIndex = map.shardIndex(named: target) else { return .unknown }
            let moved = slots.allSatisfy { $0 < map.slotCount && map.slotOwners[$0] == targetIndex }
            if map.version >= version && moved { return .new }
            return map.version < version ? .old : .unknown
        }
    }
}
