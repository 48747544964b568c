/// libpg_query's JSON parse tree, read in place as a flat tape: one entry per JSON value and per object
/// key, in document order, each knowing where its subtree ends.
///
/// Purpose-built for the analyzer: no general JSON model, no allocation per node, and strings are
/// decoded only when the analyzer asks for one. The bytes are borrowed from libpg_query's result, so a
/// tree lives only inside `PgQueryParser.withParseTree`.
struct ParseTree {
    enum Kind: UInt8 {
        case object, array, string, number, bool, null
    }

    struct Entry {
        var kind: Kind
        /// Strings: whether the raw bytes contain a backslash escape. Bools: the value.
        var flag: Bool
        /// Strings and numbers: the raw byte range (without the quotes).
        var start: Int32
        var end: Int32
        /// The index of the entry after this value's subtree.
        var next: Int32
    }

    let bytes: UnsafeBufferPointer<UInt8>
    private(set) var entries: [Entry] = []

    /// Reads a JSON document; `nil` if it is not well formed (libpg_query always writes well-formed JSON).
    init?(json: UnsafeBufferPointer<UInt8>) {
        bytes = json
        entries.reserveCapacity(json.count / 10)
        guard scan() else { return nil }
    }

    private mutating func scan() -> Bool {
        var open: [Int] = []
        open.reserveCapacity(32)
        var i = 0
        let n = bytes.count
        while i < n {
            let c = bytes[i]
            switch c {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                open.append(entries.count)
                entries.append(Entry(kind: c == UInt8(ascii: "{") ? .object : .array, flag: false,
                                     start: Int32(i), end: 0, next: 0))
                i += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard let top = open.popLast() else { return false }
                entries[top].next = Int32(entries.count)
                entries[top].end = Int32(i + 1)
                i += 1
            case UInt8(ascii: "\""):
                var j = i + 1
                var escaped = false
                while j < n, bytes[j] != UInt8(ascii: "\"") {
                    if bytes[j] == UInt8(ascii: "\\") {
                        escaped = true
                        j += 1
                    }
                    j += 1
                }
                guard j < n else { return false }
                entries.append(Entry(kind: .string, flag: escaped, start: Int32(i + 1), end: Int32(j),
                                     next: Int32(entries.count + 1)))
                i = j + 1
            case UInt8(ascii: ","), UInt8(ascii: ":"), UInt8(ascii: " "), UInt8(ascii: "\n"),
                 UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                i += 1
            case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                var j = i
                while j < n, bytes[j] >= UInt8(ascii: "a"), bytes[j] <= UInt8(ascii: "z") { j += 1 }
                entries.append(Entry(kind: c == UInt8(ascii: "n") ? .null : .bool, flag: c == UInt8(ascii: "t"),
                                     start: Int32(i), end: Int32(j), next: Int32(entries.count + 1)))
                i = j
            default:
                var j = i
                while j < n, Self.isNumberByte(bytes[j]) { j += 1 }
                guard j > i else { return false }
                entries.append(Entry(kind: .number, flag: false, start: Int32(i), end: Int32(j),
                                     next: Int32(entries.count + 1)))
                i = j
            }
        }
        return open.isEmpty && !entries.isEmpty
    }

    private static func isNumberByte(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+")
            || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
    }

    // MARK: - Navigation

    /// The root value.
    var root: Int { 0 }

    func kind(_ i: Int) -> Kind { entries[i].kind }

    /// The index after `i`'s subtree.
    func next(_ i: Int) -> Int { Int(entries[i].next) }

    /// The value of member `name` of object `object`, if present.
    func member(_ object: Int, _ name: StaticString) -> Int? {
        guard entries[object].kind == .object else { return nil }
        var key = object + 1
        let end = next(object)
        while key < end {
            if equals(key, name) { return key + 1 }
            key = next(key + 1)
        }
        return nil
    }

    /// The members of object `object` as (key entry, value entry) pairs.
    func members(_ object: Int) -> MemberSequence {
        MemberSequence(tree: self, start: object + 1, end: entries[object].kind == .object ? next(object) : object + 1)
    }

    /// The elements of array `array` (nothing when `array` is not an array).
    func elements(_ array: Int) -> ElementSequence {
        ElementSequence(tree: self, start: array + 1, end: entries[array].kind == .array ? next(array) : array + 1)
    }

    /// The elements of the array member `name` of `object` (nothing when absent).
    func elements(_ object: Int, _ name: StaticString) -> ElementSequence {
        guard let array = member(object, name) else { return ElementSequence(tree: self, start: 0, end: 0) }
        return elements(array)
    }

    /// For a node wrapper `{"SelectStmt": {...}}`: the type name's key entry and the body.
    func node(_ i: Int) -> (typeKey: Int, body: Int)? {
        guard entries[i].kind == .object, next(i) > i + 1 else { return nil }
        let body = i + 2
        guard next(body) == next(i) else { return nil }
        return (i + 1, body)
    }

    /// Whether string entry `i` holds exactly `name` (no escapes considered: names have none).
    func equals(_ i: Int, _ name: StaticString) -> Bool {
        let e = entries[i]
        guard e.kind == .string, Int(e.end - e.start) == name.utf8CodeUnitCount else { return false }
        let base = bytes.baseAddress! + Int(e.start)
        for k in 0..<name.utf8CodeUnitCount where base[k] != name.utf8Start[k] { return false }
        return true
    }

    /// The decoded text of string entry `i`.
    func string(_ i: Int) -> String {
        let e = entries[i]
        let raw = UnsafeBufferPointer(rebasing: bytes[Int(e.start)..<Int(e.end)])
        guard e.flag else { return String(decoding: raw, as: UTF8.self) }
        return Self.unescape(raw)
    }

    /// The text of string member `name`, if present.
    func string(_ object: Int, _ name: StaticString) -> String? {
        guard let v = member(object, name), entries[v].kind == .string else { return nil }
        return string(v)
    }

    /// The integer member `name` (protobuf JSON omits zero, so absent means 0 for numbers).
    func int(_ object: Int, _ name: StaticString) -> Int? {
        guard let v = member(object, name), entries[v].kind == .number else { return nil }
        var value = 0
        var negative = false
        for k in Int(entries[v].start)..<Int(entries[v].end) {
            let c = bytes[k]
            if c == UInt8(ascii: "-") { negative = true; continue }
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            value = value &* 10 &+ Int(c &- UInt8(ascii: "0"))
        }
        return negative ? -value : value
    }

    /// The bool member `name` (absent means false).
    func bool(_ object: Int, _ name: StaticString) -> Bool {
        guard let v = member(object, name), entries[v].kind == .bool else { return false }
        return entries[v].flag
    }

    private static func unescape(_ raw: UnsafeBufferPointer<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        var pendingHigh: UInt32?
        while i < raw.count {
            let c = raw[i]
            guard c == UInt8(ascii: "\\"), i + 1 < raw.count else {
                out.append(c)
                i += 1
                continue
            }
            let e = raw[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard i + 4 <= raw.count else { return String(decoding: out, as: UTF8.self) }
                var v: UInt32 = 0
                for k in 0..<4 { v = v << 4 | UInt32(hexValue(raw[i + k]) ?? 0) }
                i += 4
                if (0xD800...0xDBFF).contains(v) {
                    pendingHigh = v
                    continue
                }
                if (0xDC00...0xDFFF).contains(v), let high = pendingHigh {
                    v = 0x10000 + ((high - 0xD800) << 10) + (v - 0xDC00)
                }
                pendingHigh = nil
                if let scalar = Unicode.Scalar(v) { UTF8.encode(scalar) { out.append($0) } }
            default: out.append(e)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    struct MemberSequence: Sequence, IteratorProtocol {
        let tree: ParseTree
        var start: Int
        let end: Int
        mutating func next() -> (key: Int, value: Int)? {
            guard start < end else { return nil }
            let key = start
            start = tree.next(key + 1)
            return (key, key + 1)
        }
    }

    struct ElementSequence: Sequence, IteratorProtocol {
        let tree: ParseTree
        var start: Int
        let end: Int
        mutating func next() -> Int? {
            guard start < end else { return nil }
            let element = start
            start = tree.next(element)
            return element
        }
    }
}
