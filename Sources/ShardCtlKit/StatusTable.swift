/// A plain-text table with a header row and columns padded to their widest cell; right-aligned columns
/// are for numbers. No trailing spaces.
public struct StatusTable: Sendable {
    /// How a column's cells are padded.
    public enum Alignment: Sendable {
        case left
        case right
    }

    /// Column titles.
    public var headers: [String]
    /// Per column; left unless given.
    public var alignments: [Alignment]
    /// The rows added so far.
    public var rows: [[String]] = []

    /// An empty table with these columns.
    public init(headers: [String], alignments: [Alignment]? = nil) {
        self.headers = headers
        self.alignments = alignments ?? Array(repeating: .left, count: headers.count)
    }

    /// Appends a row (missing cells are empty).
    public mutating func add(_ row: [String]) {
        self.rows.append(row)
    }

    /// The table as lines joined by `\n` (no final newline).
    public func render() -> String {
        let all = [self.headers] + self.rows
        let widths = self.headers.indices.map { column in
            all.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0
        }
        let lines = all.map { row in
            var line = ""
            for column in self.headers.indices {
                let text = row.indices.contains(column) ? row[column] : ""
                let padding = String(repeating: " ", count: widths[column] - text.count)
                let isLast = column == self.headers.count - 1
                switch self.alignments[column] {
                case .left: line += text + (isLast ? "" : padding)
                case .right: line += padding + text
                }
                if !isLast { line += "  " }
            }
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
        return lines.joined(separator: "\n")
    }
}
