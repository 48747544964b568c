import NIOCore
import PGWire
@testable import ResultMerge
import Testing

@Suite("Streaming merges: concatenation, ORDER BY, LIMIT, DISTINCT")
struct StreamMergeTests {
    let intText = describe([("id", OID.int8), ("name", OID.text)])

    @Test("concatenation streams every row, one RowDescription, SELECT n")
    func concatenation() {
        let result = merge(MergeSpec(), [
            ShardInput(intText, [row("1", "a"), row("2", "b")]),
            ShardInput(intText, [row("3", "c")]),
            ShardInput(intText, []),
        ])
        #expect(result.description?.columns.map(\.name) == ["id", "name"])
        #expect(Set(result.rows.map { $0[0]! }) == ["1", "2", "3"])
        #expect(result.tag == "SELECT 3")
        #expect(result.error == nil)
        // RowDescription first, CommandComplete last, exactly once each.
        guard case .rowDescription = result.outputs.first, case .commandComplete = result.outputs.last else {
            Issue.record("bad output order: \(result.outputs)")
            return
        }
        #expect(result.outputs.filter { if case .rowDescription = $0 { return true }; return false }.count == 1)
    }

    @Test("concatenation emits rows before every shard has finished")
    func concatenationStreams() {
        var merger = ResultMerger(spec: MergeSpec(), shardCount: 2, maxBufferedBytes: 1 << 20, collation: .c)
        merger.rowDescription(shard: 0, intText)
        merger.rowDescription(shard: 1, intText)
        _ = merger.takeOutput()
        merger.dataRow(shard: 0, row("1", "a"))
        #expect(merger.takeOutput().count == 1)
        #expect(!merger.isFinished)
    }

    @Test("ORDER BY: a k-way merge of sorted shards, ASC/DESC, NULLS FIRST/LAST", arguments: [
        (false, nil as Bool?, ["1", "2", "3", "4", "5", "6", nil, nil]),
        (true, nil, [nil, nil, "6", "5", "4", "3", "2", "1"]),
        (false, true, [nil, nil, "1", "2", "3", "4", "5", "6"]),
        (true, false, ["6", "5", "4", "3", "2", "1", nil, nil]),
    ])
    func kWay(_ descending: Bool, _ nullsFirst: Bool?, _ expected: [String?]) {
        let spec = MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(0), descending: descending, nullsFirst: nullsFirst)])
        let first = nullsFirst ?? descending
        func sorted(_ values: [String?]) -> [DataRow] {
            let nonNull = values.compactMap { $0 }.sorted { descending ? Int($0)! > Int($1)! : Int($0)! < Int($1)! }
            let nulls = values.filter { $0 == nil }
            let ordered: [String?] = first ? nulls + nonNull.map { $0 } : nonNull.map { $0 } + nulls
            return ordered.map { row($0, "x") }
        }
        for order in [MergeFeedOrder.roundRobin, .sequential, .random] {
            let result = merge(spec, [
                ShardInput(intText, sorted(["1", "4", nil, "6"])),
                ShardInput(intText, sorted(["2", "3", "5", nil])),
            ], order: order)
            #expect(result.rows.map { $0[0] } == expected, "\(order)")
            #expect(result.tag == "SELECT 8")
        }
    }

    @Test("k-way merge over many shards with uneven streams equals a global sort")
    func manyShards() {
        var generator = SplitMix(seed: 7)
        let shardCount = 13
        var all: [(Int64, String)] = []
        var inputs: [ShardInput] = []
        let description = describe([("k", OID.int8), ("t", OID.text), ("h", OID.int4)])
        for shard in 0..<shardCount {
            let count = shard == 3 ? 0 : Int(generator.next() % 400)
            var values: [(Int64, String)] = []
            for i in 0..<count { values.append((Int64(generator.next() % 100) - 50, "s\(shard)-\(i)")) }
            values.sort { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
            all += values
            inputs.append(ShardInput(description, values.map { row(String($0.0), $0.1, "7") }))
        }
        let spec = MergeSpec(hiddenColumnCount: 1, sortKeys: [MergeSortKey(column: .fromStart(0), descending: true),
                                                              MergeSortKey(column: .fromStart(1))])
        for order in [MergeFeedOrder.roundRobin, .random] {
            let result = merge(spec, inputs, order: order)
            let expected = all.sorted { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
            #expect(result.rows.count == expected.count)
            #expect(result.rows.map { $0[0]! } == expected.map { String($0.0) })
            #expect(result.rows.map { $0[1]! } == expected.map { $0.1 })
            #expect(result.rows.allSatisfy { $0.count == 2 }, "the hidden column is stripped")
            #expect(result.description?.columns.count == 2)
        }
    }

    @Test("the merge pauses a shard that is far ahead and waits for the others")
    func backpressure() {
        let spec = MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(0))])
        var merger = ResultMerger(spec: spec, shardCount: 2, maxBufferedBytes: 1 << 30, collation: .c)
        merger.rowDescription(shard: 0, intText)
        merger.rowDescription(shard: 1, intText)
        _ = merger.takeOutput()
        var fed = 0
        while merger.wantsInput(from: 0), fed < 10_000 {
            merger.dataRow(shard: 0, row(String(fed), "x"))
            fed += 1
        }
        #expect(fed == StreamMerge.queueRowLimit, "shard 0 paused after its queue filled")
        #expect(merger.takeOutput().isEmpty, "nothing can be emitted before shard 1 has a row")
        #expect(merger.wantsInput(from: 1))
        merger.dataRow(shard: 1, row("100000", "y"))
        #expect(merger.takeOutput().count == fed, "everything below shard 1's head is emitted")
        #expect(merger.wantsInput(from: 0))
        merger.commandComplete(shard: 0, tag: "SELECT \(fed)")
        merger.commandComplete(shard: 1, tag: "SELECT 1")
        let tail = merger.takeOutput()
        #expect(tail.count == 2)
        #expect(tail.last == .commandComplete("SELECT \(fed + 1)"))
    }

    @Test("a shard whose rows are out of order for the merge's collation fails the merge (never a wrong order)")
    func orderCheck() {
        let spec = MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(1))])
        // Sorted by a case-insensitive collation on the shard, which is not byte order.
        let result = merge(spec, [ShardInput(intText, [row("1", "a"), row("2", "B")]), ShardInput(intText, [])])
        #expect(result.sqlState == "0A000")
        #expect(result.tag == nil)
    }

    @Test("LIMIT and OFFSET on concatenation and on ORDER BY", arguments: [
        (0 as Int64, 3 as Int64?, ["1", "2", "3"]), (2, 3, ["3", "4", "5"]), (5, nil, ["6", "7", "8"]),
        (10, 5, []), (0, 0, []), (7, 100, ["8"]),
    ])
    func limitOffset(_ offset: Int64, _ limit: Int64?, _ expected: [String]) {
        let sorted = MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(0))], offset: offset, limit: limit)
        let inputs = [ShardInput(intText, ["1", "4", "5", "8"].map { row($0, "x") }),
                      ShardInput(intText, ["2", "3", "6", "7"].map { row($0, "y") })]
        let result = merge(sorted, inputs)
        #expect(result.rows.map { $0[0]! } == expected)
        #expect(result.tag == "SELECT \(expected.count)")
        let unsorted = merge(MergeSpec(offset: offset, limit: limit), inputs, order: .sequential)
        #expect(unsorted.rows.count == expected.count)
        #expect(unsorted.tag == "SELECT \(expected.count)")
    }

    @Test("a satisfied LIMIT completes the result at once; later shard rows and errors are dropped")
    func limitCompletesEarly() {
        let spec = MergeSpec(limit: 2)
        var merger = ResultMerger(spec: spec, shardCount: 2, maxBufferedBytes: 1 << 20, collation: .c)
        merger.rowDescription(shard: 0, intText)
        merger.dataRow(shard: 0, row("1", "a"))
        merger.dataRow(shard: 0, row("2", "b"))
        #expect(merger.isFinished)
        let outputs = merger.takeOutput()
        #expect(outputs.last == .commandComplete("SELECT 2"))
        merger.dataRow(shard: 0, row("3", "c"))
        merger.shardFailed(shard: 1, backendError("57014", "canceling statement due to user request"))
        #expect(merger.takeOutput().isEmpty)
        #expect(merger.wantsInput(from: 1), "a finished merge drains")
    }

    @Test("LIMIT 0 completes before any row")
    func limitZero() {
        let result = merge(MergeSpec(limit: 0), [ShardInput(intText, [row("1", "a")]), ShardInput(intText, [])])
        #expect(result.rows.isEmpty)
        #expect(result.tag == "SELECT 0")
    }

    @Test("FETCH FIRST n ROWS WITH TIES returns the rows equal to the last one")
    func withTies() {
        let spec = MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(0))], offset: 1, limit: 2, withTies: true)
        let result = merge(spec, [ShardInput(intText, ["1", "2", "3", "3", "4"].map { row($0, "a") }),
                                  ShardInput(intText, ["3", "3", "5"].map { row($0, "b") })])
        #expect(result.rows.map { $0[0]! } == ["2", "3", "3", "3", "3"])
    }

    @Test("DISTINCT across shards, adjacent when sorted by every column, by a set otherwise")
    func distinct() {
        let description = describe([("a", OID.int4), ("b", OID.text)])
        let inputs = [ShardInput(description, [row("1", "x"), row("1", "y"), row("2", "x")]),
                      ShardInput(description, [row("1", "x"), row("2", "x"), row("3", nil), row("3", nil)])]
        let unsorted = merge(MergeSpec(distinct: .rows), inputs)
        #expect(Set(unsorted.rows.map { "\($0[0]!)|\($0[1] ?? "NULL")" }) == ["1|x", "1|y", "2|x", "3|NULL"])
        #expect(unsorted.rows.count == 4)
        let sorted = merge(MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(0)), MergeSortKey(column: .fromStart(1))],
                                     limit: 3, distinct: .rows), inputs)
        #expect(sorted.rows.map { "\($0[0]!)|\($0[1] ?? "NULL")" } == ["1|x", "1|y", "2|x"])
        #expect(sorted.tag == "SELECT 3")
    }

    @Test("DISTINCT compares by value: 1.0 = 1.00, -0 = 0, NaN = NaN, char(n) padding")
    func distinctByValue() {
        let description = describe([("n", OID.numeric), ("f", OID.float8), ("c", OID.bpchar)])
        let result = merge(MergeSpec(distinct: .rows), [
            ShardInput(description, [row("1.0", "-0", "ab  "), row("2", "NaN", "x")]),
            ShardInput(description, [row("1.00", "0", "ab"), row("2.000", "NaN", "x ")]),
        ])
        #expect(result.rows.count == 2)
    }

    @Test("DISTINCT ON keeps the first row of each key in ORDER BY order")
    func distinctOn() {
        let description = describe([("k", OID.int4), ("v", OID.int4)])
        let spec = MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(0)), MergeSortKey(column: .fromStart(1), descending: true)],
                             distinct: .on([.fromStart(0)]))
        let result = merge(spec, [ShardInput(description, [row("1", "5"), row("1", "2"), row("2", "1")]),
                                  ShardInput(description, [row("1", "9"), row("3", "3"), row("3", "1")])])
        #expect(result.rows.map { $0.compactMap { $0 } } == [["1", "9"], ["2", "1"], ["3", "3"]])
    }

    @Test("binary result format: sorting and passing rows through unchanged")
    func binaryFormat() {
        let description = describe([("k", OID.int4), ("f", OID.float8)], format: 1)
        func int4(_ v: Int32) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
        func float8(_ v: Double) -> [UInt8] { withUnsafeBytes(of: v.bitPattern.bigEndian) { Array($0) } }
        let spec = MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(1))])
        let result = merge(spec, [
            ShardInput(description, [binaryRow([int4(1), float8(-1.5)]), binaryRow([int4(2), float8(.nan)])]),
            ShardInput(description, [binaryRow([int4(3), float8(-.infinity)]), binaryRow([int4(4), float8(0)])]),
        ], binary: true)
        #expect(result.rows.map { $0[0]! } == ["00000003", "00000001", "00000004", "00000002"])
    }

    @Test("columns after a * are found from the end")
    func fromEnd() {
        let description = describe([("a", OID.int4), ("b", OID.int4), ("c", OID.int4), ("h", OID.int4)])
        let spec = MergeSpec(hiddenColumnCount: 1, sortKeys: [MergeSortKey(column: .fromEnd(1))])
        let result = merge(spec, [ShardInput(description, [row("1", "1", "1", "10"), row("2", "2", "2", "30")]),
                                  ShardInput(description, [row("3", "3", "3", "20")])])
        #expect(result.rows.map { $0[0]! } == ["1", "3", "2"])
        #expect(result.description?.columns.count == 3)
    }

    @Test("ORDER BY a type the merger cannot compare is refused with 0A000 before any row")
    func unsupportedType() {
        let description = describe([("j", OID.jsonb)])
        let result = merge(MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(0))]),
                           [ShardInput(description, [row("{}")]), ShardInput(description, [])])
        #expect(result.sqlState == "0A000")
        #expect(result.rows.isEmpty)
        #expect(result.description == nil)
        #expect(result.error?.message?.contains("jsonb") == true)
    }
}
