import ShardMap

/// What the admin port (AdminServer) needs from the running proxy. ProxyServer implements it; the
/// HTTP layer only translates.
///
/// Mutating calls are made only for requests that carried the configured admin token. They may be made
/// concurrently with each other and with traffic; the implementation serializes what must be.
public protocol AdminBackend: Sendable {
    /// Map version, shards, pools, clients, paused slots and counters, as of now.
    func status() async -> ProxyStatus

    /// The latest replication-lag snapshot (the lag monitor's `latest()`).
    func lag() async -> LagSnapshot

    /// The live shard map (the admin port redacts its secrets before showing it).
    func shardMap() async -> ShardMap

    /// Replaces the live map with `map` (already decoded and validated, with any redacted secrets filled
    /// in from the live map): checks that its version is higher than the live one (else throws
    /// `AdminError.conflict`), persists it where the proxy loaded its map from, then swaps it in.
    /// Returns the map now live. On any error the running map stays untouched.
    ///
    /// `fences` (shard index → WAL position of its primary), sent by a rebalance cutover: that shard's
    /// replicas serve reads again only once they have replayed the position (rows that arrived on its
    /// primary by logical replication are then on them too).
    func replaceShardMap(_ map: ShardMap, fences: [Int: LSN]) async throws -> ShardMap

    /// Pauses new statements that touch `slots` (they queue, they do not fail; statements on other slots
    /// never wait), then waits up to `timeout` for transactions in flight on them to finish.
    func pause(slots: [Int], timeout: Duration) async throws -> PauseResult

    /// Releases queued statements on `slots` (slots not paused are ignored); returns the slots still paused.
    func resume(slots: [Int]) async throws -> [Int]
}

/// The answer to a pause.
public struct PauseResult: Sendable, Equatable {
    /// Every slot paused now (ascending), including earlier pauses.
    public var pausedSlots: [Int]
    /// Whether every transaction in flight on the requested slots finished within the timeout. When
    /// `false` the slots stay paused and the admin port answers 504, so a caller (rebalance) does not
    /// go on to switch the map under a running transaction.
    public var drained: Bool
    /// How long the pause waited for in-flight transactions, in milliseconds.
    public var waitedMs: Int
    /// Transactions still in flight on the requested slots when the call returned.
    public var inFlight: Int

    /// A pause result.
    public init(pausedSlots: [Int], drained: Bool, waitedMs: Int, inFlight: Int = 0) {
        self.pausedSlots = pausedSlots
        self.drained = drained
        self.waitedMs = waitedMs
        self.inFlight = inFlight
    }
}

/// A refusal from an `AdminBackend` call, mapped to an HTTP status by the admin port.
public struct AdminError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Which HTTP status the refusal becomes.
    public enum Kind: Sendable, Equatable {
        /// The request is malformed or the value is invalid (400).
        case invalid
        /// The request conflicts with the current state, e.g. a map version that does not grow (409).
        case conflict
        /// The proxy cannot do it now, e.g. it is shutting down or the map file cannot be written (503).
        case unavailable
    }

    /// Which kind of refusal.
    public var kind: Kind
    /// What went wrong, for the operator.
    public var message: String

    /// A refusal of `kind` with a message for the operator.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// 400.
    public static func invalid(_ message: String) -> AdminError { AdminError(.invalid, message) }
    /// 409.
    public static func conflict(_ message: String) -> AdminError { AdminError(.conflict, message) }
    /// 503.
    public static func unavailable(_ message: String) -> AdminError { AdminError(.unavailable, message) }

    public var description: String { self.message }
}
