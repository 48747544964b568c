import ShardMap
import Testing

@Suite("Slot ranges")
struct SlotRangesTests {
    @Test("parses ranges, single slots and spaces")
    func parse() throws {
        #expect(try SlotRanges.parse("0-99,300-311", slotCount: 1024) == [0...99, 300...311])
        #expect(try SlotRanges.parse("5", slotCount: 1024) == [5...5])
        #expect(try SlotRanges.parse(" 0-3 , 7 ,1023", slotCount: 1024) == [0...3, 7...7, 1023...1023])
        #expect(try SlotRanges.parse("", slotCount: 1024) == [])
        #expect(try SlotRanges.parse("0-15", slotCount: 16) == [0...15])
        #expect(SlotRanges.slots(in: try SlotRanges.parse("4-6,1", slotCount: 8)) == [1, 4, 5, 6])
    }

    @Test(
        "refuses malformed lists",
        arguments: [
            ("0-5,,7", #"empty item in slot list "0-5,,7"; write ranges like "0-99,300-311""#),
            ("0-5,", #"empty item in slot list "0-5,"; write ranges like "0-99,300-311""#),
            ("a-b", #""a-b" is not a slot or a range like "0-99""#),
            ("-1", #""-1" is not a slot or a range like "0-99""#),
            ("1-2-3", #""1-2-3" is not a slot or a range like "0-99""#),
            ("+5", #""+5" is not a slot or a range like "0-99""#),
            ("9-3", #"range "9-3" is reversed; write "3-9""#),
            ("1020-1024", "slot 1024 is out of range 0-1023"),
            ("2000", "slot 2000 is out of range 0-1023"),
            ("0-10,5-20", "slot 5 is listed twice"),
            ("7,7", "slot 7 is listed twice"),
        ]
    )
    func parseErrors(input: String, problem: String) {
        #expect(throws: ShardMapError(field: "slots", problem: problem)) {
            try SlotRanges.parse(input, slotCount: 1024)
        }
    }

    @Test("formats the shortest ascending list")
    func format() {
        #expect(SlotRanges.format([0, 1, 2, 7, 9, 10]) == "0-2,7,9-10")
        #expect(SlotRanges.format([10, 9, 9, 2, 1, 0, 7]) == "0-2,7,9-10")
        #expect(SlotRanges.format([]) == "")
        #expect(SlotRanges.format([5]) == "5")
        #expect(SlotRanges.format(Array(0..<1024)) == "0-1023")
        #expect(SlotRanges.format(ranges: [300...311, 0...99, 100...100]) == "0-100,300-311")
    }

    @Test("format and parse round-trip")
    func roundTrip() throws {
        var generator = SplitMix64(seed: 42)
        for _ in 0..<200 {
            let slots = (0..<1024).filter { _ in Int.random(in: 0..<3, using: &generator) == 0 }
            let text = SlotRanges.format(slots)
            #expect(SlotRanges.slots(in: try SlotRanges.parse(text, slotCount: 1024)) == slots)
        }
    }
}

/// A small deterministic generator so random-shaped tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
