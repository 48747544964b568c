import Logging
import NIOCore
import PostgresNIO
import ProxyCore
import ShardMap

/// Resolves this proxy's prepared transactions left between the phases (a crash, a shard unreachable at
/// COMMIT PREPARED): decided ones are committed, undecided ones that no session is working on are rolled
/// back. Runs at start and then every `interval`, until cancelled.
struct TwoPhaseRecovery: Sendable {
    let log: TwoPhaseLog
    let registry: TwoPhaseRegistry
    let server: ProxyServer
    let eventLoopGroup: any EventLoopGroup
    let environment: [String: String]
    let logger: Logger
    var interval: Duration = .seconds(5)

    func run() async {
        while !Task.isCancelled {
            await uncancelled { await self.resolveOnce() }
            try? await Task.sleep(for: self.interval)
        }
    }

    /// One pass over every shard's primary.
    func resolveOnce() async {
        let map = self.server.currentMap
        var unresolved: Set<String> = []
        var reached = 0
        for shard in map.shards {
            let server = BackendServer(shard: shard.name, role: .primary, url: shard.primary, environment: self.environment)
            do {
                let remaining = try await self.resolve(on: server, url: shard.primary)
                unresolved.formUnion(remaining)
                reached += 1
            } catch {
                self.logger.debug("two-phase recovery could not reach a primary",
                                  metadata: ["shard": "\(shard.name)", "error": "\(String(reflecting: error))"])
                // Decisions may still have gids there: none can be called done this pass.
                unresolved.formUnion(self.log.pending.keys)
            }
        }
        guard reached == map.shards.count else { return }
        for id in self.log.pending.keys where !unresolved.contains(id) && !self.registry.isActive(id) {
            self.log.recordDone(id)
        }
    }

    /// Commits or rolls back this instance's prepared transactions on one server; returns the ids still
    /// prepared there (in progress).
    private func resolve(on server: BackendServer, url: PostgresURL) async throws -> Set<String> {
        var configuration = PostgresConnection.Configuration(host: server.host, port: server.port, username: server.user,
                                                             password: server.password, database: server.database, tls: .disable)
        if let socket = url.unixSocketPath {
            configuration = .init(unixSocketPath: socket, username: server.user, password: server.password,
                                  database: server.database)
        }
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.additionalStartupParameters = [("application_name", "shardgate-2pc-recovery")]
        let connection = try await PostgresConnection.connect(on: self.eventLoopGroup.next(), configuration: configuration,
                                                              id: 0, logger: self.logger)
        var inProgress: Set<String> = []
        do {
            let prefix = self.registry.gidPrefix
            var gids: [String] = []
            let rows = try await connection.query(
                "SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, \(prefix))",
                logger: self.logger)
            for try await gid in rows.decode(String.self) { gids.append(gid) }
            for gid in gids {
                guard let id = self.registry.commitID(ofGID: gid) else { continue }
                if self.registry.isActive(id) {
                    // Its session is between the phases, or committing it right now: a COMMIT PREPARED
                    // from here would make the session's fail ("does not exist") and warn its client.
                    inProgress.insert(id)
                } else if self.log.isDecided(id) {
                    try await self.run("COMMIT PREPARED", gid, on: connection)
                    self.logger.notice("two-phase recovery committed a decided transaction", metadata: ["gid": "\(gid)"])
                } else {
                    try await self.run("ROLLBACK PREPARED", gid, on: connection)
                    self.logger.notice("two-phase recovery rolled back an undecided transaction", metadata: ["gid": "\(gid)"])
                }
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
        return inProgress
    }

    private func run(_ command: String, _ gid: String, on connection: PostgresConnection) async throws {
        // Utility statements take no parameters: the gid is quoted as a literal.
        let sql = "\(command) '\(gid.replacingOccurrences(of: "'", with: "''"))'"
        _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: self.logger)
    }
}
