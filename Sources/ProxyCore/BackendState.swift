/// What ShardGate knows about the session state of one backend connection, kept for the connection's
/// life (across leases): its run-time parameters and the prepared statements it holds.
///
/// A class so that the session leasing the connection and the connection's owner (the pool) see the
/// same state without copying; it is only ever touched on the connection's event loop.
public final class BackendState {
    /// "s0 primary 127.0.0.1:5500" — for messages; never a password.
    public let server: String
    /// Parameter values (defaults and what differs now).
    public var parameters: BackendParameters
    /// Statements prepared on this connection by ShardGate, by catalog id (named `sg_<id>` there).
    public private(set) var statements: PreparedStatementLRU

    public init(server: String, parameters: BackendParameters, statementLimit: Int = PreparedStatementLRU.defaultLimit) {
        self.server = server
        self.parameters = parameters
        self.statements = PreparedStatementLRU(limit: statementLimit)
    }

    /// Whether statement `id` is prepared here; a hit counts as a use for the LRU order.
    public func hasStatement(_ id: Int) -> Bool {
        self.statements.touch(id)
    }

    /// Records that statement `id` is being prepared here; returns the statement to close to stay within
    /// the limit, if any.
    public func addStatement(_ id: Int) -> Int? {
        self.statements.insert(id)
    }

    /// Forgets statement `id` (its Parse failed, or it was closed).
    public func removeStatement(_ id: Int) {
        self.statements.remove(id)
    }

    /// Forgets every statement (DISCARD ALL deallocated them).
    public func removeAllStatements() {
        self.statements = PreparedStatementLRU(limit: self.statements.limit)
    }

    /// The backend-side name of catalog statement `id`.
    public static func statementName(_ id: Int) -> String { "sg_\(id)" }
}

/// A bounded set of statement ids in least-recently-used order.
public struct PreparedStatementLRU: Sendable {
    /// Statements kept per backend connection unless configured otherwise.
    public static let defaultLimit = 256

    public let limit: Int
    /// id → last use tick.
    private var lastUse: [Int: UInt64] = [:]
    private var tick: UInt64 = 0

    public init(limit: Int) {
        self.limit = max(1, limit)
    }

    public var count: Int { self.lastUse.count }

    public func contains(_ id: Int) -> Bool { self.lastUse[id] != nil }

    /// Marks `id` used; false when it is not here.
    public mutating func touch(_ id: Int) -> Bool {
        guard self.lastUse[id] != nil else { return false }
        self.tick &+= 1
        self.lastUse[id] = self.tick
        return true
    }

    /// Adds `id`; returns the least recently used id evicted to make room, if any.
    public mutating func insert(_ id: Int) -> Int? {
        self.tick &+= 1
        var evicted: Int?
        if self.lastUse[id] == nil, self.lastUse.count >= self.limit {
            // Linear in the limit, but only when a new statement pushes an old one out.
            evicted = self.lastUse.min { $0.value < $1.value }?.key
            if let evicted { self.lastUse[evicted] = nil }
        }
        self.lastUse[id] = self.tick
        return evicted
    }

    public mutating func remove(_ id: Int) {
        self.lastUse[id] = nil
    }
}
