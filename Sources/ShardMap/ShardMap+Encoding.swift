import Foundation

extension ShardMap {
    /// JSON in the file format of DESIGN §2; with redactingSecrets passwords in URLs and auth users become "***".
    ///
    /// Keys come in the documented order, tables sorted by name, every optional section with a value
    /// written out (so the output shows the effective settings) and every shard listed under `slots`
    /// (`""` for none). Any `${` in a value is written as `$${`, so without redaction
    /// `decode(jsonData(redactingSecrets: false))` gives back an equal map; note that this output then
    /// holds the expanded secrets, not the `${VAR}` references of the original file.
    public func jsonData(redactingSecrets: Bool) -> Data {
        JSONWriter.data(jsonValue(redactingSecrets: redactingSecrets))
    }

    func jsonValue(redactingSecrets: Bool) -> JSONValue {
        func string(_ text: String) -> JSONValue {
            .string(EnvironmentExpansion.escape(text))
        }
        func url(_ url: PostgresURL) -> JSONValue {
            string(redactingSecrets ? url.masked : url.connectionString)
        }
        func number(_ value: Int) -> JSONValue {
            .number(String(value))
        }

        var members: [(key: String, value: JSONValue)] = [
            ("version", number(version)),
            ("slot_count", number(slotCount)),
            ("shards", .array(shards.map { shard in
                .object([
                    ("name", string(shard.name)),
                    ("primary", url(shard.primary)),
                    ("replicas", .array(shard.replicas.map(url))),
                ])
            })),
            ("slots", .object(shards.indices.map { (shards[$0].name, string(slotRanges(of: $0))) })),
            ("tables", .object(tables.sorted { $0.key < $1.key }.map { name, rule in
                switch rule {
                case .sharded(let key, let type):
                    return (name, .object([("shard_key", string(key)), ("type", string(type.rawValue))]))
                case .reference:
                    return (name, .object([("reference", .bool(true))]))
                }
            })),
        ]
        if let auth {
            members.append(("auth", .object([
                ("method", string(auth.method.rawValue)),
                ("users", .array(auth.users.map { user in
                    .object([
                        ("name", string(user.name)),
                        ("password", string(redactingSecrets ? "***" : user.password)),
                    ])
                })),
            ])))
        }
        members.append(("pool", .object([
            ("size", number(pool.size)),
            ("checkout_timeout_ms", number(pool.checkoutTimeoutMs)),
            ("idle_timeout_ms", number(pool.idleTimeoutMs)),
        ])))
        members.append(("replicas", .object([
            ("max_lag_bytes", number(replicas.maxLagBytes)),
            ("max_lag_ms", number(replicas.maxLagMs)),
            ("poll_ms", number(replicas.pollMs)),
        ])))
        if let tls {
            members.append(("tls", .object([("cert", string(tls.certPath)), ("key", string(tls.keyPath))])))
        }
        if let unlistedTables {
            members.append(("unlisted_tables", string(unlistedTables)))
        }
        members.append(("merge", .object([("max_bytes", number(merge.maxBytes))])))
        if !copies.isEmpty {
            members.append(("copies", .object(copies.keys.sorted().map { index in
                (shards[index].name, string(SlotRanges.format(copies[index]!.sorted())))
            })))
        }
        return .object(members)
    }
}
