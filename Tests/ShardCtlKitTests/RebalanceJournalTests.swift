import Foundation
import ShardCtlKit
import ShardMap
import Testing

@Suite("RebalanceJournal: file round trips, resume and abort decisions")
struct RebalanceJournalTests {
    static func journal(phases: [MovePhase]) -> RebalanceJournal {
        let moves = phases.indices.map { RebalanceMove(source: "s\($0)", target: "s9", slots: [10 * $0, 10 * $0 + 1]) }
        var journal = RebalanceJournal(id: "0badcafe", plan: RebalancePlan(baseVersion: 3, moves: moves),
                                       proxies: ["http://127.0.0.1:9930"])
        for (index, phase) in phases.enumerated() { journal.moves[index].phase = phase }
        return journal
    }

    static func temporaryPath() -> String {
        NSTemporaryDirectory() + "rebalance-journal-test-\(UUID().uuidString)/shardgate-rebalance.journal"
    }

    @Test func aFreshJournalNamesItsObjectsAfterTheRun() {
        let journal = Self.journal(phases: [.planned, .planned])
        #expect(journal.moves.map(\.name) == ["shardgate_rb_0badcafe_1", "shardgate_rb_0badcafe_2"])
        #expect(journal.moves[1].slots == "10-11")
        #expect(journal.state == .running)
        #expect(journal.involvedShards == ["s0", "s1", "s9"])
        #expect(RebalanceJournal.makeID().count == 8)
    }

    @Test func roundTripsThroughTheFileWithEveryField() throws {
        let path = Self.temporaryPath()
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var journal = Self.journal(phases: [.flipping])
        journal.moves[0].newVersion = 4
        journal.moves[0].fence = "0/3000060"
        journal.moves[0].createdTables = ["\"public\".\"users\""]
        journal.moves[0].tables = [.init(mapName: "users", key: "id", type: "bigint", relation: "\"public\".\"users\"")]
        journal.moves[0].subscriptionOid = "16403"
        journal.moves[0].pauseMs = 12.5
        journal.moves[0].cutoverSteps = ["pause": 1.5]
        journal.lastError = "boom"
        journal.record("something happened")
        let file = RebalanceJournalFile(path: path)
        #expect(try file.load() == nil)
        try file.save(journal)
        #expect(try file.load() == journal)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"), "the temporary file was renamed")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("\"new_version\" : 4"))
        #expect(text.contains("\"phase\" : \"flipping\""))
        journal.moves[0].phase = .flipped
        try file.save(journal)
        #expect(try file.load()?.moves[0].phase == .flipped, "a second save replaces the first")
    }

    @Test func aBrokenFileIsRefusedByName() throws {
        let path = Self.temporaryPath()
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data("{\"not\": \"a journal\"}".utf8).write(to: URL(fileURLWithPath: path))
        #expect {
            try RebalanceJournalFile(path: path).load()
        } throws: { error in
            "\(error)".hasPrefix("journal \(path): not a rebalance journal")
        }
    }

    @Test func theLockIsExclusiveBetweenHolders() throws {
        let path = Self.temporaryPath()
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let first = RebalanceJournalFile(path: path)
        try first.lock()
        // flock locks belong to the open file description: a second open in this process conflicts too.
        let second = RebalanceJournalFile(path: path)
        #expect(throws: RebalanceError.self) { try second.lock() }
    }

    @Test(arguments: [
        (MovePhase.planned, RebalanceJournal.Step.prepareSchema(move: 0)),
        (.schemaReady, .publish(move: 0)),
        (.published, .subscribe(move: 0)),
        (.subscribed, .catchUp(move: 0)),
        (.caughtUp, .cutover(move: 0)),
        (.pausing, .releasePause(move: 0)),
        (.flipping, .finishFlip(move: 0)),
        (.flipped, .cleanup(move: 0)),
        (.done, .finished),
    ])
    func resumeContinuesAfterTheLastCompletedStep(phase: MovePhase, step: RebalanceJournal.Step) {
        #expect(Self.journal(phases: [phase]).nextStep() == step)
    }

    @Test func movesRunOneAfterAnother() {
        #expect(Self.journal(phases: [.done, .subscribed, .planned]).nextStep() == .catchUp(move: 1))
        #expect(Self.journal(phases: [.done, .done]).nextStep() == .finished)
        var aborted = Self.journal(phases: [.done, .aborted])
        aborted.state = .aborted
        #expect(aborted.nextStep() == .wasAborted)
    }

    @Test func abortUndoesEverythingBeforeTheFlip() {
        for phase in [MovePhase.planned, .schemaReady, .published, .subscribed, .caughtUp] {
            #expect(Self.journal(phases: [.done, phase]).abortPlan() == .undo(move: 1, from: phase, releasePause: false))
        }
        #expect(Self.journal(phases: [.pausing]).abortPlan() == .undo(move: 0, from: .pausing, releasePause: true))
    }

    @Test func abortAfterTheFlipIsRefusedOrChecked() {
        #expect(Self.journal(phases: [.flipping]).abortPlan() == .afterFlip(move: 0, checkProxies: true))
        #expect(Self.journal(phases: [.flipped]).abortPlan() == .afterFlip(move: 0, checkProxies: false))
        guard case .nothingToAbort = Self.journal(phases: [.done]).abortPlan() else {
            Issue.record("a finished run has nothing to abort")
            return
        }
    }

    @Test func flipDecisions() {
        #expect(RebalanceJournal.flipDecision([.new, .new]) == .complete)
        #expect(RebalanceJournal.flipDecision([.old, .old]) == .rollBack)
        #expect(RebalanceJournal.flipDecision([.new, .old, .unknown]) == .pushAgain([1, 2]))
        #expect(RebalanceJournal.flipDecision([.old, .unknown]) == .pushAgain([0, 1]),
                "an unknown proxy may have the map: never roll back then")
    }

    @Test func phasesAreOrdered() {
        #expect(MovePhase.planned < .caughtUp)
        #expect(MovePhase.flipping < .flipped)
        #expect(MovePhase.allCases.sorted() == MovePhase.allCases)
    }
}

@Suite("Small values: LSN, PauseStats")
struct RebalanceValueTests {
    @Test func lsnParsesComparesAndPrints() throws {
        let a = try #require(LSN("0/3000060"))
        let b = try #require(LSN("16/B374D848"))
        #expect(a.value == 0x300_0060)
        #expect(b.description == "16/B374D848")
        #expect(a < b)
        #expect(b.bytes(since: a) == b.value - a.value)
        #expect(a.bytes(since: b) == 0)
        #expect(LSN("nope") == nil)
        #expect(LSN("1/") == nil)
        #expect(LSN("123456789/0") == nil)
    }

    @Test func pauseStatsUseNearestRank() throws {
        let stats = try #require(PauseStats((1...100).map(Double.init)))
        #expect(stats.p50 == 50)
        #expect(stats.p99 == 99)
        #expect(stats.max == 100)
        let one = try #require(PauseStats([12.34]))
        #expect(one.description == "p50 12.3 ms, p99 12.3 ms, max 12.3 ms over 1 move")
        #expect(PauseStats([]) == nil)
    }
}
