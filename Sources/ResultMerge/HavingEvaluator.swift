import NIOCore

/// HAVING, resolved against the merged groups' column types: evaluated with SQL's three-valued logic.
struct HavingEvaluator {
    indirect enum Node {
        case and([Node])
        case or([Node])
        case not(Node)
        case compare(MergeComparison, Operand, Operand)
        case isNull(Operand, negated: Bool)
        case value(Operand)
        case constant(Bool?)
    }

    enum Operand {
        case column(Int, ValueDecoder)
        case constant(MergeValue)
    }

    let root: Node
    let comparator: ValueComparator

    /// Resolves `predicate`; `types` are the merged columns' type OIDs, `binary` their formats.
    init(
        _ predicate: MergePredicate, layout: MergeLayout, types: [UInt32], loader: inout CollationLoader
    ) throws(MergeError) {
        comparator = try loader.comparator(for: .text, collation: nil)
        let terminate = loader.needsTerminator(nil)
        root = try Self.resolve(predicate, layout: layout, types: types, terminate: terminate)
    }

    private static func resolve(
        _ p: MergePredicate, layout: MergeLayout, types: [UInt32], terminate: Bool
    ) throws(MergeError) -> Node {
        func sub(_ q: MergePredicate) throws(MergeError) -> Node {
            try resolve(q, layout: layout, types: types, terminate: terminate)
        }
        switch p {
        case .and(let items):
            var nodes: [Node] = []
            for item in items { nodes.append(try sub(item)) }
            return .and(nodes)
        case .or(let items):
            var nodes: [Node] = []
            for item in items { nodes.append(try sub(item)) }
            return .or(nodes)
        case .not(let inner):
            return .not(try sub(inner))
        case .constant(let b):
            return .constant(b)
        case .isNull(let operand, let negated):
            return .isNull(try resolve(operand, other: nil, layout: layout, types: types, terminate: terminate),
                           negated: negated)
        case .value(let operand):
            let resolved = try resolve(operand, other: nil, layout: layout, types: types, terminate: terminate)
            if case .column(_, let decoder) = resolved, decoder.kind != .bool {
                throw MergeError.unsupported("a HAVING condition that is not boolean")
            }
            return .value(resolved)
        case .compare(let op, let a, let b):
            let otherKindOfA = try kind(of: b, layout: layout, types: types)
            let otherKindOfB = try kind(of: a, layout: layout, types: types)
            let left = try resolve(a, other: otherKindOfA, layout: layout, types: types, terminate: terminate)
            let right = try resolve(b, other: otherKindOfB, layout: layout, types: types, terminate: terminate)
            return .compare(op, left, right)
        }
    }

    /// The value kind of a column operand (nil for constants).
    private static func kind(of operand: MergeOperand, layout: MergeLayout, types: [UInt32]) throws(MergeError) -> ValueKind? {
        guard case .column(let column) = operand else { return nil }
        let index = try layout.index(column)
        guard let kind = ValueKind(oid: types[index]) else {
            throw MergeError.unsupported("HAVING on a value of type \(ValueKind.name(oid: types[index])) across shards")
        }
        return kind
    }

    private static func resolve(
        _ operand: MergeOperand, other: ValueKind?, layout: MergeLayout, types: [UInt32], terminate: Bool
    ) throws(MergeError) -> Operand {
        switch operand {
        case .column(let column):
            let index = try layout.index(column)
            guard let kind = ValueKind(oid: types[index]) else {
                throw MergeError.unsupported("HAVING on a value of type \(ValueKind.name(oid: types[index])) across shards")
            }
            return .column(index, ValueDecoder(kind: kind, binary: layout.binary[index],
                                               terminateText: kind.isCollatable && terminate, oid: types[index],
                                               column: index))
        case .constant(let constant):
            return .constant(try value(of: constant, other: other, terminate: terminate))
        }
    }

    /// A constant as a value; untyped string literals take the other side's type, as in PostgreSQL.
    private static func value(of constant: MergeConstant, other: ValueKind?, terminate: Bool) throws(MergeError) -> MergeValue {
        switch constant {
        case .null:
            return .null
        case .boolean(let b):
            return .bool(b)
        case .number(let text):
            guard let n = PGNumeric(text: text) else { throw MergeError.internalError("bad numeric literal \(text)") }
            if let other, other == .float4 || other == .float8 { return .float(MergeValue.floatKey(n.doubleValue)) }
            return .numeric(n)
        case .string(let text):
            return try typed(Array(text.utf8), binary: false, kind: other ?? .text, terminate: terminate,
                             literal: text)
        case .parameter(let oid, let binary, let bytes):
            guard let bytes else { return .null }
            if oid == 0 {
                guard !binary else { throw MergeError.unsupported("a binary HAVING parameter of unspecified type") }
                return try typed(bytes, binary: false, kind: other ?? .text, terminate: terminate,
                                 literal: String(decoding: bytes, as: UTF8.self))
            }
            guard let kind = ValueKind(oid: oid) else {
                throw MergeError.unsupported("a HAVING parameter of type \(ValueKind.name(oid: oid)) across shards")
            }
            let value = try typed(bytes, binary: binary, kind: kind, terminate: terminate, literal: "")
            if let other, other == .float4 || other == .float8, case .numeric(let n) = value {
                return .float(MergeValue.floatKey(n.doubleValue))
            }
            return value
        }
    }

    private static func typed(
        _ bytes: [UInt8], binary: Bool, kind: ValueKind, terminate: Bool, literal: String
    ) throws(MergeError) -> MergeValue {
        let decoder = ValueDecoder(kind: kind, binary: binary, terminateText: kind.isCollatable && terminate, oid: 0,
                                   column: 0)
        do {
            return try decoder.decode(ByteBuffer(bytes: bytes))
        } catch {
            throw MergeError.unsupported(
                "comparing a value of type \(kind) with the constant '\(literal)' in HAVING across shards",
                hint: "Write the constant as a value of the compared column's own type.")
        }
    }

    // MARK: - Evaluation

    /// Whether the merged group with these column values passes.
    func passes(_ values: [ByteBuffer?]) throws(MergeError) -> Bool {
        try evaluate(root, values) == true
    }

    private func evaluate(_ node: Node, _ values: [ByteBuffer?]) throws(MergeError) -> Bool? {
        switch node {
        case .constant(let b):
            return b
        case .and(let items):
            var result: Bool? = true
            for item in items {
                switch try evaluate(item, values) {
                case false?: return false
                case nil: result = nil
                case true?: break
                }
            }
            return result
        case .or(let items):
            var result: Bool? = false
            for item in items {
                switch try evaluate(item, values) {
                case true?: return true
                case nil: result = nil
                case false?: break
                }
            }
            return result
        case .not(let inner):
            return try evaluate(inner, values).map { !$0 }
        case .isNull(let operand, let negated):
            let isNull = try value(operand, values).isNull
            return negated ? !isNull : isNull
        case .value(let operand):
            switch try value(operand, values) {
            case .bool(let b): return b
            case .null: return nil
            default: throw MergeError.unsupported("a HAVING condition that is not boolean")
            }
        case .compare(let op, let a, let b):
            let x = try value(a, values), y = try value(b, values)
            if x.isNull || y.isNull { return nil }
            guard let order = compareMixed(x, y) else {
                throw MergeError.unsupported("a HAVING comparison between values of different types across shards")
            }
            switch op {
            case .equal: return order == 0
            case .notEqual: return order != 0
            case .less: return order < 0
            case .lessOrEqual: return order <= 0
            case .greater: return order > 0
            case .greaterOrEqual: return order >= 0
            }
        }
    }

    private func value(_ operand: Operand, _ values: [ByteBuffer?]) throws(MergeError) -> MergeValue {
        switch operand {
        case .constant(let v): return v
        case .column(let index, let decoder): return try decoder.decode(values[index])
        }
    }

    /// Compares two non-null values, promoting integers to numeric and numbers to float8 as PostgreSQL's
    /// operators do; nil when the kinds cannot be compared.
    func compareMixed(_ a: MergeValue, _ b: MergeValue) -> Int? {
        switch (a, b) {
        case (.integer(let x), .numeric(let y)): return PGNumeric.compare(PGNumeric(x), y)
        case (.numeric(let x), .integer(let y)): return PGNumeric.compare(x, PGNumeric(y))
        case (.float(let x), .integer(let y)): return Self.order(x, MergeValue.floatKey(Double(y)))
        case (.integer(let x), .float(let y)): return Self.order(MergeValue.floatKey(Double(x)), y)
        case (.float(let x), .numeric(let y)): return Self.order(x, MergeValue.floatKey(y.doubleValue))
        case (.numeric(let x), .float(let y)): return Self.order(MergeValue.floatKey(x.doubleValue), y)
        case (.integer, .integer), (.numeric, .numeric), (.float, .float), (.text, .text), (.bytes, .bytes),
             (.bool, .bool), (.instant, .instant):
            return comparator.compare(a, b)
        default:
            return nil
        }
    }

    private static func order(_ x: UInt64, _ y: UInt64) -> Int {
        x == y ? 0 : (x < y ? -1 : 1)
    }
}
