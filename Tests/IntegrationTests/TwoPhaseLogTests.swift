import Foundation
import ProxyCore
import ProxyServer
import Testing

/// The decision log on a real file: what survives a restart, and compaction.
@Suite("Two-phase commit decision log")
struct TwoPhaseLogTests {
    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sg-2pc-\(UUID().uuidString).log").path
    }

    static func decision(_ id: String) -> TwoPhaseDecision {
        TwoPhaseDecision(id: id, participants: [.init(shard: "s0", gid: "\(id)_0"), .init(shard: "s1", gid: "\(id)_1")])
    }

    @Test func aRestartKeepsTheInstanceAndUndoneDecisionsAndCountsBoots() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try TwoPhaseLog(path: path)
        #expect(first.boot == 1)
        try first.recordCommit(Self.decision("sg_a_1_1"))
        try first.recordCommit(Self.decision("sg_a_1_2"))
        first.recordDone("sg_a_1_1")

        let second = try TwoPhaseLog(path: path)
        #expect(second.instance == first.instance)
        #expect(second.boot == 2)
        #expect(second.pending == ["sg_a_1_2": ["sg_a_1_2_0", "sg_a_1_2_1"]])
        #expect(second.isDecided("sg_a_1_2") && !second.isDecided("sg_a_1_1"))
        // Opening compacted the file: the done decision is gone from it.
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains("sg_a_1_1"))
        #expect(text.contains("commit sg_a_1_2 s0=sg_a_1_2_0 s1=sg_a_1_2_1"))
    }

    @Test func aLongLogIsCompactedWhileRunning() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try TwoPhaseLog(path: path, compactBytes: 4096)
        for n in 1...200 {
            try log.recordCommit(Self.decision("sg_b_1_\(n)"))
            if n != 150 { log.recordDone("sg_b_1_\(n)") }
        }
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
        #expect(size < 8192, "the file is \(size) bytes")
        let reopened = try TwoPhaseLog(path: path)
        #expect(reopened.pending.keys.sorted() == ["sg_b_1_150"])
        #expect(reopened.instance == log.instance)
    }

    @Test func commitIDsOfDifferentBootsNeverMeet() {
        let first = TwoPhaseRegistry(instance: "x", boot: 1)
        let second = TwoPhaseRegistry(instance: "x", boot: 2)
        let a = first.begin()
        let b = second.begin()
        #expect(a != b)
        #expect(second.commitID(ofGID: "\(a)_0") == a)
        #expect(second.commitID(ofGID: "sg_y_1_1_0") == nil)
    }
}
