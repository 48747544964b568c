/// SQL-level `PREPARE`, `EXECUTE` and `DEALLOCATE` as the top statement of a query string.
///
/// ShardGate keeps SQL-level prepared statements itself, per client, rather than on a backend: a pooled
/// backend serves other clients and other shards. `EXECUTE name(args)` becomes the prepared text with each
/// `$n` replaced by its argument (cast to the declared type, if any), and that text is routed like any
/// other statement — by the shard key among the arguments.
public enum SQLPreparedCommand: Sendable, Hashable {
    /// `PREPARE name [(types)] AS statement`.
    case prepare(name: String)
    /// `EXECUTE name [(args)]`; `problem` says why the arguments cannot be substituted, if they cannot.
    case execute(name: String, argumentCount: Int, problem: String?)
    /// `DEALLOCATE [PREPARE] name`, or `DEALLOCATE ALL` (`nil`).
    case deallocate(name: String?)
}

/// The parts of a PREPARE or EXECUTE text ShardGate needs, read with PostgreSQL's token rules (strings,
/// quoted identifiers, dollar quotes and comments are skipped as units).
public enum SQLPreparedText {
    /// `PREPARE name [(types)] AS statement`: the declared type names as written and the statement text
    /// (without trailing semicolons). `nil` when the text is not of that form.
    public static func prepare(_ sql: String) -> (types: [String], statement: String)? {
        var text = sql
        return text.withUTF8 { b -> (types: [String], statement: String)? in
            let tokens = SQLTokens.scan(b)
            // prepare <name> [( ... )] as <statement>
            guard tokens.count >= 4, tokens[0].isWord("prepare", in: b) else { return nil }
            var i = 2
            var types: [String] = []
            if i < tokens.count, tokens[i].isPunctuation("(", in: b) {
                guard let (items, close) = parenthesized(tokens, from: i, in: b) else { return nil }
                types = items
                i = close + 1
            }
            guard i + 1 < tokens.count, tokens[i].isWord("as", in: b) else { return nil }
            let start = tokens[i + 1].range.lowerBound
            var end = tokens[tokens.count - 1].range.upperBound
            var last = tokens.count - 1
            while last > i + 1, tokens[last].isPunctuation(";", in: b) {
                last -= 1
                end = tokens[last].range.upperBound
            }
            return (types, String(decoding: UnsafeBufferPointer(rebasing: b[start..<end]), as: UTF8.self))
        }
    }

    /// `EXECUTE name [(args)]`: the leading comments (a route override) and each argument's text.
    public static func execute(_ sql: String) -> (leading: String, arguments: [String])? {
        var text = sql
        return text.withUTF8 { b -> (leading: String, arguments: [String])? in
            let tokens = SQLTokens.scan(b)
            guard tokens.count >= 2, tokens[0].isWord("execute", in: b) else { return nil }
            let leading = String(decoding: UnsafeBufferPointer(rebasing: b[..<tokens[0].range.lowerBound]), as: UTF8.self)
            guard tokens.count > 2, tokens[2].isPunctuation("(", in: b) else { return (leading, []) }
            guard let (items, _) = parenthesized(tokens, from: 2, in: b) else { return nil }
            return (leading, items)
        }
    }

    /// The highest `$n` in `statement` (0 when it has none).
    public static func parameterCount(_ statement: String) -> Int {
        var text = statement
        return text.withUTF8 { b in
            SQLTokens.scan(b).reduce(0) { highest, token in
                if case .parameter(let number) = token.kind { return max(highest, number) }
                return highest
            }
        }
    }

    /// `statement` with each `$n` replaced by `(argument n)`, cast to declared type n when there is one.
    public static func substitute(_ statement: String, arguments: [String], types: [String]) -> String {
        var text = statement
        return text.withUTF8 { b in
            var out = ""
            out.reserveCapacity(b.count + arguments.reduce(0) { $0 + $1.utf8.count + 16 })
            var copied = 0
            for token in SQLTokens.scan(b) {
                guard case .parameter(let number) = token.kind, number >= 1, number <= arguments.count else { continue }
                out += String(decoding: UnsafeBufferPointer(rebasing: b[copied..<token.range.lowerBound]), as: UTF8.self)
                let argument = arguments[number - 1]
                if number <= types.count {
                    out += "CAST((\(argument)) AS \(types[number - 1]))"
                } else {
                    out += "(\(argument))"
                }
                copied = token.range.upperBound
            }
            out += String(decoding: UnsafeBufferPointer(rebasing: b[copied...]), as: UTF8.self)
            return out
        }
    }

    /// The comma-separated items of the parenthesized list opening at token `open`, as written, and the
    /// index of its closing parenthesis.
    private static func parenthesized(
        _ tokens: [SQLTokens.Token], from open: Int, in b: UnsafeBufferPointer<UInt8>
    ) -> (items: [String], close: Int)? {
        var items: [String] = []
        var depth = 0
        var itemStart: Int?
        var itemEnd = 0
        var i = open
        while i < tokens.count {
            let token = tokens[i]
            if token.isPunctuation("(", in: b) || token.isPunctuation("[", in: b) {
                depth += 1
                if depth == 1 {
                    i += 1
                    continue
                }
            } else if token.isPunctuation(")", in: b) || token.isPunctuation("]", in: b) {
                depth -= 1
                if depth == 0 {
                    if let start = itemStart {
                        items.append(String(decoding: UnsafeBufferPointer(rebasing: b[start..<itemEnd]), as: UTF8.self))
                    } else if !items.isEmpty {
                        return nil  // a trailing comma
                    }
                    return (items, i)
                }
            } else if depth == 1, token.isPunctuation(",", in: b) {
                guard let start = itemStart else { return nil }
                items.append(String(decoding: UnsafeBufferPointer(rebasing: b[start..<itemEnd]), as: UTF8.self))
                itemStart = nil
                i += 1
                continue
            }
            if itemStart == nil { itemStart = token.range.lowerBound }
            itemEnd = token.range.upperBound
            i += 1
        }
        return nil
    }
}

/// Token boundaries of a query text by PostgreSQL 15's scanner rules, for the few places that need
/// more than literals — PREPARE/EXECUTE texts, and cutting a multi-row INSERT (`InsertSplitter`).
/// `SQLLexer` builds the route-cache key on the hot path and keeps no tokens.
enum SQLTokens {
    enum Kind: Equatable {
        /// An unquoted word (keyword or identifier).
        case word
        case quotedIdentifier
        case literal
        /// `$n`.
        case parameter(Int)
        /// Any other single byte (operators come out one byte at a time).
        case punctuation
    }

    struct Token {
        var kind: Kind
        var range: Range<Int>
        /// A quoted token without its closing quote (the range runs to the end of the text).
        var unterminated = false

        func isWord(_ lowercase: StaticString, in b: UnsafeBufferPointer<UInt8>) -> Bool {
            guard kind == .word, range.count == lowercase.utf8CodeUnitCount else { return false }
            let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
            for k in 0..<range.count where b[range.lowerBound + k] | 0x20 != expected[k] { return false }
            return true
        }

        func isPunctuation(_ character: Unicode.Scalar, in b: UnsafeBufferPointer<UInt8>) -> Bool {
            kind == .punctuation && b[range.lowerBound] == UInt8(ascii: character)
        }
    }

    static func scan(_ b: UnsafeBufferPointer<UInt8>) -> [Token] {
        let n = b.count
        var tokens: [Token] = []
        var i = 0
        while i < n {
            let c = b[i]
            let next = i + 1 < n ? b[i + 1] : 0
            if SQLLexer.isSpace(c) {
                i += 1
                continue
            }
            if c == UInt8(ascii: "-"), next == UInt8(ascii: "-") {
                while i < n, b[i] != 0x0A, b[i] != 0x0D { i += 1 }
                continue
            }
            if c == UInt8(ascii: "/"), next == UInt8(ascii: "*") {
                i = min(SQLLexer.skipBlockComment(b, from: i), n)
                continue
            }
            let start = i
            var kind = Kind.punctuation
            switch c {
            case UInt8(ascii: "'"):
                kind = .literal
                i = SQLLexer.skipQuoted(b, from: i + 1, backslashEscapes: false)
            case _ where SQLLexer.isIdentStart(c) && SQLLexer.prefixedQuote(b, at: i) != nil:
                let (literalKind, bodyStart) = SQLLexer.prefixedQuote(b, at: i)!
                if let literalKind {
                    kind = .literal
                    i = SQLLexer.skipQuoted(b, from: bodyStart, backslashEscapes: literalKind == .escapeString)
                } else {
                    kind = .quotedIdentifier
                    i = SQLLexer.skipQuoted(b, from: bodyStart, backslashEscapes: false, quote: UInt8(ascii: "\""))
                }
            case UInt8(ascii: "\""):
                kind = .quotedIdentifier
                i = SQLLexer.skipQuoted(b, from: i + 1, backslashEscapes: false, quote: UInt8(ascii: "\""))
            case UInt8(ascii: "$"):
                if SQLLexer.isDigit(next) {
                    i += 1
                    var number = 0
                    while i < n, SQLLexer.isDigit(b[i]) {
                        number = min(number * 10 + Int(b[i] - UInt8(ascii: "0")), Int(Int32.max))
                        i += 1
                    }
                    kind = .parameter(number)
                } else if let bodyStart = SQLLexer.dollarTagEnd(b, from: i) {
                    kind = .literal
                    i = SQLLexer.skipDollarBody(b, tag: start..<bodyStart, from: bodyStart)
                } else {
                    i += 1
                }
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                kind = .literal
                i = SQLLexer.skipNumber(b, from: i)
            case UInt8(ascii: ".") where SQLLexer.isDigit(next):
                kind = .literal
                i = SQLLexer.skipNumber(b, from: i)
            default:
                if SQLLexer.isIdentStart(c) {
                    kind = .word
                    while i < n, SQLLexer.isIdentContinue(b[i]) { i += 1 }
                } else {
                    i += 1
                }
            }
            let unterminated = i > n
            i = max(min(i, n), start + 1)
            tokens.append(Token(kind: kind, range: start..<i, unterminated: unterminated))
        }
        return tokens
    }
}
