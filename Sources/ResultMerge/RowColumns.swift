import NIOCore
import PGWire

/// The columns of one DataRow as zero-copy slices, found in one pass over the row.
struct RowColumns {
    private(set) var values: [ByteBuffer?]

    /// Splits `row`; fails when its column count is not `expected`.
    init(_ row: DataRow, expected: Int) throws(MergeError) {
        guard Int(row.columnCount) == expected else {
            throw MergeError.internalError("a shard sent a row of \(row.columnCount) columns for a result of \(expected)")
        }
        var cursor = row.bytes
        var values: [ByteBuffer?] = []
        values.reserveCapacity(expected)
        for _ in 0..<expected {
            // DataRow.decode validated the lengths.
            guard let length: Int32 = cursor.readInteger() else {
                throw MergeError.internalError("a shard sent a truncated row")
            }
            if length < 0 {
                values.append(nil)
            } else {
                guard let slice = cursor.readSlice(length: Int(length)) else {
                    throw MergeError.internalError("a shard sent a truncated row")
                }
                values.append(slice)
            }
        }
        self.values = values
    }

    subscript(index: Int) -> ByteBuffer? {
        values[index]
    }

    /// The bytes the first `count` columns take in `row` (their length words included).
    static func prefixLength(of row: DataRow, columns count: Int) -> Int {
        var cursor = row.bytes
        let start = cursor.readerIndex
        for _ in 0..<count {
            guard let length: Int32 = cursor.readInteger() else { break }
            if length > 0 { cursor.moveReaderIndex(forwardBy: Int(length)) }
        }
        return cursor.readerIndex - start
    }

    /// `row` without its last columns (zero-copy when nothing is removed or the prefix can be sliced).
    static func visiblePrefix(of row: DataRow, visible: Int) -> DataRow {
        guard visible < Int(row.columnCount) else { return row }
        let length = prefixLength(of: row, columns: visible)
        let bytes = row.bytes.getSlice(at: row.bytes.readerIndex, length: length) ?? ByteBuffer()
        return DataRow(columnCount: Int16(visible), bytes: bytes)
    }
}

/// The columns of a result as the merge sees them, fixed by the first shard's RowDescription.
struct MergeLayout {
    /// Columns in the shards' rows (visible and hidden).
    let columnCount: Int
    /// Columns the client sees (the first ones).
    let visibleCount: Int
    /// Each column's type OID in the shards' rows.
    let shardTypes: [UInt32]
    /// Each column's format in the shards' rows (and to the client): binary when true.
    let binary: [Bool]

    init(description: RowDescription, hidden: Int) throws(MergeError) {
        columnCount = description.columns.count
        guard hidden >= 0, hidden <= columnCount else {
            throw MergeError.internalError("the shards' result has \(columnCount) columns, fewer than the \(hidden) hidden ones")
        }
        visibleCount = columnCount - hidden
        shardTypes = description.columns.map(\.dataTypeOID)
        binary = description.columns.map { $0.format == 1 }
    }

    /// The 0-based index of `column`, or an internal error.
    func index(_ column: MergeColumn) throws(MergeError) -> Int {
        guard let index = column.index(columnCount: columnCount) else {
            throw MergeError.internalError("column \(column) is not in the shards' result of \(columnCount) columns")
        }
        return index
    }
}
