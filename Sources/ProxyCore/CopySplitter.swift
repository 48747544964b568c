import NIOCore
import PGWire
import ShardMap
import SQLRouting

/// Splits the data of a `COPY sharded_table FROM STDIN` by each row's shard key, so that every shard
/// gets the rows of the slots it owns — as PostgreSQL's hash partitioning would route them.
///
/// The data arrives in CopyData messages cut anywhere; rows are found with PostgreSQL's COPY rules: in
/// text format a row ends at a newline not escaped by a backslash and fields are split at the delimiter
/// (a backslash escapes it); in CSV a row ends at a newline outside quotes. The key field is decoded as
/// COPY decodes it (escapes, quotes, the NULL string). A header line, and the end-of-data line `\.`, go to
/// every shard. Rows are collected per shard and sent in messages of about `chunk` bytes.
struct CopySplitter {
    let format: CopyInFormat
    /// The key's 0-based field position.
    let keyField: Int
    let slotCount: Int
    /// Shard index of each slot.
    let owners: [Int]
    /// Group member of each shard index.
    let memberOfShard: [Int: Int]
    let memberCount: Int
    /// Bytes of a row that has not fully arrived.
    private var partial: [UInt8] = []
    private var headerPending: Bool
    /// The end-of-data marker was seen: the rest of the data is ignored, as PostgreSQL ignores it.
    private var ended = false
    private var pending: [ByteBuffer]
    static let chunk = 64 << 10

    init(format: CopyInFormat, keyField: Int, map: ShardMap, memberOfShard: [Int: Int], memberCount: Int,
         allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.format = format
        self.keyField = keyField
        self.slotCount = map.slotCount
        self.owners = map.slotOwners
        self.memberOfShard = memberOfShard
        self.memberCount = memberCount
        self.headerPending = format.header
        self.pending = (0..<memberCount).map { _ in allocator.buffer(capacity: 1024) }
    }

    /// Takes one CopyData payload; returns the rows ready to go, per member (members with nothing are left out).
    mutating func feed(_ data: ByteBuffer) -> [(member: Int, data: ByteBuffer)] {
        guard !self.ended else { return [] }
        var bytes = self.partial
        self.partial = []
        bytes.append(contentsOf: data.readableBytesView)
        var start = 0
        while !self.ended, let end = self.rowEnd(bytes, from: start) {
            self.route(bytes[start..<end])
            start = end
        }
        if !self.ended { self.partial = Array(bytes[start...]) }
        return self.take(minimum: Self.chunk)
    }

    /// The data ended (CopyDone): a last row without a newline, and everything collected.
    mutating func finish() -> [(member: Int, data: ByteBuffer)] {
        if !self.partial.isEmpty, !self.ended {
            let last = self.partial
            self.partial = []
            self.route(last[...])
        }
        return self.take(minimum: 1)
    }

    private mutating func take(minimum: Int) -> [(member: Int, data: ByteBuffer)] {
        var out: [(member: Int, data: ByteBuffer)] = []
        for member in 0..<self.memberCount where self.pending[member].readableBytes >= minimum {
            out.append((member, self.pending[member]))
            self.pending[member] = ByteBufferAllocator().buffer(capacity: 1024)
        }
        return out
    }

    /// Sends one row (with its line end) to its shard; a header or end marker to every shard.
    private mutating func route(_ row: ArraySlice<UInt8>) {
        if self.headerPending {
            self.headerPending = false
            for member in 0..<self.memberCount { self.pending[member].writeBytes(row) }
            return
        }
        let content = Self.withoutLineEnd(row)
        if content.elementsEqual([UInt8(ascii: "\\"), UInt8(ascii: ".")]) {
            self.ended = true
            for member in 0..<self.memberCount { self.pending[member].writeBytes(row) }
            return
        }
        let member = self.member(forKey: self.field(self.keyField, of: content))
        self.pending[member].writeBytes(row)
    }

    /// The member that gets a row whose key field is `key` (nil: SQL NULL). NULL goes where hash
    /// partitioning puts it (slot 0); a key PostgreSQL would reject goes to the first shard, which reports
    /// the error for the row.
    private func member(forKey key: String?) -> Int {
        let slot: Int
        if let key {
            slot = SlotHash.slot(literal: key, type: self.format.keyType, slotCount: self.slotCount) ?? 0
        } else {
            slot = 0
        }
        return self.memberOfShard[self.owners[slot]] ?? 0
    }

    static func withoutLineEnd(_ row: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var content = row
        if content.last == 0x0A { content = content.dropLast() }
        if content.last == 0x0D { content = content.dropLast() }
        return content
    }

    /// The index after the line end of the row starting at `from`, or nil when the row is not complete.
    private func rowEnd(_ b: [UInt8], from: Int) -> Int? {
        var i = from
        switch self.format.format {
        case .text:
            while i < b.count {
                if b[i] == UInt8(ascii: "\\") {
                    i += 2
                    continue
                }
                if b[i] == 0x0A { return i + 1 }
                i += 1
            }
        case .csv:
            var quoted = false
            while i < b.count {
                let c = b[i]
                if quoted {
                    if c == self.format.escape, self.format.escape != self.format.quote, i + 1 < b.count,
                       b[i + 1] == self.format.quote || b[i + 1] == self.format.escape {
                        i += 2
                        continue
                    }
                    if c == self.format.quote {
                        if self.format.escape == self.format.quote, i + 1 < b.count, b[i + 1] == self.format.quote {
                            i += 2
                            continue
                        }
                        if self.format.escape == self.format.quote, i + 1 == b.count {
                            // A doubled quote may be split across messages: wait for the next byte.
                            return nil
                        }
                        quoted = false
                    }
                } else if c == self.format.quote {
                    quoted = true
                } else if c == 0x0A {
                    return i + 1
                }
                i += 1
            }
        }
        return nil
    }

    /// Field `index` of a row as COPY reads it; nil for NULL (or a row too short, which the server refuses).
    func field(_ index: Int, of row: ArraySlice<UInt8>) -> String? {
        switch self.format.format {
        case .text: return self.textField(index, of: row)
        case .csv: return self.csvField(index, of: row)
        }
    }

    private func textField(_ index: Int, of row: ArraySlice<UInt8>) -> String? {
        var field = 0
        var i = row.startIndex
        var start = i
        while i < row.endIndex {
            let c = row[i]
            if c == UInt8(ascii: "\\") {
                i += 2
                continue
            }
            if c == self.format.delimiter {
                if field == index { break }
                field += 1
                start = i + 1
            }
            i += 1
        }
        guard field == index else { return nil }
        let raw = row[start..<min(i, row.endIndex)]
        if raw.elementsEqual(self.format.null.utf8) { return nil }
        return String(decoding: Self.unescapeText(raw), as: UTF8.self)
    }

    /// Text-format escapes: \b \f \n \r \t \v, octal \NNN, hex \xNN, and \c for any other c.
    static func unescapeText(_ raw: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = raw.startIndex
        while i < raw.endIndex {
            let c = raw[i]
            guard c == UInt8(ascii: "\\"), i + 1 < raw.endIndex else {
                out.append(c)
                i += 1
                continue
            }
            let e = raw[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "v"): out.append(0x0B)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var value = Int(e - UInt8(ascii: "0"))
                var digits = 1
                while digits < 3, i < raw.endIndex, raw[i] >= UInt8(ascii: "0"), raw[i] <= UInt8(ascii: "7") {
                    value = value * 8 + Int(raw[i] - UInt8(ascii: "0"))
                    i += 1
                    digits += 1
                }
                out.append(UInt8(truncatingIfNeeded: value))
            case UInt8(ascii: "x"):
                var value = 0
                var digits = 0
                while digits < 2, i < raw.endIndex, let digit = Self.hex(raw[i]) {
                    value = value * 16 + Int(digit)
                    i += 1
                    digits += 1
                }
                if digits == 0 { out.append(e) } else { out.append(UInt8(value)) }
            default:
                out.append(e)
            }
        }
        return out
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private func csvField(_ index: Int, of row: ArraySlice<UInt8>) -> String? {
        var field = 0
        var i = row.startIndex
        var value: [UInt8] = []
        var quotedField = false
        var quoted = false
        while i < row.endIndex {
            let c = row[i]
            if quoted {
                if c == self.format.escape, i + 1 < row.endIndex,
                   row[i + 1] == self.format.quote || (self.format.escape != self.format.quote && row[i + 1] == self.format.escape) {
                    if field == index { value.append(row[i + 1]) }
                    i += 2
                    continue
                }
                if c == self.format.quote {
                    quoted = false
                } else if field == index {
                    value.append(c)
                }
            } else if c == self.format.quote {
                quoted = true
                quotedField = true
            } else if c == self.format.delimiter {
                if field == index { break }
                field += 1
                value = []
                quotedField = false
            } else if field == index {
                value.append(c)
            }
            i += 1
        }
        guard field == index else { return nil }
        if !quotedField, value.elementsEqual(self.format.null.utf8) { return nil }
        return String(decoding: value, as: UTF8.self)
    }
}
