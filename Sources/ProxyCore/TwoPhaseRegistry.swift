import NIOConcurrencyHelpers

/// The decision to commit a transaction prepared on several shards, as the durable log records it
/// before any COMMIT PREPARED is sent (so that a crash between the phases is resolved on restart).
public struct TwoPhaseDecision: Sendable, Equatable {
    /// `sg_<instance>_<n>`: the prefix of every participant's gid.
    public var id: String
    /// The prepared transactions: shard name and gid.
    public var participants: [Participant]

    public struct Participant: Sendable, Equatable {
        public var shard: String
        public var gid: String

        public init(shard: String, gid: String) {
            self.shard = shard
            self.gid = gid
        }
    }

    public init(id: String, participants: [Participant]) {
        self.id = id
        self.participants = participants
    }
}

/// Ids of this proxy's two-phase commits and which are in progress, shared by every event loop.
///
/// A gid is `sg_<instance>_<boot>_<n>_<shard index>`: `instance` names this proxy's decision log (stable
/// across restarts), so recovery only ever touches transactions this proxy prepared, and never one still
/// in progress in this process; `boot` (the log's count of starts) keeps ids of different runs apart, so a
/// transaction left prepared by a crash never shares its id with a new one.
public final class TwoPhaseRegistry: Sendable {
    public let instance: String
    public let boot: Int
    private let state = NIOLockedValueBox<(next: UInt64, active: Set<String>)>((1, []))

    public init(instance: String, boot: Int) {
        self.instance = instance
        self.boot = boot
    }

    /// The prefix of this instance's gids (for `pg_prepared_xacts`).
    public var gidPrefix: String { "sg_\(self.instance)_" }

    /// A new commit id, marked in progress.
    public func begin() -> String {
        self.state.withLockedValue { state in
            let id = "sg_\(self.instance)_\(self.boot)_\(state.next)"
            state.next += 1
            state.active.insert(id)
            return id
        }
    }

    public func finish(_ id: String) {
        _ = self.state.withLockedValue { $0.active.remove(id) }
    }

    public func isActive(_ id: String) -> Bool {
        self.state.withLockedValue { $0.active.contains(id) }
    }

    /// The commit id of a gid (`sg_<instance>_<boot>_<n>_<shard>` → `sg_<instance>_<boot>_<n>`), if it is
    /// this instance's.
    public func commitID(ofGID gid: String) -> String? {
        guard gid.hasPrefix(self.gidPrefix), let last = gid.lastIndex(of: "_") else { return nil }
        let id = String(gid[..<last])
        return id.count > self.gidPrefix.count ? id : nil
    }
}
