import NIOCore

/// What a shard's primary answered to the lag monitor's query.
public struct PrimaryReading: Sendable, Equatable {
    /// The end of the WAL inserted so far: `pg_current_wal_insert_lsn()` (see
    /// `LSN.insertPositionEnd(blockSize:segmentSize:)`); `nil` when the server is in recovery.
    ///
    /// The insert position, not `pg_current_wal_lsn()` (the write position): with
    /// `synchronous_commit = off` a commit returns before its WAL is written, so only the insert position
    /// is sure to be past every commit that has returned — which read-your-writes fences rely on.
    public var walLSN: LSN?
    /// `pg_is_in_recovery()`: a primary that answers `true` is a standby and is reported unhealthy.
    public var inRecovery: Bool

    /// A reading.
    public init(walLSN: LSN?, inRecovery: Bool = false) {
        self.walLSN = walLSN
        self.inRecovery = inRecovery
    }
}

/// What a replica answered to the lag monitor's query.
public struct ReplicaReading: Sendable, Equatable {
    /// `pg_is_in_recovery()`: `false` means the replica was promoted (it is no longer following the primary).
    public var inRecovery: Bool
    /// `pg_last_wal_replay_lsn()`: how far the replica has replayed (what its queries see).
    public var replayLSN: LSN?
    /// `pg_last_wal_receive_lsn()`: how far it has received and flushed WAL from the primary.
    public var receiveLSN: LSN?
    /// `now() - pg_last_xact_replay_timestamp()` on the replica, in milliseconds; `nil` before the replica
    /// has replayed any transaction.
    public var replayAgeMs: Int64?

    /// A reading.
    public init(inRecovery: Bool = true, replayLSN: LSN?, receiveLSN: LSN? = nil, replayAgeMs: Int64? = nil) {
        self.inRecovery = inRecovery
        self.replayLSN = replayLSN
        self.receiveLSN = receiveLSN
        self.replayAgeMs = replayAgeMs
    }
}

/// Why a sample has no reading: the server could not be reached, did not answer in time, or failed the
/// query. The message is for people (logs, `/status`); it never holds a password.
public struct LagProbeFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, e.g. `connection refused` or `no answer within 500 ms`.
    public var message: String

    /// A failure with this message.
    public init(_ message: String) {
        self.message = message
    }

    public var description: String { self.message }
}

/// One sample of a primary.
///
/// `sentAt` is the monotonic instant just before the query was sent: the WAL position it reports was read
/// by the server after that instant, which is what read-your-writes fences rely on (a write that
/// completed before `sentAt` is at or below `walLSN`).
public struct PrimarySample: Sendable, Equatable {
    /// Monotonic instant just before the query went out.
    public var sentAt: NIODeadline
    /// Monotonic instant the answer (or the failure) arrived.
    public var receivedAt: NIODeadline
    /// Wall-clock time of the sample in milliseconds since 1970 (for `sampled_at`).
    public var wallClockMillis: Int64
    /// The answer, or why there is none.
    public var result: Result<PrimaryReading, LagProbeFailure>

    /// A sample.
    public init(sentAt: NIODeadline, receivedAt: NIODeadline, wallClockMillis: Int64,
                result: Result<PrimaryReading, LagProbeFailure>) {
        self.sentAt = sentAt
        self.receivedAt = receivedAt
        self.wallClockMillis = wallClockMillis
        self.result = result
    }
}

/// One sample of a replica.
public struct ReplicaSample: Sendable, Equatable {
    /// Monotonic instant just before the query went out.
    public var sentAt: NIODeadline
    /// Monotonic instant the answer (or the failure) arrived.
    public var receivedAt: NIODeadline
    /// Wall-clock time of the sample in milliseconds since 1970 (for `sampled_at`).
    public var wallClockMillis: Int64
    /// The answer, or why there is none.
    public var result: Result<ReplicaReading, LagProbeFailure>

    /// A sample.
    public init(sentAt: NIODeadline, receivedAt: NIODeadline, wallClockMillis: Int64,
                result: Result<ReplicaReading, LagProbeFailure>) {
        self.sentAt = sentAt
        self.receivedAt = receivedAt
        self.wallClockMillis = wallClockMillis
        self.result = result
    }
}
