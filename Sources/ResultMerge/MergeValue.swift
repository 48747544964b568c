import NIOCore

/// A column value decoded for ordering, equality and grouping, by PostgreSQL's semantics for its type.
///
/// Equal values (in PostgreSQL's sense) are equal here, and hash alike: `1.0` and `1.00` (numeric),
/// `0` and `-0` and all NaNs (floats), `'a'` and `'a  '` (char(n)). Text is compared by the column's
/// collation (see `ValueComparator`); equality is byte equality, as for deterministic collations.
enum MergeValue: Hashable, Sendable {
    case null
    /// int2, int4, int8, oid.
    case integer(Int64)
    case numeric(PGNumeric)
    /// float4/float8 as an order-preserving key (see `floatKey`): -0 is 0, NaN is one value above +Infinity.
    case float(UInt64)
    /// Collated text: text, varchar, char(n) (trailing spaces removed); NUL-terminated when the collation
    /// is a libc locale.
    case text([UInt8])
    /// Byte-ordered values: name, bytea, uuid.
    case bytes([UInt8])
    case bool(Bool)
    /// date (days), time (microseconds), timestamp and timestamptz (microseconds since 2000-01-01 UTC).
    case instant(Int64)

    var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Maps a double to a UInt64 whose unsigned order is PostgreSQL's float order (`float8_cmp`).
    static func floatKey(_ value: Double) -> UInt64 {
        if value.isNaN { return 0xFFF8_0000_0000_0000 }
        let bits = (value == 0 ? 0.0 : value).bitPattern
        return bits & 0x8000_0000_0000_0000 != 0 ? ~bits : bits | 0x8000_0000_0000_0000
    }

    /// The double a `floatKey` stands for (NaN for the NaN key).
    static func double(fromKey key: UInt64) -> Double {
        if key == 0xFFF8_0000_0000_0000 { return .nan }
        return Double(bitPattern: key & 0x8000_0000_0000_0000 != 0 ? key & 0x7FFF_FFFF_FFFF_FFFF : ~key)
    }
}

/// The PostgreSQL types the merger can order, compare and combine, by type OID.
enum ValueKind: Sendable, Hashable {
    case int2, int4, int8, oid
    case numeric
    case float4, float8
    case text, bpchar, name
    case bytea
    case bool
    case date, time, timestamp, timestamptz
    case uuid

    init?(oid: UInt32) {
        switch oid {
        case 16: self = .bool
        case 17: self = .bytea
        case 19: self = .name
        case 20: self = .int8
        case 21: self = .int2
        case 23: self = .int4
        case 25, 1043: self = .text // text, varchar
        case 26: self = .oid
        case 700: self = .float4
        case 701: self = .float8
        case 1042: self = .bpchar
        case 1082: self = .date
        case 1083: self = .time
        case 1114: self = .timestamp
        case 1184: self = .timestamptz
        case 1700: self = .numeric
        case 2950: self = .uuid
        default: return nil
        }
    }

    /// Whether values sort by a collation.
    var isCollatable: Bool {
        self == .text || self == .bpchar
    }

    var isNumeric: Bool {
        switch self {
        case .int2, .int4, .int8, .oid, .numeric, .float4, .float8: return true
        default: return false
        }
    }

    /// A type name for messages.
    static func name(oid: UInt32) -> String {
        switch oid {
        case 16: return "boolean"
        case 17: return "bytea"
        case 18: return "\"char\""
        case 19: return "name"
        case 20: return "bigint"
        case 21: return "smallint"
        case 23: return "integer"
        case 25: return "text"
        case 26: return "oid"
        case 114: return "json"
        case 700: return "real"
        case 701: return "double precision"
        case 790: return "money"
        case 1042: return "character"
        case 1043: return "character varying"
        case 1082: return "date"
        case 1083: return "time"
        case 1114: return "timestamp"
        case 1184: return "timestamp with time zone"
        case 1186: return "interval"
        case 1266: return "time with time zone"
        case 1700: return "numeric"
        case 2950: return "uuid"
        case 3802: return "jsonb"
        default: return "type OID \(oid)"
        }
    }
}

/// Decodes one column's values (text or binary format) into `MergeValue`s.
struct ValueDecoder: Sendable {
    let kind: ValueKind
    let binary: Bool
    /// Text values carry a trailing NUL for strcoll_l.
    let terminateText: Bool
    /// The column's type OID and position, for messages.
    let oid: UInt32
    let column: Int

    func decode(_ value: ByteBuffer?) throws(MergeError) -> MergeValue {
        guard let value else { return .null }
        if let decoded = binary ? decodeBinary(value) : decodeText(value) { return decoded }
        let shown = binary ? "" : ": \"\(String(decoding: value.readableBytesView.prefix(64), as: UTF8.self))\""
        switch kind {
        case .date, .time, .timestamp, .timestamptz:
            throw MergeError.unsupported("comparing \(ValueKind.name(oid: oid)) values across shards in a DateStyle "
                + "other than ISO", detail: "Column \(column + 1) has the value\(shown).", hint: "SET DateStyle = ISO.")
        case .bytea:
            throw MergeError.unsupported("comparing bytea values across shards with bytea_output = escape",
                                         hint: "SET bytea_output = hex.")
        default:
            throw MergeError.internalError("column \(column + 1) (\(ValueKind.name(oid: oid))) has a value ShardGate "
                + "cannot read\(shown)")
        }
    }

    private func decodeText(_ value: ByteBuffer) -> MergeValue? {
        switch kind {
        case .int2, .int4, .int8, .oid:
            // Hot in ORDER BY merges: read the digits in place.
            return value.withUnsafeReadableBytes { Self.parseInteger($0) }.map { .integer($0) }
        default:
            break
        }
        let bytes = Array(value.readableBytesView)
        switch kind {
        case .int2, .int4, .int8, .oid:
            return nil
        case .numeric:
            return PGNumeric(utf8: bytes).map { .numeric($0) }
        case .float8:
            return Self.parseDouble(bytes).map { .float(MergeValue.floatKey($0)) }
        case .float4:
            // Read as float4 (the text is float4's shortest form), then widened exactly.
            return Self.parseDouble(bytes, float4: true).map { .float(MergeValue.floatKey($0)) }
        case .text, .name:
            return kind == .name ? .bytes(bytes) : .text(terminateText ? bytes + [0] : bytes)
        case .bpchar:
            return .text(Self.strippingTrailingSpaces(bytes, terminate: terminateText))
        case .bytea:
            return Self.hexBytea(bytes).map { .bytes($0) }
        case .bool:
            if bytes == [UInt8(ascii: "t")] { return .bool(true) }
            if bytes == [UInt8(ascii: "f")] { return .bool(false) }
            return nil
        case .date:
            return PGDateTime.date(bytes).map { .instant($0) }
        case .time:
            return PGDateTime.time(bytes).map { .instant($0) }
        case .timestamp, .timestamptz:
            return PGDateTime.timestamp(bytes, withZone: kind == .timestamptz).map { .instant($0) }
        case .uuid:
            return Self.uuidText(bytes).map { .bytes($0) }
        }
    }

    private func decodeBinary(_ value: ByteBuffer) -> MergeValue? {
        var buffer = value
        switch kind {
        case .int2:
            guard buffer.readableBytes == 2, let v: Int16 = buffer.readInteger() else { return nil }
            return .integer(Int64(v))
        case .int4:
            guard buffer.readableBytes == 4, let v: Int32 = buffer.readInteger() else { return nil }
            return .integer(Int64(v))
        case .int8:
            guard buffer.readableBytes == 8, let v: Int64 = buffer.readInteger() else { return nil }
            return .integer(v)
        case .oid:
            guard buffer.readableBytes == 4, let v: UInt32 = buffer.readInteger() else { return nil }
            return .integer(Int64(v))
        case .numeric:
            return PGNumeric(binary: value).map { .numeric($0) }
        case .float4:
            guard buffer.readableBytes == 4, let bits: UInt32 = buffer.readInteger() else { return nil }
            return .float(MergeValue.floatKey(Double(Float(bitPattern: bits))))
        case .float8:
            guard buffer.readableBytes == 8, let bits: UInt64 = buffer.readInteger() else { return nil }
            return .float(MergeValue.floatKey(Double(bitPattern: bits)))
        case .text:
            let bytes = Array(value.readableBytesView)
            return .text(terminateText ? bytes + [0] : bytes)
        case .bpchar:
            return .text(Self.strippingTrailingSpaces(Array(value.readableBytesView), terminate: terminateText))
        case .name, .bytea:
            return .bytes(Array(value.readableBytesView))
        case .uuid:
            guard value.readableBytes == 16 else { return nil }
            return .bytes(Array(value.readableBytesView))
        case .bool:
            guard buffer.readableBytes == 1, let b: UInt8 = buffer.readInteger() else { return nil }
            return .bool(b != 0)
        case .date:
            guard buffer.readableBytes == 4, let days: Int32 = buffer.readInteger() else { return nil }
            if days == .max { return .instant(.max) }
            if days == .min { return .instant(.min) }
            return .instant(Int64(days))
        case .time, .timestamp, .timestamptz:
            guard buffer.readableBytes == 8, let micros: Int64 = buffer.readInteger() else { return nil }
            return .instant(micros)
        }
    }

    /// `[-]digits` as PostgreSQL's integer output writes it; nil on anything else or overflow.
    static func parseInteger(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        var i = 0
        let n = bytes.count
        let negative = n > 0 && bytes[0] == UInt8(ascii: "-")
        if negative || (n > 0 && bytes[0] == UInt8(ascii: "+")) { i = 1 }
        guard i < n else { return nil }
        var magnitude: UInt64 = 0
        while i < n {
            let d = bytes[i] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(d))
            if o1 || o2 { return nil }
            magnitude = a
            i += 1
        }
        if negative {
            if magnitude == UInt64(Int64.max) + 1 { return .min }
            return magnitude <= UInt64(Int64.max) ? -Int64(magnitude) : nil
        }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    static func parseDouble(_ bytes: [UInt8], float4: Bool = false) -> Double? {
        switch bytes {
        case Array("NaN".utf8): return .nan
        case Array("Infinity".utf8): return .infinity
        case Array("-Infinity".utf8): return -.infinity
        default:
            let text = String(decoding: bytes, as: UTF8.self)
            return float4 ? Float(text).map { Double($0) } : Double(text)
        }
    }

    static func strippingTrailingSpaces(_ bytes: [UInt8], terminate: Bool) -> [UInt8] {
        var end = bytes.count
        while end > 0, bytes[end - 1] == UInt8(ascii: " ") { end -= 1 }
        var out = Array(bytes[0..<end])
        if terminate { out.append(0) }
        return out
    }

    /// bytea's hex output (`\x0a1b`; the default bytea_output). Escape format is refused.
    static func hexBytea(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "\\"), bytes[1] == UInt8(ascii: "x"), bytes.count % 2 == 0 else {
            return nil
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count / 2 - 1)
        var i = 2
        while i < bytes.count {
            guard let h = hexValue(bytes[i]), let l = hexValue(bytes[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` as its 16 bytes.
    static func uuidText(_ bytes: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        var high: UInt8?
        for c in bytes where c != UInt8(ascii: "-") {
            guard let v = hexValue(c) else { return nil }
            if let h = high {
                out.append(h << 4 | v)
                high = nil
            } else {
                high = v
            }
        }
        return out.count == 16 && high == nil ? out : nil
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Orders values of one column: by type, with the column's collation for text.
struct ValueComparator: Sendable {
    /// `nil`: byte order.
    let locale: CollationLocale?

    /// -1, 0 or 1 for two non-null values of the same column.
    func compare(_ a: MergeValue, _ b: MergeValue) -> Int {
        switch (a, b) {
        case (.integer(let x), .integer(let y)): return x == y ? 0 : (x < y ? -1 : 1)
        case (.numeric(let x), .numeric(let y)): return PGNumeric.compare(x, y)
        case (.float(let x), .float(let y)): return x == y ? 0 : (x < y ? -1 : 1)
        case (.text(let x), .text(let y)): return locale?.compare(x, y) ?? compareBytes(x, y)
        case (.bytes(let x), .bytes(let y)): return compareBytes(x, y)
        case (.bool(let x), .bool(let y)): return x == y ? 0 : (!x ? -1 : 1)
        case (.instant(let x), .instant(let y)): return x == y ? 0 : (x < y ? -1 : 1)
        case (.null, .null): return 0
        case (.null, _): return 1
        case (_, .null): return -1
        default:
            // Values of one column always have the same case; a mix is a broken invariant.
            preconditionFailure("comparing values of different kinds: \(a) and \(b)")
        }
    }
}
