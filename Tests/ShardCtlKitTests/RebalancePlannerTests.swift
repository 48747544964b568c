import ShardCtlKit
import ShardMap
import Testing

@Suite("RebalancePlanner: --slots, --from/--count, --even")
struct RebalancePlannerTests {
    @Test func slotsOwnedBySeveralShardsBecomeOneMovePerSource() throws {
        let map = try RebalanceTestMaps.map(["0-341", "342-682", "683-1023"])
        let plan = try RebalancePlanner.plan(slots: "300-400,700-710", to: "s2", map: map)
        #expect(plan.baseVersion == 7)
        #expect(plan.moves == [
            RebalanceMove(source: "s0", target: "s2", slots: Array(300...341)),
            RebalanceMove(source: "s1", target: "s2", slots: Array(342...400)),
        ])
        #expect(plan.alreadyOnTarget == Array(700...710))
        #expect(plan.moves[0].slotList == "300-341")
    }

    @Test func slotsAlreadyOnTheTargetMeanNothingToDo() throws {
        let map = try RebalanceTestMaps.map(["0-511", "512-1023"])
        let plan = try RebalancePlanner.plan(slots: "600-610", to: "s1", map: map)
        #expect(plan.isEmpty)
        #expect(RebalancePlanner.describe(plan, map: map).contains("Nothing to move"))
    }

    @Test(arguments: [
        ("0-99", "s9", "no shard \"s9\" in the map (shards: s0, s1)"),
        ("5-3", "s1", "--slots: range \"5-3\" is reversed; write \"3-5\""),
        ("0-2000", "s1", "--slots: slot 2000 is out of range 0-1023"),
        ("", "s1", "--slots is empty; name slots like 0-99"),
    ])
    func badSlotRequestsAreRefusedClearly(slots: String, target: String, message: String) throws {
        let map = try RebalanceTestMaps.map(["0-511", "512-1023"])
        #expect(throws: RebalanceError.self) { try RebalancePlanner.plan(slots: slots, to: target, map: map) }
        do {
            _ = try RebalancePlanner.plan(slots: slots, to: target, map: map)
        } catch {
            #expect("\(error)" == message)
        }
    }

    @Test func fromCountTakesTheHighestSlotsOfTheSource() throws {
        let map = try RebalanceTestMaps.map(["0-99,500-599", "100-499,600-1023"])
        let plan = try RebalancePlanner.plan(from: "s0", count: 150, to: "s1", map: map)
        #expect(plan.moves == [RebalanceMove(source: "s0", target: "s1", slots: Array(50...99) + Array(500...599))])
        #expect(throws: RebalanceError.invalidRequest("--count 201: s0 owns only 200 slots")) {
            try RebalancePlanner.plan(from: "s0", count: 201, to: "s1", map: map)
        }
        #expect(throws: RebalanceError.invalidRequest("--from and --to are the same shard s0")) {
            try RebalancePlanner.plan(from: "s0", count: 1, to: "s0", map: map)
        }
        #expect(throws: RebalanceError.invalidRequest("--count must be at least 1")) {
            try RebalancePlanner.plan(from: "s0", count: 0, to: "s1", map: map)
        }
    }

    @Test func evenFillsANewEmptyShardFromTheOthers() throws {
        let map = try RebalanceTestMaps.map(["0-511", "512-1023", ""])
        let plan = RebalancePlanner.planEven(map: map)
        // 1024 = 342 + 341 + 341; s0 keeps the extra slot (it held most, first in map order).
        #expect(plan.moves == [
            RebalanceMove(source: "s0", target: "s2", slots: Array(342...511)),
            RebalanceMove(source: "s1", target: "s2", slots: Array(853...1023)),
        ])
        let counts = plan.slotCounts(on: map)
        #expect(counts.map(\.after) == [342, 341, 341])
        #expect(counts.map(\.before) == [512, 512, 0])
    }

    @Test func evenOnABalancedMapMovesNothing() throws {
        let map = try RebalanceTestMaps.map(["0-341", "342-682", "683-1023"])
        #expect(RebalancePlanner.planEven(map: map).isEmpty)
        let one = try RebalanceTestMaps.map(["0-1023"])
        #expect(RebalancePlanner.planEven(map: one).isEmpty)
    }

    @Test func evenPairsEveryDonorWithEveryReceiverAsNeeded() throws {
        // 1000, 24, 0, 0 over 4 shards: 256 each.
        let map = try RebalanceTestMaps.map(["0-999", "1000-1023", "", ""])
        let plan = RebalancePlanner.planEven(map: map)
        #expect(plan.slotCounts(on: map).map(\.after) == [256, 256, 256, 256])
        #expect(plan.moves.map { "\($0.source)->\($0.target) \($0.slots.count)" } == [
            "s0->s1 232", "s0->s2 256", "s0->s3 256",
        ])
        // No slot moves twice, and every moved slot came from its owner.
        let moved = plan.moves.flatMap(\.slots)
        #expect(Set(moved).count == moved.count)
        #expect(plan.moves.allSatisfy { move in move.slots.allSatisfy { map.shards[map.shardIndex(ofSlot: $0)].name == move.source } })
    }

    @Test func movingSlotsGivesAValidMapOneVersionHigher() throws {
        let map = try RebalanceTestMaps.map(["0-511", "512-1023"])
        let moved = try map.moving(Array(0...99), to: "s1")
        #expect(moved.version == 8)
        #expect(moved.slotRanges(of: 0) == "100-511")
        #expect(moved.slotRanges(of: 1) == "0-99,512-1023")
        #expect(throws: RebalanceError.self) { try map.moving([0], to: "nope") }
    }

    @Test func theDescriptionNamesMovesTablesAndCounts() throws {
        let map = try RebalanceTestMaps.map(["0-511", "512-1023", ""])
        let text = RebalancePlanner.describe(try RebalancePlanner.plan(slots: "0-99", to: "s2", map: map), map: map)
        #expect(text == """
            Rebalance plan for map version 7:
              move 1: slots 0-99 (100 slots) s0 -> s2
              slots per shard: s0 512 -> 412, s1 512, s2 0 -> 100
              sharded tables moved: users
              reference tables (never moved): countries
            """)
    }
}
