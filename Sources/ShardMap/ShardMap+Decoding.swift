import Foundation

extension ShardMap {
    /// The keys of the top-level object, in the order `jsonData` writes them.
    static let topLevelKeys = [
        "version", "slot_count", "shards", "slots", "tables", "auth", "pool", "replicas", "tls",
        "unlisted_tables", "merge", "copies",
    ]

    /// Parses and validates; `${VAR}` inside any JSON string is expanded from `environment`
    /// (unset var => error naming the field).
    ///
    /// Unknown or duplicate keys at any level, values of the wrong JSON type, bad URLs, unknown shard
    /// names, slots owned twice or not at all, and out-of-range numbers are all refused with a
    /// `ShardMapError` naming the field. Relative `tls` paths are resolved against `baseDirectory`
    /// when it is given. Inside a URL, a substituted `${VAR}` value is percent-encoded, so it stands
    /// for itself (a password may hold `@` or `:`); a URL that is exactly `"${VAR}"` is used as written.
    /// `$${` is a literal `${`. Object keys (table and shard names in `tables` and `slots`) are not expanded.
    public static func decode(
        _ data: Data, environment: [String: String] = ProcessInfo.processInfo.environment,
        baseDirectory: String? = nil
    ) throws -> ShardMap {
        let root: JSONValue
        do {
            root = try JSONParser.parse(data)
        } catch {
            throw ShardMapError(
                field: "", problem: "invalid JSON at line \(error.line), column \(error.column): \(error.problem)")
        }
        let decoder = MapDecoder(environment: environment, baseDirectory: baseDirectory)
        let top = try decoder.object(root, "", allowed: topLevelKeys)

        let version = try decoder.integer(top.required("version"), "version")
        let slotCount = try top.optional("slot_count").map { try decoder.integer($0, "slot_count") }
            ?? defaultSlotCount
        try checkHeader(version: version, slotCount: slotCount)

        let shards = try decodeShards(top.required("shards"), decoder)
        try checkShards(shards)
        let slotOwners = try decodeSlots(top.required("slots"), shards: shards, slotCount: slotCount, decoder)

        var map = ShardMap(version: version, slotCount: slotCount, shards: shards, slotOwners: slotOwners)
        if let tables = top.optional("tables") {
            map.tables = try decodeTables(tables, decoder)
        }
        if let auth = top.optional("auth") {
            map.auth = try decodeAuth(auth, decoder)
        }
        if let value = top.optional("pool") {
            let pool = try decoder.object(value, "pool", allowed: ["size", "checkout_timeout_ms", "idle_timeout_ms"])
            map.pool.size = try pool.optional("size").map { try decoder.integer($0, "pool.size") } ?? map.pool.size
            map.pool.checkoutTimeoutMs = try pool.optional("checkout_timeout_ms")
                .map { try decoder.integer($0, "pool.checkout_timeout_ms") } ?? map.pool.checkoutTimeoutMs
            map.pool.idleTimeoutMs = try pool.optional("idle_timeout_ms")
                .map { try decoder.integer($0, "pool.idle_timeout_ms") } ?? map.pool.idleTimeoutMs
        }
        if let value = top.optional("replicas") {
            let replicas = try decoder.object(value, "replicas", allowed: ["max_lag_bytes", "max_lag_ms", "poll_ms"])
            map.replicas.maxLagBytes = try replicas.optional("max_lag_bytes")
                .map { try decoder.integer($0, "replicas.max_lag_bytes") } ?? map.replicas.maxLagBytes
            map.replicas.maxLagMs = try replicas.optional("max_lag_ms")
                .map { try decoder.integer($0, "replicas.max_lag_ms") } ?? map.replicas.maxLagMs
            map.replicas.pollMs = try replicas.optional("poll_ms")
                .map { try decoder.integer($0, "replicas.poll_ms") } ?? map.replicas.pollMs
        }
        if let value = top.optional("tls") {
            let tls = try decoder.object(value, "tls", allowed: ["cert", "key"])
            map.tls = TLSConfig(
                certPath: try decoder.filePath(tls.required("cert"), "tls.cert"),
                keyPath: try decoder.filePath(tls.required("key"), "tls.key")
            )
        }
        if let value = top.optional("unlisted_tables") {
            map.unlistedTables = try decoder.string(value, "unlisted_tables")
        }
        if let value = top.optional("merge") {
            let merge = try decoder.object(value, "merge", allowed: ["max_bytes"])
            map.merge.maxBytes = try merge.optional("max_bytes")
                .map { try decoder.integer($0, "merge.max_bytes") } ?? map.merge.maxBytes
        }
        if let value = top.optional("copies") {
            let copies = try decoder.object(value, "copies", allowed: nil)
            for (name, ranges) in copies.members {
                let path = copies.path(name)
                guard let shardIndex = shards.firstIndex(where: { $0.name == name }) else {
                    throw ShardMapError(field: path, problem: "unknown shard \"\(name)\"; \(knownShards(shards))")
                }
                let text = try decoder.string(ranges, path)
                do {
                    let slots = SlotRanges.slots(in: try SlotRanges.parse(text, slotCount: slotCount))
                    if !slots.isEmpty { map.copies[shardIndex] = Set(slots) }
                } catch let error as ShardMapError {
                    throw error.at(path)
                }
            }
        }
        try map.validate()
        return map
    }

    private static func decodeShards(_ value: JSONValue, _ decoder: MapDecoder) throws -> [Shard] {
        let elements = try decoder.array(value, "shards")
        return try elements.enumerated().map { index, element in
            let path = "shards[\(index)]"
            let object = try decoder.object(element, path, allowed: ["name", "primary", "replicas"])
            let name = try decoder.string(object.required("name"), object.path("name"))
            let primary = try decoder.url(object.required("primary"), object.path("primary"))
            var replicas: [PostgresURL] = []
            if let list = object.optional("replicas") {
                let replicasPath = object.path("replicas")
                replicas = try decoder.array(list, replicasPath).enumerated().map { offset, url in
                    try decoder.url(url, "\(replicasPath)[\(offset)]")
                }
            }
            return Shard(name: name, primary: primary, replicas: replicas)
        }
    }

    /// Turns `"s0": "0-511", ...` into one owner per slot, refusing unknown shards, double and missing owners.
    private static func decodeSlots(
        _ value: JSONValue, shards: [Shard], slotCount: Int, _ decoder: MapDecoder
    ) throws -> [Int] {
        let slots = try decoder.object(value, "slots", allowed: nil)
        var owners = [Int?](repeating: nil, count: slotCount)
        for (name, ranges) in slots.members {
            let path = slots.path(name)
            guard let shardIndex = shards.firstIndex(where: { $0.name == name }) else {
                throw ShardMapError(field: path, problem: "unknown shard \"\(name)\"; \(knownShards(shards))")
            }
            let text = try decoder.string(ranges, path)
            let parsed: [ClosedRange<Int>]
            do {
                parsed = try SlotRanges.parse(text, slotCount: slotCount)
            } catch let error as ShardMapError {
                throw error.at(path)
            }
            for range in parsed {
                for slot in range {
                    if let other = owners[slot] {
                        throw ShardMapError(
                            field: path,
                            problem: "slot \(slot) is owned by both \"\(shards[other].name)\" and \"\(name)\"")
                    }
                    owners[slot] = shardIndex
                }
            }
        }
        let unowned = owners.indices.filter { owners[$0] == nil }
        guard unowned.isEmpty else {
            let list = SlotRanges.format(unowned)
            let problem = unowned.count == 1
                ? "slot \(list) is not owned by any shard" : "slots \(list) are not owned by any shard"
            throw ShardMapError(field: "slots", problem: problem)
        }
        return owners.compactMap { $0 }
    }

    private static func decodeTables(_ value: JSONValue, _ decoder: MapDecoder) throws -> [String: TableRule] {
        let tables = try decoder.object(value, "tables", allowed: nil)
        var rules: [String: TableRule] = [:]
        for (name, value) in tables.members {
            let path = tables.path(name)
            let table = try decoder.object(value, path, allowed: ["shard_key", "type", "reference"])
            if let reference = table.optional("reference") {
                guard try decoder.bool(reference, table.path("reference")) else {
                    throw ShardMapError(
                        field: table.path("reference"),
                        problem: "must be true; a sharded table gives \"shard_key\" and \"type\" instead")
                }
                if let extra = ["shard_key", "type"].first(where: { table.optional($0) != nil }) {
                    throw ShardMapError(
                        field: table.path(extra), problem: "a reference table has no shard key; remove \"\(extra)\"")
                }
                rules[name] = .reference
                continue
            }
            guard table.optional("shard_key") != nil || table.optional("type") != nil else {
                throw ShardMapError(
                    field: path, problem: "give \"shard_key\" and \"type\", or \"reference\": true")
            }
            let key = try decoder.string(table.required("shard_key"), table.path("shard_key"))
            let typeName = try decoder.string(table.required("type"), table.path("type"))
            guard let type = ShardKeyType(typeName: typeName) else {
                throw ShardMapError(
                    field: table.path("type"), problem: "unknown key type \"\(typeName)\"; use bigint, text or uuid")
            }
            rules[name] = .sharded(key: key, type: type)
        }
        return rules
    }

    private static func decodeAuth(_ value: JSONValue, _ decoder: MapDecoder) throws -> AuthConfig {
        let auth = try decoder.object(value, "auth", allowed: ["method", "users"])
        var method = AuthMethod.scramSHA256
        if let value = auth.optional("method") {
            let name = try decoder.string(value, "auth.method")
            guard let parsed = AuthMethod(rawValue: name) else {
                throw ShardMapError(
                    field: "auth.method", problem: "unknown method \"\(name)\"; use scram-sha-256, md5 or trust")
            }
            method = parsed
        }
        var users: [AuthUser] = []
        if let list = auth.optional("users") {
            users = try decoder.array(list, "auth.users").enumerated().map { index, element in
                let user = try decoder.object(element, "auth.users[\(index)]", allowed: ["name", "password"])
                let name = try decoder.string(user.required("name"), user.path("name"))
                // A trust-only user list needs no passwords.
                let password = method == .trust && user.optional("password") == nil
                    ? "" : try decoder.string(user.required("password"), user.path("password"))
                return AuthUser(name: name, password: password)
            }
        }
        return AuthConfig(method: method, users: users)
    }

    /// `shards are "s0", "s1"` for error messages.
    static func knownShards(_ shards: [Shard]) -> String {
        "shards are " + shards.map { "\"\($0.name)\"" }.joined(separator: ", ")
    }
}
