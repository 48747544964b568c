import Foundation
import ShardMap
import Testing

@Suite("Slot hash")
struct SlotHashTests {
    @Test("reference values from DESIGN §3")
    func referenceValues() {
        #expect(SlotHash.seed == 8_816_678_312_871_386_365)
        #expect(SlotHash.hashint8extended(1, seed: SlotHash.seed) == 5_968_994_663_651_403_477)
        #expect(SlotHash.hashint8extended(42, seed: SlotHash.seed) == 7_363_975_540_656_877_951)
        #expect(SlotHash.hashtextextended("user-1", seed: SlotHash.seed) == -2_311_576_082_592_679_918)
    }

    @Test("slot equals the SQL expression ((h & 1023) + 227) & 1023")
    func slotFormula() {
        for key: Int64 in [0, 1, -1, 42, .min, .max, 123_456_789] {
            let h = SlotHash.hashint8extended(key, seed: SlotHash.seed)
            #expect(SlotHash.slot(bigint: key) == Int(((h & 1023) + 227) & 1023))
        }
        #expect(SlotHash.slot(hash: -1, slotCount: 1024) == Int((UInt64.max &+ 0x49A0_F4DD_15E5_A8E3) % 1024))
        #expect(SlotHash.slot(bigint: 7, slotCount: 1) == 0)
    }

    @Test("every row of the PostgreSQL golden file matches")
    func goldenFile() throws {
        var counts: [String: Int] = [:]
        var mismatches: [String] = []
        for line in slotGoldenCSV.split(separator: "\n") {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            try #require(fields.count == 5, "malformed golden row \(line)")
            let (kind, key) = (fields[0], fields[1])
            let expectedHash = try #require(Int64(fields[2]))
            let expected1024 = try #require(Int(fields[3]))
            let expected1000 = try #require(Int(fields[4]))
            let hash: Int64
            let slot1024: Int
            let slot1000: Int
            switch kind {
            case "bigint":
                let value = try #require(Int64(key))
                hash = SlotHash.hashint8extended(value, seed: SlotHash.seed)
                slot1024 = SlotHash.slot(bigint: value)
                slot1000 = SlotHash.slot(bigint: value, slotCount: 1000)
            case "text":
                let text = try #require(String(bytes: try hexBytes(key), encoding: .utf8))
                hash = SlotHash.hashtextextended(text, seed: SlotHash.seed)
                slot1024 = SlotHash.slot(text: text)
                slot1000 = SlotHash.slot(text: text, slotCount: 1000)
            case "uuid":
                let uuid = try #require(UUID(uuidString: key))
                hash = SlotHash.uuidHashExtended(try #require(SlotHash.parseUUID(key)), seed: SlotHash.seed)
                slot1024 = SlotHash.slot(uuid: uuid)
                slot1000 = SlotHash.slot(uuid: uuid, slotCount: 1000)
            default:
                Issue.record("unknown kind in golden row \(line)")
                continue
            }
            counts[kind, default: 0] += 1
            if hash != expectedHash || slot1024 != expected1024 || slot1000 != expected1000 {
                mismatches.append("\(line) -> \(hash),\(slot1024),\(slot1000)")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches, first: \(mismatches.prefix(5))")
        #expect(counts["bigint", default: 0] >= 5000)
        #expect(counts["text", default: 0] >= 1000)
        #expect(counts["uuid", default: 0] >= 500)
    }

    @Test("text given as UTF-8 bytes hashes like the String")
    func textBytes() {
        for text in ["", "user-1", "héllo wörld, a longer key that spans blocks", "🙂"] {
            var copy = text
            let fromBytes = copy.withUTF8 { SlotHash.slot(textUTF8: UnsafeRawBufferPointer($0)) }
            #expect(fromBytes == SlotHash.slot(text: text))
        }
    }

    @Test("bigint literals follow int8in")
    func bigintLiterals() {
        #expect(SlotHash.parseBigint("42") == 42)
        #expect(SlotHash.parseBigint("  -17\n") == -17)
        #expect(SlotHash.parseBigint("+7") == 7)
        #expect(SlotHash.parseBigint("-9223372036854775808") == .min)
        #expect(SlotHash.parseBigint("9223372036854775807") == .max)
        for bad in ["", " ", "-", "9223372036854775808", "-9223372036854775809", "4x", "1 2", "0x10", "1.0"] {
            #expect(SlotHash.parseBigint(bad) == nil, "\(bad) should be refused")
        }
        #expect(SlotHash.slot(literal: " 42 ", type: .bigint) == SlotHash.slot(bigint: 42))
        #expect(SlotHash.slot(literal: "abc", type: .bigint) == nil)
        #expect(SlotHash.slot(literal: "user-1", type: .text) == SlotHash.slot(text: "user-1"))
    }

    @Test("uuid literals follow uuid_in")
    func uuidLiterals() throws {
        let canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        let bytes = try #require(SlotHash.parseUUID(canonical))
        #expect(bytes.count == 16 && bytes[0] == 0xA0 && bytes[15] == 0x11)
        for form in [
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11", "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
        ] {
            #expect(SlotHash.parseUUID(form) == bytes, "\(form) should parse")
        }
        for bad in [
            "", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",
        ] {
            #expect(SlotHash.parseUUID(bad) == nil, "\(bad) should be refused")
        }
        let uuid = try #require(UUID(uuidString: canonical))
        #expect(SlotHash.slot(literal: canonical.uppercased(), type: .uuid) == SlotHash.slot(uuid: uuid))
        #expect(SlotHash.slot(literal: "nope", type: .uuid) == nil)
    }

    @Test("key type names and aliases")
    func keyTypeNames() {
        for alias in ["bigint", "int8", "integer", "int", "INT4", "smallint", "int2"] {
            #expect(ShardKeyType(typeName: alias) == .bigint, "\(alias)")
        }
        #expect(ShardKeyType(typeName: "text") == .text)
        #expect(ShardKeyType(typeName: "varchar") == .text)
        #expect(ShardKeyType(typeName: "character varying") == .text)
        #expect(ShardKeyType(typeName: "UUID") == .uuid)
        for unknown in ["int32", "numeric", "char", "bpchar", "float8", ""] {
            #expect(ShardKeyType(typeName: unknown) == nil, "\(unknown)")
        }
    }
}

/// Decodes lowercase or uppercase hex into bytes.
func hexBytes(_ hex: String) throws -> [UInt8] {
    let digits = Array(hex.utf8)
    try #require(digits.count % 2 == 0, "odd-length hex \(hex)")
    return try stride(from: 0, to: digits.count, by: 2).map { index in
        try #require(UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16))
    }
}
