/// The result of lexing one query string: its shape (the cache key) and the literal tokens.
struct LexedSQL: Sendable {
    /// The text with literals replaced by a marker, leading comments dropped, every other comment and
    /// run of whitespace turned into one space, and unquoted words lowercased. Two texts with equal shapes
    /// have equal parse trees except for the literal values.
    var shape: [UInt8]
    /// The literal tokens, in text order.
    var literals: [SQLLiteral]
    /// False when the shape cannot stand for the text: string continuation across a newline, an
    /// unterminated token, or a control character the marker could be confused with.
    var cacheable: Bool
    /// The bytes before the first token (whitespace and comments: where an override lives).
    var leadingEnd: Int
}

/// A small SQL lexer following PostgreSQL 15's `scan.l` closely enough to find token boundaries,
/// literals and comments. It never decides routing: it only builds the cache key and locates the
/// literals whose values the parse tree points at (by byte location).
enum SQLLexer {
    static let marker: UInt8 = 0x01

    static func lex(_ b: UnsafeBufferPointer<UInt8>) -> LexedSQL {
        var storage: [UInt8] = []
        return lex(b, storage: &storage)
    }

    /// `storage`: an array whose capacity the shape may reuse (it is left empty).
    static func lex(_ b: UnsafeBufferPointer<UInt8>, storage: inout [UInt8]) -> LexedSQL {
        let n = b.count
        var shape: [UInt8] = []
        swap(&shape, &storage)
        shape.removeAll(keepingCapacity: true)
        shape.reserveCapacity(n + 8)
        var literals: [SQLLiteral] = []
        var cacheable = true
        var leadingEnd = n
        var seenToken = false
        var pendingSpace = false
        var gapNewline = false
        var previousWasQuoted = false
        var i = 0

        @inline(__always) func at(_ k: Int) -> UInt8 { k < n ? b[k] : 0 }

        while i < n {
            let c = b[i]
            if isSpace(c) {
                if c == 0x0A || c == 0x0D { gapNewline = true }
                pendingSpace = seenToken
                i += 1
                continue
            }
            if c == UInt8(ascii: "-"), at(i + 1) == UInt8(ascii: "-") {
                while i < n, b[i] != 0x0A, b[i] != 0x0D { i += 1 }
                pendingSpace = seenToken
                continue
            }
            if c == UInt8(ascii: "/"), at(i + 1) == UInt8(ascii: "*") {
                var depth = 1
                i += 2
                while i < n, depth > 0 {
                    if b[i] == UInt8(ascii: "/"), at(i + 1) == UInt8(ascii: "*") {
                        depth += 1
                        i += 2
                    } else if b[i] == UInt8(ascii: "*"), at(i + 1) == UInt8(ascii: "/") {
                        depth -= 1
                        i += 2
                    } else {
                        i += 1
                    }
                }
                if depth > 0 { cacheable = false }
                pendingSpace = seenToken
                // A block comment ends a quoted string for good (no continuation across it).
                previousWasQuoted = false
                continue
            }
            if !seenToken {
                seenToken = true
                leadingEnd = i
            }
            if pendingSpace {
                shape.append(UInt8(ascii: " "))
                pendingSpace = false
            }
            let start = i
            var quoted = false
            var literalKind: SQLLiteral.Kind?
            let next = at(i + 1)
            switch c {
            case UInt8(ascii: "'"):
                literalKind = .string
                i = skipQuoted(b, from: i + 1, backslashEscapes: false)
                quoted = true
            case _ where isIdentStart(c) && prefixedQuote(b, at: i) != nil:
                let (kind, bodyStart) = prefixedQuote(b, at: i)!
                if let kind {
                    literalKind = kind
                    i = skipQuoted(b, from: bodyStart, backslashEscapes: kind == .escapeString)
                    quoted = true
                } else {
                    // U&"identifier": kept as written.
                    i = skipQuoted(b, from: bodyStart, backslashEscapes: false, quote: UInt8(ascii: "\""))
                    shape.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<min(i, n)]))
                }
            case UInt8(ascii: "\""):
                i = skipQuoted(b, from: i + 1, backslashEscapes: false, quote: UInt8(ascii: "\""))
                shape.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<min(i, n)]))
            case UInt8(ascii: "$"):
                if isDigit(next) {
                    i += 1
                    while i < n, isDigit(b[i]) { i += 1 }
                    shape.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<i]))
                } else if let bodyStart = dollarTagEnd(b, from: i) {
                    literalKind = .dollarString
                    i = skipDollarBody(b, tag: start..<bodyStart, from: bodyStart)
                } else {
                    shape.append(c)
                    i += 1
                }
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                literalKind = .number
                i = skipNumber(b, from: i)
            case UInt8(ascii: ".") where isDigit(next):
                literalKind = .number
                i = skipNumber(b, from: i)
            default:
                if isIdentStart(c) {
                    while i < n, isIdentContinue(b[i]) {
                        let ch = b[i]
                        shape.append(ch >= UInt8(ascii: "A") && ch <= UInt8(ascii: "Z") ? ch | 0x20 : ch)
                        i += 1
                    }
                } else {
                    if c < 0x20 || c == 0x7F { cacheable = false }
                    shape.append(c)
                    i += 1
                }
            }
            if i > n {
                // An unterminated quoted token: the parser reports the error.
                cacheable = false
                i = n
            }
            if let kind = literalKind {
                literals.append(SQLLiteral(start: Int32(start), end: Int32(i), kind: kind))
                shape.append(marker)
                shape.append(kind.rawValue)
            }
            if quoted, previousWasQuoted, gapNewline, literals.count >= 2 {
                // 'a'<newline>'b' is one literal to PostgreSQL: its value is not decoded, and such texts
                // stay out of the cache.
                cacheable = false
                literals[literals.count - 2].kind = .continued
                literals[literals.count - 1].kind = .continued
            }
            previousWasQuoted = quoted
            gapNewline = false
        }
        return LexedSQL(shape: shape, literals: literals, cacheable: cacheable, leadingEnd: leadingEnd)
    }

    /// A string prefix at `i` (`E'`, `B'`, `X'`, `N'`, `U&'`, or `U&"` for an identifier, kind `nil`):
    /// the literal kind and where the quoted body starts.
    static func prefixedQuote(_ b: UnsafeBufferPointer<UInt8>, at i: Int) -> (SQLLiteral.Kind?, Int)? {
        let n = b.count
        guard i + 1 < n else { return nil }
        let letter = b[i] | 0x20
        if b[i + 1] == UInt8(ascii: "'") {
            switch letter {
            case UInt8(ascii: "e"): return (.escapeString, i + 2)
            case UInt8(ascii: "b"): return (.bitString, i + 2)
            case UInt8(ascii: "x"): return (.hexString, i + 2)
            case UInt8(ascii: "n"): return (.nationalString, i + 2)
            default: return nil
            }
        }
        guard letter == UInt8(ascii: "u"), b[i + 1] == UInt8(ascii: "&"), i + 2 < n else { return nil }
        if b[i + 2] == UInt8(ascii: "'") { return (.unicodeString, i + 3) }
        if b[i + 2] == UInt8(ascii: "\"") { return (nil, i + 3) }
        return nil
    }

    /// Skips a quoted body starting after the opening quote; returns the index after the closing quote,
    /// or `count + 1` when unterminated. A doubled quote stands for one.
    static func skipQuoted(
        _ b: UnsafeBufferPointer<UInt8>, from: Int, backslashEscapes: Bool, quote: UInt8 = UInt8(ascii: "'")
    ) -> Int {
        var i = from
        let n = b.count
        while i < n {
            let c = b[i]
            if backslashEscapes, c == UInt8(ascii: "\\") {
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
        return n + 1
    }

    /// For the block comment opening (`/*`) at `from`, nested as PostgreSQL nests them: the index after its
    /// close, or `count + 1` when it is not closed.
    static func skipBlockComment(_ b: UnsafeBufferPointer<UInt8>, from: Int) -> Int {
        let n = b.count
        var depth = 1
        var i = from + 2
        while i < n {
            if b[i] == UInt8(ascii: "/"), i + 1 < n, b[i + 1] == UInt8(ascii: "*") {
                depth += 1
                i += 2
            } else if b[i] == UInt8(ascii: "*"), i + 1 < n, b[i + 1] == UInt8(ascii: "/") {
                depth -= 1
                i += 2
                if depth == 0 { return i }
            } else {
                i += 1
            }
        }
        return n + 1
    }

    /// For `$tag$` at `from`, the index after the opening delimiter; `nil` when it is not one.
    static func dollarTagEnd(_ b: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
        var i = from + 1
        let n = b.count
        if i < n, b[i] == UInt8(ascii: "$") { return i + 1 }
        guard i < n, isIdentStart(b[i]) else { return nil }
        while i < n, isIdentStart(b[i]) || isDigit(b[i]) { i += 1 }
        return i < n && b[i] == UInt8(ascii: "$") ? i + 1 : nil
    }

    static func skipDollarBody(_ b: UnsafeBufferPointer<UInt8>, tag: Range<Int>, from: Int) -> Int {
        let n = b.count
        let tagLength = tag.count
        var i = from
        while i + tagLength <= n {
            if b[i] == UInt8(ascii: "$") {
                var match = true
                for k in 0..<tagLength where b[i + k] != b[tag.lowerBound + k] {
                    match = false
                    break
                }
                if match { return i + tagLength }
            }
            i += 1
        }
        return n + 1
    }

    /// PostgreSQL 15 numbers: `digits[.digits][e[+-]digits]`, `.digits[...]`; `1..2` is `1` then `..`.
    static func skipNumber(_ b: UnsafeBufferPointer<UInt8>, from: Int) -> Int {
        let n = b.count
        var i = from
        while i < n, isDigit(b[i]) { i += 1 }
        if i < n, b[i] == UInt8(ascii: "."), !(i + 1 < n && b[i + 1] == UInt8(ascii: ".")) {
            i += 1
            while i < n, isDigit(b[i]) { i += 1 }
        }
        if i < n, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            var j = i + 1
            if j < n, b[j] == UInt8(ascii: "+") || b[j] == UInt8(ascii: "-") { j += 1 }
            if j < n, isDigit(b[j]) {
                while j < n, isDigit(b[j]) { j += 1 }
                i = j
            }
        }
        return i
    }

    @inline(__always) static func isSpace(_ c: UInt8) -> Bool {
        // PostgreSQL 15's `space` class; vertical tab is not in it (a syntax error there).
        c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0C
    }

    @inline(__always) static func isDigit(_ c: UInt8) -> Bool {
        c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")
    }

    @inline(__always) static func isIdentStart(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
            || c == UInt8(ascii: "_") || c >= 0x80
    }

    @inline(__always) static func isIdentContinue(_ c: UInt8) -> Bool {
        isIdentStart(c) || isDigit(c) || c == UInt8(ascii: "$")
    }
}
