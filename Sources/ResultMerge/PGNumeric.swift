import NIOCore

/// An exact PostgreSQL `numeric`, held the way PostgreSQL holds it: base-10000 digits, a weight (the
/// power of 10000 of the first digit), a sign and a display scale, plus the special values NaN and
/// ±Infinity (PostgreSQL 14+).
///
/// Finite values are kept normalized (no leading or trailing zero digits; zero has no digits and weight
/// 0), so equality and hashing ignore the display scale, as PostgreSQL's `numeric_eq` does: `1.0 = 1.00`.
public struct PGNumeric: Sendable, CustomStringConvertible {
    /// Finite, or one of PostgreSQL's special values.
    public enum Kind: Sendable, Hashable {
        case finite
        case nan
        case positiveInfinity
        case negativeInfinity
    }

    /// Digits are base 10000 (PostgreSQL's NBASE).
    static let base = 10_000

    public private(set) var kind: Kind
    /// For finite values: negative (zero is never negative).
    public private(set) var isNegative: Bool
    /// The power of 10000 of `digits[0]`.
    public private(set) var weight: Int
    /// Base-10000 digits, most significant first.
    public private(set) var digits: [Int16]
    /// Digits shown after the decimal point.
    public private(set) var displayScale: Int

    /// A finite value from its parts; normalizes.
    init(negative: Bool, weight: Int, digits: [Int16], displayScale: Int) {
        kind = .finite
        isNegative = negative
        self.weight = weight
        self.digits = digits
        self.displayScale = max(0, displayScale)
        normalize()
    }

    private init(special: Kind) {
        kind = special
        isNegative = special == .negativeInfinity
        weight = 0
        digits = []
        displayScale = 0
    }

    /// NaN.
    public static let nan = PGNumeric(special: .nan)
    /// `Infinity`.
    public static let infinity = PGNumeric(special: .positiveInfinity)
    /// `-Infinity`.
    public static let negativeInfinity = PGNumeric(special: .negativeInfinity)
    /// Zero with display scale 0.
    public static let zero = PGNumeric(negative: false, weight: 0, digits: [], displayScale: 0)

    /// The exact value of an integer.
    public init(_ value: Int64) {
        var magnitude = value.magnitude
        var groups: [Int16] = []
        while magnitude > 0 {
            groups.append(Int16(magnitude % 10_000))
            magnitude /= 10_000
        }
        self.init(negative: value < 0, weight: groups.count - 1, digits: groups.reversed(), displayScale: 0)
    }

    public var isZero: Bool { kind == .finite && digits.isEmpty }
    public var isNaN: Bool { kind == .nan }

    /// Strips leading and trailing zero digits (zero gets weight 0 and a positive sign).
    private mutating func normalize() {
        guard kind == .finite else { return }
        var start = 0
        while start < digits.count, digits[start] == 0 { start += 1 }
        var end = digits.count
        while end > start, digits[end - 1] == 0 { end -= 1 }
        if start == end {
            digits = []
            weight = 0
            isNegative = false
            return
        }
        if start > 0 || end < digits.count {
            digits = Array(digits[start..<end])
        }
        weight -= start
    }

    /// The digit at power `power` of 10000 (0 outside the stored digits).
    @inline(__always)
    func digit(atPower power: Int) -> Int {
        let index = weight - power
        return index >= 0 && index < digits.count ? Int(digits[index]) : 0
    }

    /// The same value shown with another display scale (the digits must already fit it).
    func withDisplayScale(_ scale: Int) -> PGNumeric {
        var copy = self
        if kind == .finite { copy.displayScale = max(0, scale) }
        return copy
    }

    // MARK: - Text

    /// Parses PostgreSQL's text form: `[+-]digits[.digits][e[+-]digits]`, `NaN`, `Infinity`, `-Infinity`
    /// (case-insensitive, surrounding spaces allowed, as `numeric_in` accepts them).
    public init?(text: some StringProtocol) {
        let trimmed = text.utf8.drop { $0 == 0x20 }.reversed().drop { $0 == 0x20 }.reversed()
        self.init(utf8: Array(trimmed))
    }

    init?(utf8 bytes: [UInt8]) {
        var i = 0
        let n = bytes.count
        var negative = false
        if i < n, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") {
            negative = bytes[i] == UInt8(ascii: "-")
            i += 1
        }
        let rest = String(decoding: bytes[i...], as: UTF8.self).lowercased()
        if rest == "nan" {
            guard i == 0 else { return nil }
            self = .nan
            return
        }
        if rest == "infinity" || rest == "inf" {
            self = negative ? .negativeInfinity : .infinity
            return
        }
        var decimal: [UInt8] = []
        var pointPosition: Int?
        var sawDigit = false
        while i < n {
            let c = bytes[i]
            if c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") {
                decimal.append(c - UInt8(ascii: "0"))
                sawDigit = true
            } else if c == UInt8(ascii: "."), pointPosition == nil {
                pointPosition = decimal.count
            } else if c == UInt8(ascii: "_") {
                // PostgreSQL 16 allows digit separators; 15 does not, but accepting them is harmless here.
            } else {
                break
            }
            i += 1
        }
        guard sawDigit else { return nil }
        var exponent = 0
        if i < n, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            var expNegative = false
            if i < n, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") {
                expNegative = bytes[i] == UInt8(ascii: "-")
                i += 1
            }
            var sawExp = false
            while i < n, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
                exponent = min(exponent * 10 + Int(bytes[i] - UInt8(ascii: "0")), 1_000_000)
                sawExp = true
                i += 1
            }
            guard sawExp else { return nil }
            if expNegative { exponent = -exponent }
        }
        guard i == n else { return nil }
        let fractionDigits = decimal.count - (pointPosition ?? decimal.count)
        self.init(decimalDigits: decimal, fractionDigits: fractionDigits - exponent, negative: negative)
    }

    /// A value from decimal digits with `fractionDigits` of them after the point (may be negative: the
    /// value is then multiplied by a power of ten); display scale is `max(0, fractionDigits)`.
    init(decimalDigits: [UInt8], fractionDigits: Int, negative: Bool) {
        // Align so that the decimal point falls on a base-10000 digit boundary.
        let integerDigits = decimalDigits.count - fractionDigits
        let leadPad = (4 - ((integerDigits % 4) + 4) % 4) % 4
        let total = leadPad + decimalDigits.count
        let trailPad = (4 - total % 4) % 4
        var padded = [UInt8](repeating: 0, count: leadPad)
        padded.append(contentsOf: decimalDigits)
        padded.append(contentsOf: [UInt8](repeating: 0, count: trailPad))
        var groups: [Int16] = []
        groups.reserveCapacity(padded.count / 4)
        var k = 0
        while k < padded.count {
            let value = Int(padded[k]) * 1000 + Int(padded[k + 1]) * 100 + Int(padded[k + 2]) * 10 + Int(padded[k + 3])
            groups.append(Int16(value))
            k += 4
        }
        let weight = (integerDigits + leadPad) / 4 - 1
        self.init(negative: negative, weight: weight, digits: groups, displayScale: fractionDigits)
    }

    /// PostgreSQL's text output (`numeric_out`): plain notation with exactly `displayScale` decimals.
    public var description: String {
        switch kind {
        case .nan: return "NaN"
        case .positiveInfinity: return "Infinity"
        case .negativeInfinity: return "-Infinity"
        case .finite: break
        }
        var out: [UInt8] = []
        out.reserveCapacity((max(weight, 0) + 1) * 4 + displayScale + 2)
        if isNegative { out.append(UInt8(ascii: "-")) }
        if weight < 0 {
            out.append(UInt8(ascii: "0"))
        } else {
            for power in stride(from: weight, through: 0, by: -1) {
                let d = digit(atPower: power)
                if power == weight {
                    out.append(contentsOf: String(d).utf8)
                } else {
                    appendFourDigits(d, to: &out)
                }
            }
        }
        if displayScale > 0 {
            out.append(UInt8(ascii: "."))
            var written = 0
            var power = -1
            while written < displayScale {
                var group: [UInt8] = []
                appendFourDigits(digit(atPower: power), to: &group)
                for c in group where written < displayScale {
                    out.append(c)
                    written += 1
                }
                power -= 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private func appendFourDigits(_ value: Int, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "0") + UInt8(value / 1000))
        out.append(UInt8(ascii: "0") + UInt8(value / 100 % 10))
        out.append(UInt8(ascii: "0") + UInt8(value / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(value % 10))
    }

    // MARK: - Binary

    static let signPositive: UInt16 = 0x0000
    static let signNegative: UInt16 = 0x4000
    static let signNaN: UInt16 = 0xC000
    static let signPositiveInfinity: UInt16 = 0xD000
    static let signNegativeInfinity: UInt16 = 0xF000

    /// Reads `numeric_send`'s format: ndigits, weight, sign, dscale (16 bits each), then the digits.
    public init?(binary buffer: ByteBuffer) {
        var buffer = buffer
        guard let (count, weight, sign, scale) = buffer.readMultipleIntegers(as: (Int16, Int16, UInt16, UInt16).self),
              count >= 0, buffer.readableBytes == Int(count) * 2 else { return nil }
        switch sign {
        case Self.signNaN: self = .nan; return
        case Self.signPositiveInfinity: self = .infinity; return
        case Self.signNegativeInfinity: self = .negativeInfinity; return
        case Self.signPositive, Self.signNegative: break
        default: return nil
        }
        var groups: [Int16] = []
        groups.reserveCapacity(Int(count))
        for _ in 0..<count {
            guard let d: Int16 = buffer.readInteger(), d >= 0, d < 10_000 else { return nil }
            groups.append(d)
        }
        guard scale & 0xC000 == 0 else { return nil }
        self.init(negative: sign == Self.signNegative, weight: Int(weight), digits: groups, displayScale: Int(scale))
    }

    /// Writes `numeric_send`'s format (as PostgreSQL writes a normalized value).
    public func encodeBinary(into buffer: inout ByteBuffer) {
        switch kind {
        case .nan:
            buffer.writeMultipleIntegers(Int16(0), Int16(0), Self.signNaN, UInt16(0))
        case .positiveInfinity:
            buffer.writeMultipleIntegers(Int16(0), Int16(0), Self.signPositiveInfinity, UInt16(0))
        case .negativeInfinity:
            buffer.writeMultipleIntegers(Int16(0), Int16(0), Self.signNegativeInfinity, UInt16(0))
        case .finite:
            buffer.writeMultipleIntegers(Int16(digits.count), Int16(truncatingIfNeeded: weight),
                                         isNegative ? Self.signNegative : Self.signPositive,
                                         UInt16(truncatingIfNeeded: displayScale))
            for d in digits { buffer.writeInteger(d) }
        }
    }
}

extension PGNumeric: Hashable {
    /// Value equality, as `numeric_eq`: display scale is ignored, NaN equals NaN.
    public static func == (lhs: PGNumeric, rhs: PGNumeric) -> Bool {
        lhs.kind == rhs.kind && lhs.isNegative == rhs.isNegative && lhs.weight == rhs.weight && lhs.digits == rhs.digits
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind)
        hasher.combine(isNegative)
        hasher.combine(weight)
        hasher.combine(digits)
    }
}
