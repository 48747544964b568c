/// The SQL a rebalance runs, as text (pure, so tests can check it without a server).
public enum RebalanceSQL {
    /// A table of a move with the row filter of the moving slots.
    public struct FilteredTable: Sendable, Equatable {
        /// `"schema"."table"`.
        public var relation: String
        /// `<slot expression> IN (…)`.
        public var filter: String

        public init(relation: String, filter: String) {
            self.relation = relation
            self.filter = filter
        }
    }

    /// The publication on the source: each table with a row filter on the slot expression.
    ///
    /// TRUNCATE is not published: it ignores row filters and would empty the whole table on the target.
    /// `publish_via_partition_root` makes a partitioned table publish its rows under the root's name, with
    /// the root's filter (PostgreSQL 15 refuses a filter on a partitioned table otherwise).
    public static func createPublication(_ name: String, tables: [FilteredTable]) -> String {
        let list = tables.map { "TABLE \($0.relation) WHERE (\($0.filter))" }.joined(separator: ", ")
        return "CREATE PUBLICATION \(SQLText.identifier(name)) FOR \(list) "
            + "WITH (publish = 'insert, update, delete', publish_via_partition_root = true)"
    }

    /// The subscription on the target: it copies the published rows, then streams changes. Its
    /// replication slot on the source has the same name.
    public static func createSubscription(_ name: String, conninfo: String, publication: String) -> String {
        "CREATE SUBSCRIPTION \(SQLText.identifier(name)) CONNECTION \(SQLText.literal(conninfo)) "
            + "PUBLICATION \(SQLText.identifier(publication)) "
            + "WITH (copy_data = true, create_slot = true, enabled = true, slot_name = \(SQLText.literal(name)))"
    }

    public static func dropSubscription(_ name: String) -> String {
        "DROP SUBSCRIPTION IF EXISTS \(SQLText.identifier(name))"
    }

    /// For a subscription whose source cannot be reached: detach it from its slot so that it can be
    /// dropped without connecting (the slot is then dropped on the source by shardctl).
    public static func detachSubscription(_ name: String) -> [String] {
        let ident = SQLText.identifier(name)
        return ["ALTER SUBSCRIPTION \(ident) DISABLE", "ALTER SUBSCRIPTION \(ident) SET (slot_name = NONE)",
                "DROP SUBSCRIPTION \(ident)"]
    }

    public static func dropPublication(_ name: String) -> String {
        "DROP PUBLICATION IF EXISTS \(SQLText.identifier(name))"
    }

    /// Replication slots on the source left by the subscription: its own and its table-sync slots
    /// (`pg_<subscription oid>_sync_<table oid>_<system id>`).
    public static func leftoverSlots(name: String, subscriptionOID: String?) -> (sql: String, parameters: [String?]) {
        ("SELECT slot_name, active, active_pid::text FROM pg_replication_slots "
            + "WHERE slot_name = $1 OR ($2::text IS NOT NULL AND slot_name LIKE 'pg\\_' || $2 || '\\_sync\\_%')",
         [name, subscriptionOID])
    }

    /// Deletes at most `limit` rows of the filter from one table (not a partitioned parent: ctid is only
    /// unique within one table, so partitioned tables are deleted from leaf by leaf).
    public static func deleteBatch(from leaf: String, filter: String, limit: Int) -> String {
        "DELETE FROM ONLY \(leaf) WHERE ctid = ANY(ARRAY(SELECT ctid FROM ONLY \(leaf) WHERE \(filter) LIMIT \(limit)))"
    }

    /// Whether any row of the filter exists.
    public static func anyRow(in relation: String, filter: String) -> String {
        "SELECT EXISTS (SELECT 1 FROM \(relation) WHERE \(filter))"
    }

    /// Row count of the filter.
    public static func count(in relation: String, filter: String) -> String {
        "SELECT count(*) FROM \(relation) WHERE \(filter)"
    }

    /// A sync point: a WAL record in a transaction committed with `synchronous_commit = on`, so the WAL is
    /// flushed up to it (and so past every commit acknowledged before). Then `syncPointLSN` reads the flush
    /// position, a record boundary that a subscription (or a replica) reaches without further traffic.
    public static func syncPoint(label: String) -> String {
        "BEGIN; SET LOCAL synchronous_commit = on; "
            + "SELECT pg_logical_emit_message(true, 'shardgate-rebalance', \(SQLText.literal(label))); COMMIT"
    }

    public static let syncPointLSN = "SELECT pg_current_wal_flush_lsn()::text"

    /// The two-key advisory lock that marks "a rebalance works on this shard".
    public static let lockKeys = (21319, 21058)
    public static let tryLock = "SELECT pg_try_advisory_lock(\(lockKeys.0), \(lockKeys.1))"
    public static let lockHolder = """
        SELECT a.pid::text, coalesce(a.application_name, ''), coalesce(a.client_addr::text, 'local')
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.classid = \(lockKeys.0) AND l.objid = \(lockKeys.1) AND l.objsubid = 2
          AND l.granted LIMIT 1
        """
}
