import NIOCore
import PGWire
@testable import ResultMerge

/// Type OIDs used in the tests.
enum OID {
    static let bool: UInt32 = 16
    static let bytea: UInt32 = 17
    static let name: UInt32 = 19
    static let int8: UInt32 = 20
    static let int2: UInt32 = 21
    static let int4: UInt32 = 23
    static let text: UInt32 = 25
    static let float4: UInt32 = 700
    static let float8: UInt32 = 701
    static let bpchar: UInt32 = 1042
    static let varchar: UInt32 = 1043
    static let date: UInt32 = 1082
    static let time: UInt32 = 1083
    static let timestamp: UInt32 = 1114
    static let timestamptz: UInt32 = 1184
    static let interval: UInt32 = 1186
    static let numeric: UInt32 = 1700
    static let uuid: UInt32 = 2950
    static let jsonb: UInt32 = 3802
}

/// A RowDescription of (name, type) columns, all in `format` (0 text, 1 binary).
func describe(_ columns: [(String, UInt32)], format: Int16 = 0) -> RowDescription {
    RowDescription(columns: columns.map {
        RowDescription.Column(name: $0.0, tableOID: 0, columnAttributeNumber: 0, dataTypeOID: $0.1,
                              dataTypeSize: -1, dataTypeModifier: -1, format: format)
    })
}

/// A text-format row.
func row(_ values: String?...) -> DataRow {
    DataRow(values: values.map { $0.map { ByteBuffer(string: $0) } })
}

/// A text-format row from an array.
func row(_ values: [String?]) -> DataRow {
    DataRow(values: values.map { $0.map { ByteBuffer(string: $0) } })
}

/// A binary-format row from raw column bytes.
func binaryRow(_ values: [[UInt8]?]) -> DataRow {
    DataRow(values: values.map { $0.map { ByteBuffer(bytes: $0) } })
}

/// What one shard sends.
struct ShardInput {
    var description: RowDescription
    var rows: [DataRow]
    var error: ErrorNoticeFields?

    init(_ description: RowDescription, _ rows: [DataRow], error: ErrorNoticeFields? = nil) {
        self.description = description
        self.rows = rows
        self.error = error
    }
}

/// The merged result as the client sees it.
struct MergeResult {
    var description: RowDescription?
    var rows: [[String?]]
    var tag: String?
    var error: ErrorNoticeFields?
    var outputs: [MergeOutput]

    var sqlState: String? { error?.sqlState }
}

/// Text values of a row (binary values as hex).
func texts(_ row: DataRow, binary: Bool = false) -> [String?] {
    (0..<Int(row.columnCount)).map { i in
        row.column(i).map { buffer in
            binary ? buffer.readableBytesView.map { hex($0) }.joined()
                   : String(decoding: buffer.readableBytesView, as: UTF8.self)
        }
    }
}

/// Collects outputs into a result.
func collect(_ outputs: [MergeOutput], binary: Bool = false) -> MergeResult {
    var result = MergeResult(description: nil, rows: [], tag: nil, error: nil, outputs: outputs)
    for output in outputs {
        switch output {
        case .rowDescription(let d): result.description = d
        case .dataRow(let r): result.rows.append(texts(r, binary: binary))
        case .commandComplete(let tag): result.tag = tag
        case .errorResponse(let e): result.error = e
        }
    }
    return result
}

/// Feeds every shard's messages in the given interleaving ("round robin" by default: one message of each
/// shard in turn), taking output after every event and checking the protocol's order of outputs.
func merge(
    _ spec: MergeSpec, _ shards: [ShardInput], maxBytes: Int = 1 << 30, collation: TextCollation = .c,
    order: MergeFeedOrder = .roundRobin, binary: Bool = false
) -> MergeResult {
    var merger = ResultMerger(spec: spec, shardCount: shards.count, maxBufferedBytes: maxBytes, collation: collation,
                              shardNames: shards.indices.map { "s\($0)" })
    var outputs: [MergeOutput] = []
    // Each shard's events: description, rows, then completion or error.
    var queues: [[Event]] = shards.map { shard in
        [.describe(shard.description)] + shard.rows.map { .row($0) } + [shard.error.map { .fail($0) } ?? .complete]
    }
    var cursors = Array(repeating: 0, count: shards.count)
    func step(_ shard: Int) {
        let event = queues[shard][cursors[shard]]
        cursors[shard] += 1
        switch event {
        case .describe(let d): merger.rowDescription(shard: shard, d)
        case .row(let r): merger.dataRow(shard: shard, r)
        case .complete: merger.commandComplete(shard: shard, tag: "SELECT 0")
        case .fail(let e): merger.shardFailed(shard: shard, e)
        }
        outputs += merger.takeOutput()
    }
    var generator = SplitMix(seed: 42)
    while cursors.indices.contains(where: { cursors[$0] < queues[$0].count }) {
        let open = cursors.indices.filter { cursors[$0] < queues[$0].count }
        switch order {
        case .roundRobin:
            for shard in open { step(shard) }
        case .sequential:
            step(open[0])
        case .random:
            // Prefer shards the merger wants input from, as a handler obeying backpressure would.
            let wanted = open.filter { merger.wantsInput(from: $0) }
            let pool = wanted.isEmpty ? open : wanted
            step(pool[Int(generator.next() % UInt64(pool.count))])
        }
    }
    queues = []
    return collect(outputs, binary: binary)
}

enum MergeFeedOrder {
    case roundRobin, sequential, random
}

private enum Event {
    case describe(RowDescription)
    case row(DataRow)
    case complete
    case fail(ErrorNoticeFields)
}

/// A small deterministic random generator for tests.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A shard error as a backend sends it.
func backendError(_ sqlState: String, _ message: String, position: Int? = nil) -> ErrorNoticeFields {
    ErrorNoticeFields(severity: "ERROR", sqlState: sqlState, message: message, position: position)
}

/// Two lowercase hex digits.
func hex(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
}
