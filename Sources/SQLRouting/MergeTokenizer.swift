/// One token of a statement, for finding where clauses and expressions begin and end. The merge planner
/// rewrites SQL only at token boundaries it finds here, guided by the parse tree's locations.
struct MergeToken: Equatable {
    enum Kind: Equatable {
        /// An identifier or keyword (unquoted).
        case word
        /// `"quoted identifier"` (also `U&"..."`).
        case quotedIdentifier
        /// A string literal of any kind (`'..'`, `E'..'`, `$$..$$`, `B'..'`, ...).
        case string
        case number
        /// `$1`.
        case parameter
        /// An operator (`+`, `<=`, `::`, ...).
        case symbol
        case openParen, closeParen, openBracket, closeBracket
        case comma, semicolon, dot
    }

    /// Byte range in the statement text.
    var start: Int
    var end: Int
    var kind: Kind
    /// Parenthesis/bracket depth: for an opening token the depth outside it, for a closing one likewise.
    var depth: Int
}

/// Splits SQL into tokens following PostgreSQL 15's lexer closely enough for boundaries: comments and
/// whitespace skipped, strings and quoted identifiers as one token each, operators as runs of operator
/// characters (never containing a comment start).
enum MergeTokenizer {
    static func tokens(_ b: UnsafeBufferPointer<UInt8>, range: Range<Int>) -> [MergeToken] {
        var tokens: [MergeToken] = []
        var depth = 0
        var i = range.lowerBound
        let n = range.upperBound
        @inline(__always) func at(_ k: Int) -> UInt8 { k < n ? b[k] : 0 }
        while i < n {
            let c = b[i]
            if SQLLexer.isSpace(c) || c == 0x0B {
                i += 1
                continue
            }
            if c == UInt8(ascii: "-"), at(i + 1) == UInt8(ascii: "-") {
                while i < n, b[i] != 0x0A, b[i] != 0x0D { i += 1 }
                continue
            }
            if c == UInt8(ascii: "/"), at(i + 1) == UInt8(ascii: "*") {
                var nesting = 1
                i += 2
                while i < n, nesting > 0 {
                    if b[i] == UInt8(ascii: "/"), at(i + 1) == UInt8(ascii: "*") {
                        nesting += 1
                        i += 2
                    } else if b[i] == UInt8(ascii: "*"), at(i + 1) == UInt8(ascii: "/") {
                        nesting -= 1
                        i += 2
                    } else {
                        i += 1
                    }
                }
                continue
            }
            let start = i
            var kind = MergeToken.Kind.symbol
            var tokenDepth = depth
            switch c {
            case UInt8(ascii: "'"):
                kind = .string
                i = skipQuoted(b, from: i + 1, end: n, backslashes: false, quote: UInt8(ascii: "'"))
            case UInt8(ascii: "\""):
                kind = .quotedIdentifier
                i = skipQuoted(b, from: i + 1, end: n, backslashes: false, quote: UInt8(ascii: "\""))
            case UInt8(ascii: "$"):
                if SQLLexer.isDigit(at(i + 1)) {
                    kind = .parameter
                    i += 1
                    while i < n, SQLLexer.isDigit(b[i]) { i += 1 }
                } else if let bodyStart = dollarTagEnd(b, from: i, end: n) {
                    kind = .string
                    i = skipDollarBody(b, tag: start..<bodyStart, from: bodyStart, end: n)
                } else {
                    i += 1
                }
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                kind = .number
                i = skipNumber(b, from: i, end: n)
            case UInt8(ascii: ".") where SQLLexer.isDigit(at(i + 1)):
                kind = .number
                i = skipNumber(b, from: i, end: n)
            case UInt8(ascii: "("):
                kind = .openParen
                depth += 1
                i += 1
            case UInt8(ascii: ")"):
                kind = .closeParen
                depth = max(0, depth - 1)
                tokenDepth = depth
                i += 1
            case UInt8(ascii: "["):
                kind = .openBracket
                depth += 1
                i += 1
            case UInt8(ascii: "]"):
                kind = .closeBracket
                depth = max(0, depth - 1)
                tokenDepth = depth
                i += 1
            case UInt8(ascii: ","):
                kind = .comma
                i += 1
            case UInt8(ascii: ";"):
                kind = .semicolon
                i += 1
            case UInt8(ascii: "."):
                kind = .dot
                i += 1
            default:
                if SQLLexer.isIdentStart(c) {
                    if let (prefixKind, bodyStart) = prefixedQuote(b, at: i, end: n) {
                        kind = prefixKind
                        let quote = prefixKind == .quotedIdentifier ? UInt8(ascii: "\"") : UInt8(ascii: "'")
                        let backslashes = b[i] | 0x20 == UInt8(ascii: "e")
                        i = skipQuoted(b, from: bodyStart, end: n, backslashes: backslashes, quote: quote)
                    } else {
                        kind = .word
                        while i < n, SQLLexer.isIdentContinue(b[i]) { i += 1 }
                    }
                } else if isOperatorChar(c) {
                    kind = .symbol
                    i += 1
                    while i < n, isOperatorChar(b[i]),
                          !(b[i] == UInt8(ascii: "-") && at(i + 1) == UInt8(ascii: "-")),
                          !(b[i] == UInt8(ascii: "/") && at(i + 1) == UInt8(ascii: "*")) {
                        i += 1
                    }
                } else if c == UInt8(ascii: ":") {
                    kind = .symbol
                    i += at(i + 1) == UInt8(ascii: ":") ? 2 : 1
                } else {
                    kind = .symbol
                    i += 1
                }
            }
            tokens.append(MergeToken(start: start, end: min(i, n), kind: kind, depth: tokenDepth))
        }
        return tokens
    }

    static func isOperatorChar(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "*"), UInt8(ascii: "/"), UInt8(ascii: "<"),
             UInt8(ascii: ">"), UInt8(ascii: "="), UInt8(ascii: "~"), UInt8(ascii: "!"), UInt8(ascii: "@"),
             UInt8(ascii: "#"), UInt8(ascii: "%"), UInt8(ascii: "^"), UInt8(ascii: "&"), UInt8(ascii: "|"),
             UInt8(ascii: "`"), UInt8(ascii: "?"):
            return true
        default:
            return false
        }
    }

    /// `E'`, `B'`, `X'`, `N'`, `U&'` (strings) and `U&"` (identifier): the kind and where the body starts.
    private static func prefixedQuote(_ b: UnsafeBufferPointer<UInt8>, at i: Int, end n: Int) -> (MergeToken.Kind, Int)? {
        guard i + 1 < n else { return nil }
        let letter = b[i] | 0x20
        if b[i + 1] == UInt8(ascii: "'"),
           [UInt8(ascii: "e"), UInt8(ascii: "b"), UInt8(ascii: "x"), UInt8(ascii: "n")].contains(letter) {
            return (.string, i + 2)
        }
        guard letter == UInt8(ascii: "u"), b[i + 1] == UInt8(ascii: "&"), i + 2 < n else { return nil }
        if b[i + 2] == UInt8(ascii: "'") { return (.string, i + 3) }
        if b[i + 2] == UInt8(ascii: "\"") { return (.quotedIdentifier, i + 3) }
        return nil
    }

    private static func skipQuoted(
        _ b: UnsafeBufferPointer<UInt8>, from: Int, end n: Int, backslashes: Bool, quote: UInt8
    ) -> Int {
        var i = from
        while i < n {
            let c = b[i]
            if backslashes, c == UInt8(ascii: "\\") {
                i += 2
                continue
            }
            if c == quote {
                if i + 1 < n, b[i + 1] == quote {
                    i += 2
                    continue
                }
                return i + 1
            }
            i += 1
        }
        return n
    }

    private static func dollarTagEnd(_ b: UnsafeBufferPointer<UInt8>, from: Int, end n: Int) -> Int? {
        var i = from + 1
        if i < n, b[i] == UInt8(ascii: "$") { return i + 1 }
        guard i < n, SQLLexer.isIdentStart(b[i]) else { return nil }
        while i < n, SQLLexer.isIdentStart(b[i]) || SQLLexer.isDigit(b[i]) { i += 1 }
        return i < n && b[i] == UInt8(ascii: "$") ? i + 1 : nil
    }

    private static func skipDollarBody(_ b: UnsafeBufferPointer<UInt8>, tag: Range<Int>, from: Int, end n: Int) -> Int {
        let length = tag.count
        var i = from
        while i + length <= n {
            if b[i] == UInt8(ascii: "$") {
                var match = true
                for k in 0..<length where b[i + k] != b[tag.lowerBound + k] {
                    match = false
                    break
                }
                if match { return i + length }
            }
            i += 1
        }
        return n
    }

    private static func skipNumber(_ b: UnsafeBufferPointer<UInt8>, from: Int, end n: Int) -> Int {
        var i = from
        while i < n, SQLLexer.isDigit(b[i]) { i += 1 }
        if i < n, b[i] == UInt8(ascii: "."), !(i + 1 < n && b[i + 1] == UInt8(ascii: ".")) {
            i += 1
            while i < n, SQLLexer.isDigit(b[i]) { i += 1 }
        }
        if i < n, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            var j = i + 1
            if j < n, b[j] == UInt8(ascii: "+") || b[j] == UInt8(ascii: "-") { j += 1 }
            if j < n, SQLLexer.isDigit(b[j]) {
                while j < n, SQLLexer.isDigit(b[j]) { j += 1 }
                i = j
            }
        }
        return i
    }
}
