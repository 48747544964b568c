import NIOCore

/// RowDescription ('T'): the columns of the rows that follow.
public struct RowDescription: Sendable, Equatable {
    public struct Column: Sendable, Equatable {
        public var name: String
        public var tableOID: UInt32
        public var columnAttributeNumber: Int16
        public var dataTypeOID: UInt32
        public var dataTypeSize: Int16
        public var dataTypeModifier: Int32
        /// 0 = text, 1 = binary.
        public var format: Int16

        public init(name: String, tableOID: UInt32 = 0, columnAttributeNumber: Int16 = 0, dataTypeOID: UInt32,
                    dataTypeSize: Int16, dataTypeModifier: Int32 = -1, format: Int16 = 0) {
            self.name = name
            self.tableOID = tableOID
            self.columnAttributeNumber = columnAttributeNumber
            self.dataTypeOID = dataTypeOID
            self.dataTypeSize = dataTypeSize
            self.dataTypeModifier = dataTypeModifier
            self.format = format
        }
    }

    public var columns: [Column]

    public init(columns: [Column]) {
        self.columns = columns
    }

    public static func decode(from buffer: inout ByteBuffer) throws(PGWireError) -> RowDescription {
        guard let count: Int16 = buffer.readInteger(), count >= 0 else {
            throw .malformed(message: "RowDescription", reason: "missing or negative column count")
        }
        var columns: [Column] = []
        // A column takes at least 19 bytes on the wire; never reserve more than the message can hold.
        columns.reserveCapacity(min(Int(count), buffer.readableBytes / 19))
        for _ in 0..<count {
            guard let name = buffer.readNullTerminatedString(),
                  let (table, attribute, type, size, modifier, format) = buffer.readMultipleIntegers(
                      as: (UInt32, Int16, UInt32, Int16, Int32, Int16).self)
            else {
                throw .malformed(message: "RowDescription", reason: "truncated column")
            }
            columns.append(Column(name: name, tableOID: table, columnAttributeNumber: attribute, dataTypeOID: type,
                                  dataTypeSize: size, dataTypeModifier: modifier, format: format))
        }
        return RowDescription(columns: columns)
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(Int16(self.columns.count))
        for column in self.columns {
            buffer.writeNullTerminatedString(column.name)
            buffer.writeMultipleIntegers(column.tableOID, column.columnAttributeNumber, column.dataTypeOID,
                                         column.dataTypeSize, column.dataTypeModifier, column.format)
        }
    }
}
