import Logging
import NIOCore
import PostgresNIO
import ProxyCore
import ShardMap

/// One server the lag monitor samples, on a dedicated connection of its own (never the proxy's pools).
///
/// Owned by one polling task: it connects on first use, keeps the connection across samples, and after a
/// failure closes it and reconnects with exponential backoff (`poll` doubling up to `maxBackoff`);
/// while it waits, samples fail at once with the last error. Every sample — connect included — is
/// bounded by `timeout`.
final class LagMonitorProbe {
    struct Target: Sendable {
        var shard: Int
        /// `nil` for the primary.
        var replica: Int?
        var url: PostgresURL
        var server: BackendServer
    }

    /// The insert position, not `pg_current_wal_lsn()`: see `PrimaryReading.walLSN`.
    static let primaryQuery: PostgresQuery = """
        SELECT pg_catalog.pg_is_in_recovery(), \
        CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_insert_lsn()::text END
        """
    /// WAL page and segment sizes, asked once per connection (for `LSN.insertPositionEnd`).
    static let walGeometryQuery: PostgresQuery = """
        SELECT pg_catalog.current_setting('wal_block_size')::int8, \
        (SELECT setting::int8 FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size')
        """
    static let replicaQuery: PostgresQuery = """
        SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.pg_last_wal_replay_lsn()::text, \
        pg_catalog.pg_last_wal_receive_lsn()::text, \
        (extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp()) * 1000)::int8
        """

    let target: Target
    private let configuration: PostgresConnection.Configuration
    private let eventLoop: any EventLoop
    private let timeout: TimeAmount
    private let poll: TimeAmount
    private let maxBackoff: TimeAmount
    private let logger: Logger
    private let id: Int

    private var connection: PostgresConnection?
    /// `wal_block_size` and `wal_segment_size` of the connected server (PostgreSQL's defaults until asked).
    private var walGeometry: (blockSize: UInt64, segmentSize: UInt64) = (8192, 16 << 20)
    private var failures = 0
    private var nextAttempt = NIODeadline.distantPast
    private var lastError = ""

    init(target: Target, eventLoop: any EventLoop, timeout: TimeAmount, poll: TimeAmount,
         maxBackoff: TimeAmount = .seconds(2), id: Int, logger: Logger) {
        self.target = target
        self.eventLoop = eventLoop
        self.timeout = timeout
        self.poll = poll
        self.maxBackoff = maxBackoff
        self.id = id
        self.logger = logger
        let server = target.server
        var configuration: PostgresConnection.Configuration
        if let socket = target.url.unixSocketPath {
            configuration = .init(unixSocketPath: socket, username: server.user, password: server.password,
                                  database: server.database)
        } else {
            configuration = .init(host: server.host, port: server.port, username: server.user, password: server.password,
                                  database: server.database, tls: .disable)
        }
        configuration.options.connectTimeout = timeout
        configuration.options.additionalStartupParameters = [("application_name", "shardgate-lag-monitor")]
        self.configuration = configuration
    }

    /// Samples a primary: `(sentAt, reading or failure)`.
    func samplePrimary() async -> (NIODeadline, Result<PrimaryReading, LagProbeFailure>) {
        let geometry = self.walGeometry
        return await self.sample(Self.primaryQuery) { rows in
            for try await (inRecovery, lsn) in rows.decode((Bool, String?).self) {
                let end = try Self.lsn(lsn)?.insertPositionEnd(blockSize: geometry.blockSize,
                                                               segmentSize: geometry.segmentSize)
                return PrimaryReading(walLSN: end, inRecovery: inRecovery)
            }
            throw LagProbeFailure("the query returned no row")
        }
    }

    /// Samples a replica: `(sentAt, reading or failure)`.
    func sampleReplica() async -> (NIODeadline, Result<ReplicaReading, LagProbeFailure>) {
        await self.sample(Self.replicaQuery) { rows in
            for try await (inRecovery, replay, receive, age) in rows.decode((Bool, String?, String?, Int64?).self) {
                return ReplicaReading(inRecovery: inRecovery, replayLSN: try Self.lsn(replay),
                                      receiveLSN: try Self.lsn(receive), replayAgeMs: age)
            }
            throw LagProbeFailure("the query returned no row")
        }
    }

    /// Closes the connection, if any.
    func close() async {
        if let connection = self.connection {
            self.connection = nil
            try? await connection.close()
        }
    }

    // MARK: Sampling

    private func sample<Reading: Sendable>(
        _ query: PostgresQuery, decode: @escaping @Sendable (PostgresRowSequence) async throws -> Reading
    ) async -> (NIODeadline, Result<Reading, LagProbeFailure>) {
        let deadline = NIODeadline.now() + self.timeout
        let connection: PostgresConnection
        switch await self.connected(deadline: deadline) {
        case .success(let open):
            connection = open
        case .failure(let failure):
            return (.now(), .failure(failure))
        }
        let sentAt = NIODeadline.now()
        do {
            let reading = try await Self.withDeadline(deadline, onTimeout: { _ = connection.close() as EventLoopFuture<Void> }) {
                [logger] in try await decode(try await connection.query(query, logger: logger))
            }
            self.failures = 0
            return (sentAt, .success(reading))
        } catch {
            let failure = self.describe(error)
            // Closed before it is let go of (PostgresNIO requires a connection to be closed first).
            self.connection = nil
            try? await connection.close()
            self.connectionFailed(failure)
            // The next sample reconnects at once: one failed query is not yet a reason to back off.
            self.nextAttempt = .now()
            return (sentAt, .failure(failure))
        }
    }

    private func connected(deadline: NIODeadline) async -> Result<PostgresConnection, LagProbeFailure> {
        if let connection = self.connection, !connection.isClosed {
            return .success(connection)
        }
        self.connection = nil
        let now = NIODeadline.now()
        guard now >= self.nextAttempt else {
            let wait = (self.nextAttempt - now).nanoseconds / 1_000_000
            return .failure(LagProbeFailure("\(self.lastError) (reconnecting in \(wait) ms)"))
        }
        let configuration = self.configuration
        let eventLoop = self.eventLoop
        let logger = self.logger
        let id = self.id
        do {
            // Bounded by PostgresNIO's own connectTimeout (TCP connect and startup), which is `timeout`; not
            // raced against `deadline`: a connection won just after it would have to be closed and awaited
            // before it is let go of (PostgresNIO asserts otherwise), and a connect cancelled mid-startup
            // trips the same assertion.
            let connection = try await PostgresConnection.connect(on: eventLoop, configuration: configuration,
                                                                  id: id, logger: logger)
            if self.target.replica == nil {
                do {
                    let geometry = try await Self.withDeadline(deadline, onTimeout: { _ = connection.close() as EventLoopFuture<Void> }) {
                        for try await (block, segment) in try await connection.query(Self.walGeometryQuery, logger: logger)
                            .decode((Int64, Int64).self) where block > 0 && segment > 0 {
                            return (UInt64(block), UInt64(segment)) as (UInt64, UInt64)?
                        }
                        return nil
                    }
                    if let geometry {
                        self.walGeometry = geometry
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
            }
            self.connection = connection
            return .success(connection)
        } catch {
            let failure = self.describe(error)
            self.connectionFailed(failure)
            return .failure(failure)
        }
    }

    /// Counts a failure and schedules the next attempt; the caller has closed the connection, if any.
    private func connectionFailed(_ failure: LagProbeFailure) {
        self.failures += 1
        self.lastError = failure.message
        let backoff = min(self.poll.nanoseconds << min(self.failures - 1, 20), self.maxBackoff.nanoseconds)
        self.nextAttempt = .now() + .nanoseconds(backoff)
    }

    /// A message for logs and `/status`, from PostgresNIO's and NIO's errors (which describe themselves
    /// generically on purpose; none of them holds the password).
    private func describe(_ error: any Error) -> LagProbeFailure {
        switch error {
        case let failure as LagProbeFailure:
            return failure
        case is LagProbeTimeout:
            return LagProbeFailure("no answer within \(self.timeout.nanoseconds / 1_000_000) ms")
        case let error as PSQLError:
            if let message = error.serverInfo?[.message] {
                let state = error.serverInfo?[.sqlState].map { "\($0) " } ?? ""
                return LagProbeFailure("server error \(state)\(message)")
            }
            if let underlying = error.underlying {
                return self.describe(underlying)
            }
            return LagProbeFailure("\(error.code)")
        case let error as ChannelError:
            if case .connectTimeout(let amount) = error {
                return LagProbeFailure("connect timed out after \(amount.nanoseconds / 1_000_000) ms")
            }
            return LagProbeFailure("\(error)")
        case let error as PostgresDecodingError:
            return LagProbeFailure("unexpected answer (column \(error.columnName): \(error.code))")
        default:
            let text = String(describing: error)
            if text.contains("Connection refused") { return LagProbeFailure("connection refused") }
            if text.contains("connectTimeout") { return LagProbeFailure("connect timed out") }
            return LagProbeFailure(String(text.prefix(300)))
        }
    }

    private static func lsn(_ text: String?) throws -> LSN? {
        guard let text else { return nil }
        guard let lsn = LSN(text) else { throw LagProbeFailure("unexpected WAL position \"\(text)\"") }
        return lsn
    }

    /// Runs `operation` until `deadline`; past it, calls `onTimeout` (which must make the operation end,
    /// e.g. by closing its connection), cancels it, waits for it, and throws `LagProbeTimeout`.
    static func withDeadline<T: Sendable>(
        _ deadline: NIODeadline, onTimeout: @escaping @Sendable () -> Void,
        _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        return try await withThrowingTaskGroup(of: DeadlineOutcome<T>.self) { group in
            group.addTask { .value(try await operation()) }
            group.addTask {
                let remaining = deadline - .now()
                if remaining > .zero {
                    try? await Task.sleep(nanoseconds: UInt64(remaining.nanoseconds))
                }
                return .timedOut
            }
            switch try await group.next() {
            case .value(let value):
                group.cancelAll()
                return value
            case .timedOut, nil:
                onTimeout()
                group.cancelAll()
                while (try? await group.next()) != nil {}
                throw LagProbeTimeout()
            }
        }
    }
}

/// The first of an operation and its deadline to finish.
private enum DeadlineOutcome<T: Sendable>: Sendable {
    case value(T)
    case timedOut
}

/// A sample did not finish in time.
struct LagProbeTimeout: Error {}
