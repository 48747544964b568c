import Foundation
import NIOConcurrencyHelpers
import ShardCtlKit
import ShardMap
import Testing

/// The HTTP sequencing of a cutover against fake admin ports and a fake database. This proves the
/// order of calls and the failure handling only; the feature itself is proven with real proxies and
/// PostgreSQL in tests/test_rebalance.py.
@Suite("RebalanceCutover: pause, drain, flip, resume across proxies")
struct RebalanceCutoverTests {
    /// A database whose subscription catches up (or not) on command, logging what it is asked.
    final class FakeDatabase: CutoverDatabase, @unchecked Sendable {
        let log: NIOLockedValueBox<[String]>
        var syncs = 0
        /// Sync points (1-based) the subscription never reaches.
        var stalls: Set<Int> = []

        init(log: NIOLockedValueBox<[String]>) {
            self.log = log
        }

        func sourceSyncPoint() throws -> LSN {
            self.syncs += 1
            self.log.withLockedValue { $0.append("db sync \(self.syncs)") }
            return LSN(UInt64(self.syncs))
        }

        func caughtUp(to lsn: LSN) throws -> Bool {
            !self.stalls.contains(Int(lsn.value))
        }

        func targetFence() throws -> LSN? {
            self.log.withLockedValue { $0.append("db fence") }
            return LSN("0/3000060")
        }
    }

    struct Setup {
        var log: NIOLockedValueBox<[String]>
        var proxies: [FakeAdminProxy]
        var fleet: ProxyFleet
        var database: FakeDatabase
        var map: ShardMap
        var phases: NIOLockedValueBox<[MovePhase]>

        func stop() async {
            for proxy in self.proxies { await proxy.stop() }
        }

        var requests: [String] { self.log.withLockedValue { $0 } }
        var recorded: [MovePhase] { self.phases.withLockedValue { $0 } }

        func cutover(_ options: RebalanceOptions = RebalanceOptions()) -> RebalanceCutover {
            RebalanceCutover(fleet: self.fleet, move: RebalanceMove(source: "s0", target: "s1", slots: Array(0...9)),
                             options: options, console: RebalanceConsole(live: false) { _, _ in })
        }

        func run(_ options: RebalanceOptions = RebalanceOptions()) async throws -> RebalanceCutover.Outcome {
            try await self.cutover(options).run(live: self.map, database: self.database) { phase, _, _ in
                self.phases.withLockedValue { $0.append(phase) }
            }
        }
    }

    static func setup(_ behaviors: [(FakeAdminProxy.PauseBehavior, FakeAdminProxy.PutBehavior)],
                      timeout: Duration = .seconds(5)) async throws -> Setup {
        let log = NIOLockedValueBox<[String]>([])
        let map = try RebalanceTestMaps.map(["0-511", "512-1023"])
        var proxies: [FakeAdminProxy] = []
        for (index, behavior) in behaviors.enumerated() {
            proxies.append(try await FakeAdminProxy(name: "p\(index)", map: map, log: log, pause: behavior.0, put: behavior.1))
        }
        let fleet = try ProxyFleet(proxies: proxies.map(\.url), token: "tok", timeout: timeout)
        return Setup(log: log, proxies: proxies, fleet: fleet, database: FakeDatabase(log: log), map: map,
                     phases: NIOLockedValueBox([]))
    }

    @Test func pausesEverywhereThenDrainsThenFlipsEverywhereThenResumes() async throws {
        let setup = try await Self.setup([(.drain, .accept), (.drain, .accept)])
        let outcome = try await setup.run()
        await setup.stop()
        let requests = setup.requests
        func position(_ text: String) -> Int { requests.firstIndex(of: text) ?? -1 }
        func last(_ text: String) -> Int { requests.lastIndex(of: text) ?? -1 }
        for proxy in ["p0", "p1"] {
            #expect(position("\(proxy) POST /slots/pause") > position("db sync 1"), "an unpaused pre-sync comes first")
            #expect(position("\(proxy) POST /slots/pause") < position("db sync 2"), "the paused drain waits for every pause")
            #expect(last("\(proxy) PUT /shardmap") > position("db fence"))
            #expect(position("\(proxy) POST /slots/resume") > last("p0 PUT /shardmap"))
            #expect(position("\(proxy) POST /slots/resume") > last("p1 PUT /shardmap"), "no proxy resumes before every proxy has the map")
        }
        #expect(setup.recorded == [.pausing, .flipping])
        #expect(outcome.newVersion == 8)
        #expect(outcome.fence == LSN("0/3000060"))
        #expect(setup.proxies.allSatisfy { $0.mapVersion == 8 })
        let body = try #require(setup.proxies[0].state.withLockedValue { $0.putBodies.last })
        #expect(body.contains("\"fences\":{\"s1\":\"0/3000060\"}"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        let slots = (object["map"] as? [String: Any])?["slots"] as? [String: String]
        #expect(slots == ["s0": "10-511", "s1": "0-9,512-1023"], "slots 0-9 now belong to s1")
        #expect(setup.proxies.allSatisfy { $0.state.withLockedValue { $0.paused.isEmpty } })
    }

    @Test func aProxyThatCannotDrainAbortsTheCutoverAndEveryProxyResumes() async throws {
        let setup = try await Self.setup([(.drain, .accept), (.timeout504, .accept)])
        await #expect {
            try await setup.run()
        } throws: { error in
            guard case RebalanceError.cutoverAborted(let why) = error else { return false }
            return why.contains("still running") && why.contains("resumed on every proxy")
        }
        await setup.stop()
        #expect(setup.proxies.allSatisfy { $0.state.withLockedValue { $0.puts } == 0 }, "no map was pushed")
        #expect(setup.requests.contains("p0 POST /slots/resume"))
        #expect(setup.requests.contains("p1 POST /slots/resume"))
        #expect(setup.recorded == [.pausing, .caughtUp])
        #expect(setup.proxies.allSatisfy { $0.mapVersion == 7 }, "the old map serves everywhere")
    }

    @Test func aProxyThatNeverAnswersThePauseTimesOutAndNothingFlips() async throws {
        let setup = try await Self.setup([(.drain, .accept), (.hang, .accept)], timeout: .milliseconds(300))
        var options = RebalanceOptions()
        options.pauseTimeoutMs = 100
        let started = ContinuousClock.now
        await #expect(throws: RebalanceError.self) { try await setup.run(options) }
        // Bounded by the request timeouts (a few of 300 ms with retries), not waiting for the hung proxy; the
        // bound is loose because parallel tests share two cores.
        #expect(ContinuousClock.now - started < .seconds(20), "bounded by the timeouts")
        await setup.stop()
        #expect(setup.proxies.allSatisfy { $0.state.withLockedValue { $0.puts } == 0 })
        #expect(setup.requests.contains("p0 POST /slots/resume"))
        #expect(setup.recorded == [.pausing, .caughtUp])
    }

    @Test func aSubscriptionThatDoesNotCatchUpBeforeThePausePausesNothing() async throws {
        let setup = try await Self.setup([(.drain, .accept)])
        setup.database.stalls = [1]
        var options = RebalanceOptions()
        options.catchUpTimeoutMs = 50
        await #expect {
            try await setup.run(options)
        } throws: { error in
            "\(error)".contains("nothing was paused")
        }
        await setup.stop()
        #expect(!setup.requests.contains { $0.contains("/slots/") })
        #expect(setup.recorded.isEmpty)
    }

    @Test func aDrainTimeoutWhilePausedResumesEverywhere() async throws {
        let setup = try await Self.setup([(.drain, .accept), (.drain, .accept)])
        setup.database.stalls = [2]
        var options = RebalanceOptions()
        options.catchUpTimeoutMs = 50
        await #expect {
            try await setup.run(options)
        } throws: { error in
            guard case RebalanceError.cutoverAborted(let why) = error else { return false }
            return why.contains("while the slots were paused")
        }
        await setup.stop()
        #expect(setup.proxies.allSatisfy { $0.state.withLockedValue { $0.puts } == 0 })
        #expect(setup.proxies.allSatisfy { $0.state.withLockedValue { $0.paused.isEmpty } })
        #expect(setup.recorded == [.pausing, .caughtUp])
    }

    @Test func aFailedPutIsRetriedWhileTheSlotsStayPaused() async throws {
        let setup = try await Self.setup([(.drain, .accept), (.drain, .failOnce)])
        let outcome = try await setup.run()
        await setup.stop()
        #expect(outcome.newVersion == 8)
        #expect(setup.proxies[1].state.withLockedValue { $0.puts } == 2)
        let requests = setup.requests
        let lastPut = try #require(requests.lastIndex(of: "p1 PUT /shardmap"))
        #expect(requests.firstIndex(of: "p0 POST /slots/resume")! > lastPut, "p0 resumes only after p1 took the map too")
    }

    @Test func aProxyThatNeverTakesTheMapKeepsItsSlotsPausedAndTheRunSaysResume() async throws {
        let setup = try await Self.setup([(.drain, .accept), (.drain, .fail)])
        await #expect {
            try await setup.run()
        } throws: { error in
            guard case RebalanceError.cutoverIncomplete(let why) = error else { return false }
            return why.contains("live on 1 of 2 proxies") && why.contains(setup.proxies[1].url)
        }
        await setup.stop()
        #expect(setup.requests.contains("p0 POST /slots/resume"), "the proxy with the new map resumes")
        #expect(!setup.requests.contains("p1 POST /slots/resume"), "the one with the old map stays paused")
        #expect(setup.recorded == [.pausing, .flipping], "the journal stays at flipping for --resume")
    }

    @Test func aMapChangedBysomeoneElseStopsTheCutoverBeforeAnyPause() async throws {
        let setup = try await Self.setup([(.drain, .accept)])
        let other = try setup.map.moving(Array(0...9), to: "s1")
        await #expect {
            try await setup.cutover().run(live: other, database: setup.database) { _, _, _ in }
        } throws: { error in
            "\(error)".contains("no longer gives slots 0-9 to s0")
        }
        await setup.stop()
        #expect(!setup.requests.contains { $0.contains("/slots/") })
        #expect(setup.proxies[0].state.withLockedValue { $0.puts } == 0)
    }
}
