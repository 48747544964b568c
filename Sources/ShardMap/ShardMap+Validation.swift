import Foundation

extension ShardMap {
    /// Checks every rule of DESIGN §2 that a map built or changed in code could break, naming fields as
    /// they appear in the file (`shards[1].name`, `pool.size`, ...). `decode` calls it too.
    public func validate() throws {
        try Self.checkHeader(version: version, slotCount: slotCount)
        try Self.checkShards(shards)
        guard slotOwners.count == slotCount else {
            throw ShardMapError(
                field: "slots", problem: "\(slotOwners.count) slot owners for a slot_count of \(slotCount)")
        }
        if let slot = slotOwners.indices.first(where: { !shards.indices.contains(slotOwners[$0]) }) {
            throw ShardMapError(
                field: "slots", problem: "slot \(slot) is owned by shard #\(slotOwners[slot]), which does not exist")
        }
        for (name, rule) in tables.sorted(by: { $0.key < $1.key }) {
            guard !name.isEmpty else {
                throw ShardMapError(field: "tables", problem: "empty table name")
            }
            if case .sharded(let key, _) = rule, key.isEmpty {
                throw ShardMapError(field: "tables.\(name).shard_key", problem: "empty column name")
            }
        }
        if let auth {
            try Self.checkAuth(auth)
        }
        try Self.checkAtLeast(1, pool.size, "pool.size")
        try Self.checkAtLeast(1, pool.checkoutTimeoutMs, "pool.checkout_timeout_ms")
        try Self.checkAtLeast(1, pool.idleTimeoutMs, "pool.idle_timeout_ms")
        try Self.checkAtLeast(0, replicas.maxLagBytes, "replicas.max_lag_bytes")
        try Self.checkAtLeast(0, replicas.maxLagMs, "replicas.max_lag_ms")
        try Self.checkAtLeast(1, replicas.pollMs, "replicas.poll_ms")
        try Self.checkAtLeast(1, merge.maxBytes, "merge.max_bytes")
        if let tls {
            if tls.certPath.isEmpty { throw ShardMapError(field: "tls.cert", problem: "empty file path") }
            if tls.keyPath.isEmpty { throw ShardMapError(field: "tls.key", problem: "empty file path") }
        }
        for (index, slots) in copies.sorted(by: { $0.key < $1.key }) {
            guard shards.indices.contains(index) else {
                throw ShardMapError(field: "copies", problem: "shard #\(index) does not exist")
            }
            let field = "copies.\(shards[index].name)"
            if let slot = slots.first(where: { !(0..<slotCount).contains($0) }) {
                throw ShardMapError(field: field, problem: "slot \(slot) is outside 0-\(slotCount - 1)")
            }
            if let slot = slots.sorted().first(where: { slotOwners[$0] == index }) {
                throw ShardMapError(field: field, problem: "slot \(slot) is owned by \"\(shards[index].name)\" itself; copies are of other shards' slots")
            }
        }
        if let unlistedTables, !shards.contains(where: { $0.name == unlistedTables }) {
            throw ShardMapError(
                field: "unlisted_tables", problem: "unknown shard \"\(unlistedTables)\"; \(Self.knownShards(shards))")
        }
    }

    static func checkHeader(version: Int, slotCount: Int) throws {
        try checkAtLeast(1, version, "version")
        guard (1...maximumSlotCount).contains(slotCount) else {
            throw ShardMapError(field: "slot_count", problem: "must be in 1-\(maximumSlotCount), got \(slotCount)")
        }
    }

    /// Non-empty list, valid and unique names, and no two shards writing to the same database.
    static func checkShards(_ shards: [Shard]) throws {
        guard !shards.isEmpty else {
            throw ShardMapError(field: "shards", problem: "at least one shard is needed")
        }
        var names: [String: Int] = [:]
        var primaries: [String: String] = [:]
        for (index, shard) in shards.enumerated() {
            guard Shard.isValidName(shard.name) else {
                throw ShardMapError(
                    field: "shards[\(index)].name",
                    problem: "\"\(shard.name)\" is not a valid shard name; use 1-63 of A-Z a-z 0-9 _ - .")
            }
            guard names.updateValue(index, forKey: shard.name) == nil else {
                throw ShardMapError(field: "shards[\(index)].name", problem: "duplicate shard name \"\(shard.name)\"")
            }
            // Two shards on one database would see each other's rows, and a rebalance would delete them.
            let target = "\(shard.primary.endpoint)/\(shard.primary.database)"
            if let other = primaries.updateValue(shard.name, forKey: target) {
                throw ShardMapError(
                    field: "shards[\(index)].primary", problem: "same server and database as shard \"\(other)\"")
            }
        }
    }

    private static func checkAuth(_ auth: AuthConfig) throws {
        if auth.method != .trust, auth.users.isEmpty {
            throw ShardMapError(field: "auth.users", problem: "at least one user is needed for \(auth.method.rawValue)")
        }
        var seen = Set<String>()
        for (index, user) in auth.users.enumerated() {
            let path = "auth.users[\(index)]"
            guard !user.name.isEmpty else {
                throw ShardMapError(field: "\(path).name", problem: "empty user name")
            }
            guard seen.insert(user.name).inserted else {
                throw ShardMapError(field: "\(path).name", problem: "duplicate user \"\(user.name)\"")
            }
            if auth.method != .trust, user.password.isEmpty {
                throw ShardMapError(field: "\(path).password", problem: "empty password")
            }
        }
    }

    private static func checkAtLeast(_ minimum: Int, _ value: Int, _ field: String) throws {
        guard value >= minimum else {
            throw ShardMapError(field: field, problem: "must be \(minimum) or more, got \(value)")
        }
    }
}
