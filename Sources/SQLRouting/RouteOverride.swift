/// An operator's routing override, written as a leading comment: `/* shard: s1 */` runs the statement
/// on shard `s1`; `/* shard_key: 42 */` routes it as if its shard key were 42.
///
/// Only comments before the first token count (comments are not in the parse tree, so this reads the
/// leading comment bytes, not the SQL). `--` comments work too; keys are case-insensitive, `:` or `=`
/// separates the value, and a value may be quoted with `'` or `"`.
public enum RouteOverride: Sendable, Hashable {
    /// Run on the shard with this name.
    case shard(String)
    /// Route as if the statement's shard key had this value (in its text form).
    case shardKey(String)

    /// The first override among the comments in `leading` (the bytes before the first token).
    static func parse(_ leading: UnsafeBufferPointer<UInt8>) -> RouteOverride? {
        var i = 0
        let n = leading.count
        while i < n {
            if leading[i] == UInt8(ascii: "/"), i + 1 < n, leading[i + 1] == UInt8(ascii: "*") {
                let j = min(SQLLexer.skipBlockComment(leading, from: i), n)
                if let found = directive(UnsafeBufferPointer(rebasing: leading[(i + 2)..<max(i + 2, j - 2)])) {
                    return found
                }
                i = j
            } else if leading[i] == UInt8(ascii: "-"), i + 1 < n, leading[i + 1] == UInt8(ascii: "-") {
                var j = i + 2
                while j < n, leading[j] != 0x0A, leading[j] != 0x0D { j += 1 }
                if let found = directive(UnsafeBufferPointer(rebasing: leading[(i + 2)..<j])) { return found }
                i = j
            } else {
                i += 1
            }
        }
        return nil
    }

    /// `shard: name` or `shard_key: value` as the whole comment text.
    private static func directive(_ text: UnsafeBufferPointer<UInt8>) -> RouteOverride? {
        let content = String(decoding: text, as: UTF8.self).trimmingSpaces()
        let lower = content.lowercased()
        for (name, isKey) in [("shard_key", true), ("shard", false)] where lower.hasPrefix(name) {
            var rest = content.dropFirst(name.count).drop { $0 == " " || $0 == "\t" }
            guard let separator = rest.first, separator == ":" || separator == "=" else { return nil }
            rest = rest.dropFirst()
            var value = String(rest).trimmingSpaces()
            if value.count >= 2, let first = value.first, first == "'" || first == "\"", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            guard !value.isEmpty else { return nil }
            return isKey ? .shardKey(value) : .shard(value)
        }
        return nil
    }
}

extension String {
    /// Without leading and trailing ASCII whitespace (no Foundation needed).
    func trimmingSpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
