import ShardMap

/// What `GET /status` reports (DESIGN §7): map version, shards, pools, clients, paused slots, counters.
/// The proxy fills it in `AdminBackend.status()`; `init(map:)` fills the map's part.
public struct ProxyStatus: Sendable, Equatable {
    /// One shard of the live map.
    public struct ShardInfo: Sendable, Equatable {
        /// The shard's name.
        public var name: String
        /// Primary URL without password.
        public var primary: String
        /// Replica URLs without password.
        public var replicas: [String]
        /// The slots it owns, in slot-list notation (`"0-511"`).
        public var slots: String
        /// How many slots it owns.
        public var slotCount: Int

        /// A shard's entry.
        public init(name: String, primary: String, replicas: [String], slots: String, slotCount: Int) {
            self.name = name
            self.primary = primary
            self.replicas = replicas
            self.slots = slots
            self.slotCount = slotCount
        }
    }

    /// The backend pool of one server, summed over the event loops.
    public struct PoolInfo: Sendable, Equatable {
        /// The server's shard.
        public var shard: String
        /// Primary or replica.
        public var role: ServerRole
        /// Server URL without password.
        public var server: String
        /// Most connections the pool may open (`pool.size`).
        public var size: Int
        /// Open connections leased to clients.
        public var busy: Int
        /// Open connections waiting in the pool.
        public var idle: Int
        /// Clients waiting for a connection.
        public var waiting: Int

        /// A pool's entry.
        public init(shard: String, role: ServerRole, server: String, size: Int, busy: Int, idle: Int, waiting: Int) {
            self.shard = shard
            self.role = role
            self.server = server
            self.size = size
            self.busy = busy
            self.idle = idle
            self.waiting = waiting
        }
    }

    /// Version of the live map.
    public var mapVersion: Int
    /// `slot_count` of the live map.
    public var slotCount: Int
    /// The live map's shards, in map order.
    public var shards: [ShardInfo]
    /// One entry per backend server.
    public var pools: [PoolInfo]
    /// Connected clients.
    public var clients: Int
    /// Slots whose statements are paused (queued), ascending.
    public var pausedSlots: [Int]
    /// Totals since start.
    public var counters: ProxyCounters
    /// When the proxy started, in milliseconds since 1970 (`nil` if unknown).
    public var startedAtMillis: Int64?

    /// A status whose map part comes from `map`.
    public init(map: ShardMap, pools: [PoolInfo] = [], clients: Int = 0, pausedSlots: [Int] = [],
                counters: ProxyCounters = ProxyCounters(), startedAtMillis: Int64? = nil) {
        self.mapVersion = map.version
        self.slotCount = map.slotCount
        self.shards = map.shards.indices.map { index in
            let shard = map.shards[index]
            let slots = map.slots(of: index)
            return ShardInfo(name: shard.name, primary: shard.primary.redacted, replicas: shard.replicas.map(\.redacted),
                             slots: SlotRanges.format(slots), slotCount: slots.count)
        }
        self.pools = pools
        self.clients = clients
        self.pausedSlots = pausedSlots
        self.counters = counters
        self.startedAtMillis = startedAtMillis
    }
}

/// Totals since the proxy started.
public struct ProxyCounters: Sendable, Equatable {
    /// Statements by how they were routed (every kind present, 0 when none).
    public var queries: [RouteKind: Int]
    /// Statements that ended in an ErrorResponse.
    public var errors: Int
    /// Reads served by replicas.
    public var replicaReads: Int
    /// Reads served by primaries (no usable replica, or a read-your-writes fence).
    public var primaryReads: Int
    /// Of `primaryReads`, those sent to the primary only because of the session's own recent write.
    public var fencedReads: Int

    /// Counters; route kinds missing from `queries` count 0.
    public init(queries: [RouteKind: Int] = [:], errors: Int = 0, replicaReads: Int = 0, primaryReads: Int = 0,
                fencedReads: Int = 0) {
        var all: [RouteKind: Int] = [:]
        for kind in RouteKind.allCases { all[kind] = queries[kind] ?? 0 }
        self.queries = all
        self.errors = errors
        self.replicaReads = replicaReads
        self.primaryReads = primaryReads
        self.fencedReads = fencedReads
    }

    /// All statements.
    public var totalQueries: Int {
        self.queries.values.reduce(0, +)
    }
}
