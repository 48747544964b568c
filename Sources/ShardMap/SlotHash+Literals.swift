import Foundation

extension SlotHash {
    /// The slot of a key given in PostgreSQL's text representation (a SQL literal's contents, a
    /// text-format bind parameter, or a `/* shard_key: 42 */` override), or `nil` when PostgreSQL's
    /// input function for `type` would reject it.
    public static func slot(literal: String, type: ShardKeyType, slotCount: Int = 1024) -> Int? {
        switch type {
        case .bigint:
            guard let value = parseBigint(literal) else { return nil }
            return slot(bigint: value, slotCount: slotCount)
        case .text:
            return slot(text: literal, slotCount: slotCount)
        case .uuid:
            guard let bytes = parseUUID(literal) else { return nil }
            return slot(hash: uuidHashExtended(bytes, seed: seed), slotCount: slotCount)
        }
    }

    /// Parses an integer the way PostgreSQL 15's `int8in` does: optional surrounding whitespace,
    /// an optional sign, decimal digits; `nil` on anything else or on overflow.
    public static func parseBigint(_ text: String) -> Int64? {
        var bytes = Substring(text).utf8[...]
        while let first = bytes.first, isSpace(first) { bytes = bytes.dropFirst() }
        while let last = bytes.last, isSpace(last) { bytes = bytes.dropLast() }
        var negative = false
        if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            bytes = bytes.dropFirst()
        }
        guard !bytes.isEmpty else { return nil }
        // Accumulate negatively so that Int64.min parses.
        var value: Int64 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = shifted.subtractingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = next
        }
        if negative { return value }
        return value == .min ? nil : -value
    }

    /// Parses a uuid the way PostgreSQL's `uuid_in` does: 32 hex digits in either case, optionally
    /// inside `{}`, with an optional `-` after any group of four digits. Returns the 16 bytes.
    public static func parseUUID(_ text: String) -> [UInt8]? {
        let src = Array(text.utf8)
        var i = 0
        var braces = false
        if src.first == UInt8(ascii: "{") {
            braces = true
            i = 1
        }
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for n in 0..<16 {
            guard i + 1 < src.count,
                  let high = JSONParser.hexValue(src[i]), let low = JSONParser.hexValue(src[i + 1]) else {
                return nil
            }
            out.append(high << 4 | low)
            i += 2
            if i < src.count, src[i] == UInt8(ascii: "-"), n % 2 == 1, n < 15 {
                i += 1
            }
        }
        if braces {
            guard i < src.count, src[i] == UInt8(ascii: "}") else { return nil }
            i += 1
        }
        return i == src.count ? out : nil
    }

    /// C `isspace` in the "C" locale.
    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (0x09...0x0D).contains(byte)
    }
}
