/// One bind parameter value as it arrived in a Bind message.
public struct BindParameter: Sendable, Hashable {
    /// The wire format of the value.
    public enum Format: Sendable, Hashable {
        /// PostgreSQL's text representation.
        case text
        /// PostgreSQL's binary (send/recv) representation.
        case binary
    }

    /// Wire format.
    public var format: Format
    /// The parameter's type OID from Parse, or 0 when unspecified (then the key type decides).
    public var typeOID: UInt32
    /// The bytes, `nil` for SQL NULL.
    public var value: [UInt8]?

    /// Creates a parameter.
    public init(format: Format, typeOID: UInt32 = 0, value: [UInt8]?) {
        self.format = format
        self.typeOID = typeOID
        self.value = value
    }

    /// A text-format value.
    public static func text(_ value: String, typeOID: UInt32 = 0) -> BindParameter {
        BindParameter(format: .text, typeOID: typeOID, value: Array(value.utf8))
    }

    /// A binary-format value.
    public static func binary(_ value: [UInt8], typeOID: UInt32 = 0) -> BindParameter {
        BindParameter(format: .binary, typeOID: typeOID, value: value)
    }

    /// SQL NULL.
    public static let null = BindParameter(format: .text, value: nil)
}

/// The bind parameters of one execution, `$1` first.
///
/// Routing reads only the parameters in `StatementAnalysis.keyParameters`; the others may be left as
/// `.null` by a caller that wants to avoid copying them.
public struct BindParameters: Sendable, Hashable, ExpressibleByArrayLiteral {
    /// The values, `$1` at index 0.
    public var values: [BindParameter]

    /// Creates parameters from values, `$1` first.
    public init(_ values: [BindParameter] = []) {
        self.values = values
    }

    /// Creates parameters from an array literal, `$1` first.
    public init(arrayLiteral elements: BindParameter...) {
        values = elements
    }

    /// `$number` (1-based), if given.
    public subscript(number: Int) -> BindParameter? {
        number >= 1 && number <= values.count ? values[number - 1] : nil
    }
}

/// Type OIDs routing understands in binary parameters.
enum TypeOID {
    static let int2: UInt32 = 21
    static let int4: UInt32 = 23
    static let int8: UInt32 = 20
    static let text: UInt32 = 25
    static let varchar: UInt32 = 1043
    static let name: UInt32 = 19
    static let uuid: UInt32 = 2950
    static let int2Array: UInt32 = 1005
    static let int4Array: UInt32 = 1007
    static let int8Array: UInt32 = 1016
    static let textArray: UInt32 = 1009
    static let varcharArray: UInt32 = 1015
    static let uuidArray: UInt32 = 2951
}
