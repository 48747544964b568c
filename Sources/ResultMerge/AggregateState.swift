import NIOCore

/// How one aggregate column is read from the shards' rows and written to the client, fixed when the
/// first RowDescription arrives.
struct ResolvedAggregate {
    enum Input {
        /// count: the shards' int8 counts.
        case count
        /// sum with the shards' sum type.
        case sum(ValueKind)
        /// avg over integers or numeric: the shards' sum (int8 or numeric) and count.
        case avgNumeric(sum: Int, count: Int, sumKind: ValueKind)
        /// avg over float8: the shards' float8 sum and count.
        case avgFloat8(sum: Int, count: Int)
        /// avg over float4: the shards' float8 avg (the column itself) times their count (PostgreSQL sums
        /// float4 in float8 for avg; the shards' float4 `sum` would lose that precision).
        case avgFloat4(count: Int)
        /// min / max by the column's order.
        case extreme(isMax: Bool, decoder: ValueDecoder, comparator: ValueComparator)
        case boolAnd
        case boolOr
        /// count/sum/avg DISTINCT: the argument's values (of this kind).
        case distinct(MergeAggregateFunction, ValueKind, ValueDecoder)
    }

    /// The column the aggregate's result is in (and, for DISTINCT, the argument's values).
    let index: Int
    let input: Input
    /// The result's type OID, size and format as the client sees them.
    let outputType: UInt32
    let outputSize: Int16
    let binary: Bool
    let outputName: String?

    func initialState() -> AggregateState {
        switch input {
        case .count: return .count(0)
        case .sum(let kind):
            switch kind {
            case .int8: return .sumInteger(nil)
            case .float4: return .sumFloat4(nil)
            case .float8: return .sumFloat8(nil)
            default: return .sumNumeric(nil)
            }
        case .avgNumeric: return .avgNumeric(sum: .zero, count: 0)
        case .avgFloat8, .avgFloat4: return .avgFloat(sum: 0, count: 0)
        case .extreme: return .extreme(nil)
        case .boolAnd, .boolOr: return .bool(nil)
        case .distinct: return .distinct([])
        }
    }
}

/// One aggregate's running value within one group.
enum AggregateState {
    case count(Int64)
    case sumInteger(Int64?)
    case sumNumeric(PGNumeric?)
    case sumFloat8(Double?)
    case sumFloat4(Float?)
    case avgNumeric(sum: PGNumeric, count: Int64)
    case avgFloat(sum: Double, count: Int64)
    /// The winning value and its bytes as the shard sent them.
    case extreme((value: MergeValue, bytes: ByteBuffer)?)
    case bool(Bool?)
    case distinct(Set<MergeValue>)

    /// Folds one shard row's partial result in; returns the bytes of memory newly held.
    mutating func fold(_ aggregate: ResolvedAggregate, _ row: RowColumns, binary formats: [Bool]) throws(MergeError) -> Int {
        let value = row[aggregate.index]
        let binary = formats[aggregate.index]
        switch (self, aggregate.input) {
        case (.count(let n), .count):
            guard let v = value else { return 0 }
            self = .count(n &+ (try Self.int64(v, binary: binary, kind: .int8)))
        case (.sumInteger(let s), .sum):
            guard let v = value else { return 0 }
            let x = try Self.int64(v, binary: binary, kind: .int8)
            guard let s else { self = .sumInteger(x); return 0 }
            let (r, overflow) = s.addingReportingOverflow(x)
            if overflow { throw MergeError.outOfRange("bigint out of range") }
            self = .sumInteger(r)
        case (.sumNumeric(let s), .sum(let kind)):
            guard let v = value else { return 0 }
            let x = try Self.numeric(v, binary: binary, kind: kind)
            self = .sumNumeric(s.map { $0 + x } ?? x)
            return 16 + x.digits.count * 2
        case (.sumFloat8(let s), .sum):
            guard let v = value else { return 0 }
            let x = try Self.double(v, binary: binary, kind: .float8)
            self = .sumFloat8(try s.map { a throws(MergeError) in try Self.addFloat8(a, x) } ?? x)
        case (.sumFloat4(let s), .sum):
            guard let v = value else { return 0 }
            let x = Float(try Self.double(v, binary: binary, kind: .float4))
            self = .sumFloat4(try s.map { a throws(MergeError) in try Self.addFloat4(a, x) } ?? x)
        case (.avgNumeric(let sum, let count), .avgNumeric(let sumIndex, let countIndex, let kind)):
            guard let c = row[countIndex] else { return 0 }
            let n = try Self.int64(c, binary: formats[countIndex], kind: .int8)
            guard n > 0, let s = row[sumIndex] else { return 0 }
            let x = try Self.numeric(s, binary: formats[sumIndex], kind: kind)
            self = .avgNumeric(sum: sum + x, count: count + n)
        case (.avgFloat(let sum, let count), .avgFloat8(let sumIndex, let countIndex)):
            guard let c = row[countIndex] else { return 0 }
            let n = try Self.int64(c, binary: formats[countIndex], kind: .int8)
            guard n > 0, let s = row[sumIndex] else { return 0 }
            let x = try Self.double(s, binary: formats[sumIndex], kind: .float8)
            self = .avgFloat(sum: try Self.addFloat8(sum, x), count: count + n)
        case (.avgFloat(let sum, let count), .avgFloat4(let countIndex)):
            guard let c = row[countIndex] else { return 0 }
            let n = try Self.int64(c, binary: formats[countIndex], kind: .int8)
            guard n > 0, let a = value else { return 0 }
            let average = try Self.double(a, binary: binary, kind: .float8)
            self = .avgFloat(sum: try Self.addFloat8(sum, average * Double(n)), count: count + n)
        case (.extreme(let best), .extreme(let isMax, let decoder, let comparator)):
            guard let bytes = value else { return 0 }
            let candidate = try decoder.decode(bytes)
            if let best {
                let order = comparator.compare(candidate, best.value)
                guard isMax ? order > 0 : order < 0 else { return 0 }
            }
            // Copied: a slice would keep the shard's whole read buffer alive.
            self = .extreme((candidate, ByteBuffer(bytes: bytes.readableBytesView)))
            return bytes.readableBytes + 48
        case (.bool(let b), .boolAnd), (.bool(let b), .boolOr):
            guard let v = value else { return 0 }
            let x = try Self.bool(v, binary: binary)
            guard let b else { self = .bool(x); return 0 }
            if case .boolAnd = aggregate.input { self = .bool(b && x) } else { self = .bool(b || x) }
        case (.distinct(var set), .distinct(_, _, let decoder)):
            guard let v = value else { return 0 }
            let decoded = try decoder.decode(v)
            self = .count(0) // release the set's storage for the in-place insert below
            let inserted = set.insert(decoded).inserted
            self = .distinct(set)
            return inserted ? v.readableBytes + 48 : 0
        default:
            preconditionFailure("aggregate state \(self) does not match its input \(aggregate.input)")
        }
        return 0
    }

    /// The merged result as the client's bytes (nil: NULL).
    func finish(_ aggregate: ResolvedAggregate, extraFloatDigits: Int) throws(MergeError) -> ByteBuffer? {
        let binary = aggregate.binary
        switch self {
        case .count(let n):
            return Self.encode(int64: n, binary: binary)
        case .sumInteger(let s):
            return s.map { Self.encode(int64: $0, binary: binary) }
        case .sumNumeric(let s):
            return s.map { Self.encode(numeric: $0, binary: binary) }
        case .sumFloat8(let s):
            return s.map { Self.encode(float8: $0, binary: binary, extraFloatDigits: extraFloatDigits) }
        case .sumFloat4(let s):
            return s.map { Self.encode(float4: $0, binary: binary, extraFloatDigits: extraFloatDigits) }
        case .avgNumeric(let sum, let count):
            guard count > 0 else { return nil }
            return Self.encode(numeric: sum.divided(by: count), binary: binary)
        case .avgFloat(let sum, let count):
            guard count > 0 else { return nil }
            return Self.encode(float8: sum / Double(count), binary: binary, extraFloatDigits: extraFloatDigits)
        case .extreme(let best):
            return best?.bytes
        case .bool(let b):
            return b.map { Self.encode(bool: $0, binary: binary) }
        case .distinct(let set):
            guard case .distinct(let function, let kind, _) = aggregate.input else {
                preconditionFailure("distinct state without a distinct input")
            }
            return try Self.finishDistinct(set, function: function, kind: kind, binary: binary,
                                           extraFloatDigits: extraFloatDigits)
        }
    }

    private static func finishDistinct(
        _ set: Set<MergeValue>, function: MergeAggregateFunction, kind: ValueKind, binary: Bool, extraFloatDigits: Int
    ) throws(MergeError) -> ByteBuffer? {
        if function == .count { return encode(int64: Int64(set.count), binary: binary) }
        guard !set.isEmpty else { return nil }
        switch kind {
        case .float4, .float8:
            var sum = 0.0
            var sum4: Float = 0
            for value in set {
                guard case .float(let key) = value else { continue }
                let x = MergeValue.double(fromKey: key)
                if kind == .float4 { sum4 = try addFloat4(sum4, Float(x)) } else { sum = try addFloat8(sum, x) }
            }
            if function == .avg {
                let total = kind == .float4 ? Double(sum4) : sum
                return encode(float8: total / Double(set.count), binary: binary, extraFloatDigits: extraFloatDigits)
            }
            return kind == .float4 ? encode(float4: sum4, binary: binary, extraFloatDigits: extraFloatDigits)
                                   : encode(float8: sum, binary: binary, extraFloatDigits: extraFloatDigits)
        case .int2, .int4:
            var sum: Int64 = 0
            for value in set {
                guard case .integer(let x) = value else { continue }
                sum += x // int2/int4 values: a set cannot hold enough of them to overflow int8
            }
            if function == .avg { return encode(numeric: PGNumeric(sum).divided(by: Int64(set.count)), binary: binary) }
            return encode(int64: sum, binary: binary)
        default:
            var sum = PGNumeric.zero
            for value in set {
                switch value {
                case .integer(let x): sum = sum + PGNumeric(x)
                case .numeric(let x): sum = sum + x
                default: continue
                }
            }
            if function == .avg { return encode(numeric: sum.divided(by: Int64(set.count)), binary: binary) }
            return encode(numeric: sum, binary: binary)
        }
    }

    // MARK: - Reading partial results

    static func int64(_ value: ByteBuffer, binary: Bool, kind: ValueKind) throws(MergeError) -> Int64 {
        let decoder = ValueDecoder(kind: kind, binary: binary, terminateText: false, oid: 20, column: 0)
        guard case .integer(let x) = try decoder.decode(value) else { throw MergeError.internalError("bad count") }
        return x
    }

    static func numeric(_ value: ByteBuffer, binary: Bool, kind: ValueKind) throws(MergeError) -> PGNumeric {
        let decoder = ValueDecoder(kind: kind, binary: binary, terminateText: false, oid: kind == .int8 ? 20 : 1700, column: 0)
        switch try decoder.decode(value) {
        case .integer(let x): return PGNumeric(x)
        case .numeric(let x): return x
        default: throw MergeError.internalError("bad numeric partial result")
        }
    }

    /// A float partial result exactly (not through the order key, which folds -0 into 0).
    static func double(_ value: ByteBuffer, binary: Bool, kind: ValueKind) throws(MergeError) -> Double {
        var buffer = value
        if binary {
            if kind == .float4, buffer.readableBytes == 4, let bits: UInt32 = buffer.readInteger() {
                return Double(Float(bitPattern: bits))
            }
            if kind == .float8, buffer.readableBytes == 8, let bits: UInt64 = buffer.readInteger() {
                return Double(bitPattern: bits)
            }
        } else if let x = ValueDecoder.parseDouble(Array(value.readableBytesView), float4: kind == .float4) {
            return x
        }
        throw MergeError.internalError("bad float partial result")
    }

    static func bool(_ value: ByteBuffer, binary: Bool) throws(MergeError) -> Bool {
        let decoder = ValueDecoder(kind: .bool, binary: binary, terminateText: false, oid: 16, column: 0)
        guard case .bool(let b) = try decoder.decode(value) else { throw MergeError.internalError("bad boolean") }
        return b
    }

    /// float8 addition as `float8pl`: overflow from finite operands is an error.
    static func addFloat8(_ a: Double, _ b: Double) throws(MergeError) -> Double {
        let r = a + b
        if r.isInfinite, !a.isInfinite, !b.isInfinite { throw MergeError.outOfRange("value out of range: overflow") }
        return r
    }

    static func addFloat4(_ a: Float, _ b: Float) throws(MergeError) -> Float {
        let r = a + b
        if r.isInfinite, !a.isInfinite, !b.isInfinite { throw MergeError.outOfRange("value out of range: overflow") }
        return r
    }

    // MARK: - Writing results

    static func encode(int64 value: Int64, binary: Bool) -> ByteBuffer {
        var buffer = ByteBuffer()
        if binary { buffer.writeInteger(value) } else { buffer.writeString(String(value)) }
        return buffer
    }

    static func encode(numeric value: PGNumeric, binary: Bool) -> ByteBuffer {
        var buffer = ByteBuffer()
        if binary { value.encodeBinary(into: &buffer) } else { buffer.writeString(value.description) }
        return buffer
    }

    static func encode(float8 value: Double, binary: Bool, extraFloatDigits: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        if binary {
            buffer.writeInteger(value.bitPattern)
        } else {
            buffer.writeString(PGFloatFormat.float8(value, extraFloatDigits: extraFloatDigits))
        }
        return buffer
    }

    static func encode(float4 value: Float, binary: Bool, extraFloatDigits: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        if binary {
            buffer.writeInteger(value.bitPattern)
        } else {
            buffer.writeString(PGFloatFormat.float4(value, extraFloatDigits: extraFloatDigits))
        }
        return buffer
    }

    static func encode(bool value: Bool, binary: Bool) -> ByteBuffer {
        var buffer = ByteBuffer()
        if binary { buffer.writeInteger(UInt8(value ? 1 : 0)) } else { buffer.writeString(value ? "t" : "f") }
        return buffer
    }
}
