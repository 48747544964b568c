import ShardMap

/// When a replica leaves and rejoins read rotation.
///
/// - A replica leaves rotation on the first sample that shows it unreachable, promoted, not replaying, or
///   with `lagBytes > maxLagBytes` or `lagMs > maxLagMs`.
/// - Hysteresis: once out, it rejoins after `rejoinSamples` consecutive healthy samples with both lags at
///   or under half their thresholds, so a replica hovering around a threshold does not flap.
/// - A replica that has never been out (the monitor just started) joins on its first healthy sample
///   within the thresholds.
public struct LagPolicy: Sendable, Equatable {
    /// Largest replay lag in WAL bytes that keeps a replica in rotation.
    public var maxLagBytes: UInt64
    /// Largest replay lag in milliseconds that keeps a replica in rotation.
    public var maxLagMs: Int64
    /// Consecutive good samples (at or under half the thresholds) a replica needs to rejoin.
    public var rejoinSamples: Int
    /// How many recent primary positions each shard keeps (for fences and the time bound on `lagMs`).
    public var historyLength: Int

    /// The defaults of `rejoinSamples` and `historyLength`.
    public static let defaultRejoinSamples = 3
    /// 128 positions: 12.8 s of history at the default 100 ms poll.
    public static let defaultHistoryLength = 128

    /// A policy with explicit thresholds.
    public init(maxLagBytes: UInt64, maxLagMs: Int64, rejoinSamples: Int = LagPolicy.defaultRejoinSamples,
                historyLength: Int = LagPolicy.defaultHistoryLength) {
        self.maxLagBytes = maxLagBytes
        self.maxLagMs = maxLagMs
        self.rejoinSamples = max(1, rejoinSamples)
        self.historyLength = max(2, historyLength)
    }

    /// The thresholds of the map's `replicas` section.
    public init(_ config: ReplicaConfig) {
        self.init(maxLagBytes: UInt64(max(0, config.maxLagBytes)), maxLagMs: Int64(max(0, config.maxLagMs)))
    }

    /// Whether a replica this far behind may stay in rotation.
    func allowsStaying(lagBytes: UInt64, lagMs: Int64?) -> Bool {
        lagBytes <= self.maxLagBytes && (lagMs ?? 0) <= self.maxLagMs
    }

    /// Whether a sample this far behind counts towards rejoining (half the thresholds).
    func allowsRejoining(lagBytes: UInt64, lagMs: Int64?) -> Bool {
        lagBytes <= self.maxLagBytes / 2 && (lagMs ?? 0) <= self.maxLagMs / 2
    }
}
