import Foundation

/// Why a shard map (or one of its parts) was refused: the field, written as a path into the file
/// (`tables.orders.type`, `shards[1].primary`), and the problem in words a person can act on.
///
/// `description` is `shardmap: <field>: <problem>`, for example
/// `shardmap: slots.s1: slot 512 is owned by both "s0" and "s1"`.
public struct ShardMapError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Path of the offending field inside the shard map file; empty when the problem is not tied to one.
    public var field: String
    /// What is wrong with it.
    public var problem: String

    /// Creates an error for `field` (a path like `pool.size`) with a human-readable `problem`.
    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    /// `shardmap: <field>: <problem>` (or `shardmap: <problem>` without a field).
    public var description: String {
        field.isEmpty ? "shardmap: \(problem)" : "shardmap: \(field): \(problem)"
    }

    /// The same problem reported against another field (used when a helper's error is re-scoped).
    func at(_ field: String) -> ShardMapError {
        ShardMapError(field: field, problem: problem)
    }
}
