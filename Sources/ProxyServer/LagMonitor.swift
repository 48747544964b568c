import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ProxyCore
import ShardMap

/// Samples every shard's primary (`pg_current_wal_lsn()`) and replicas (replay position, recovery state,
/// replay timestamp) every `replicas.poll_ms` on dedicated connections, feeds a `LagModel`, and
/// publishes each new `LagSnapshot` to `onSnapshot` (and `latest()`).
///
/// Each server is polled by its own task, so a slow or hung server delays nobody else. A sample —
/// connect included — is bounded by `sampleTimeout`; failures (refused, timed out, query error) are
/// samples too and take the server out of rotation. Nothing here ever crashes the proxy.
///
/// ```swift
/// let monitor = LagMonitor(map: map, environment: env, logger: logger) { snapshot in
///     // copy into each event loop
/// }
/// // in a task group / service: await monitor.run()   — until cancelled or shutdown()
/// ```
public final class LagMonitor: Sendable {
    private struct State: Sendable {
        var model: LagModel
        var map: ShardMap
        /// Bumped by `reconfigure`; polling tasks of an older generation stop.
        var generation = 0
        var stopped = false
    }

    private let state: NIOLockedValueBox<State>
    private let environment: [String: String]
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let sampleTimeout: Duration?
    private let onSnapshot: @Sendable (LagSnapshot) -> Void
    private let connectionIDs = NIOLockedValueBox(0)

    /// A monitor for the servers of `map`. Passwords come from the URLs, PGPASSFILE or PGPASSWORD in
    /// `environment` (as for the proxy's own backend connections). `sampleTimeout` defaults to
    /// `max(4 × poll_ms, 500 ms)`, at most 5 s.
    public init(map: ShardMap, environment: [String: String], eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                sampleTimeout: Duration? = nil, logger: Logger, onSnapshot: @escaping @Sendable (LagSnapshot) -> Void = { _ in }) {
        self.state = NIOLockedValueBox(State(model: LagModel(map: map), map: map))
        self.environment = environment
        self.eventLoopGroup = eventLoopGroup
        self.sampleTimeout = sampleTimeout
        self.logger = logger
        self.onSnapshot = onSnapshot
    }

    /// The newest snapshot (every replica out of rotation before the first samples).
    public func latest() -> LagSnapshot {
        self.state.withLockedValue { $0.model.snapshot }
    }

    /// Watches the servers of a new map from the next poll on, keeping what is known about servers that
    /// stay (same shard name and URL). The snapshot published right away has the new shard order.
    public func reconfigure(_ map: ShardMap) {
        let snapshot: LagSnapshot = self.state.withLockedValue { state in
            state.model = state.model.reconfigured(for: map)
            state.map = map
            state.generation += 1
            return state.model.snapshot
        }
        self.onSnapshot(snapshot)
    }

    /// Makes `run()` return: within one poll interval, or once a sample in progress ends (bounded by
    /// the sample timeout). Cancelling the task that runs `run()` works as well.
    public func shutdown() {
        self.state.withLockedValue { $0.stopped = true }
    }

    /// Polls until `shutdown()` or cancellation. Cancellation is turned into `shutdown()`: the pollers themselves
    /// are never cancelled (see `uncancelled`) and stop between samples.
    public func run() async {
        await withTaskCancellationHandler {
            await self.pollUntilStopped()
        } onCancel: {
            self.shutdown()
        }
    }

    private func pollUntilStopped() async {
        while !Task.isCancelled {
            let (generation, map, stopped) = self.state.withLockedValue { ($0.generation, $0.map, $0.stopped) }
            if stopped { return }
            let targets = self.targets(of: map)
            let poll = TimeAmount.milliseconds(Int64(max(1, map.replicas.pollMs)))
            let timeout = self.timeout(poll: poll)
            guard !targets.isEmpty else {
                try? await Task.sleep(nanoseconds: UInt64(poll.nanoseconds))
                continue
            }
            await withTaskGroup(of: Void.self) { group in
                for target in targets {
                    let id = self.connectionIDs.withLockedValue { value -> Int in
                        value += 1
                        return value
                    }
                    let eventLoop = self.eventLoopGroup.next()
                    group.addTask {
                        await uncancelled {
                            let probe = LagMonitorProbe(target: target, eventLoop: eventLoop, timeout: timeout,
                                                        poll: poll, id: id, logger: self.logger)
                            await self.poll(probe, every: poll, generation: generation)
                        }
                    }
                }
            }
        }
    }

    // MARK: Polling

    private func targets(of map: ShardMap) -> [LagMonitorProbe.Target] {
        map.shards.indices.flatMap { index -> [LagMonitorProbe.Target] in
            let shard = map.shards[index]
            let primary = LagMonitorProbe.Target(
                shard: index, replica: nil, url: shard.primary,
                server: BackendServer(shard: shard.name, role: .primary, url: shard.primary, environment: self.environment))
            let replicas = shard.replicas.indices.map { replica in
                LagMonitorProbe.Target(
                    shard: index, replica: replica, url: shard.replicas[replica],
                    server: BackendServer(shard: shard.name, role: .replica, url: shard.replicas[replica],
                                          environment: self.environment))
            }
            return [primary] + replicas
        }
    }

    private func timeout(poll: TimeAmount) -> TimeAmount {
        if let configured = self.sampleTimeout {
            let (seconds, attoseconds) = configured.components
            return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        }
        return min(max(poll * 4, .milliseconds(500)), .seconds(5))
    }

    private func isCurrent(_ generation: Int) -> Bool {
        self.state.withLockedValue { !$0.stopped && $0.generation == generation }
    }

    /// One server's loop: sample, record, publish, sleep until the next poll instant.
    private func poll(_ probe: LagMonitorProbe, every interval: TimeAmount, generation: Int) async {
        var next = NIODeadline.now()
        while !Task.isCancelled, self.isCurrent(generation) {
            next = next + interval
            await self.sampleOnce(probe, generation: generation)
            let now = NIODeadline.now()
            if next < now {
                next = now  // a slow sample: poll again at once, but do not try to catch up
            } else {
                do {
                    try await Task.sleep(nanoseconds: UInt64((next - now).nanoseconds))
                } catch {
                    break
                }
            }
        }
        await probe.close()
    }

    private func sampleOnce(_ probe: LagMonitorProbe, generation: Int) async {
        let target = probe.target
        let recorded: (LagEvent?, LagSnapshot)?
        if let replica = target.replica {
            let (sentAt, result) = await probe.sampleReplica()
            let sample = ReplicaSample(sentAt: sentAt, receivedAt: .now(), wallClockMillis: Self.wallClockMillis(),
                                       result: result)
            recorded = self.state.withLockedValue { state in
                guard state.generation == generation else { return nil }
                let event = state.model.record(replica: sample, shard: target.shard, replica: replica)
                return (event, state.model.snapshot)
            }
        } else {
            let (sentAt, result) = await probe.samplePrimary()
            let sample = PrimarySample(sentAt: sentAt, receivedAt: .now(), wallClockMillis: Self.wallClockMillis(),
                                       result: result)
            recorded = self.state.withLockedValue { state in
                guard state.generation == generation else { return nil }
                let event = state.model.record(primary: sample, shard: target.shard)
                return (event, state.model.snapshot)
            }
        }
        guard let (event, snapshot) = recorded else { return }
        if let event {
            self.log(event)
        }
        self.onSnapshot(snapshot)
    }

    private func log(_ event: LagEvent) {
        switch event {
        case .replicaLeftRotation(let shard, let url, _), .replicaUnhealthy(let shard, let url, _),
             .primaryUnhealthy(let shard, let url, _):
            self.logger.warning("\(event)", metadata: ["shard": "\(shard)", "server": "\(url)"])
        case .replicaJoinedRotation(let shard, let url), .primaryRecovered(let shard, let url):
            self.logger.notice("\(event)", metadata: ["shard": "\(shard)", "server": "\(url)"])
        }
    }

    private static func wallClockMillis() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }
}
