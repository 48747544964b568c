/// Reads PostgreSQL's ISO text output of `date`, `time`, `timestamp` and `timestamptz` (DateStyle ISO,
/// the default) into the numbers PostgreSQL's binary format uses: days or microseconds since
/// 2000-01-01 (UTC for timestamptz), with `infinity` / `-infinity` as `Int64.max` / `Int64.min`.
enum PGDateTime {
    static let microsecondsPerDay: Int64 = 86_400_000_000

    /// Days since 2000-01-01 of a `date` text (`2024-01-31`, `0044-03-15 BC`, `infinity`).
    static func date(_ text: [UInt8]) -> Int64? {
        if let infinite = infinity(text) { return infinite }
        var reader = Reader(bytes: text)
        guard var days = reader.date() else { return nil }
        if reader.consumeBC() {
            guard let bc = reader.bcDays else { return nil }
            days = bc
        }
        return reader.atEnd ? days : nil
    }

    /// Microseconds since midnight of a `time` text (`13:45:00`, `23:59:59.999999`, `24:00:00`).
    static func time(_ text: [UInt8]) -> Int64? {
        var reader = Reader(bytes: text)
        guard let micros = reader.clock(), reader.atEnd else { return nil }
        return micros
    }

    /// Microseconds since 2000-01-01 00:00 (UTC when `withZone`) of a `timestamp`/`timestamptz` text.
    static func timestamp(_ text: [UInt8], withZone: Bool) -> Int64? {
        if let infinite = infinity(text) { return infinite }
        var reader = Reader(bytes: text)
        guard var days = reader.date(), reader.consume(UInt8(ascii: " ")), let clock = reader.clock() else {
            return nil
        }
        var offsetSeconds: Int64 = 0
        if withZone {
            guard let offset = reader.zoneOffset() else { return nil }
            offsetSeconds = offset
        }
        if reader.consumeBC() {
            guard let bc = reader.bcDays else { return nil }
            days = bc
        }
        guard reader.atEnd else { return nil }
        let (dayMicros, o1) = days.multipliedReportingOverflow(by: microsecondsPerDay)
        let (local, o2) = dayMicros.addingReportingOverflow(clock)
        let (utc, o3) = local.subtractingReportingOverflow(offsetSeconds * 1_000_000)
        guard !o1, !o2, !o3 else { return nil }
        return utc
    }

    private static func infinity(_ text: [UInt8]) -> Int64? {
        if text.elementsEqual("infinity".utf8) { return .max }
        if text.elementsEqual("-infinity".utf8) { return .min }
        return nil
    }

    /// Days from 2000-01-01 to the proleptic Gregorian date (astronomical year: 1 BC is year 0).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let monthIndex = month > 2 ? month - 3 : month + 9
        let dayOfYear = (153 * monthIndex + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        // 730425: days from 0000-03-01 to 2000-01-01.
        return era * 146_097 + dayOfEra - 730_425
    }

    /// A cursor over the text.
    struct Reader {
        let bytes: [UInt8]
        var index = 0
        /// The parsed calendar date, kept to redo it as BC if a ` BC` suffix follows.
        var year: Int64 = 0
        var month: Int64 = 0
        var day: Int64 = 0

        init(bytes: [UInt8]) {
            self.bytes = bytes
        }

        var atEnd: Bool { index == bytes.count }

        mutating func consume(_ c: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == c else { return false }
            index += 1
            return true
        }

        mutating func number(minDigits: Int, maxDigits: Int) -> Int64? {
            var value: Int64 = 0
            var count = 0
            while index < bytes.count, count < maxDigits, bytes[index] >= UInt8(ascii: "0"),
                  bytes[index] <= UInt8(ascii: "9") {
                value = value * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
                index += 1
                count += 1
            }
            return count >= minDigits ? value : nil
        }

        /// `YYYY-MM-DD` (4 or more year digits).
        mutating func date() -> Int64? {
            guard let y = number(minDigits: 4, maxDigits: 9), consume(UInt8(ascii: "-")),
                  let m = number(minDigits: 2, maxDigits: 2), consume(UInt8(ascii: "-")),
                  let d = number(minDigits: 2, maxDigits: 2), (1...12).contains(m), (1...31).contains(d) else {
                return nil
            }
            year = y
            month = m
            day = d
            return PGDateTime.daysFromCivil(year: y, month: m, day: d)
        }

        /// `HH:MM:SS[.ffffff]` as microseconds.
        mutating func clock() -> Int64? {
            guard let h = number(minDigits: 2, maxDigits: 2), consume(UInt8(ascii: ":")),
                  let m = number(minDigits: 2, maxDigits: 2), consume(UInt8(ascii: ":")),
                  let s = number(minDigits: 2, maxDigits: 2) else { return nil }
            var micros = ((h * 60 + m) * 60 + s) * 1_000_000
            if consume(UInt8(ascii: ".")) {
                var scale: Int64 = 100_000
                var digits = 0
                while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                    guard digits < 6 else { return nil }
                    micros += Int64(bytes[index] - UInt8(ascii: "0")) * scale
                    scale /= 10
                    digits += 1
                    index += 1
                }
                guard digits > 0 else { return nil }
            }
            return micros
        }

        /// `+HH`, `-HH:MM`, `+HH:MM:SS` as seconds east of UTC.
        mutating func zoneOffset() -> Int64? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") else {
                return nil
            }
            let negative = bytes[index] == UInt8(ascii: "-")
            index += 1
            guard let h = number(minDigits: 2, maxDigits: 2) else { return nil }
            var seconds = h * 3600
            if consume(UInt8(ascii: ":")) {
                guard let m = number(minDigits: 2, maxDigits: 2) else { return nil }
                seconds += m * 60
                if consume(UInt8(ascii: ":")) {
                    guard let s = number(minDigits: 2, maxDigits: 2) else { return nil }
                    seconds += s
                }
            }
            return negative ? -seconds : seconds
        }

        mutating func consumeBC() -> Bool {
            let suffix = Array(" BC".utf8)
            guard bytes.count - index >= 3, Array(bytes[index..<(index + 3)]) == suffix else { return false }
            index += 3
            return true
        }

        /// The parsed date as BC: year Y BC is astronomical year 1 - Y.
        var bcDays: Int64? {
            guard year >= 1 else { return nil }
            return PGDateTime.daysFromCivil(year: 1 - year, month: month, day: day)
        }
    }
}
