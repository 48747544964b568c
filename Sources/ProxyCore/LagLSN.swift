/// A PostgreSQL WAL position (`pg_lsn`): a 64-bit byte offset into the write-ahead log.
///
/// The text form is PostgreSQL's: two hexadecimal numbers, the high and the low 32 bits, separated by a
/// slash (`16/B374D848`, `0/3000060`). `description` prints it as PostgreSQL 15 does (upper-case hex, no
/// zero padding); `init?(_:)` accepts what `pg_lsn_in` accepts: 1 to 8 hex digits of either case on each
/// side of the slash and nothing else (no spaces, no sign).
public struct LSN: Sendable, Hashable, Comparable, CustomStringConvertible, LosslessStringConvertible {
    /// The position in bytes.
    public var value: UInt64

    /// The lowest position (`0/0`), which PostgreSQL uses for "invalid".
    public static let zero = LSN(0)

    /// A position from its byte offset.
    public init(_ value: UInt64) {
        self.value = value
    }

    /// Parses PostgreSQL's text form `X/X`; `nil` for anything `pg_lsn_in` would refuse.
    public init?(_ description: String) {
        var high: UInt64 = 0
        var low: UInt64 = 0
        var digits = 0
        var seenSlash = false
        for byte in description.utf8 {
            if byte == UInt8(ascii: "/") {
                guard !seenSlash, digits > 0 else { return nil }
                seenSlash = true
                digits = 0
                continue
            }
            guard let nibble = Self.hexValue(byte), digits < 8 else { return nil }
            digits += 1
            if seenSlash {
                low = low << 4 | UInt64(nibble)
            } else {
                high = high << 4 | UInt64(nibble)
            }
        }
        guard seenSlash, digits > 0 else { return nil }
        self.value = high << 32 | low
    }

    /// `X/X` in upper-case hex, as `pg_lsn_out` writes it (`0/3000060`).
    public var description: String {
        String(self.value >> 32, radix: 16, uppercase: true) + "/"
            + String(self.value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    /// Bytes from `other` up to `self`; 0 when `other` is at or past `self` (like a clamped
    /// `pg_wal_lsn_diff(self, other)`).
    public func bytes(after other: LSN) -> UInt64 {
        self.value > other.value ? self.value - other.value : 0
    }

    /// The end of the WAL inserted so far, from `pg_current_wal_insert_lsn()` at `self`.
    ///
    /// When the insert position is at the start of a WAL page, PostgreSQL reports it just past the
    /// page header (24 bytes, 40 on the first page of a segment), a place no record can end. A replica
    /// that has replayed everything reports the page boundary instead, so the header is taken off here:
    /// otherwise an idle primary would keep its replicas looking 24 bytes behind (and never reaching a
    /// read-your-writes fence) until the next write. `blockSize` and `segmentSize` are the server's
    /// `wal_block_size` and `wal_segment_size` (8192 and 16 MiB by default).
    public func insertPositionEnd(blockSize: UInt64, segmentSize: UInt64) -> LSN {
        guard blockSize > 0, segmentSize >= blockSize else { return self }
        let header = self.value % segmentSize < blockSize ? Self.longPageHeaderSize : Self.shortPageHeaderSize
        return self.value % blockSize == header ? LSN(self.value - header) : self
    }

    /// `SizeOfXLogShortPHD` and `SizeOfXLogLongPHD` of 64-bit PostgreSQL builds.
    static let shortPageHeaderSize: UInt64 = 24
    static let longPageHeaderSize: UInt64 = 40

    public static func < (lhs: LSN, rhs: LSN) -> Bool {
        lhs.value < rhs.value
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
