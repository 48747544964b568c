import Foundation

/// Limits for cross-shard result merging (the `merge` section).
public struct MergeConfig: Sendable, Equatable {
    /// Memory a single merge may buffer (GROUP BY, DISTINCT, unsorted LIMIT) before it fails; at least 1.
    public var maxBytes: Int = 268_435_456

    /// Creates a merge configuration.
    public init(maxBytes: Int = 268_435_456) {
        self.maxBytes = maxBytes
    }
}
