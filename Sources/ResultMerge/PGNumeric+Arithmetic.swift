extension PGNumeric {
    // MARK: - Order

    /// PostgreSQL's `numeric_cmp` order: -Infinity < finite values < Infinity < NaN (NaN equals NaN).
    public static func compare(_ a: PGNumeric, _ b: PGNumeric) -> Int {
        let ra = a.specialRank, rb = b.specialRank
        if ra != rb { return ra < rb ? -1 : 1 }
        guard a.kind == .finite else { return 0 }
        if a.isNegative != b.isNegative {
            if a.isZero && b.isZero { return 0 }
            return a.isNegative ? -1 : 1
        }
        let magnitude = compareMagnitude(a, b)
        return a.isNegative ? -magnitude : magnitude
    }

    /// -1 for -Infinity, 0 for finite, 1 for Infinity, 2 for NaN.
    private var specialRank: Int {
        switch kind {
        case .negativeInfinity: return -1
        case .finite: return 0
        case .positiveInfinity: return 1
        case .nan: return 2
        }
    }

    /// Compares |a| and |b| of two finite, normalized values.
    static func compareMagnitude(_ a: PGNumeric, _ b: PGNumeric) -> Int {
        if a.digits.isEmpty || b.digits.isEmpty {
            if a.digits.isEmpty && b.digits.isEmpty { return 0 }
            return a.digits.isEmpty ? -1 : 1
        }
        if a.weight != b.weight { return a.weight < b.weight ? -1 : 1 }
        let n = max(a.digits.count, b.digits.count)
        for i in 0..<n {
            let da = i < a.digits.count ? a.digits[i] : 0
            let db = i < b.digits.count ? b.digits[i] : 0
            if da != db { return da < db ? -1 : 1 }
        }
        return 0
    }

    // MARK: - Addition

    /// `a + b` as PostgreSQL's `numeric_add`: display scale is the larger of the two; NaN absorbs, and
    /// Infinity + -Infinity is NaN.
    public static func + (a: PGNumeric, b: PGNumeric) -> PGNumeric {
        if a.kind != .finite || b.kind != .finite {
            if a.kind == .nan || b.kind == .nan { return .nan }
            if a.kind != .finite, b.kind != .finite { return a.kind == b.kind ? a : .nan }
            return a.kind != .finite ? a : b
        }
        let scale = max(a.displayScale, b.displayScale)
        if a.isZero { return b.withDisplayScale(scale) }
        if b.isZero { return a.withDisplayScale(scale) }
        if a.isNegative == b.isNegative {
            return addMagnitudes(a, b, negative: a.isNegative, scale: scale)
        }
        let order = compareMagnitude(a, b)
        if order == 0 { return PGNumeric.zero.withDisplayScale(scale) }
        return order > 0 ? subtractMagnitudes(a, b, negative: a.isNegative, scale: scale)
                         : subtractMagnitudes(b, a, negative: b.isNegative, scale: scale)
    }

    /// The powers of 10000 spanned by the digits of `a` and `b`: highest first.
    private static func span(_ a: PGNumeric, _ b: PGNumeric) -> (high: Int, low: Int) {
        let high = max(a.weight, b.weight)
        let low = min(a.weight - a.digits.count + 1, b.weight - b.digits.count + 1)
        return (high, low)
    }

    private static func addMagnitudes(_ a: PGNumeric, _ b: PGNumeric, negative: Bool, scale: Int) -> PGNumeric {
        let (high, low) = span(a, b)
        var result = [Int16](repeating: 0, count: high - low + 2)
        var carry = 0
        var index = result.count - 1
        for power in low...high {
            let sum = a.digit(atPower: power) + b.digit(atPower: power) + carry
            carry = sum >= base ? 1 : 0
            result[index] = Int16(sum - carry * base)
            index -= 1
        }
        result[0] = Int16(carry)
        return PGNumeric(negative: negative, weight: high + 1, digits: result, displayScale: scale)
    }

    /// |a| - |b| for |a| > |b|.
    private static func subtractMagnitudes(_ a: PGNumeric, _ b: PGNumeric, negative: Bool, scale: Int) -> PGNumeric {
        let (high, low) = span(a, b)
        var result = [Int16](repeating: 0, count: high - low + 1)
        var borrow = 0
        var index = result.count - 1
        for power in low...high {
            var difference = a.digit(atPower: power) - b.digit(atPower: power) - borrow
            borrow = 0
            if difference < 0 {
                difference += base
                borrow = 1
            }
            result[index] = Int16(difference)
            index -= 1
        }
        return PGNumeric(negative: negative, weight: high, digits: result, displayScale: scale)
    }

    // MARK: - Division (avg)

    /// `self / divisor` as PostgreSQL's `numeric_div` computes it for a positive integer divisor (the
    /// row count of `avg`): the result scale from `select_div_scale`, rounded half away from zero.
    public func divided(by divisor: Int64) -> PGNumeric {
        precondition(divisor > 0, "numeric division by a count needs a positive count")
        switch kind {
        case .nan, .positiveInfinity, .negativeInfinity: return self
        case .finite: break
        }
        let denominator = PGNumeric(divisor)
        let scale = Self.divisionScale(self, denominator)
        if isZero { return PGNumeric.zero.withDisplayScale(scale) }
        // Long division by a 64-bit word, down to two base-10000 digits past the result scale, then round.
        let lowestPower = -(scale / 4 + 2)
        var quotient: [Int16] = []
        quotient.reserveCapacity(weight - lowestPower + 1)
        var remainder: UInt64 = 0
        let d = UInt64(divisor)
        for power in stride(from: weight, through: lowestPower, by: -1) {
            let (high, low) = remainder.multipliedFullWidth(by: UInt64(Self.base))
            let (lowSum, overflow) = low.addingReportingOverflow(UInt64(digit(atPower: power)))
            let (q, r) = d.dividingFullWidth((high &+ (overflow ? 1 : 0), lowSum))
            quotient.append(Int16(q))
            remainder = r
        }
        let truncated = PGNumeric(negative: isNegative, weight: weight, digits: quotient, displayScale: scale)
        return truncated.rounded(toScale: scale)
    }

    /// The result scale of a division (PostgreSQL's `select_div_scale`): at least 16 significant digits,
    /// never fewer decimals than either input shows, between 0 and 1000.
    static func divisionScale(_ dividend: PGNumeric, _ divisor: PGNumeric) -> Int {
        // Normalized values: the first digit is the first non-zero one (zero: weight 0, digit 0).
        let weight1 = dividend.digits.isEmpty ? 0 : dividend.weight
        let first1 = dividend.digits.first ?? 0
        let weight2 = divisor.digits.isEmpty ? 0 : divisor.weight
        let first2 = divisor.digits.first ?? 0
        var quotientWeight = weight1 - weight2
        if first1 <= first2 { quotientWeight -= 1 }
        var scale = 16 - quotientWeight * 4
        scale = max(scale, dividend.displayScale)
        scale = max(scale, divisor.displayScale)
        return min(max(scale, 0), 1000)
    }

    /// Rounds to `scale` decimals, half away from zero (PostgreSQL's `round_var`); display scale `scale`.
    func rounded(toScale scale: Int) -> PGNumeric {
        guard kind == .finite, !digits.isEmpty else { return withDisplayScale(scale) }
        // Decimal digits kept: those of the integer part plus `scale` fraction digits.
        let kept = (weight + 1) * 4 + scale
        if kept < 0 { return PGNumeric.zero.withDisplayScale(scale) }
        var groups = digits
        let keptGroups = (kept + 3) / 4
        guard keptGroups < groups.count || (keptGroups == groups.count && kept % 4 != 0) else {
            return withDisplayScale(scale)
        }
        var carry = 0
        let within = kept % 4
        var last: Int
        if within == 0 {
            carry = groups[keptGroups] >= 5000 ? 1 : 0
            last = keptGroups
        } else {
            let unit = [1, 1000, 100, 10][within]
            let index = keptGroups - 1
            let extra = Int(groups[index]) % unit
            var value = Int(groups[index]) - extra
            if extra >= unit / 2 {
                value += unit
                if value >= Self.base {
                    value -= Self.base
                    carry = 1
                }
            }
            groups[index] = Int16(value)
            last = keptGroups - 1
        }
        groups.removeSubrange(min(keptGroups, groups.count)...)
        var newWeight = weight
        var index = last - 1
        while carry > 0 {
            if index < 0 {
                groups.insert(1, at: 0)
                newWeight += 1
                carry = 0
                break
            }
            let value = Int(groups[index]) + carry
            if value >= Self.base {
                groups[index] = Int16(value - Self.base)
                carry = 1
            } else {
                groups[index] = Int16(value)
                carry = 0
            }
            index -= 1
        }
        return PGNumeric(negative: isNegative, weight: newWeight, digits: groups, displayScale: scale)
    }

    // MARK: - Conversions

    /// The nearest double (for comparisons with float columns), as `numeric_float8` would give.
    public var doubleValue: Double {
        switch kind {
        case .nan: return .nan
        case .positiveInfinity: return .infinity
        case .negativeInfinity: return -.infinity
        case .finite: return Double(description) ?? .nan
        }
    }

    /// The value as an Int64 when it is an integer in range.
    public var exactInt64: Int64? {
        guard kind == .finite else { return nil }
        if digits.isEmpty { return 0 }
        guard weight >= digits.count - 1, weight < 5 else { return nil }
        var value: Int64 = 0
        for power in stride(from: weight, through: 0, by: -1) {
            let (m, o1) = value.multipliedReportingOverflow(by: 10_000)
            let (s, o2) = m.addingReportingOverflow(Int64(digit(atPower: power)))
            if o1 || o2 { return nil }
            value = s
        }
        return isNegative ? -value : value
    }
}
