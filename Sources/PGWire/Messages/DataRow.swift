import NIOCore

/// DataRow ('D'). The columns stay in one zero-copy slice; `column(_:)` walks to the one asked for.
public struct DataRow: Sendable, Equatable {
    public var columnCount: Int16
    /// The column values as on the wire: for each, an Int32 length (-1 = NULL) and the bytes.
    public var bytes: ByteBuffer

    public init(columnCount: Int16, bytes: ByteBuffer) {
        self.columnCount = columnCount
        self.bytes = bytes
    }

    /// Builds a row from values (nil = NULL).
    public init(values: [ByteBuffer?]) {
        var bytes = ByteBuffer()
        for value in values {
            if let value {
                bytes.writeInteger(Int32(value.readableBytes))
                bytes.writeImmutableBuffer(value)
            } else {
                bytes.writeInteger(Int32(-1))
            }
        }
        self.init(columnCount: Int16(values.count), bytes: bytes)
    }

    public static func decode(from buffer: inout ByteBuffer) throws(PGWireError) -> DataRow {
        guard let count: Int16 = buffer.readInteger(), count >= 0 else {
            throw .malformed(message: "DataRow", reason: "missing or negative column count")
        }
        // Validate the lengths once so that column access later cannot run off the end.
        var probe = buffer
        for _ in 0..<count {
            guard let length: Int32 = probe.readInteger(), length >= -1 else {
                throw .malformed(message: "DataRow", reason: "bad column length")
            }
            if length > 0 {
                guard probe.readableBytes >= Int(length) else {
                    throw .malformed(message: "DataRow", reason: "column overruns message")
                }
                probe.moveReaderIndex(forwardBy: Int(length))
            }
        }
        let bytes = buffer.readSlice(length: buffer.readableBytes - probe.readableBytes)!
        return DataRow(columnCount: count, bytes: bytes)
    }

    /// The value of column `index` (nil = NULL).
    public func column(_ index: Int) -> ByteBuffer? {
        precondition(index >= 0 && index < Int(self.columnCount), "column index out of range")
        var cursor = self.bytes
        for _ in 0..<index {
            let length: Int32 = cursor.readInteger()!
            if length > 0 { cursor.moveReaderIndex(forwardBy: Int(length)) }
        }
        let length: Int32 = cursor.readInteger()!
        return length < 0 ? nil : cursor.readSlice(length: Int(length))
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.columnCount)
        buffer.writeImmutableBuffer(self.bytes)
    }
}
