import ShardMap

/// One libpq connection per shard primary, opened on first use and kept for the run (the rebalance
/// lock lives in these sessions).
public final class ShardSessions {
    /// The map whose shard URLs are used.
    public var map: ShardMap
    private var connections: [String: PGConnection] = [:]
    private let applicationName: String

    public init(map: ShardMap, applicationName: String = "shardctl") {
        self.map = map
        self.applicationName = applicationName
    }

    /// The primary URL of `shard`.
    public func url(of shard: String) throws -> PostgresURL {
        guard let shard = self.map.shard(named: shard) else {
            throw RebalanceError.unknownShard(shard, known: self.map.shards.map(\.name))
        }
        return shard.primary
    }

    /// The session on `shard`'s primary.
    public func primary(_ shard: String) throws -> PGConnection {
        if let connection = self.connections[shard] { return connection }
        let url = try self.url(of: shard)
        let connection = try PGConnection.connect(to: url, label: "\(shard) primary \(url.endpoint)",
                                                  applicationName: self.applicationName)
        // Literals are written for standard strings; a statement never hangs on a lock forever.
        try connection.execute("SET standard_conforming_strings = on; SET lock_timeout = '10s'")
        self.connections[shard] = connection
        return connection
    }

    /// Closes every session (releasing their advisory locks).
    public func closeAll() {
        self.connections.values.forEach { $0.close() }
        self.connections = [:]
    }

    /// Takes the rebalance lock on each of `shards` (held until the sessions close), or throws `busy`
    /// naming who holds it.
    public func lock(_ shards: [String]) throws {
        for shard in Set(shards).sorted() {
            let db = try self.primary(shard)
            guard try db.query(RebalanceSQL.tryLock).value() == "t" else {
                let holder = try db.query(RebalanceSQL.lockHolder).rows.first
                let who = holder.map { "pid \($0[0] ?? "?") (\($0[1] ?? ""), from \($0[2] ?? "?"))" } ?? "another session"
                throw RebalanceError.busy("""
                    another rebalance is running on \(shard): \(who) holds the rebalance lock; wait for it to \
                    finish (or find its journal and run --resume or --abort)
                    """)
            }
        }
    }
}
