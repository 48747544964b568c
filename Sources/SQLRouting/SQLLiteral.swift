/// A literal token found by `SQLLexer`: where it is in the statement text and what kind it is.
struct SQLLiteral: Sendable, Equatable {
    /// The token's byte range in the statement text, quotes and prefixes included.
    var start: Int32
    var end: Int32
    var kind: Kind

    enum Kind: UInt8, Sendable {
        /// `42`, `1.5`, `1e3` (the sign is a separate token).
        case number = 0x6E // n
        /// `'text'` with `''` for a quote.
        case string = 0x73 // s
        /// `E'te\'xt'` with backslash escapes.
        case escapeString = 0x65 // e
        /// `$$text$$`, `$tag$text$tag$`.
        case dollarString = 0x64 // d
        /// `U&'d\0061t'` (value not decoded: routing treats it as unknown).
        case unicodeString = 0x75 // u
        /// `B'0101'`.
        case bitString = 0x62 // b
        /// `X'1F'`.
        case hexString = 0x78 // x
        /// `N'text'` (a `bpchar`, whose hash differs from text's: treated as unknown).
        case nationalString = 0x4E // N
        /// A string continued by another across a newline (`'a'` NL `'b'` is `'ab'`): value not decoded.
        case continued = 0x63 // c
    }
}

extension SQLLiteral {
    /// The value PostgreSQL's scanner gives this literal (quotes removed, escapes processed), or `nil`
    /// for kinds whose values routing does not decode.
    func value(in sql: UnsafeBufferPointer<UInt8>) -> String? {
        let s = Int(start)
        let e = Int(end)
        guard s >= 0, e <= sql.count, s < e else { return nil }
        switch kind {
        case .number:
            return String(decoding: UnsafeBufferPointer(rebasing: sql[s..<e]), as: UTF8.self)
        case .string:
            return Self.undoubled(UnsafeBufferPointer(rebasing: sql[(s + 1)..<(e - 1)]))
        case .escapeString:
            return Self.unescaped(UnsafeBufferPointer(rebasing: sql[(s + 2)..<(e - 1)]))
        case .dollarString:
            var tagEnd = s + 1
            while tagEnd < e, sql[tagEnd] != UInt8(ascii: "$") { tagEnd += 1 }
            let tagLength = tagEnd + 1 - s
            guard e - s >= 2 * tagLength else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: sql[(s + tagLength)..<(e - tagLength)]), as: UTF8.self)
        case .unicodeString, .bitString, .hexString, .nationalString, .continued:
            return nil
        }
    }

    /// `''` stands for `'`.
    private static func undoubled(_ body: UnsafeBufferPointer<UInt8>) -> String {
        guard body.contains(UInt8(ascii: "'")) else { return String(decoding: body, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(body.count)
        var i = 0
        while i < body.count {
            out.append(body[i])
            i += body[i] == UInt8(ascii: "'") ? 2 : 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// PostgreSQL's `E''` escapes: `\b \f \n \r \t`, octal `\ooo`, hex `\xhh`, `\uXXXX`, `\UXXXXXXXX`,
    /// and `\c` for any other `c`. `nil` when the result would not be valid UTF-8 (the server rejects it).
    private static func unescaped(_ body: UnsafeBufferPointer<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(body.count)
        var i = 0
        let n = body.count
        while i < n {
            let c = body[i]
            if c == UInt8(ascii: "'") {
                out.append(c)
                i += 2
                continue
            }
            guard c == UInt8(ascii: "\\"), i + 1 < n else {
                out.append(c)
                i += 1
                continue
            }
            let e = body[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var v = UInt32(e - UInt8(ascii: "0"))
                var k = 0
                while k < 2, i < n, body[i] >= UInt8(ascii: "0"), body[i] <= UInt8(ascii: "7") {
                    v = v * 8 + UInt32(body[i] - UInt8(ascii: "0"))
                    i += 1
                    k += 1
                }
                out.append(UInt8(truncatingIfNeeded: v))
            case UInt8(ascii: "x"):
                var v: UInt32 = 0
                var k = 0
                while k < 2, i < n, let h = ParseTree.hexValue(body[i]) {
                    v = v * 16 + UInt32(h)
                    i += 1
                    k += 1
                }
                guard k > 0 else {
                    out.append(e)
                    continue
                }
                out.append(UInt8(truncatingIfNeeded: v))
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                let digits = e == UInt8(ascii: "u") ? 4 : 8
                guard i + digits <= n else { return nil }
                var v: UInt32 = 0
                for k in 0..<digits {
                    guard let h = ParseTree.hexValue(body[i + k]) else { return nil }
                    v = v << 4 | UInt32(h)
                }
                i += digits
                // Surrogate pairs are legal here but rare; leave them to the server.
                guard let scalar = Unicode.Scalar(v) else { return nil }
                out.append(contentsOf: String(Character(scalar)).utf8)
            default:
                out.append(e)
            }
        }
        let text = String(decoding: out, as: UTF8.self)
        // Invalid UTF-8 would have been repaired on decoding: the bytes would no longer match.
        return text.utf8.elementsEqual(out) ? text : nil
    }
}
