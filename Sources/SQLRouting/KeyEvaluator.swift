import ShardMap

/// Turns key predicates into slot sets, reading literal values from the statement text and bind
/// parameters in text or binary format.
struct KeyEvaluator {
    let analysis: SQLAnalysis
    let parameters: BindParameters
    let slotCount: Int

    enum Outcome {
        /// The value's slots (empty for NULL, which equals nothing).
        case slots(Set<Int>)
        /// Not known here (an expression, a parameter not given, a literal kind not decoded).
        case unknown
        /// A value PostgreSQL's input function rejects.
        case invalid(String)
        /// Bind parameter `$n` was not given.
        case missingParameter(Int)
    }

    /// The slots `predicate` restricts the key to, or `nil` when any slot is possible.
    func slots(_ predicate: KeyPredicate, type: ShardKeyType) -> Set<Int>? {
        switch predicate {
        case .values(let sources):
            var union = Set<Int>()
            for source in sources {
                guard case .slots(let slots) = evaluate(source, type: type) else { return nil }
                union.formUnion(slots)
            }
            return union
        case .all(let parts):
            var result: Set<Int>?
            for part in parts {
                if let slots = slots(part, type: type) { result = result?.intersection(slots) ?? slots }
            }
            return result
        case .any(let parts):
            var union = Set<Int>()
            for part in parts {
                guard let slots = slots(part, type: type) else { return nil }
                union.formUnion(slots)
            }
            return union
        }
    }

    /// The slot of an INSERT row's key; NULL goes to slot 0, as PostgreSQL's hash partitioning does.
    func insertSlot(
        _ source: KeyValueSource?, type: ShardKeyType, table: String, key: String, row: Int
    ) throws(RouteError) -> Int {
        let notConstant = RouteError.unsupported("INSERT into sharded table \"\(table)\" whose shard key \"\(key)\" "
            + "is not a constant or bind parameter (row \(row + 1))")
        guard let source else { throw notConstant }
        switch evaluate(source, type: type) {
        case .slots(let slots):
            return slots.first ?? 0
        case .unknown:
            throw notConstant
        case .missingParameter(let number):
            throw RouteError(sqlState: "08P01", message: "no value was bound for parameter $\(number)")
        case .invalid(let text):
            throw .invalidKey(text, type: type.rawValue)
        }
    }

    func evaluate(_ source: KeyValueSource, type: ShardKeyType) -> Outcome {
        switch source {
        case .null:
            return .slots([])
        case .literal(let index, let negated):
            guard let kind = analysis.literalKind(index), let value = analysis.literalValue(index) else { return .unknown }
            if kind == .number { return number(value, negated: negated, type: type) }
            return slot(literal: value, type: type)
        case .parameter(let number):
            guard let parameter = parameters[number] else { return .missingParameter(number) }
            guard let bytes = parameter.value else { return .slots([]) }
            switch parameter.format {
            case .text: return slot(literal: String(decoding: bytes, as: UTF8.self), type: type)
            case .binary: return binary(bytes[...], typeOID: parameter.typeOID, type: type)
            }
        case .arrayLiteral(let index):
            guard let value = analysis.literalValue(index) else { return .unknown }
            return array(text: value, type: type)
        case .arrayParameter(let number):
            guard let parameter = parameters[number] else { return .missingParameter(number) }
            guard let bytes = parameter.value else { return .slots([]) }
            switch parameter.format {
            case .text:
                return array(text: String(decoding: bytes, as: UTF8.self), type: type)
            case .binary:
                guard let (elementType, elements) = PostgresArray.decodeBinary(bytes) else {
                    return .invalid("binary array")
                }
                var union = Set<Int>()
                for element in elements {
                    guard let element else { continue }
                    guard case .slots(let slots) = binary(element, typeOID: elementType, type: type) else {
                        return .unknown
                    }
                    union.formUnion(slots)
                }
                return .slots(union)
            }
        }
    }

    /// A number literal compared with (or inserted into) a key.
    private func number(_ digits: String, negated: Bool, type: ShardKeyType) -> Outcome {
        let text = negated ? "-" + digits : digits
        switch type {
        case .bigint:
            // Non-integers compare as numeric and never equal a bigint key exactly by text: unknown.
            return SlotHash.parseBigint(text).map { .slots([SlotHash.slot(bigint: $0, slotCount: slotCount)]) }
                ?? .unknown
        case .text:
            // An integer or plain decimal keeps its digits when it becomes text; others (1e3, .5, 007) do not.
            guard Self.isCanonicalNumber(digits), !(negated && digits.allSatisfy { $0 == "0" || $0 == "." }) else {
                return .unknown
            }
            return .slots([SlotHash.slot(text: text, slotCount: slotCount)])
        case .uuid:
            return .unknown
        }
    }

    private static func isCanonicalNumber(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = parts.first, !whole.isEmpty,
              whole.allSatisfy(\.isASCIIDigit), whole == "0" || whole.first != "0" else { return false }
        return parts.count == 1 || (!parts[1].isEmpty && parts[1].allSatisfy(\.isASCIIDigit))
    }

    private func slot(literal: String, type: ShardKeyType) -> Outcome {
        SlotHash.slot(literal: literal, type: type, slotCount: slotCount).map { .slots([$0]) } ?? .invalid(literal)
    }

    private func array(text: String, type: ShardKeyType) -> Outcome {
        guard let elements = PostgresArray.parseText(text.utf8) else { return .invalid(text) }
        var union = Set<Int>()
        for element in elements {
            guard let element else { continue }
            guard let slot = SlotHash.slot(literal: element, type: type, slotCount: slotCount) else {
                return .invalid(element)
            }
            union.insert(slot)
        }
        return .slots(union)
    }

    /// A binary-format value of type `typeOID` (0: inferred from the key type and length).
    private func binary(_ bytes: ArraySlice<UInt8>, typeOID: UInt32, type: ShardKeyType) -> Outcome {
        switch type {
        case .bigint:
            if [TypeOID.text, TypeOID.varchar, TypeOID.name].contains(typeOID) {
                return slot(literal: String(decoding: bytes, as: UTF8.self), type: type)
            }
            guard [0, TypeOID.int2, TypeOID.int4, TypeOID.int8].contains(typeOID) else { return .unknown }
            var value: Int64 = 0
            for byte in bytes { value = value << 8 | Int64(byte) }
            switch bytes.count {
            case 2: value = Int64(Int16(truncatingIfNeeded: value))
            case 4: value = Int64(Int32(truncatingIfNeeded: value))
            case 8: break
            default: return .invalid("binary integer of \(bytes.count) bytes")
            }
            return .slots([SlotHash.slot(bigint: value, slotCount: slotCount)])
        case .text:
            guard [0, TypeOID.text, TypeOID.varchar, TypeOID.name].contains(typeOID) else { return .unknown }
            return .slots([bytes.withUnsafeBytes { SlotHash.slot(textUTF8: $0, slotCount: slotCount) }])
        case .uuid:
            guard [0, TypeOID.uuid].contains(typeOID) else { return .unknown }
            guard bytes.count == 16 else { return .invalid("binary uuid of \(bytes.count) bytes") }
            let hash = SlotHash.uuidHashExtended(Array(bytes), seed: SlotHash.seed)
            return .slots([SlotHash.slot(hash: hash, slotCount: slotCount)])
        }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool {
        isASCII && isNumber
    }
}
