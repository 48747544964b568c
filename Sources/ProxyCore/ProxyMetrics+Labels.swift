/// How a statement was routed, for metrics and `/status` counters (a bounded label: never the query).
public enum RouteKind: String, Sendable, CaseIterable, Hashable {
    /// One shard, chosen by the shard key (or an override).
    case single
    /// Several, but not all, shards (keys in slots owned by different shards).
    case multi
    /// Every shard (no key on a sharded table, DDL, reference-table writes).
    case all
    /// Any one shard (catalog or table-less statements, reference-table reads).
    case any
    /// Answered by the proxy itself, without a backend.
    case local
}

/// Which kind of server a backend connection goes to (a bounded label).
public enum ServerRole: String, Sendable, CaseIterable, Hashable {
    case primary
    case replica
}
