/// Where the clauses of the top-level SELECT are, as token index ranges (found at parenthesis depth 0;
/// the parse tree says which clauses exist, the tokens say where).
struct MergeClauses {
    /// The `SELECT` keyword (nil for `TABLE t` / `VALUES`).
    var select: Int?
    /// The select list's tokens.
    var targets: Range<Int> = 0..<0
    /// `DISTINCT ON (` ... `)`: the tokens inside the parentheses.
    var distinctOn: Range<Int>?
    /// Content ranges (after the keywords) and the keyword positions.
    var from: Range<Int>?
    var whereClause: Range<Int>?
    var groupBy: Range<Int>?
    var having: Range<Int>?
    var window: Range<Int>?
    var orderBy: Range<Int>?
    /// The ORDER keyword.
    var orderKeyword: Int?
    /// The HAVING keyword.
    var havingKeyword: Int?
    /// Whole LIMIT / OFFSET / FETCH clauses (keywords included), in text order.
    var limitClauses: [Range<Int>] = []
    /// The index after the statement's last token (before a trailing `;`).
    var end: Int = 0
    /// The keyword tokens that start clauses, in order.
    var keywords: [(word: String, token: Int)] = []

    init(tokens: [MergeToken], sql: UnsafeBufferPointer<UInt8>) {
        func word(_ k: Int) -> String? {
            guard k < tokens.count, tokens[k].kind == .word else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: sql[tokens[k].start..<tokens[k].end]), as: UTF8.self)
                .lowercased()
        }
        end = tokens.firstIndex { $0.kind == .semicolon && $0.depth == 0 } ?? tokens.count
        select = (0..<end).first { tokens[$0].depth == 0 && word($0) == "select" }
        guard let select else { return }
        var k = select + 1
        if word(k) == "all" {
            k += 1
        } else if word(k) == "distinct" {
            k += 1
            if word(k) == "on", k + 1 < end, tokens[k + 1].kind == .openParen {
                let open = k + 1
                var close = open + 1
                while close < end, !(tokens[close].kind == .closeParen && tokens[close].depth == tokens[open].depth) {
                    close += 1
                }
                distinctOn = (open + 1)..<close
                k = close + 1
            }
        }
        let clauseWords: Set<String> = ["into", "from", "where", "group", "having", "window", "order", "limit", "offset",
                                        "fetch", "for"]
        var found: [(String, Int)] = []
        var j = k
        while j < end {
            if tokens[j].depth == 0, let w = word(j), clauseWords.contains(w) {
                // `IS [NOT] DISTINCT FROM` and `WITHIN GROUP` are expressions, not clauses.
                let previous = j > 0 ? word(j - 1) : nil
                let isExpression = (w == "from" && previous == "distinct") || (w == "group" && previous == "within")
                if !isExpression { found.append((w, j)) }
            }
            j += 1
        }
        keywords = found
        targets = k..<(found.first?.1 ?? end)
        for (index, (w, at)) in found.enumerated() {
            let next = index + 1 < found.count ? found[index + 1].1 : end
            let byKeyword = (w == "group" || w == "order") && word(at + 1) == "by"
            let content = min(next, at + (byKeyword ? 2 : 1))..<next
            switch w {
            case "from": from = content
            case "where": whereClause = content
            case "group": groupBy = content
            case "having":
                having = content
                havingKeyword = at
            case "window": window = content
            case "order":
                orderBy = content
                orderKeyword = at
            case "limit", "offset", "fetch": limitClauses.append(at..<next)
            default: break
            }
        }
    }

    /// Splits a token range at its commas of parenthesis depth `depth`.
    static func split(_ range: Range<Int>, depth: Int, tokens: [MergeToken]) -> [Range<Int>] {
        guard !range.isEmpty else { return [] }
        var pieces: [Range<Int>] = []
        var start = range.lowerBound
        for k in range where tokens[k].kind == .comma && tokens[k].depth == depth {
            pieces.append(start..<k)
            start = k + 1
        }
        pieces.append(start..<range.upperBound)
        return pieces
    }
}
