import Foundation

/// PostgreSQL-hash-partition compatible slot function (DESIGN §3).
///
/// `slot(key)` is the remainder PostgreSQL computes for `PARTITION BY HASH (key)` with
/// `MODULUS slotCount`: the type's extended hash function with the partition seed, combined with
/// `hash_combine64(0, h)`, modulo the slot count. The hashes are ports of PostgreSQL's
/// `src/common/hashfn.c` (Bob Jenkins' lookup3 with a 64-bit seed) and `hashfunc.c`; they equal a
/// little-endian server's (x86-64, arm64), which is every platform Swift runs on here.
public enum SlotHash {
    /// `HASH_PARTITION_SEED` from PostgreSQL's `partbounds.c`.
    public static let seed: UInt64 = 0x7A5B_2236_7996_DCFD

    /// The constant `hash_combine64` adds; with a zero starting hash it is all that remains.
    static let combineConstant: UInt64 = 0x49A0_F4DD_15E5_A8E3

    /// `hashint8extended(v, seed)`: folds the high half into the low half so that equal values of
    /// `smallint`, `integer` and `bigint` hash alike, then hashes 32 bits.
    public static func hashint8extended(_ v: Int64, seed: UInt64) -> Int64 {
        var low = UInt32(truncatingIfNeeded: v)
        let high = UInt32(truncatingIfNeeded: v >> 32)
        low ^= v >= 0 ? high : ~high
        return Int64(bitPattern: hashUInt32Extended(low, seed: seed))
    }

    /// `hashtextextended(s, seed)` for a deterministic collation: the hash of the UTF-8 bytes.
    public static func hashtextextended(_ s: String, seed: UInt64) -> Int64 {
        var s = s
        return s.withUTF8 { buffer in
            Int64(bitPattern: hashBytesExtended(UnsafeRawBufferPointer(buffer), seed: seed))
        }
    }

    /// `uuid_hash_extended(u, seed)`: the hash of the 16 bytes in network order.
    public static func uuidHashExtended(_ bytes: [UInt8], seed: UInt64) -> Int64 {
        precondition(bytes.count == 16, "a uuid has 16 bytes")
        return bytes.withUnsafeBytes { Int64(bitPattern: hashBytesExtended($0, seed: seed)) }
    }

    /// The slot of a `bigint` (or `smallint`/`integer`) key.
    public static func slot(bigint: Int64, slotCount: Int = 1024) -> Int {
        slot(hash: hashint8extended(bigint, seed: seed), slotCount: slotCount)
    }

    /// The slot of a `text` key.
    public static func slot(text: String, slotCount: Int = 1024) -> Int {
        slot(hash: hashtextextended(text, seed: seed), slotCount: slotCount)
    }

    /// The slot of a `text` key given as UTF-8 bytes (for example a bind parameter straight off the wire).
    public static func slot(textUTF8: UnsafeRawBufferPointer, slotCount: Int = 1024) -> Int {
        slot(hash: Int64(bitPattern: hashBytesExtended(textUTF8, seed: seed)), slotCount: slotCount)
    }

    /// The slot of a `uuid` key.
    public static func slot(uuid: UUID, slotCount: Int = 1024) -> Int {
        let u = uuid.uuid
        let bytes: [UInt8] = [
            u.0, u.1, u.2, u.3, u.4, u.5, u.6, u.7, u.8, u.9, u.10, u.11, u.12, u.13, u.14, u.15,
        ]
        return slot(hash: uuidHashExtended(bytes, seed: seed), slotCount: slotCount)
    }

    /// Maps a seeded extended hash to its slot: `(UInt64(bitPattern: h) &+ 0x49a0f4dd15e5a8e3) % slotCount`.
    public static func slot(hash: Int64, slotCount: Int = 1024) -> Int {
        precondition(slotCount > 0, "slotCount must be positive")
        let combined = UInt64(bitPattern: hash) &+ combineConstant
        return Int(combined % UInt64(slotCount))
    }

    // MARK: - lookup3, as in PostgreSQL's src/common/hashfn.c

    /// `hash_bytes_extended`: a 64-bit hash of `bytes` (little-endian word order), seeded.
    public static func hashBytesExtended(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var length = bytes.count
        var a: UInt32 = 0x9E37_79B9 &+ UInt32(truncatingIfNeeded: length) &+ 3_923_095
        var b = a
        var c = a
        if seed != 0 {
            // The seed is hashed as if it were a leading 12-byte chunk padded with zeroes.
            a &+= UInt32(truncatingIfNeeded: seed >> 32)
            b &+= UInt32(truncatingIfNeeded: seed)
            mix(&a, &b, &c)
        }
        var offset = 0
        while length >= 12 {
            a &+= word(bytes, offset)
            b &+= word(bytes, offset + 4)
            c &+= word(bytes, offset + 8)
            mix(&a, &b, &c)
            offset += 12
            length -= 12
        }
        // The last 0...11 bytes. As in PostgreSQL the lowest byte of `c` stays free.
        if length >= 9 {
            a &+= word(bytes, offset)
            b &+= word(bytes, offset + 4)
            c &+= tail(bytes, offset + 8, count: length - 8) << 8
        } else if length >= 5 {
            a &+= word(bytes, offset)
            b &+= tail(bytes, offset + 4, count: length - 4)
        } else if length >= 1 {
            a &+= tail(bytes, offset, count: length)
        }
        final(&a, &b, &c)
        return UInt64(b) << 32 | UInt64(c)
    }

    /// `hash_bytes_uint32_extended`: the same result as hashing the 4 bytes of `k`, seeded.
    static func hashUInt32Extended(_ k: UInt32, seed: UInt64) -> UInt64 {
        var a: UInt32 = 0x9E37_79B9 &+ 4 &+ 3_923_095
        var b = a
        var c = a
        if seed != 0 {
            a &+= UInt32(truncatingIfNeeded: seed >> 32)
            b &+= UInt32(truncatingIfNeeded: seed)
            mix(&a, &b, &c)
        }
        a &+= k
        final(&a, &b, &c)
        return UInt64(b) << 32 | UInt64(c)
    }

    @inline(__always)
    private static func word(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// Up to 4 trailing bytes as a little-endian partial word.
    @inline(__always)
    private static func tail(_ bytes: UnsafeRawBufferPointer, _ offset: Int, count: Int) -> UInt32 {
        var value: UInt32 = 0
        for i in 0..<count {
            value |= UInt32(bytes[offset + i]) << (8 * UInt32(i))
        }
        return value
    }

    @inline(__always)
    private static func rot(_ x: UInt32, _ k: UInt32) -> UInt32 {
        (x &<< k) | (x &>> (32 - k))
    }

    @inline(__always)
    private static func mix(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32) {
        a &-= c; a ^= rot(c, 4); c &+= b
        b &-= a; b ^= rot(a, 6); a &+= c
        c &-= b; c ^= rot(b, 8); b &+= a
        a &-= c; a ^= rot(c, 16); c &+= b
        b &-= a; b ^= rot(a, 19); a &+= c
        c &-= b; c ^= rot(b, 4); b &+= a
    }

    @inline(__always)
    private static func final(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32) {
        c ^= b; c &-= rot(b, 14)
        a ^= c; a &-= rot(c, 11)
        b ^= a; b &-= rot(a, 25)
        c ^= b; c &-= rot(b, 16)
        a ^= c; a &-= rot(c, 4)
        b ^= a; b &-= rot(a, 14)
        c ^= b; c &-= rot(b, 24)
    }
}
