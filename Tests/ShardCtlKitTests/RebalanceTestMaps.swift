import ShardMap

/// Maps for the planner and cutover tests (no servers behind them).
enum RebalanceTestMaps {
    /// `shards` shards on 127.0.0.1:5500+2i, slots given as slot lists per shard.
    static func map(_ slots: [String], version: Int = 7, slotCount: Int = 1024,
                    tables: [String: TableRule] = ["users": .sharded(key: "id", type: .bigint),
                                                   "countries": .reference]) throws -> ShardMap {
        var owners = Array(repeating: -1, count: slotCount)
        for (index, list) in slots.enumerated() {
            for slot in SlotRanges.slots(in: try SlotRanges.parse(list, slotCount: slotCount)) {
                owners[slot] = index
            }
        }
        let shards = slots.indices.map {
            Shard(name: "s\($0)", primary: PostgresURL(host: "127.0.0.1", port: 5500 + 2 * $0, user: "postgres", database: "app"))
        }
        let map = ShardMap(version: version, slotCount: slotCount, shards: shards, slotOwners: owners, tables: tables)
        try map.validate()
        return map
    }
}
