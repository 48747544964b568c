import Foundation

/// Backend connection pooling (the `pool` section).
public struct PoolConfig: Sendable, Equatable {
    /// Backend connections per backend server (each primary and each replica); at least 1.
    public var size: Int = 20
    /// How long a statement may wait for a free backend connection before it fails; at least 1.
    public var checkoutTimeoutMs: Int = 5000
    /// Idle backend connections are closed after this long; at least 1.
    public var idleTimeoutMs: Int = 60000

    /// Creates a pool configuration; every argument defaults to the documented default.
    public init(size: Int = 20, checkoutTimeoutMs: Int = 5000, idleTimeoutMs: Int = 60000) {
        self.size = size
        self.checkoutTimeoutMs = checkoutTimeoutMs
        self.idleTimeoutMs = idleTimeoutMs
    }
}
