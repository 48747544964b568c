import NIOCore

/// The fields of an ErrorResponse ('E') or NoticeResponse ('N'): a list of (code, text) pairs.
public struct ErrorNoticeFields: Sendable, Equatable {
    /// Field codes defined by the protocol ("Error and Notice Message Fields").
    public enum Code: UInt8, Sendable {
        case severity = 0x53          // 'S' (localized)
        case severityNonLocalized = 0x56 // 'V'
        case sqlState = 0x43          // 'C'
        case message = 0x4D           // 'M'
        case detail = 0x44            // 'D'
        case hint = 0x48              // 'H'
        case position = 0x50          // 'P'
        case internalPosition = 0x70  // 'p'
        case internalQuery = 0x71     // 'q'
        case context = 0x57           // 'W'
        case schemaName = 0x73        // 's'
        case tableName = 0x74         // 't'
        case columnName = 0x63        // 'c'
        case dataTypeName = 0x64      // 'd'
        case constraintName = 0x6E    // 'n'
        case file = 0x46              // 'F'
        case line = 0x4C              // 'L'
        case routine = 0x52           // 'R'
    }

    /// Fields in wire order; unknown codes are kept, as the protocol asks clients to ignore them.
    public var fields: [(UInt8, String)]

    public init(fields: [(UInt8, String)]) {
        self.fields = fields
    }

    /// An error or notice built by the proxy itself.
    public init(severity: String, sqlState: String, message: String, detail: String? = nil, hint: String? = nil, position: Int? = nil) {
        var fields: [(UInt8, String)] = [
            (Code.severity.rawValue, severity),
            (Code.severityNonLocalized.rawValue, severity),
            (Code.sqlState.rawValue, sqlState),
            (Code.message.rawValue, message),
        ]
        if let detail { fields.append((Code.detail.rawValue, detail)) }
        if let hint { fields.append((Code.hint.rawValue, hint)) }
        if let position { fields.append((Code.position.rawValue, String(position))) }
        self.fields = fields
    }

    public subscript(code: Code) -> String? {
        get { self.fields.first(where: { $0.0 == code.rawValue })?.1 }
        set {
            if let index = self.fields.firstIndex(where: { $0.0 == code.rawValue }) {
                if let newValue { self.fields[index].1 = newValue } else { self.fields.remove(at: index) }
            } else if let newValue {
                self.fields.append((code.rawValue, newValue))
            }
        }
    }

    public var detail: String? {
        get { self[.detail] }
        set { self[.detail] = newValue }
    }

    /// The same fields with another severity (both the localized and the non-localized one), e.g. to
    /// report a backend's ERROR as the FATAL that ends a login.
    public func withSeverity(_ severity: String) -> ErrorNoticeFields {
        ErrorNoticeFields(fields: self.fields.map { field in
            field.0 == Code.severity.rawValue || field.0 == Code.severityNonLocalized.rawValue ? (field.0, severity) : field
        })
    }

    public var sqlState: String? { self[.sqlState] }
    public var message: String? { self[.message] }
    public var severity: String? { self[.severityNonLocalized] ?? self[.severity] }

    public static func decode(from buffer: inout ByteBuffer, message: String) throws(PGWireError) -> ErrorNoticeFields {
        var fields: [(UInt8, String)] = []
        while true {
            guard let code: UInt8 = buffer.readInteger() else {
                throw .malformed(message: message, reason: "missing terminator")
            }
            if code == 0 { break }
            guard let value = buffer.readNullTerminatedString() else {
                throw .malformed(message: message, reason: "unterminated field")
            }
            fields.append((code, value))
        }
        return ErrorNoticeFields(fields: fields)
    }

    public func encode(into buffer: inout ByteBuffer) {
        for (code, value) in self.fields {
            buffer.writeInteger(code)
            buffer.writeNullTerminatedString(value)
        }
        buffer.writeInteger(UInt8(0))
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.fields.elementsEqual(rhs.fields, by: { $0.0 == $1.0 && $0.1 == $1.1 })
    }
}
