import Foundation
import ShardMap

/// The database side of a cutover (a protocol so that the HTTP sequencing can be tested alone).
public protocol CutoverDatabase {
    /// Writes a sync point on the source (after every commit acknowledged so far) and returns its LSN.
    func sourceSyncPoint() throws -> LSN
    /// Whether the subscription has applied the source's WAL up to `lsn`.
    func caughtUp(to lsn: LSN) throws -> Bool
    /// A WAL position of the target primary after every change applied so far (the read fence), or
    /// `nil` when nothing was replicated.
    func targetFence() throws -> LSN?
}

/// DESIGN §8 step 3 for one move: pause the moving slots on every proxy, drain the subscription to the
/// source's WAL position, push the new map (with the target's fence) to every proxy, resume.
///
/// Any failure before the first map is pushed resumes the slots on every proxy and leaves the old map
/// serving (`RebalanceError.cutoverAborted`). Once a proxy may serve the new map, the slots stay
/// paused on the proxies that do not (yet) serve it, and `RebalanceError.cutoverIncomplete` says to
/// run `--resume`, which finishes the flip.
public struct RebalanceCutover {
    /// What the cutover did.
    public struct Outcome: Sendable, Equatable {
        /// The map now live.
        public var newVersion: Int
        /// The fence sent for the target (nil when nothing was replicated).
        public var fence: LSN?
        /// From the first pause request to the last resume answer, in milliseconds.
        public var pauseMs: Double
        /// Milliseconds per step: `presync` (before the pause), then `pause`, `drain`, `fence`, `journal`,
        /// `flip`, `resume` (inside it).
        public var steps: [String: Double]
    }

    /// Journal writes the cutover asks for: the phase, and for `flipping` the version and fence.
    public typealias Record = (_ phase: MovePhase, _ newVersion: Int?, _ fence: LSN?) throws -> Void

    public let fleet: ProxyFleet
    public let move: RebalanceMove
    public let options: RebalanceOptions
    public let console: RebalanceConsole

    public init(fleet: ProxyFleet, move: RebalanceMove, options: RebalanceOptions, console: RebalanceConsole) {
        self.fleet = fleet
        self.move = move
        self.options = options
        self.console = console
    }

    /// Runs the cutover from the live map `live` (which must still give the slots to the source).
    public func run(live: ShardMap, database: some CutoverDatabase, record: Record) async throws -> Outcome {
        let clock = ContinuousClock()
        var steps: [String: Double] = [:]
        func elapsed(since start: ContinuousClock.Instant) -> Double {
            let d = clock.now - start
            return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        }
        guard let sourceIndex = live.shardIndex(named: self.move.source),
              self.move.slots.allSatisfy({ $0 < live.slotCount && live.slotOwners[$0] == sourceIndex }) else {
            throw RebalanceError.cutoverAborted("the live map (version \(live.version)) no longer gives slots \(self.move.slotList) to \(self.move.source); someone else changed it")
        }
        let newMap = try live.moving(self.move.slots, to: self.move.target)

        // Drain most of the lag before pausing anything, so the paused drain is short.
        var start = clock.now
        do {
            try await self.waitCaughtUp(database, to: try database.sourceSyncPoint(), paused: false)
        } catch let error as CutoverStall {
            throw RebalanceError.cutoverAborted("\(error) (nothing was paused)")
        }
        steps["presync"] = elapsed(since: start)

        try record(.pausing, nil, nil)
        let pauseStart = clock.now
        let paused = await self.fleet.pauseAll(self.move.slots, timeoutMs: self.options.pauseTimeoutMs)
        steps["pause"] = elapsed(since: pauseStart)
        if let failure = self.firstFailure(paused) {
            try await self.rollBack(reason: failure, record: record)
        }
        try await hold(at: .paused, options: self.options, console: self.console)

        start = clock.now
        do {
            try await self.waitCaughtUp(database, to: try database.sourceSyncPoint(), paused: true)
        } catch {
            try await self.rollBack(reason: "\(error)", record: record)
        }
        steps["drain"] = elapsed(since: start)
        start = clock.now
        let fence: LSN?
        do {
            fence = try database.targetFence()
        } catch {
            try await self.rollBack(reason: "cannot read the target's WAL position: \(error)", record: record)
        }
        steps["fence"] = elapsed(since: start)

        start = clock.now
        try record(.flipping, newMap.version, fence)
        steps["journal"] = elapsed(since: start)

        start = clock.now
        let update = ShardMapUpdate(map: newMap, fences: fence.map { [self.move.target: $0] } ?? [:])
        try await self.flip(update, version: newMap.version, record: record)
        steps["flip"] = elapsed(since: start)
        try await hold(at: .flipped, options: self.options, console: self.console)

        start = clock.now
        try await self.resumeEverywhere()
        steps["resume"] = elapsed(since: start)
        return Outcome(newVersion: newMap.version, fence: fence, pauseMs: elapsed(since: pauseStart), steps: steps)
    }

    /// Pushes `update` to every proxy; on failures asks each proxy which map it serves and decides
    /// (`RebalanceJournal.flipDecision`).
    func flip(_ update: ShardMapUpdate, version: Int, record: Record) async throws {
        var pending = Array(self.fleet.clients.indices)
        var lastProblem = ""
        for attempt in 0..<4 {
            if attempt > 0 { try await Task.sleep(for: .milliseconds(100 * attempt)) }
            let results = await self.fleet.pushAll(update, only: pending)
            for case .failure(let error) in results.values { lastProblem = "\(error)" }
            if results.values.allSatisfy({ if case .success = $0 { return true } else { return false } }) {
                return
            }
            let states = await self.fleet.mapStates(version: version, slots: self.move.slots, target: self.move.target)
            switch RebalanceJournal.flipDecision(states) {
            case .complete:
                return
            case .rollBack:
                try await self.rollBack(reason: "no proxy took the new map: \(lastProblem)", record: record)
            case .pushAgain(let indexes):
                pending = indexes
            }
        }
        // Some proxies serve the new map, others may not: release only those that do.
        let states = await self.fleet.mapStates(version: version, slots: self.move.slots, target: self.move.target)
        let flipped = states.indices.filter { states[$0] == .new }
        _ = await self.fleet.resumeAll(self.move.slots, only: flipped)
        let stuck = states.indices.filter { states[$0] != .new }.map { self.fleet.clients[$0].proxy }
        throw RebalanceError.cutoverIncomplete("""
            the new map version \(version) is live on \(flipped.count) of \(states.count) proxies; slots \
            \(self.move.slotList) stay paused on \(stuck.joined(separator: ", ")) (last error: \(lastProblem))
            """)
    }

    /// Resumes the slots on every proxy, retrying a few times.
    func resumeEverywhere() async throws {
        var pending = Array(self.fleet.clients.indices)
        var problem = ""
        for attempt in 0..<4 {
            if attempt > 0 { try await Task.sleep(for: .milliseconds(100 * attempt)) }
            let results = await self.fleet.resumeAll(self.move.slots, only: pending)
            pending = pending.filter {
                if case .failure(let error)? = results[$0] { problem = "\(error)"; return true }
                return false
            }
            if pending.isEmpty { return }
        }
        throw RebalanceError.cutoverIncomplete("""
            the new map is live but slots \(self.move.slotList) are still paused on \
            \(pending.map { self.fleet.clients[$0].proxy }.joined(separator: ", ")): \(problem)
            """)
    }

    /// Before any map was pushed: resume everywhere, go back to `caughtUp`, and throw `cutoverAborted`.
    func rollBack(reason: String, record: Record) async throws -> Never {
        var pending = Array(self.fleet.clients.indices)
        for attempt in 0..<3 where !pending.isEmpty {
            if attempt > 0 { try? await Task.sleep(for: .milliseconds(100)) }
            let results = await self.fleet.resumeAll(self.move.slots, only: pending)
            pending = pending.filter { if case .failure? = results[$0] { return true } else { return false } }
        }
        if !pending.isEmpty {
            let names = pending.map { self.fleet.clients[$0].proxy }.joined(separator: ", ")
            throw RebalanceError.cutoverAborted("""
                \(reason); the old map still serves, but slots \(self.move.slotList) may still be paused on \(names): \
                run `shardctl rebalance --resume` (or --abort) once it is reachable
                """)
        }
        try record(.caughtUp, nil, nil)
        throw RebalanceError.cutoverAborted("\(reason); slots \(self.move.slotList) were resumed on every proxy")
    }

    func waitCaughtUp(_ database: some CutoverDatabase, to lsn: LSN, paused: Bool) async throws {
        let deadline = ContinuousClock.now + .milliseconds(self.options.catchUpTimeoutMs)
        while try !database.caughtUp(to: lsn) {
            guard ContinuousClock.now < deadline else {
                throw CutoverStall(description: """
                    the subscription did not reach the source's WAL position \(lsn) within \
                    \(self.options.catchUpTimeoutMs) ms\(paused ? " while the slots were paused" : "")
                    """)
            }
            try await Task.sleep(for: .milliseconds(paused ? 1 : 20))
        }
    }

    func firstFailure<T>(_ results: [Int: Result<T, any Error>]) -> String? {
        for index in results.keys.sorted() {
            if case .failure(let error)? = results[index] {
                return "pausing on \(self.fleet.clients[index].proxy) failed: \(error)"
            }
        }
        return nil
    }
}

/// The subscription did not catch up in time.
struct CutoverStall: Error, CustomStringConvertible {
    var description: String
}
