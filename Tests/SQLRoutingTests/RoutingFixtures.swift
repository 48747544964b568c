import Foundation
import ShardMap
import SQLRouting

/// The DESIGN §2 example map, and expected shards computed independently of the code under test.
enum RoutingFixtures {
    static let designMapJSON = #"""
        {
          "version": 1,
          "slot_count": 1024,
          "shards": [
            {"name": "s0", "primary": "postgresql://postgres@127.0.0.1:5500/app",
             "replicas": ["postgresql://postgres@127.0.0.1:5501/app"]},
            {"name": "s1", "primary": "postgresql://postgres@127.0.0.1:5502/app",
             "replicas": ["postgresql://postgres@127.0.0.1:5503/app"]}
          ],
          "slots": {"s0": "0-511", "s1": "512-1023"},
          "tables": {
            "users":     {"shard_key": "id", "type": "bigint"},
            "orders":    {"shard_key": "user_id", "type": "bigint"},
            "sessions":  {"shard_key": "token", "type": "text"},
            "countries": {"reference": true}
          }
        }
        """#

    // swiftlint:disable:next force_try
    static let designMap = try! ShardMap.decode(Data(designMapJSON.utf8), environment: [:])

    /// The design map with `"unlisted_tables": "s0"` and a uuid-keyed table `devices`.
    static let extendedMap: ShardMap = {
        var map = designMap
        map.unlistedTables = "s0"
        map.tables["devices"] = .sharded(key: "id", type: .uuid)
        return map
    }()

    /// Seeded extended hashes as PostgreSQL 15 computes them (`hashint8extended`, `hashtextextended`,
    /// `uuid_hash_extended` with seed 0x7A5B22367996DCFD), copied from the server-generated golden data
    /// of the ShardMap tests (and DESIGN §3 for 1, 42 and 'user-1').
    static let bigintHashes: [Int64: Int64] = [
        0: -4_403_592_609_991_167_795, 1: 5_968_994_663_651_403_477, 2: -6_784_076_462_669_891_433,
        3: -6_526_785_837_914_879_018, 4: -3_962_796_844_073_183_168, 5: -2_840_406_021_921_404_358,
        7: 1_708_571_371_176_205_364, 10: -4_666_700_238_100_761_724, 11: 3_372_740_183_517_957_438,
        42: 7_363_975_540_656_877_951, 100: -6_862_593_215_598_433_930, -1: -5_017_072_347_659_237_694,
        -10: -9_199_864_168_184_486_916, 9_223_372_036_854_775_807: 4_938_542_303_000_433_043,
    ]
    static let textHashes: [String: Int64] = [
        "2": 4_495_466_386_121_492_275, "7": 4_659_833_078_392_540_385, "abc": 3_628_778_498_291_917_250,
        "user-1": -2_311_576_082_592_679_918, "user-10": -8_925_456_618_198_732_495,
    ]
    static let uuidHashes: [String: Int64] = [
        "00000000-0000-0000-0000-000000000001": 5_260_903_147_514_422_602,
        "007aebc1-2700-472d-33a9-9c0a20d75c4a": -2_887_576_888_592_011_165,
    ]

    /// DESIGN §3: `slot = (UInt64(bitPattern: h) &+ 0x49a0f4dd15e5a8e3) % 1024`.
    static func slot(hash: Int64) -> Int {
        Int((UInt64(bitPattern: hash) &+ 0x49A0_F4DD_15E5_A8E3) % 1024)
    }

    /// s0 owns 0-511, s1 512-1023.
    static func shard(ofSlot slot: Int) -> Int {
        slot < 512 ? 0 : 1
    }

    static func shard(bigint key: Int64) -> Int {
        guard let hash = bigintHashes[key] else { preconditionFailure("no reference hash for \(key)") }
        return shard(ofSlot: slot(hash: hash))
    }

    static func shard(text key: String) -> Int {
        guard let hash = textHashes[key] else { preconditionFailure("no reference hash for '\(key)'") }
        return shard(ofSlot: slot(hash: hash))
    }

    static func shard(uuid key: String) -> Int {
        guard let hash = uuidHashes[key] else { preconditionFailure("no reference hash for \(key)") }
        return shard(ofSlot: slot(hash: hash))
    }
}

/// Targets by key, for readable tables.
func on(_ key: Int64) -> RoutePlan.Target { .shard(RoutingFixtures.shard(bigint: key)) }
func on(_ keys: Int64...) -> RoutePlan.Target {
    let shards = Set(keys.map { RoutingFixtures.shard(bigint: $0) })
    return shards.count == 1 ? .shard(shards.first!) : .shards(shards)
}
func on(text key: String) -> RoutePlan.Target { .shard(RoutingFixtures.shard(text: key)) }
let bothShards = RoutePlan.Target.shards([0, 1])

/// Binary bind parameters, big-endian as on the wire.
enum Binary {
    static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    static func int8(_ v: Int64) -> BindParameter { .binary(bytes(v), typeOID: 20) }
    static func int4(_ v: Int32) -> BindParameter { .binary(bytes(v), typeOID: 23) }
    static func int2(_ v: Int16) -> BindParameter { .binary(bytes(v), typeOID: 21) }

    /// `array_send` output for a one-dimensional array without NULLs.
    static func array(elementType: UInt32, _ elements: [[UInt8]?]) -> [UInt8] {
        var out = bytes(Int32(1)) + bytes(Int32(elements.contains { $0 == nil } ? 1 : 0)) + bytes(elementType)
        out += bytes(Int32(elements.count)) + bytes(Int32(1))
        for element in elements {
            if let element {
                out += bytes(Int32(element.count)) + element
            } else {
                out += bytes(Int32(-1))
            }
        }
        return out
    }
}
