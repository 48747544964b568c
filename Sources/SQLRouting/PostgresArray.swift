/// PostgreSQL array values in their text (`array_in`) and binary (`array_recv`) forms, flattened to
/// their elements (routing only needs the set of values; any dimensions are accepted).
enum PostgresArray {
    /// Parses `{1,2,"three",NULL}`, nested braces and an optional `[1:3]=` dimension prefix included.
    /// Elements are `nil` for NULL. Returns `nil` when the text is not a valid array literal.
    static func parseText(_ text: some Collection<UInt8>) -> [String?]? {
        let b = Array(text)
        var i = 0
        let n = b.count
        func skipSpace() { while i < n, SQLLexer.isSpace(b[i]) { i += 1 } }
        skipSpace()
        if i < n, b[i] == UInt8(ascii: "[") {
            // Dimension decoration: `[lo:hi][lo:hi]=`.
            while i < n, b[i] != UInt8(ascii: "=") { i += 1 }
            guard i < n else { return nil }
            i += 1
            skipSpace()
        }
        guard i < n, b[i] == UInt8(ascii: "{") else { return nil }
        var elements: [String?] = []
        var depth = 0
        var expectElement = true
        while i < n {
            let c = b[i]
            if SQLLexer.isSpace(c) {
                i += 1
            } else if c == UInt8(ascii: "{") {
                guard expectElement else { return nil }
                depth += 1
                i += 1
            } else if c == UInt8(ascii: "}") {
                depth -= 1
                i += 1
                expectElement = false
                if depth == 0 { break }
            } else if c == UInt8(ascii: ",") {
                guard !expectElement else { return nil }
                expectElement = true
                i += 1
            } else {
                guard expectElement, depth > 0 else { return nil }
                var value: [UInt8] = []
                if c == UInt8(ascii: "\"") {
                    i += 1
                    while i < n, b[i] != UInt8(ascii: "\"") {
                        if b[i] == UInt8(ascii: "\\") { i += 1 }
                        if i < n { value.append(b[i]) }
                        i += 1
                    }
                    guard i < n else { return nil }
                    i += 1
                    elements.append(String(decoding: value, as: UTF8.self))
                } else {
                    var lastSignificant = 0
                    var escaped = false
                    while i < n, b[i] != UInt8(ascii: ","), b[i] != UInt8(ascii: "}") {
                        if b[i] == UInt8(ascii: "{") || b[i] == UInt8(ascii: "\"") { return nil }
                        if b[i] == UInt8(ascii: "\\") {
                            i += 1
                            guard i < n else { return nil }
                            escaped = true
                            value.append(b[i])
                            lastSignificant = value.count
                        } else {
                            value.append(b[i])
                            if !SQLLexer.isSpace(b[i]) { lastSignificant = value.count }
                        }
                        i += 1
                    }
                    value.removeSubrange(lastSignificant...)
                    let string = String(decoding: value, as: UTF8.self)
                    elements.append(!escaped && string.lowercased() == "null" ? nil : string)
                }
                expectElement = false
            }
        }
        guard depth == 0 else { return nil }
        skipSpace()
        return i == n ? elements : nil
    }

    /// Decodes `array_send` output: ndim, has-null flag, element type OID, (length, lower bound) per
    /// dimension, then each element as a length (-1 for NULL) and bytes.
    static func decodeBinary(_ b: [UInt8]) -> (elementType: UInt32, elements: [ArraySlice<UInt8>?])? {
        var i = 0
        func int32() -> Int32? {
            guard i + 4 <= b.count else { return nil }
            defer { i += 4 }
            return Int32(bitPattern: UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3]))
        }
        guard let dimensions = int32(), dimensions >= 0, dimensions <= 6, int32() != nil,
              let elementType = int32() else { return nil }
        var count = dimensions == 0 ? 0 : 1
        for _ in 0..<dimensions {
            guard let length = int32(), length >= 0, int32() != nil else { return nil }
            count *= Int(length)
        }
        guard count <= b.count else { return nil }
        var elements: [ArraySlice<UInt8>?] = []
        elements.reserveCapacity(count)
        for _ in 0..<count {
            guard let length = int32() else { return nil }
            if length < 0 {
                elements.append(nil)
                continue
            }
            guard i + Int(length) <= b.count else { return nil }
            elements.append(b[i..<(i + Int(length))])
            i += Int(length)
        }
        return i == b.count ? (UInt32(bitPattern: elementType), elements) : nil
    }
}
