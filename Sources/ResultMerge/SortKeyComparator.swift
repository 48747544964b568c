import NIOCore
import PGWire

/// One resolved ORDER BY key: where its value is, how to read it, and how to order it.
struct ResolvedSortKey {
    let index: Int
    let decoder: ValueDecoder
    let comparator: ValueComparator
    let descending: Bool
    let nullsFirst: Bool
}

/// Compares rows by their decoded sort-key values, with DESC and NULLS FIRST/LAST.
struct SortKeyComparator {
    let keys: [ResolvedSortKey]
    /// Key positions by ascending column index, for decoding a row in one pass.
    private let byColumn: [(column: Int, key: Int)]

    init(keys: [ResolvedSortKey]) {
        self.keys = keys
        byColumn = keys.enumerated().map { ($1.index, $0) }.sorted { $0.column < $1.column }
    }

    var isEmpty: Bool { keys.isEmpty }

    /// The sort-key values of a split row.
    func values(_ columns: RowColumns) throws(MergeError) -> [MergeValue] {
        var values: [MergeValue] = []
        values.reserveCapacity(keys.count)
        for key in keys { values.append(try key.decoder.decode(columns[key.index])) }
        return values
    }

    /// The sort-key values of a row, read in one pass over its bytes (no per-column slices kept).
    func values(_ row: DataRow) throws(MergeError) -> [MergeValue] {
        var values = [MergeValue](repeating: .null, count: keys.count)
        var cursor = row.bytes
        var column = 0
        for (index, key) in byColumn {
            while column < index {
                guard let length: Int32 = cursor.readInteger() else { throw MergeError.internalError("a truncated row") }
                if length > 0 { cursor.moveReaderIndex(forwardBy: Int(length)) }
                column += 1
            }
            guard let length: Int32 = cursor.readInteger() else { throw MergeError.internalError("a truncated row") }
            if length >= 0 {
                guard let slice = cursor.readSlice(length: Int(length)) else {
                    throw MergeError.internalError("a truncated row")
                }
                values[key] = try keys[key].decoder.decode(slice)
            }
            column += 1
        }
        return values
    }

    /// -1, 0, 1: the order of two rows' sort-key values.
    func compare(_ a: [MergeValue], _ b: [MergeValue]) -> Int {
        for (i, key) in keys.enumerated() {
            let x = a[i], y = b[i]
            switch (x.isNull, y.isNull) {
            case (true, true): continue
            case (true, false): return key.nullsFirst ? -1 : 1
            case (false, true): return key.nullsFirst ? 1 : -1
            case (false, false):
                let c = key.comparator.compare(x, y)
                if c != 0 { return key.descending ? -c : c }
            }
        }
        return 0
    }
}

/// Loads libc locales for the collations a merge uses, once each.
struct CollationLoader {
    let defaultCollation: TextCollation
    private var loaded: [String: CollationLocale] = [:]

    init(defaultCollation: TextCollation) {
        self.defaultCollation = defaultCollation
    }

    /// The comparator for values of `kind` in `collation` (the default when nil).
    mutating func comparator(for kind: ValueKind, collation: TextCollation?) throws(MergeError) -> ValueComparator {
        guard kind.isCollatable else { return ValueComparator(locale: nil) }
        let collation = collation ?? defaultCollation
        if collation.isByteOrder { return ValueComparator(locale: nil) }
        if let locale = loaded[collation.name] { return ValueComparator(locale: locale) }
        guard let locale = CollationLocale(name: collation.name) else {
            throw MergeError.unsupported(
                "ordering text in collation \"\(collation.name)\" across shards: the proxy's machine has no such locale",
                hint: "Install the locale where ShardGate runs, or order by COLLATE \"C\".")
        }
        loaded[collation.name] = locale
        return ValueComparator(locale: locale)
    }

    /// Whether text values of `collation` need a trailing NUL (libc comparison).
    func needsTerminator(_ collation: TextCollation?) -> Bool {
        !(collation ?? defaultCollation).isByteOrder
    }

    /// A decoder and comparator for column `index` of type `oid`, or 0A000 naming `purpose`.
    mutating func resolve(
        oid: UInt32, binary: Bool, index: Int, collation: TextCollation?, purpose: String
    ) throws(MergeError) -> (ValueDecoder, ValueComparator) {
        guard let kind = ValueKind(oid: oid) else {
            throw MergeError.unsupported("\(purpose) on a column of type \(ValueKind.name(oid: oid)) across shards",
                                         detail: "Column \(index + 1) of the result has a type ShardGate cannot compare.")
        }
        let decoder = ValueDecoder(kind: kind, binary: binary, terminateText: kind.isCollatable && needsTerminator(collation),
                                   oid: oid, column: index)
        return (decoder, try comparator(for: kind, collation: collation))
    }
}
