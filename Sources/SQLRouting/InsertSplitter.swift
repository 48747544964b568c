/// Splits a multi-row `INSERT ... VALUES` whose rows belong to several shards into one statement per
/// shard, each with that shard's rows, by cutting the text at the rows' token boundaries (never by
/// pattern matching on SQL): the tokens follow PostgreSQL's scanner (strings, quoted identifiers, dollar
/// quotes and comments are skipped whole), and the rows found must be exactly the rows PostgreSQL's
/// parser saw.
public enum InsertSplitter {
    /// For each shard in `rowsByShard` (0-based row indexes, as `RoutePlan.insertRowsByShard` gives them), the
    /// statement inserting only those rows. Everything around the VALUES list (WITH, the column list,
    /// ON CONFLICT, RETURNING) is kept.
    ///
    /// Throws 0A000 when the text is not one top-level `INSERT ... VALUES (...), (...)` with that many rows.
    public static func split(_ sql: String, rowsByShard: [Int: [Int]]) throws(RouteError) -> [Int: String] {
        let rowCount = rowsByShard.values.reduce(0) { $0 + $1.count }
        var text = sql
        let rows: [Range<Int>]? = text.withUTF8 { valuesRows(in: $0) }
        guard let rows, rows.count == rowCount, let first = rows.first, let last = rows.last else {
            throw .unsupported("this multi-row INSERT over several shards (its VALUES rows could not be split); "
                + "send one INSERT per shard")
        }
        let bytes = Array(sql.utf8)
        let prefix = bytes[..<first.lowerBound]
        let suffix = bytes[last.upperBound...]
        var result: [Int: String] = [:]
        for (shard, indexes) in rowsByShard {
            var out = Array(prefix)
            for (n, row) in indexes.enumerated() {
                if n > 0 { out.append(contentsOf: ", ".utf8) }
                out.append(contentsOf: bytes[rows[row]])
            }
            out.append(contentsOf: suffix)
            result[shard] = String(decoding: out, as: UTF8.self)
        }
        return result
    }

    /// The byte ranges of the parenthesized rows after the top-level `VALUES` keyword, or nil when there is
    /// no such list.
    static func valuesRows(in b: UnsafeBufferPointer<UInt8>) -> [Range<Int>]? {
        let n = b.count
        var depth = 0
        var i = 0
        var afterValues = false
        var expectRow = false
        var rowStart = -1
        var rows: [Range<Int>] = []
        while i < n {
            let c = b[i]
            if SQLLexer.isSpace(c) {
                i += 1
                continue
            }
            if c == UInt8(ascii: "-"), i + 1 < n, b[i + 1] == UInt8(ascii: "-") {
                while i < n, b[i] != 0x0A, b[i] != 0x0D { i += 1 }
                continue
            }
            if c == UInt8(ascii: "/"), i + 1 < n, b[i + 1] == UInt8(ascii: "*") {
                var nesting = 1
                i += 2
                while i < n, nesting > 0 {
                    if b[i] == UInt8(ascii: "/"), i + 1 < n, b[i + 1] == UInt8(ascii: "*") {
                        nesting += 1
                        i += 2
                    } else if b[i] == UInt8(ascii: "*"), i + 1 < n, b[i + 1] == UInt8(ascii: "/") {
                        nesting -= 1
                        i += 2
                    } else {
                        i += 1
                    }
                }
                continue
            }
            let tokenStart = i
            var isWord = false
            switch c {
            case UInt8(ascii: "'"):
                i = SQLLexer.skipQuoted(b, from: i + 1, backslashEscapes: false)
            case UInt8(ascii: "\""):
                i = SQLLexer.skipQuoted(b, from: i + 1, backslashEscapes: false, quote: UInt8(ascii: "\""))
            case UInt8(ascii: "$"):
                if i + 1 < n, SQLLexer.isDigit(b[i + 1]) {
                    i += 1
                    while i < n, SQLLexer.isDigit(b[i]) { i += 1 }
                } else if let bodyStart = SQLLexer.dollarTagEnd(b, from: i) {
                    i = SQLLexer.skipDollarBody(b, tag: i..<bodyStart, from: bodyStart)
                } else {
                    i += 1
                }
            case UInt8(ascii: "("):
                if depth == 0, afterValues {
                    guard expectRow else { return nil }
                    rowStart = i
                    expectRow = false
                }
                depth += 1
                i += 1
            case UInt8(ascii: ")"):
                depth -= 1
                guard depth >= 0 else { return nil }
                i += 1
                if depth == 0, afterValues, rowStart >= 0 {
                    rows.append(rowStart..<i)
                    rowStart = -1
                }
            default:
                if SQLLexer.isIdentStart(c), let (kind, bodyStart) = SQLLexer.prefixedQuote(b, at: i) {
                    i = SQLLexer.skipQuoted(b, from: bodyStart, backslashEscapes: kind == .escapeString,
                                            quote: kind == nil ? UInt8(ascii: "\"") : UInt8(ascii: "'"))
                } else if SQLLexer.isIdentStart(c) {
                    while i < n, SQLLexer.isIdentContinue(b[i]) { i += 1 }
                    isWord = true
                } else {
                    i += 1
                }
            }
            guard i <= n else { return nil }
            guard depth == 0, !(c == UInt8(ascii: "(") || c == UInt8(ascii: ")")) else { continue }
            // A top-level token outside the rows.
            if afterValues {
                if c == UInt8(ascii: ",") && !expectRow && !rows.isEmpty {
                    expectRow = true
                    continue
                }
                // The list ended (ON CONFLICT, RETURNING, ';' or the end).
                return expectRow ? nil : rows
            }
            if isWord, i - tokenStart == 6, Self.isValues(b, at: tokenStart) {
                afterValues = true
                expectRow = true
            }
        }
        return afterValues && !expectRow ? rows : nil
    }

    private static func isValues(_ b: UnsafeBufferPointer<UInt8>, at start: Int) -> Bool {
        let word = "values".utf8
        for (offset, letter) in word.enumerated() where b[start + offset] | 0x20 != letter {
            return false
        }
        return true
    }
}

extension InsertSplitter {
    /// `sql` with its parameters numbered `$1, $2, ...` in order of first appearance, and for each new number
    /// the old one (`order[k]` is the old number of `$(k+1)`). A shard's part of a split INSERT references only
    /// its rows' parameters; PostgreSQL cannot type a parameter nothing references, so each part is renumbered
    /// and bound with just its values.
    public static func renumberingParameters(_ sql: String) -> (text: String, order: [Int]) {
        var text = sql
        return text.withUTF8 { b in
            var order: [Int] = []
            var numbers: [Int: Int] = [:]
            var out = ""
            out.reserveCapacity(b.count)
            var copied = 0
            for token in SQLTokens.scan(b) {
                guard case .parameter(let old) = token.kind else { continue }
                let new: Int
                if let known = numbers[old] {
                    new = known
                } else {
                    order.append(old)
                    new = order.count
                    numbers[old] = new
                }
                out += String(decoding: UnsafeBufferPointer(rebasing: b[copied..<token.range.lowerBound]), as: UTF8.self)
                out += "$\(new)"
                copied = token.range.upperBound
            }
            out += String(decoding: UnsafeBufferPointer(rebasing: b[copied...]), as: UTF8.self)
            return (out, order)
        }
    }
}
