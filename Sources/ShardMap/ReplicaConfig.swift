import Foundation

/// When a replica is taken out of read rotation (the `replicas` section).
public struct ReplicaConfig: Sendable, Equatable {
    /// Largest replay lag in WAL bytes a replica may have and still serve reads; 0 or more.
    public var maxLagBytes: Int = 16_777_216
    /// Largest replay lag in milliseconds a replica may have and still serve reads; 0 or more.
    public var maxLagMs: Int = 5000
    /// How often replica positions are sampled; at least 1.
    public var pollMs: Int = 100

    /// Creates a replica configuration; every argument defaults to the documented default.
    public init(maxLagBytes: Int = 16_777_216, maxLagMs: Int = 5000, pollMs: Int = 100) {
        self.maxLagBytes = maxLagBytes
        self.maxLagMs = maxLagMs
        self.pollMs = pollMs
    }
}
