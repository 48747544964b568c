import Foundation
import ShardCtlKit
import ShardMap
import Testing

@Suite("shardctl status output")
struct StatusFormatterTests {
    static func report() throws -> StatusReport {
        try StatusReport.decode(Data(StatusGolden.json.utf8))
    }

    @Test func decodesWhatTheAdminPortWrites() throws {
        let report = try Self.report()
        #expect(report.mapVersion == 3)
        #expect(report.slotCount == 1024)
        #expect(report.clients == 5)
        #expect(report.pausedSlots == "0-99,300")
        #expect(report.pausedSlotCount == 101)
        #expect(report.counters.queriesTotal == 140)
        #expect(report.counters.queries["single"] == 120)
        #expect(report.counters.fencedReads == 12)
        #expect(report.shards[1].name == "s1")
        #expect(report.shards[1].primary == "postgresql://postgres@127.0.0.1:5502/app")
        #expect(report.shards[1].replicas == ["postgresql://postgres@127.0.0.1:5503/app"])
        #expect(report.shards[1].slots == "512-1023" && report.shards[1].slotCount == 512)
        #expect(report.replicas[0].inRotation && report.replicas[0].lagBytes == 0 && report.replicas[0].replayLsn == "0/3000060")
        #expect(report.replicas[1].reason == "unreachable: connection refused")
        #expect(report.replicas[1].lagMs == nil)
        #expect(report.primaries[1].walLsn == "0/5000000")
        #expect(report.pools.count == 2)
        #expect(report.sampledAt == "2025-12-01T15:00:34.567Z")
    }

    @Test func rendersReadableTables() throws {
        let text = StatusFormatter.render(proxy: "http://127.0.0.1:9930", try Self.report())
        let expected = """
        proxy http://127.0.0.1:9930: map version 3; 2 shards; 5 clients; 140 queries (7 all, 10 any, 3 multi, 120 single); \
        2 errors; reads: 90 replica, 50 primary (12 read-your-writes); lag sampled 2025-12-01T15:00:34.567Z

        SHARD  SLOTS           ROLE     SERVER                                    HEALTHY  IN ROTATION  LSN        LAG BYTES  LAG MS  NOTE
        s0     512 (0-511)     primary  postgresql://postgres@127.0.0.1:5500/app  yes      -            0/3000060
                               replica  postgresql://postgres@127.0.0.1:5501/app  yes      yes          0/3000060          0       0
        s1     512 (512-1023)  primary  postgresql://postgres@127.0.0.1:5502/app  yes      -            0/5000000
                               replica  postgresql://postgres@127.0.0.1:5503/app  no       no           -                  -       -  unreachable: connection refused

        SHARD  ROLE     SERVER                                    SIZE  BUSY  IDLE  WAITING
        s0     primary  postgresql://postgres@127.0.0.1:5500/app    20     2     3        0
        s0     replica  postgresql://postgres@127.0.0.1:5501/app    20     1     4        0

        paused slots: 0-99,300 (101 slots)
        """
        #expect(text == expected, "got:\n\(text)")
        #expect(!text.split(separator: "\n").contains { $0.hasSuffix(" ") }, "no trailing spaces")
    }

    @Test func severalProxiesWithDifferentMapVersionsAreFlagged() throws {
        let report = try Self.report()
        var newer = report
        newer.mapVersion = 4
        let text = StatusFormatter.render([("http://a:9930", report), ("http://b:9930", newer)])
        #expect(text.contains("proxy http://a:9930: map version 3"))
        #expect(text.contains("proxy http://b:9930: map version 4"))
        #expect(text.hasSuffix("WARNING: the proxies serve different map versions: http://a:9930 has 3, http://b:9930 has 4"))
        #expect(!StatusFormatter.render([("http://a:9930", report), ("http://b:9930", report)]).contains("WARNING"))
    }

    @Test func nothingPausedAndNoPools() throws {
        var report = try Self.report()
        report.pausedSlots = ""
        report.pausedSlotCount = 0
        report.pools = []
        report.sampledAt = nil
        let text = StatusFormatter.render(proxy: "p", report)
        #expect(text.hasSuffix("pools: none open\n\npaused slots: none"))
        #expect(text.contains("lag not sampled yet"))
    }

    @Test func tablesAlignNumbersRight() {
        var table = StatusTable(headers: ["NAME", "N"], alignments: [.left, .right])
        table.add(["a", "5"])
        table.add(["long name", "12345"])
        #expect(table.render() == "NAME           N\na              5\nlong name  12345")
    }

    @Test func mapSummaryDescribesAValidMap() throws {
        let json = """
        {"version": 7, "shards": [
          {"name": "s0", "primary": "postgresql://postgres@127.0.0.1:5500/app", "replicas": []},
          {"name": "s1", "primary": "postgresql://postgres:pw@127.0.0.1:5502/app",
           "replicas": ["postgresql://postgres@127.0.0.1:5503/app"]}],
         "slots": {"s0": "0-99", "s1": "100-1023"},
         "tables": {"users": {"shard_key": "id", "type": "bigint"}, "countries": {"reference": true}}}
        """
        let map = try ShardMap.decode(Data(json.utf8), environment: [:])
        let text = StatusFormatter.mapSummary(map, file: "m.json")
        #expect(text == """
            m.json: valid: version 7, 1024 slots, 2 shards, 2 tables (1 sharded, 1 reference)
              s0: 100 slots (0-99), primary postgresql://postgres@127.0.0.1:5500/app, 0 replicas
              s1: 924 slots (100-1023), primary postgresql://postgres@127.0.0.1:5502/app, 1 replica
            """)
        #expect(!text.contains("pw"))
    }
}
