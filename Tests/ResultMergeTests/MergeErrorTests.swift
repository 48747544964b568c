import NIOCore
import PGWire
@testable import ResultMerge
import Testing

@Suite("Errors: shard failures, protocol mistakes, describing")
struct MergeErrorTests {
    let description = describe([("id", OID.int8)])

    @Test("a shard's error becomes the one ErrorResponse, naming the shard; nothing is presented as complete")
    func shardError() {
        let spec = MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(0))], errorPositionLimit: 20)
        let result = merge(spec, [
            ShardInput(description, [row("1"), row("2")]),
            ShardInput(description, [row("3")], error: backendError("22012", "division by zero", position: 30)),
            ShardInput(description, [row("4")], error: backendError("57014", "canceling statement")),
        ], order: .sequential)
        #expect(result.sqlState == "22012")
        #expect(result.error?.message == "division by zero")
        #expect(result.error?[.detail] == "Reported by s1.")
        #expect(result.error?[.position] == nil, "a position past the unchanged prefix points into rewritten SQL")
        #expect(result.tag == nil)
        #expect(result.outputs.filter { if case .errorResponse = $0 { return true }; return false }.count == 1)
    }

    @Test("a position inside the unchanged prefix and an existing detail are kept")
    func shardErrorFields() {
        var fields = backendError("42703", "column \"x\" does not exist", position: 8)
        fields.fields.append((ErrorNoticeFields.Code.detail.rawValue, "More."))
        var merger = ResultMerger(spec: MergeSpec(errorPositionLimit: 20), shardCount: 2, maxBufferedBytes: 1 << 20,
                                  collation: .c, shardNames: ["s0", "s1"])
        merger.shardFailed(shard: 1, fields)
        let outputs = merger.takeOutput()
        guard case .errorResponse(let error)? = outputs.first else {
            Issue.record("no error: \(outputs)")
            return
        }
        #expect(error[.position] == "8")
        #expect(error[.detail] == "More. (on s1)")
        #expect(merger.failedShard == 1)
        #expect(merger.isFinished)
        // Later events are ignored.
        merger.rowDescription(shard: 0, description)
        merger.commandComplete(shard: 0, tag: "SELECT 0")
        #expect(merger.takeOutput().isEmpty)
    }

    @Test("shards that describe different columns fail the merge with 42804")
    func mismatchedColumns() {
        let result = merge(MergeSpec(), [ShardInput(description, [row("1")]),
                                         ShardInput(describe([("id", OID.int4)]), [row("2")])], order: .sequential)
        #expect(result.sqlState == "42804")
        let widths = merge(MergeSpec(), [ShardInput(description, []),
                                         ShardInput(describe([("id", OID.int8), ("x", OID.text)]), [])])
        #expect(widths.sqlState == "42804")
    }

    @Test("protocol mistakes are internal errors, never a result: rows before describing, wrong widths, twice")
    func protocolMistakes() {
        func run(_ body: (inout ResultMerger) -> Void) -> MergeResult {
            var merger = ResultMerger(spec: MergeSpec(), shardCount: 2, maxBufferedBytes: 1 << 20, collation: .c)
            body(&merger)
            return collect(merger.takeOutput())
        }
        #expect(run { $0.dataRow(shard: 0, row("1")) }.sqlState == "XX000")
        #expect(run {
            $0.rowDescription(shard: 0, description)
            $0.dataRow(shard: 0, row("1", "2"))
        }.sqlState == "XX000")
        #expect(run {
            $0.rowDescription(shard: 0, description)
            $0.rowDescription(shard: 0, description)
        }.sqlState == "XX000")
        #expect(run { $0.commandComplete(shard: 1, tag: "SELECT 0") }.sqlState == "XX000")
        #expect(run { $0.rowDescription(shard: 5, description) }.sqlState == "XX000")
        #expect(run {
            $0.rowDescription(shard: 0, description)
            $0.commandComplete(shard: 0, tag: "SELECT 0")
            $0.dataRow(shard: 0, row("1"))
        }.sqlState == "XX000")
    }

    @Test("an unknown collation fails text ordering with 0A000 and a hint")
    func unknownCollation() {
        let text = describe([("t", OID.text)])
        let spec = MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(0))])
        let result = merge(spec, [ShardInput(text, [row("a")]), ShardInput(text, [])],
                           collation: TextCollation("xx_NOWHERE.UTF-8"))
        #expect(result.sqlState == "0A000")
        #expect(result.error?[.hint] != nil)
        let cOverride = merge(MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(0), collation: .c)]),
                              [ShardInput(text, [row("a")]), ShardInput(text, [row("b")])],
                              collation: TextCollation("xx_NOWHERE.UTF-8"))
        #expect(cOverride.rows == [["a"], ["b"]], "COLLATE \"C\" needs no locale")
    }

    @Test("the client's RowDescription for a Describe: hidden columns gone, DISTINCT aggregates typed")
    func clientDescription() throws {
        let shard = describe([("g", OID.text), ("count", OID.text), ("?sg1", OID.int8)])
        let spec = MergeSpec(hiddenColumnCount: 1, grouping: MergeGrouping(keys: [.fromStart(0)], aggregates: [
            MergeAggregate(column: .fromStart(1), function: .count, isDistinct: true, outputName: "count"),
            MergeAggregate(column: .fromStart(2), function: .count),
        ], hasGroupBy: true))
        let client = try ResultMerger.clientDescription(spec: spec, shardDescription: shard)
        #expect(client.columns.map(\.name) == ["g", "count"])
        #expect(client.columns.map(\.dataTypeOID) == [OID.text, OID.int8])
        #expect(client.columns[1].dataTypeSize == 8)
        let plain = try ResultMerger.clientDescription(spec: MergeSpec(hiddenColumnCount: 2), shardDescription: shard)
        #expect(plain.columns.map(\.name) == ["g"])
        #expect(throws: MergeError.self) {
            try ResultMerger.clientDescription(spec: MergeSpec(hiddenColumnCount: 4), shardDescription: shard)
        }
    }

    @Test("error fields are a PostgreSQL ErrorResponse")
    func errorFields() {
        let fields = MergeError.bufferLimit(1024).errorFields
        #expect(fields.severity == "ERROR")
        #expect(fields.sqlState == "54000")
        #expect(fields.message?.hasPrefix("ShardGate's merge buffer limit (merge.max_bytes = 1024) was exceeded") == true)
        #expect(MergeError.unsupported("x").message == "ShardGate does not support x")
    }
}
