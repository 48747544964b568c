/// Bounds and knobs of a rebalance (the CLI's flags).
public struct RebalanceOptions: Sendable, Equatable {
    /// How long each proxy may wait for transactions in flight on the moving slots at the pause.
    public var pauseTimeoutMs = 5000
    /// How long the subscription may take to reach the source's WAL position while the slots are paused
    /// (and, unpaused, right before).
    public var catchUpTimeoutMs = 5000
    /// How long the initial copy may take (`nil`: no limit; Ctrl-C and `--resume` are always possible).
    public var copyTimeoutSeconds: Double?
    /// The cutover starts once the subscription is at most this far behind the source.
    public var maxLagBytes: UInt64 = 1 << 20
    /// Rows per DELETE when removing moved rows.
    public var deleteBatchRows = 10_000
    /// How often copy progress is sampled.
    public var pollIntervalMs = 250
    /// Test hook: stop (sleep until killed) when this point is reached.
    public var holdAt: HoldPoint?

    public init() {}

    /// Where `--debug-hold-at` stops a run, for tests that kill shardctl there.
    public enum HoldPoint: String, Sendable, CaseIterable {
        /// The subscription exists and PostgreSQL is copying.
        case copy
        /// The slots are paused on every proxy, the map is not pushed yet.
        case paused
        /// The new map is live on every proxy, the slots are still paused.
        case flipped
        /// The slots are resumed; the cleanup (the source still holds the moved rows) has not started.
        case cleanup
    }
}

/// Sleeps forever at a hold point, so that a test can kill shardctl there.
func hold(at point: RebalanceOptions.HoldPoint, options: RebalanceOptions, console: RebalanceConsole) async throws {
    guard options.holdAt == point else { return }
    console.line("holding at \(point.rawValue) (--debug-hold-at); waiting to be killed")
    while true {
        try await Task.sleep(for: .seconds(3600))
    }
}
