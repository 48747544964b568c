import Foundation

/// The parsed, validated `shardmap.json` (DESIGN §2): which shards exist, which shard owns each of the
/// `slotCount` virtual slots, how each table is placed, and the proxy's optional settings.
///
/// Build one with `decode(_:environment:baseDirectory:)` or `load(path:environment:)`; both refuse a map
/// that does not validate with a `ShardMapError` naming the field. A map changed in code (for example
/// slots reassigned by a rebalance) can be re-checked with `validate()`.
public struct ShardMap: Sendable, Equatable {
    /// Map version; only grows, and every change to `slots` writes a new one.
    public var version: Int
    /// Number of virtual slots (the hash-partition modulus); 1024 unless set.
    public var slotCount: Int
    /// The shards, in file order.
    public var shards: [Shard]
    /// For each slot, the index into `shards` of its owner; `slotOwners.count == slotCount`.
    public var slotOwners: [Int]
    /// Table placement by table name, as written in the map.
    public var tables: [String: TableRule]
    /// Client authentication; `nil` when the section is absent, which means `trust`.
    public var auth: AuthConfig?
    /// Backend pool settings (defaults when the section is absent).
    public var pool: PoolConfig
    /// Replica rotation settings (defaults when the section is absent).
    public var replicas: ReplicaConfig
    /// Client-side TLS; `nil` when the section is absent.
    public var tls: TLSConfig?
    /// The shard that holds tables missing from `tables`; `nil` means such statements are refused.
    public var unlistedTables: String?
    /// Cross-shard merge limits (defaults when the section is absent).
    public var merge: MergeConfig
    /// Slots whose rows a shard holds without owning them, by shard index: copies a rebalance is making
    /// (on the target, before its cutover) or has left (on the source, until its cleanup). Reads over
    /// several shards skip them there. Empty almost always; `"copies"` in the file.
    public var copies: [Int: Set<Int>] = [:]

    /// The default number of slots.
    public static let defaultSlotCount = 1024
    /// The largest accepted `slot_count`.
    public static let maximumSlotCount = 65536

    /// Creates a map from its parts without validating it (call `validate()` for that).
    public init(
        version: Int, slotCount: Int = ShardMap.defaultSlotCount, shards: [Shard], slotOwners: [Int],
        tables: [String: TableRule] = [:], auth: AuthConfig? = nil, pool: PoolConfig = PoolConfig(),
        replicas: ReplicaConfig = ReplicaConfig(), tls: TLSConfig? = nil, unlistedTables: String? = nil,
        merge: MergeConfig = MergeConfig()
    ) {
        self.version = version
        self.slotCount = slotCount
        self.shards = shards
        self.slotOwners = slotOwners
        self.tables = tables
        self.auth = auth
        self.pool = pool
        self.replicas = replicas
        self.tls = tls
        self.unlistedTables = unlistedTables
        self.merge = merge
    }

    /// The shard called `named`, if any.
    public func shard(named: String) -> Shard? {
        shardIndex(named: named).map { shards[$0] }
    }

    /// The index into `shards` of the shard called `named`, if any.
    public func shardIndex(named: String) -> Int? {
        shards.firstIndex { $0.name == named }
    }

    /// The index into `shards` of the owner of `slot` (which must be in `0..<slotCount`).
    public func shardIndex(ofSlot slot: Int) -> Int {
        slotOwners[slot]
    }

    /// The slots owned by `shards[shardIndex]`, ascending.
    public func slots(of shardIndex: Int) -> [Int] {
        slotOwners.indices.filter { slotOwners[$0] == shardIndex }
    }

    /// The slots owned by `shards[shardIndex]` in slot-list notation, e.g. `"0-99,300-311"`
    /// (`""` when it owns none).
    public func slotRanges(of shardIndex: Int) -> String {
        SlotRanges.format(slots(of: shardIndex))
    }

    /// The database name of `shards[0].primary`, which clients see as the proxy's database.
    public var databaseName: String {
        shards.first?.primary.database ?? "postgres"
    }

    /// The effective client authentication method (`trust` when there is no `auth` section).
    public var authMethod: AuthMethod {
        auth?.method ?? .trust
    }

    /// Reads and decodes the map at `path`; relative `tls` paths are resolved against its directory.
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ShardMap {
        let url = URL(fileURLWithPath: path)
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            throw ShardMapError(field: "", problem: "cannot read \(path): \(reason)")
        }
        let directory = url.standardizedFileURL.deletingLastPathComponent().path
        return try decode(data, environment: environment, baseDirectory: directory)
    }
}
