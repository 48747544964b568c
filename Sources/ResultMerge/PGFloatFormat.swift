#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// PostgreSQL's text output of `float8` and `float4` (`float8out` / `float4out`).
///
/// With `extra_float_digits > 0` (the default is 1) PostgreSQL 12+ prints the shortest text that reads
/// back as the same value (Ryu), in fixed notation when the decimal exponent is in [-4, 15) for float8
/// and [-4, 6) for float4, otherwise as `d.ddde+XX`. With `extra_float_digits <= 0` it prints `%.*g` with
/// 15 (float8) or 6 (float4) plus `extra_float_digits` significant digits.
public enum PGFloatFormat {
    /// The text PostgreSQL prints for a float8.
    public static func float8(_ value: Double, extraFloatDigits: Int = 1) -> String {
        if let special = special(value.isNaN, value.isInfinite, value < 0) { return special }
        if extraFloatDigits > 0 {
            var digits = Digits(value.description)
            if digits.isRoundingBoundary(significand: value.significandBitPattern, exponentField: value.exponentBitPattern,
                                         significandBits: 52, exponentBias: 1075) {
                digits = longerDigits(Double(value), maxDigits: 17) {
                    Double($0) == value && !Digits($0).isRoundingBoundary(
                        significand: value.significandBitPattern, exponentField: value.exponentBitPattern,
                        significandBits: 52, exponentBias: 1075)
                } ?? digits
            }
            return digits.layout(negative: value.sign == .minus, fixedBelow: 15)
        }
        return printfG(value, significant: max(1, 15 + extraFloatDigits))
    }

    /// The text PostgreSQL prints for a float4.
    public static func float4(_ value: Float, extraFloatDigits: Int = 1) -> String {
        if let special = special(value.isNaN, value.isInfinite, value < 0) { return special }
        if extraFloatDigits > 0 {
            var digits = Digits(value.description)
            let significand = UInt64(value.significandBitPattern), exponent = UInt(value.exponentBitPattern)
            if digits.isRoundingBoundary(significand: significand, exponentField: exponent, significandBits: 23,
                                         exponentBias: 150) {
                digits = longerDigits(Double(value), maxDigits: 9) {
                    Float($0) == value && !Digits($0).isRoundingBoundary(
                        significand: significand, exponentField: exponent, significandBits: 23, exponentBias: 150)
                } ?? digits
            }
            return digits.layout(negative: value.sign == .minus, fixedBelow: 6)
        }
        return printfG(Double(value), significant: max(1, 6 + extraFloatDigits))
    }

    /// The first correctly rounded representation with more digits that `accept`s (PostgreSQL's Ryu keeps
    /// to the open rounding interval, so a decimal exactly halfway to a neighbour is not used).
    private static func longerDigits(_ value: Double, maxDigits: Int, accept: (String) -> Bool) -> Digits? {
        for significant in 2...maxDigits {
            var buffer = [CChar](repeating: 0, count: 64)
            let count = buffer.withUnsafeMutableBufferPointer { pointer in
                withVaList([Int32(significant - 1), value]) { vsnprintf(pointer.baseAddress, 64, "%.*e", $0) }
            }
            let text = String(decoding: buffer[0..<Int(max(0, min(count, 63)))].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if accept(text) { return Digits(text) }
        }
        return nil
    }

    /// A decimal as digits and the position of the decimal point (value = 0.d1d2... × 10^point).
    struct Digits {
        var mantissa: [UInt8] = []
        var point = 0

        /// Reads Swift's or printf's text ("1.5", "-0.0", "1e-05", "1.2345e+16", "5e-324", "123.0").
        init(_ text: String) {
            var pointIndex: Int?
            var exponent = 0
            var bytes = Array(text.utf8)
            if bytes.first == UInt8(ascii: "-") { bytes.removeFirst() }
            var i = 0
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                    exponent = Int(String(decoding: bytes[(i + 1)...], as: UTF8.self)) ?? 0
                    break
                }
                if c == UInt8(ascii: ".") { pointIndex = mantissa.count } else { mantissa.append(c - UInt8(ascii: "0")) }
                i += 1
            }
            point = (pointIndex ?? mantissa.count) + exponent
            while mantissa.count > 1, mantissa.first == 0 {
                mantissa.removeFirst()
                point -= 1
            }
            while mantissa.count > 1, mantissa.last == 0 { mantissa.removeLast() }
        }

        /// Whether this decimal is exactly halfway between the binary value and a neighbour. That can only
        /// happen where the neighbours are integers (a short decimal is never a fraction with 53 bits), so
        /// it is decided with integers: digits × 10^t = odd × 2^p needs 5^t × (digits without their factors
        /// of 2) to be that odd number.
        func isRoundingBoundary(significand: UInt64, exponentField: UInt, significandBits: Int, exponentBias: Int) -> Bool {
            guard exponentField > 0, mantissa.count <= 19 else { return false }
            let e = Int(exponentField) - exponentBias // value = k × 2^e
            guard e >= 1 else { return false }
            let k = significand | (1 << UInt64(significandBits))
            let t = point - mantissa.count // digits × 10^t
            guard t >= 0 else { return false }
            var d: UInt64 = 0
            for digit in mantissa { d = d * 10 + UInt64(digit) }
            var candidates: [(odd: UInt64, power: Int)] = [(2 * k + 1, e - 1), (2 * k - 1, e - 1)]
            if significand == 0 { candidates.append((4 * k - 1, e - 2)) }
            var twos = 0
            while d > 0, d & 1 == 0 {
                d >>= 1
                twos += 1
            }
            var fives: UInt64 = 1
            for _ in 0..<t {
                let (product, overflow) = fives.multipliedReportingOverflow(by: 5)
                if overflow { return false }
                fives = product
            }
            let (odd, overflow) = d.multipliedReportingOverflow(by: fives)
            if overflow { return false }
            return candidates.contains { $0.odd == odd && $0.power == twos + t }
        }

        /// PostgreSQL's layout: fixed notation for decimal exponents in [-4, fixedBelow), else `d.ddde±XX`.
        func layout(negative: Bool, fixedBelow: Int) -> String {
            var out = negative ? "-" : ""
            if mantissa == [0] { return out + "0" }
            let decimalExponent = point - 1
            let ascii = mantissa.map { Character(Unicode.Scalar(UInt8(ascii: "0") + $0)) }
            if decimalExponent >= -4, decimalExponent < fixedBelow {
                if point <= 0 {
                    out += "0." + String(repeating: "0", count: -point) + String(ascii)
                } else if point >= ascii.count {
                    out += String(ascii) + String(repeating: "0", count: point - ascii.count)
                } else {
                    out += String(ascii[..<point]) + "." + String(ascii[point...])
                }
                return out
            }
            out.append(ascii[0])
            if ascii.count > 1 { out += "." + String(ascii[1...]) }
            let magnitude = abs(decimalExponent)
            out += decimalExponent < 0 ? "e-" : "e+"
            if magnitude < 10 { out += "0" }
            out += String(magnitude)
            return out
        }
    }

    private static func special(_ isNaN: Bool, _ isInfinite: Bool, _ negative: Bool) -> String? {
        if isNaN { return "NaN" }
        if isInfinite { return negative ? "-Infinity" : "Infinity" }
        return nil
    }

    private static func printfG(_ value: Double, significant: Int) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let count = buffer.withUnsafeMutableBufferPointer { pointer in
            withVaList([Int32(significant), value]) { vsnprintf(pointer.baseAddress, 64, "%.*g", $0) }
        }
        return String(decoding: buffer[0..<Int(max(0, min(count, 63)))].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
