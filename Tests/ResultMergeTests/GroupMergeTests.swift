import NIOCore
import PGWire
@testable import ResultMerge
import Testing

@Suite("Aggregate merges: GROUP BY, HAVING, count/sum/avg/min/max, DISTINCT aggregates")
struct GroupMergeTests {
    @Test("count, sum(int4 → int8), min, max without GROUP BY: one row")
    func plainAggregates() {
        let description = describe([("count", OID.int8), ("sum", OID.int8), ("min", OID.text), ("max", OID.int4)])
        let spec = MergeSpec(grouping: MergeGrouping(keys: [], aggregates: [
            MergeAggregate(column: .fromStart(0), function: .count), MergeAggregate(column: .fromStart(1), function: .sum),
            MergeAggregate(column: .fromStart(2), function: .min), MergeAggregate(column: .fromStart(3), function: .max),
        ], hasGroupBy: false))
        let result = merge(spec, [ShardInput(description, [row("3", "10", "b", "7")]),
                                  ShardInput(description, [row("2", "-4", "a", "9")]),
                                  ShardInput(description, [row("0", nil, nil, nil)])])
        #expect(result.rows == [["5", "6", "a", "9"]])
        #expect(result.tag == "SELECT 1")
        #expect(result.description?.columns.map(\.dataTypeOID) == [OID.int8, OID.int8, OID.text, OID.int4])
    }

    @Test("aggregates over no rows at all: count 0, the others NULL, still one row")
    func emptyInput() {
        let description = describe([("count", OID.int8), ("c", OID.text)])
        let spec = MergeSpec(grouping: MergeGrouping(keys: [], aggregates: [
            MergeAggregate(column: .fromStart(0), function: .count),
            MergeAggregate(column: .fromStart(1), function: .count, isDistinct: true),
        ], hasGroupBy: false))
        let result = merge(spec, [ShardInput(description, []), ShardInput(description, [])])
        #expect(result.rows == [["0", "0"]])
    }

    @Test("sum of int8 partials is numeric; sum overflow of int8 partials is 22003")
    func sums() {
        let numeric = describe([("sum", OID.numeric)])
        let spec = MergeSpec(grouping: MergeGrouping(keys: [], aggregates: [MergeAggregate(column: .fromStart(0), function: .sum)],
                                                     hasGroupBy: false))
        let big = merge(spec, [ShardInput(numeric, [row("9223372036854775807")]), ShardInput(numeric, [row("9223372036854775807.50")])])
        #expect(big.rows == [["18446744073709551614.50"]])
        let int8 = describe([("sum", OID.int8)])
        let overflow = merge(spec, [ShardInput(int8, [row("9223372036854775807")]), ShardInput(int8, [row("1")])])
        #expect(overflow.sqlState == "22003")
        let floats = describe([("sum", OID.float8)])
        let f = merge(spec, [ShardInput(floats, [row("0.1")]), ShardInput(floats, [row("0.2")])])
        #expect(f.rows == [["0.30000000000000004"]])
        let float4 = describe([("sum", OID.float4)])
        let f4 = merge(spec, [ShardInput(float4, [row("0.1")]), ShardInput(float4, [row("0.2")])])
        #expect(f4.rows == [["0.3"]])
        let inf = merge(spec, [ShardInput(floats, [row("1e+308")]), ShardInput(floats, [row("1e+308")])])
        #expect(inf.sqlState == "22003")
    }

    @Test("avg from hidden sum and count: numeric with PostgreSQL's scale, float8 for floats")
    func averages() {
        // (avg column type, sum column type, shard rows (avg, sum, count), expected)
        let cases: [(UInt32, UInt32, [[String?]], String?)] = [
            (OID.numeric, OID.int8, [["1.5", "3", "2"], ["2.0", "2", "1"]], "1.6666666666666667"),
            (OID.numeric, OID.int8, [["2", "2", "1"], ["3", "3", "1"]], "2.5000000000000000"),
            (OID.numeric, OID.numeric, [["1.25", "2.50", "2"], ["3.125", "3.125", "1"]], "1.8750000000000000"),
            (OID.numeric, OID.int8, [[nil, nil, "0"], [nil, nil, "0"]], nil),
            (OID.float8, OID.float8, [["0.5", "1", "2"], ["2", "2", "1"]], "1"),
            (OID.float8, OID.float4, [["0.10000000149011612", "0.1", "1"], ["0.20000000298023224", "0.2", "1"]],
             "0.15000000223517418"),
        ]
        for (avgType, sumType, rows, expected) in cases {
            let description = describe([("avg", avgType), ("?sg1", sumType), ("?sg2", OID.int8)])
            let spec = MergeSpec(hiddenColumnCount: 2, grouping: MergeGrouping(keys: [], aggregates: [
                MergeAggregate(column: .fromStart(0), function: .avg, sumColumn: .fromStart(1), countColumn: .fromStart(2)),
            ], hasGroupBy: false))
            let result = merge(spec, rows.map { ShardInput(description, [row($0)]) })
            #expect(result.rows == [[expected]], "\(avgType) \(sumType)")
            #expect(result.description?.columns.count == 1)
        }
    }

    @Test("GROUP BY merges partial groups; HAVING on merged values; ORDER BY and LIMIT over groups")
    func groups() {
        let description = describe([("country", OID.text), ("count", OID.int8), ("sum", OID.int8)])
        let grouping = MergeGrouping(keys: [.fromStart(0)], aggregates: [
            MergeAggregate(column: .fromStart(1), function: .count), MergeAggregate(column: .fromStart(2), function: .sum),
        ], having: .compare(.greater, .column(.fromStart(1)), .constant(.number("2"))), hasGroupBy: true)
        let spec = MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(2), descending: true)], limit: 2, grouping: grouping)
        let result = merge(spec, [
            ShardInput(description, [row("de", "2", "10"), row("fr", "1", "1"), row("us", "5", "3"), row(nil, "2", "2")]),
            ShardInput(description, [row("fr", "1", "7"), row("de", "1", "1"), row(nil, "1", "9")]),
        ])
        // de: 3 rows, sum 11; fr: 2 rows (fails HAVING); us: 5, sum 3; NULL group: 3, sum 11.
        #expect(result.rows.count == 2)
        #expect(Set(result.rows.map { $0[0] ?? "NULL" }) == ["de", "NULL"])
        #expect(result.tag == "SELECT 2")
        let all = merge(MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(0))], grouping: grouping), [
            ShardInput(description, [row("de", "2", "10"), row("us", "5", "3"), row(nil, "2", "2")]),
            ShardInput(description, [row("de", "1", "1"), row(nil, "1", "9")]),
        ])
        #expect(all.rows == [["de", "3", "11"], ["us", "5", "3"], [nil, "3", "11"]])
    }

    @Test("GROUP BY keys compare by value: numeric 1.0 and 1.00 are one group")
    func groupByValue() {
        let description = describe([("n", OID.numeric), ("count", OID.int8)])
        let spec = MergeSpec(grouping: MergeGrouping(keys: [.fromStart(0)], aggregates: [
            MergeAggregate(column: .fromStart(1), function: .count)], hasGroupBy: true))
        let result = merge(spec, [ShardInput(description, [row("1.0", "2")]), ShardInput(description, [row("1.00", "3")])])
        #expect(result.rows.count == 1)
        #expect(result.rows.first?[1] == "5")
    }

    @Test("count/sum/avg(DISTINCT x) from the shards' distinct values, typed as PostgreSQL types them")
    func distinctAggregates() {
        // Shards grouped by (g, x): column 0 = g, 1 = x (count DISTINCT), 2 = x (sum DISTINCT), 3 = x (avg DISTINCT),
        // 4 = count(*) partial.
        let description = describe([("g", OID.text), ("x", OID.int4), ("x", OID.int4), ("x", OID.int4), ("count", OID.int8)])
        let grouping = MergeGrouping(keys: [.fromStart(0)], aggregates: [
            MergeAggregate(column: .fromStart(1), function: .count, isDistinct: true, outputName: "count"),
            MergeAggregate(column: .fromStart(2), function: .sum, isDistinct: true, outputName: "sum"),
            MergeAggregate(column: .fromStart(3), function: .avg, isDistinct: true, outputName: "avg"),
            MergeAggregate(column: .fromStart(4), function: .count),
        ], hasGroupBy: true)
        let result = merge(MergeSpec(sortKeys: [MergeSortKey(column: .fromStart(0))], grouping: grouping), [
            ShardInput(description, [row("a", "1", "1", "1", "2"), row("a", "2", "2", "2", "1"), row("a", nil, nil, nil, "4"),
                                     row("b", "5", "5", "5", "1")]),
            ShardInput(description, [row("a", "2", "2", "2", "3"), row("a", "3", "3", "3", "1"), row("b", "5", "5", "5", "2")]),
        ])
        #expect(result.rows == [["a", "3", "6", "2.0000000000000000", "11"], ["b", "1", "5", "5.0000000000000000", "3"]])
        let types = result.description?.columns.map(\.dataTypeOID)
        #expect(types == [OID.text, OID.int8, OID.int8, OID.numeric, OID.int8])
        #expect(result.description?.columns.map(\.name) == ["g", "count", "sum", "avg", "count"])
    }

    @Test("bool_and / bool_or ignore NULLs")
    func booleans() {
        let description = describe([("a", OID.bool), ("o", OID.bool)])
        let spec = MergeSpec(grouping: MergeGrouping(keys: [], aggregates: [
            MergeAggregate(column: .fromStart(0), function: .boolAnd), MergeAggregate(column: .fromStart(1), function: .boolOr),
        ], hasGroupBy: false))
        let result = merge(spec, [ShardInput(description, [row("t", "f")]), ShardInput(description, [row(nil, nil)]),
                                  ShardInput(description, [row("f", "t")])])
        #expect(result.rows == [["f", "t"]])
    }

    @Test("HAVING: three-valued logic, IN-like OR, IS NULL, text and parameter constants")
    func having() {
        let description = describe([("g", OID.text), ("count", OID.int8), ("max", OID.text)])
        func run(_ predicate: MergePredicate) -> Set<String> {
            let spec = MergeSpec(grouping: MergeGrouping(keys: [.fromStart(0)], aggregates: [
                MergeAggregate(column: .fromStart(1), function: .count), MergeAggregate(column: .fromStart(2), function: .max),
            ], having: predicate, hasGroupBy: true))
            let result = merge(spec, [
                ShardInput(description, [row("a", "1", "x"), row("b", "2", nil), row("c", "5", "z")]),
                ShardInput(description, [row("a", "1", "y"), row("c", "1", "q")]),
            ])
            #expect(result.error == nil, "\(result.error?.message ?? "")")
            return Set(result.rows.map { $0[0]! })
        }
        let count = MergeOperand.column(.fromStart(1)), max = MergeOperand.column(.fromStart(2))
        #expect(run(.compare(.equal, count, .constant(.number("2")))) == ["a", "b"])
        #expect(run(.compare(.greaterOrEqual, count, .constant(.number("2.5")))) == ["c"])
        #expect(run(.compare(.greater, max, .constant(.string("x")))) == ["a", "c"])
        #expect(run(.isNull(max, negated: false)) == ["b"])
        #expect(run(.not(.compare(.equal, max, .constant(.string("y"))))) == ["c"], "NULL stays unknown under NOT")
        #expect(run(.or([.compare(.equal, count, .constant(.number("6"))), .isNull(max, negated: false)])) == ["b", "c"])
        #expect(run(.compare(.less, count, .constant(.parameter(typeOID: 20, binary: true, value: [0, 0, 0, 0, 0, 0, 0, 3]))))
            == ["a", "b"])
        #expect(run(.compare(.less, count, .constant(.parameter(typeOID: 0, binary: false, value: Array("3".utf8)))))
            == ["a", "b"])
        #expect(run(.constant(nil)) == [])
    }

    @Test("avg over float4 sums the shards' float8 averages, not their float4 sums")
    func float4Average() {
        let description = describe([("avg", OID.float8), ("?sg1", OID.float4), ("?sg2", OID.int8)])
        let spec = MergeSpec(hiddenColumnCount: 2, grouping: MergeGrouping(keys: [], aggregates: [
            MergeAggregate(column: .fromStart(0), function: .avg, sumColumn: .fromStart(1), countColumn: .fromStart(2)),
        ], hasGroupBy: false))
        // Shard 0 holds 3 float4 values whose float8 avg is exactly 1.0000000596046448.
        let result = merge(spec, [ShardInput(description, [row("1.0000000596046448", "3.0000002", "3")]),
                                  ShardInput(description, [row("2", "2", "1")])])
        #expect(result.rows == [["1.2500000447034836"]])
    }

    @Test("a buffer limit that groups exceed fails with 54000 and a hint")
    func bufferLimit() {
        let description = describe([("g", OID.int8), ("count", OID.int8)])
        let spec = MergeSpec(grouping: MergeGrouping(keys: [.fromStart(0)], aggregates: [
            MergeAggregate(column: .fromStart(1), function: .count)], hasGroupBy: true))
        let rows = (0..<10_000).map { row(String($0), "1") }
        let result = merge(spec, [ShardInput(description, rows), ShardInput(description, rows)], maxBytes: 100_000)
        #expect(result.sqlState == "54000")
        #expect(result.error?.message?.contains("merge.max_bytes = 100000") == true)
        #expect(result.error?[.hint] != nil)
        #expect(result.tag == nil)
        let fine = merge(spec, [ShardInput(description, rows), ShardInput(description, rows)], maxBytes: 64 << 20)
        #expect(fine.rows.count == 10_000)
        #expect(fine.rows.allSatisfy { $0[1] == "2" })
    }

    @Test("DISTINCT over merged groups")
    func distinctGroups() {
        let description = describe([("count", OID.int8), ("g", OID.int4)])
        let spec = MergeSpec(hiddenColumnCount: 1, distinct: .rows, grouping: MergeGrouping(keys: [.fromStart(1)], aggregates: [
            MergeAggregate(column: .fromStart(0), function: .count)], hasGroupBy: true))
        let result = merge(spec, [ShardInput(description, [row("1", "1"), row("2", "2")]),
                                  ShardInput(description, [row("1", "2"), row("3", "3")])])
        // Merged groups: g1 = 1, g2 = 3, g3 = 3; their distinct counts are {1, 3}.
        #expect(result.rows.map { $0[0]! }.sorted() == ["1", "3"])
    }

    @Test("aggregates in binary format")
    func binaryAggregates() {
        let description = describe([("count", OID.int8), ("sum", OID.numeric)], format: 1)
        func int8(_ v: Int64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
        func numeric(_ text: String) -> [UInt8] {
            var buffer = ByteBuffer()
            PGNumeric(text: text)!.encodeBinary(into: &buffer)
            return Array(buffer.readableBytesView)
        }
        let spec = MergeSpec(grouping: MergeGrouping(keys: [], aggregates: [
            MergeAggregate(column: .fromStart(0), function: .count), MergeAggregate(column: .fromStart(1), function: .sum),
        ], hasGroupBy: false))
        let result = merge(spec, [ShardInput(description, [binaryRow([int8(2), numeric("1.5")])]),
                                  ShardInput(description, [binaryRow([int8(3), numeric("10000")])])], binary: true)
        let expectedSum = numeric("10001.5").map { hex($0) }.joined()
        #expect(result.rows == [["0000000000000005", expectedSum]])
    }

    @Test("sum over an interval column is refused with 0A000 naming the type")
    func unsupportedSum() {
        let description = describe([("sum", OID.interval)])
        let spec = MergeSpec(grouping: MergeGrouping(keys: [], aggregates: [MergeAggregate(column: .fromStart(0), function: .sum)],
                                                     hasGroupBy: false))
        let result = merge(spec, [ShardInput(description, [row("1 day")]), ShardInput(description, [row("2 days")])])
        #expect(result.sqlState == "0A000")
        #expect(result.error?.message?.contains("interval") == true)
    }
}
