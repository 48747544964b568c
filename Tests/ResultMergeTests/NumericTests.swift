import NIOCore
@testable import ResultMerge
import Testing

@Suite("PGNumeric")
struct NumericTests {
    func n(_ text: String) -> PGNumeric {
        guard let value = PGNumeric(text: text) else {
            Issue.record("could not parse \(text)")
            return .nan
        }
        return value
    }

    @Test("text round trips keep PostgreSQL's display scale", arguments: [
        "0", "1", "-1", "0.5", "-0.5", "10000", "9999", "12345.6789", "0.0001", "0.00001", "1.000",
        "123456789012345678901234567890.123456789012345678901234567890", "-0.000000000000000000000001",
        "99999999", "100000000", "0.10", "NaN", "Infinity", "-Infinity", "1e+0",
    ])
    func textRoundTrip(_ text: String) {
        let expected = text == "1e+0" ? "1" : text
        #expect(n(text).description == expected)
    }

    @Test("parsing: signs, spaces, exponents, invalid input")
    func parsing() {
        #expect(n("+5").description == "5")
        #expect(n("  42  ").description == "42")
        #expect(n("-0").description == "0")
        #expect(n("-0.00").description == "0.00")
        #expect(n("1.5e3").description == "1500")
        #expect(n("1.5e-3").description == "0.0015")
        #expect(n("12e-1").description == "1.2")
        #expect(n(".5").description == "0.5")
        #expect(n("5.").description == "5")
        #expect(n("nan").isNaN)
        #expect(n("-inf").kind == .negativeInfinity)
        #expect(PGNumeric(text: "") == nil)
        #expect(PGNumeric(text: "abc") == nil)
        #expect(PGNumeric(text: "1.2.3") == nil)
        #expect(PGNumeric(text: "1e") == nil)
        #expect(PGNumeric(text: "-") == nil)
    }

    @Test("equality ignores the display scale; order is -Infinity < finite < Infinity < NaN")
    func order() {
        #expect(n("1.0") == n("1.00"))
        #expect(n("1.0").hashValue == n("1.000").hashValue)
        #expect(n("0") == n("-0.000"))
        #expect(n("NaN") == n("NaN"))
        let sorted = ["-Infinity", "-1e30", "-10000.0001", "-10000", "-1", "-0.0001", "0", "0.00001", "0.0001", "1",
                      "1.00000000000000000001", "9999.9999", "10000", "123456789", "1e40", "Infinity", "NaN"]
        for i in sorted.indices {
            for j in sorted.indices {
                let c = PGNumeric.compare(n(sorted[i]), n(sorted[j]))
                #expect(c == (i < j ? -1 : (i == j ? 0 : 1)), "\(sorted[i]) vs \(sorted[j])")
            }
        }
    }

    @Test("addition: exact, display scale is the larger, special values as PostgreSQL")
    func addition() {
        #expect((n("1.5") + n("2.25")).description == "3.75")
        #expect((n("0.1") + n("0.2")).description == "0.3")
        #expect((n("9999") + n("1")).description == "10000")
        #expect((n("99999999.99") + n("0.01")).description == "100000000.00")
        #expect((n("-5") + n("3.000")).description == "-2.000")
        #expect((n("5") + n("-5.0")).description == "0.0")
        #expect((n("-1.5") + n("-1.5")).description == "-3.0")
        #expect((n("0.0001") + n("-0.00005")).description == "0.00005")
        #expect((n("1e40") + n("1e-40")).description == "10000000000000000000000000000000000000000."
            + String(repeating: "0", count: 39) + "1")
        #expect((n("NaN") + n("1")).isNaN)
        #expect((n("Infinity") + n("-Infinity")).isNaN)
        #expect((n("Infinity") + n("5")).kind == .positiveInfinity)
        #expect((n("-Infinity") + n("-Infinity")).kind == .negativeInfinity)
        #expect((n("123456789012345678901234567890") + n("-123456789012345678901234567891")).description == "-1")
    }

    @Test("integers convert exactly")
    func integers() {
        #expect(PGNumeric(Int64.max).description == "9223372036854775807")
        #expect(PGNumeric(Int64.min).description == "-9223372036854775808")
        #expect(PGNumeric(0).description == "0")
        #expect(PGNumeric(10000).description == "10000")
        #expect(n("9223372036854775807").exactInt64 == Int64.max)
        #expect(n("1.5").exactInt64 == nil)
        #expect(n("100000000000000000000").exactInt64 == nil)
    }

    @Test("division by a count uses select_div_scale and rounds half away from zero", arguments: [
        // (sum, count, PostgreSQL's result) — the results were taken from PostgreSQL 15.
        ("5", 2, "2.5000000000000000"),
        ("10", 3, "3.3333333333333333"),
        ("1", 3000000, "0.000000333333333333333333"),
        ("123456789", 7, "17636684.142857142857"),
        ("100000000000000000001", 2, "50000000000000000001"),
        ("-100000000000000000001", 2, "-50000000000000000001"),
        ("0", 5, "0.00000000000000000000"),
        ("3.75", 2, "1.8750000000000000"),
        ("2", 3, "0.66666666666666666667"),
        ("-2", 3, "-0.66666666666666666667"),
        ("1.000000000000000000000000000001", 1, "1.000000000000000000000000000001"),
        ("7", 7, "1.00000000000000000000"),
    ])
    func division(_ sum: String, _ count: Int64, _ expected: String) {
        #expect(n(sum).divided(by: count).description == expected)
    }

    @Test("binary round trip and PostgreSQL's wire layout")
    func binary() {
        for text in ["0", "1", "-12345.678", "0.0001", "1e100", "NaN", "Infinity", "-Infinity", "10000.00"] {
            var buffer = ByteBuffer()
            n(text).encodeBinary(into: &buffer)
            let back = PGNumeric(binary: buffer)
            #expect(back?.description == n(text).description, "\(text)")
        }
        // 12345.678 = digits [1, 2345, 6780], weight 1, dscale 3.
        var buffer = ByteBuffer()
        n("12345.678").encodeBinary(into: &buffer)
        #expect(Array(buffer.readableBytesView) == [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C])
        #expect(PGNumeric(binary: ByteBuffer(bytes: [0, 1, 0, 0, 0x12, 0x34, 0, 0, 0, 1])) == nil) // bad sign
        #expect(PGNumeric(binary: ByteBuffer(bytes: [0, 2, 0, 0, 0, 0, 0, 0, 0, 1])) == nil) // truncated
    }
}
