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
        var depth = 0
        var afterValues = false
        var expectRow = false
        var rowStart = -1
        var rows: [Range<Int>] = []
        for token in SQLTokens.scan(b) {
            guard !token.unterminated else { return nil }
            if token.isPunctuation("(", in: b) {
                if depth == 0, afterValues {
                    guard expectRow else { return nil }
                    rowStart = token.range.lowerBound
                    expectRow = false
                }
                depth += 1
                continue
            }
            if token.isPunctuation(")", in: b) {
                depth -= 1
                guard depth >= 0 else { return nil }
                if depth == 0, afterValues, rowStart >= 0 {
                    rows.append(rowStart..<token.range.upperBound)
                    rowStart = -1
                }
                continue
            }
            guard depth == 0 else { continue }
            // A top-level token outside the rows.
            if afterValues {
                if token.isPunctuation(",", in: b), !expectRow, !rows.isEmpty {
                    expectRow = true
                    continue
                }
                // The list ended (ON CONFLICT, RETURNING, ';' or the end).
                return expectRow ? nil : rows
            }
            if token.isWord("values", in: b) {
                afterValues = true
                expectRow = true
            }
        }
        return afterValues && !expectRow ? rows : nil
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
