import NIOCore
@testable import ResultMerge
import Testing

@Suite("Values: decoding, order, equality")
struct ValueTests {
    func decode(_ kind: ValueKind, _ text: String?, terminate: Bool = false) throws -> MergeValue {
        try ValueDecoder(kind: kind, binary: false, terminateText: terminate, oid: 0, column: 0)
            .decode(text.map { ByteBuffer(string: $0) })
    }

    func decodeBinary(_ kind: ValueKind, _ bytes: [UInt8]) throws -> MergeValue {
        try ValueDecoder(kind: kind, binary: true, terminateText: false, oid: 0, column: 0).decode(ByteBuffer(bytes: bytes))
    }

    /// Checks that `texts` are in strictly ascending order for `kind` (and equal to themselves).
    func expectAscending(_ kind: ValueKind, _ texts: [String], locale: CollationLocale? = nil) throws {
        let comparator = ValueComparator(locale: locale)
        let values = try texts.map { try decode(kind, $0, terminate: locale != nil) }
        for i in values.indices {
            for j in values.indices {
                let c = comparator.compare(values[i], values[j])
                #expect(c == (i < j ? -1 : (i == j ? 0 : 1)), "\(kind): \(texts[i]) vs \(texts[j])")
            }
        }
    }

    @Test("integers, in text and binary")
    func integers() throws {
        try expectAscending(.int8, ["-9223372036854775808", "-1", "0", "1", "42", "9223372036854775807"])
        #expect(try decodeBinary(.int2, [0xFF, 0xFE]) == .integer(-2))
        #expect(try decodeBinary(.int4, [0, 0, 1, 0]) == .integer(256))
        #expect(try decodeBinary(.int8, [0x80, 0, 0, 0, 0, 0, 0, 0]) == .integer(Int64.min))
        #expect(throws: MergeError.self) { try decodeBinary(.int4, [0, 1]) }
        #expect(throws: MergeError.self) { try decode(.int4, "12a") }
        #expect(try decode(.int4, nil) == .null)
    }

    @Test("floats order as float8_cmp: -Infinity < ... < -0 = 0 < ... < Infinity < NaN")
    func floats() throws {
        try expectAscending(.float8, ["-Infinity", "-1e+308", "-1.5", "-5e-324", "0", "5e-324", "1", "1e+308",
                                      "Infinity", "NaN"])
        #expect(try decode(.float8, "-0") == decode(.float8, "0"))
        #expect(try decode(.float8, "NaN") == decode(.float8, "NaN"))
        #expect(try decode(.float8, "-0").hashValue == decode(.float8, "0").hashValue)
        let nanBits = Double.nan.bitPattern
        var bytes: [UInt8] = []
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: nanBits >> UInt64(shift))) }
        #expect(try decodeBinary(.float8, bytes) == decode(.float8, "NaN"))
        #expect(try decodeBinary(.float4, [0x3F, 0xC0, 0, 0]) == decode(.float4, "1.5"))
        #expect(MergeValue.double(fromKey: MergeValue.floatKey(-2.5)) == -2.5)
        #expect(MergeValue.double(fromKey: MergeValue.floatKey(.infinity)) == .infinity)
        #expect(MergeValue.double(fromKey: MergeValue.floatKey(.nan)).isNaN)
    }

    @Test("numeric orders by value, in text and binary")
    func numeric() throws {
        try expectAscending(.numeric, ["-Infinity", "-100.5", "-0.001", "0", "0.001", "1", "1.5", "100000000000000000000",
                                       "Infinity", "NaN"])
        #expect(try decode(.numeric, "1.10") == decode(.numeric, "1.1"))
        #expect(try decodeBinary(.numeric, [0, 1, 0, 0, 0, 0, 0, 0, 0, 7]) == decode(.numeric, "7"))
    }

    @Test("text: byte order in C, strcoll_l in a locale; char(n) ignores trailing spaces")
    func text() throws {
        try expectAscending(.text, ["", "A", "B", "Z", "a", "ab", "b", "z", "É", "é", "中"])
        let locale = try #require(CollationLocale(name: "C.UTF-8"))
        try expectAscending(.text, ["", "A", "B", "a", "ab", "b", "é", "中", "🎉"], locale: locale)
        #expect(try decode(.bpchar, "ab   ") == decode(.bpchar, "ab"))
        #expect(try decode(.bpchar, "ab ") != decode(.bpchar, "abc"))
        #expect(CollationLocale(name: "xx_NO_SUCH.LOCALE") == nil)
    }

    @Test("bool, uuid, bytea, name")
    func others() throws {
        try expectAscending(.bool, ["f", "t"])
        try expectAscending(.uuid, ["00000000-0000-0000-0000-000000000000", "0000000a-0000-0000-0000-000000000000",
                                    "a0000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"])
        #expect(try decode(.uuid, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")
            == decode(.uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))
        try expectAscending(.bytea, ["\\x", "\\x00", "\\x0001", "\\x01", "\\xff"])
        #expect(throws: MergeError.self) { try decode(.bytea, "abc") } // escape format is refused
        try expectAscending(.name, ["A", "a", "b"])
        #expect(throws: MergeError.self) { try decode(.bool, "yes") }
    }

    @Test("dates and timestamps: ISO text, BC, infinity, time zones; binary microseconds")
    func dates() throws {
        try expectAscending(.date, ["-infinity", "4713-01-01 BC", "0044-03-15 BC", "0001-12-31 BC", "0001-01-01",
                                    "1999-12-31", "2000-01-01", "2024-02-29", "10000-01-01", "infinity"])
        #expect(try decode(.date, "2000-01-01") == .instant(0))
        #expect(try decode(.date, "2000-01-02") == .instant(1))
        #expect(try decode(.date, "1999-12-31") == .instant(-1))
        #expect(try decode(.date, "0001-01-01 BC") == .instant(PGDateTime.daysFromCivil(year: 0, month: 1, day: 1)))
        try expectAscending(.timestamp, ["-infinity", "0044-03-15 12:00:00 BC", "1970-01-01 00:00:00",
                                         "2000-01-01 00:00:00", "2000-01-01 00:00:00.000001", "2000-01-01 00:00:00.5",
                                         "2024-06-30 23:59:59.999999", "infinity"])
        #expect(try decode(.timestamp, "2000-01-01 00:00:01.5") == .instant(1_500_000))
        // Offsets are east of UTC: 12:00+02 is 10:00 UTC.
        #expect(try decode(.timestamptz, "2000-01-01 12:00:00+02") == decode(.timestamptz, "2000-01-01 10:00:00+00"))
        #expect(try decode(.timestamptz, "2000-01-01 05:30:00+05:30") == .instant(0))
        #expect(try decode(.timestamptz, "1900-01-01 00:00:00+00:53:28")
            == decode(.timestamptz, "1899-12-31 23:06:32+00"))
        try expectAscending(.timestamptz, ["2000-01-01 12:00:00+05", "2000-01-01 08:00:00+00", "2000-01-01 04:00:00-05"])
        try expectAscending(.time, ["00:00:00", "00:00:00.000001", "12:30:00", "23:59:59.999999", "24:00:00"])
        #expect(try decodeBinary(.date, [0x7F, 0xFF, 0xFF, 0xFF]) == .instant(.max))
        #expect(try decodeBinary(.timestamp, [0, 0, 0, 0, 0, 0x0F, 0x42, 0x40]) == .instant(1_000_000))
        // DateStyle SQL is refused with 0A000 and a hint, not misread.
        #expect(throws: MergeError.self) { try decode(.timestamp, "01/02/2024 10:00:00") }
        do {
            _ = try decode(.timestamptz, "Tue Jan 02 10:00:00 2024 UTC")
            Issue.record("a Postgres-style timestamp was read")
        } catch {
            #expect((error as? MergeError)?.sqlState == "0A000")
            #expect((error as? MergeError)?.hint == "SET DateStyle = ISO.")
        }
        #expect(throws: MergeError.self) { try decode(.date, "2024-13-01") }
    }

    @Test("type OIDs the merger knows, and names for the others")
    func kinds() {
        #expect(ValueKind(oid: OID.varchar) == .text)
        #expect(ValueKind(oid: OID.interval) == nil)
        #expect(ValueKind(oid: OID.jsonb) == nil)
        #expect(ValueKind.name(oid: OID.interval) == "interval")
    }
}
