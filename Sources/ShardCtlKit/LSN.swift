/// A PostgreSQL WAL position (`pg_lsn`), written `X/Y` in hexadecimal.
public struct LSN: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    /// The 64-bit position.
    public var value: UInt64

    /// A position from its 64-bit value.
    public init(_ value: UInt64) {
        self.value = value
    }

    /// Parses `16/B374D848`; `nil` for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...8).contains(parts[0].count), (1...8).contains(parts[1].count),
              let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16) else { return nil }
        self.value = high << 32 | low
    }

    public var description: String {
        String(self.value >> 32, radix: 16, uppercase: true) + "/"
            + String(self.value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.value < rhs.value }

    /// Bytes from `other` up to `self` (0 when `other` is ahead).
    public func bytes(since other: LSN) -> UInt64 {
        self.value > other.value ? self.value - other.value : 0
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let lsn = LSN(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an LSN: \(text)"))
        }
        self = lsn
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}
