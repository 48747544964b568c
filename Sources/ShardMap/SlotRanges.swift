import Foundation

/// The slot-list notation of `slots` and `shardctl rebalance --slots`: comma-separated single
/// slots and inclusive ranges, e.g. `"0-99,300-311,512"`.
public enum SlotRanges {
    /// Parses a slot list. Spaces around items are allowed; an empty string is an empty list.
    ///
    /// Refused (as `ShardMapError` with field `slots`): empty items, anything but decimal digits,
    /// reversed ranges (`9-3`), slots outside `0..<slotCount`, and a slot listed twice.
    /// Ranges are returned in the order written.
    public static func parse(_ s: String, slotCount: Int) throws -> [ClosedRange<Int>] {
        let trimmed = s.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return [] }
        var ranges: [ClosedRange<Int>] = []
        for rawItem in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let item = rawItem.trimmingCharacters(in: .whitespaces)
            guard !item.isEmpty else {
                throw problem("empty item in slot list \"\(s)\"; write ranges like \"0-99,300-311\"")
            }
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            let range: ClosedRange<Int>
            switch bounds.count {
            case 1:
                let slot = try number(bounds[0], item: item)
                range = slot...slot
            case 2:
                let low = try number(bounds[0], item: item)
                let high = try number(bounds[1], item: item)
                guard low <= high else {
                    throw problem("range \"\(item)\" is reversed; write \"\(high)-\(low)\"")
                }
                range = low...high
            default:
                throw problem("\"\(item)\" is not a slot or a range like \"0-99\"")
            }
            guard range.upperBound < slotCount else {
                let slot = range.lowerBound >= slotCount ? range.lowerBound : range.upperBound
                throw problem("slot \(slot) is out of range 0-\(slotCount - 1)")
            }
            if let earlier = ranges.first(where: { $0.overlaps(range) }) {
                let slot = max(earlier.lowerBound, range.lowerBound)
                throw problem("slot \(slot) is listed twice")
            }
            ranges.append(range)
        }
        return ranges
    }

    /// Formats slots as the shortest list of ascending ranges; duplicates are ignored and an empty
    /// input gives `""`. `format([0, 1, 2, 7, 9, 10])` is `"0-2,7,9-10"`.
    public static func format(_ slots: [Int]) -> String {
        let sorted = Set(slots).sorted()
        var parts: [String] = []
        var index = 0
        while index < sorted.count {
            let start = sorted[index]
            var end = start
            while index + 1 < sorted.count, sorted[index + 1] == end + 1 {
                index += 1
                end = sorted[index]
            }
            parts.append(start == end ? "\(start)" : "\(start)-\(end)")
            index += 1
        }
        return parts.joined(separator: ",")
    }

    /// Formats ranges (in any order, possibly touching) the same way as `format(_: [Int])`.
    public static func format(ranges: [ClosedRange<Int>]) -> String {
        format(ranges.flatMap { Array($0) })
    }

    /// Expands a parsed slot list into the individual slots, ascending.
    public static func slots(in ranges: [ClosedRange<Int>]) -> [Int] {
        Set(ranges.flatMap { Array($0) }).sorted()
    }

    private static func number(_ text: Substring, item: String) throws -> Int {
        let digits = text.trimmingCharacters(in: .whitespaces)
        guard !digits.isEmpty, digits.utf8.count <= 9,
              digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let value = Int(digits) else {
            throw problem("\"\(item)\" is not a slot or a range like \"0-99\"")
        }
        return value
    }

    private static func problem(_ text: String) -> ShardMapError {
        ShardMapError(field: "slots", problem: text)
    }
}
