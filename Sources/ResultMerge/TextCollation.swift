#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The collation text is ordered in: `"C"` / `"POSIX"` compare bytes (what PostgreSQL does for them);
/// any other name is a libc locale (the backend's `lc_collate`, e.g. `"C.UTF-8"`, `"en_US.UTF-8"`),
/// compared with `strcoll_l` and ties broken by bytes, as PostgreSQL does for deterministic collations.
public struct TextCollation: Sendable, Hashable, CustomStringConvertible {
    /// The collation's name as PostgreSQL reports it (`SHOW lc_collate`, or `COLLATE "name"`).
    public var name: String

    /// Creates a collation by name.
    public init(_ name: String) {
        self.name = name
    }

    /// Byte order.
    public static let c = TextCollation("C")

    /// Whether text compares byte by byte (`C`, `POSIX`).
    public var isByteOrder: Bool {
        name == "C" || name == "POSIX"
    }

    public var description: String { name }
}

/// A loaded libc locale for `strcoll_l` (created once per merge, freed with it).
final class CollationLocale: @unchecked Sendable {
    // Safe to share: a locale_t is never modified after newlocale(), and strcoll_l only reads it.
    private let locale: locale_t

    /// Loads the collation part of the locale `name`; nil when libc does not know it.
    init?(name: String) {
        #if canImport(Glibc)
        let mask = Int32(1) << LC_COLLATE
        #else
        let mask = LC_COLLATE_MASK
        #endif
        guard let loaded = newlocale(mask, name, nil) else { return nil }
        locale = loaded
    }

    deinit {
        freelocale(locale)
    }

    /// strcoll_l of two NUL-terminated byte strings, ties broken by bytes (`varstr_cmp`).
    func compare(_ a: [UInt8], _ b: [UInt8]) -> Int {
        let result = a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                pa.baseAddress!.withMemoryRebound(to: CChar.self, capacity: pa.count) { ca in
                    pb.baseAddress!.withMemoryRebound(to: CChar.self, capacity: pb.count) { cb in
                        strcoll_l(ca, cb, locale)
                    }
                }
            }
        }
        if result != 0 { return result < 0 ? -1 : 1 }
        return compareBytes(a, b)
    }
}

/// Lexicographic byte order (memcmp, then length).
@inline(__always)
func compareBytes(_ a: [UInt8], _ b: [UInt8]) -> Int {
    let n = min(a.count, b.count)
    guard n > 0 else { return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1) }
    let r = a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in memcmp(pa.baseAddress!, pb.baseAddress!, n) }
    }
    if r != 0 { return r < 0 ? -1 : 1 }
    return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
}
