import ShardMap

/// The checks before a rebalance changes anything (DESIGN §8 step 1). Read-only: `--dry-run` runs them too.
public struct RebalancePreflight {
    /// What the checks found.
    public struct Report: Sendable, Equatable {
        /// Reasons the rebalance cannot start, each with what to do about it.
        public var problems: [String] = []
        /// What the run will do that the operator should know (schema copies, tables not present).
        public var notes: [String] = []
    }

    let map: ShardMap
    let plan: RebalancePlan
    let sessions: ShardSessions
    /// The id of the run itself (its own objects are not leftovers).
    let ownID: String?

    public init(map: ShardMap, plan: RebalancePlan, sessions: ShardSessions, ownID: String? = nil) {
        self.map = map
        self.plan = plan
        self.sessions = sessions
        self.ownID = ownID
    }

    public func run() throws -> Report {
        var report = Report()
        let sources = Set(self.plan.moves.map(\.source))
        let targets = Set(self.plan.moves.map(\.target))
        var reachable: Set<String> = []
        for shard in sources.union(targets).sorted() {
            do {
                let db = try self.sessions.primary(shard)
                reachable.insert(shard)
                report.problems += try self.leftovers(on: shard, db)
                let role = try db.query("SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user")
                let isSuper = role.value("rolsuper") == "t"
                if sources.contains(shard) {
                    report.problems += try self.checkSource(shard, db, superuser: isSuper, replication: role.value("rolreplication") == "t")
                }
                if targets.contains(shard), !isSuper {
                    report.problems.append("\(shard): the user \(try self.sessions.url(of: shard).user) is not a superuser; PostgreSQL 15 needs one for CREATE SUBSCRIPTION on the target")
                }
                if targets.contains(shard) {
                    report.problems += try self.checkTargetCapacity(shard, db)
                }
            } catch let error as PGError {
                report.problems.append("\(shard) is not reachable: \(error)")
            }
        }
        for move in self.plan.moves where reachable.contains(move.source) && reachable.contains(move.target) {
            try self.checkTables(move, &report)
        }
        return report
    }

    func checkSource(_ shard: String, _ db: PGConnection, superuser: Bool, replication: Bool) throws -> [String] {
        var problems: [String] = []
        let walLevel = try db.query("SHOW wal_level").value() ?? "?"
        if walLevel != "logical" {
            problems.append("\(shard): wal_level is \(walLevel); logical replication needs wal_level = logical on the source (set it in postgresql.conf and restart the primary)")
        }
        if !superuser && !replication {
            problems.append("\(shard): the user \(try self.sessions.url(of: shard).user) has neither SUPERUSER nor REPLICATION; the subscription connects as it")
        }
        let capacity = try db.query("""
            SELECT current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots),
                   current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication)
            """)
        let freeSlots = Int(capacity.rows.first?[0] ?? "0") ?? 0
        let freeSenders = Int(capacity.rows.first?[1] ?? "0") ?? 0
        if freeSlots < 1 {
            problems.append("\(shard): no free replication slot (max_replication_slots is used up); raise it or drop unused slots")
        }
        if freeSenders < 1 {
            problems.append("\(shard): no free WAL sender (max_wal_senders is used up); raise it")
        }
        return problems
    }

    func checkTargetCapacity(_ shard: String, _ db: PGConnection) throws -> [String] {
        let capacity = try db.query("""
            SELECT current_setting('max_logical_replication_workers')::int - (SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL),
                   current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_origin)
            """)
        var problems: [String] = []
        if (Int(capacity.rows.first?[0] ?? "0") ?? 0) < 1 {
            problems.append("\(shard): no free logical replication worker (max_logical_replication_workers is used up)")
        }
        if (Int(capacity.rows.first?[1] ?? "0") ?? 0) < 1 {
            problems.append("\(shard): no free replication origin (max_replication_slots limits them on a subscriber)")
        }
        return problems
    }

    /// Publications, subscriptions and slots of other rebalances.
    func leftovers(on shard: String, _ db: PGConnection) throws -> [String] {
        let rows = try db.query("""
            SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE 'shardgate\\_rb\\_%'
            UNION ALL SELECT 'subscription ' || subname FROM pg_subscription
              WHERE subname LIKE 'shardgate\\_rb\\_%' AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            UNION ALL SELECT 'replication slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE 'shardgate\\_rb\\_%'
            """).rows.compactMap { $0.first ?? nil }
        let others = rows.filter { row in self.ownID.map { !row.contains("shardgate_rb_\($0)_") } ?? true }
        guard !others.isEmpty else { return [] }
        return ["\(shard) has objects of another rebalance: \(others.joined(separator: ", ")); finish or abort that one with its journal (shardctl rebalance --resume/--abort --journal PATH), or drop them"]
    }

    func checkTables(_ move: RebalanceMove, _ report: inout Report) throws {
        let source = try self.sessions.primary(move.source)
        let target = try self.sessions.primary(move.target)
        var missing: [String] = []
        for (name, key, type) in ShardTable.shardedTables(of: self.map) {
            guard let table = try ShardTable.load(mapName: name, key: key, type: type, on: source) else {
                report.notes.append("table \(name) does not exist on \(move.source): nothing of it to move")
                continue
            }
            if let problem = table.keyTypeProblem ?? table.replicationProblem {
                report.problems.append("\(move.source): \(problem)")
                continue
            }
            guard let there = try ShardTable.load(mapName: name, key: key, type: type, on: target) else {
                missing.append(table.relation)
                continue
            }
            let absent = table.columns.filter { !there.columns.contains($0) }
            if !absent.isEmpty {
                report.problems.append("\(move.target): table \(there.relation) lacks the column(s) \(absent.joined(separator: ", ")) that \(move.source) has; make the schemas equal first")
            }
            if there.keyColumnType != table.keyColumnType {
                report.problems.append("\(move.target): the shard key of \(there.relation) is \(there.keyColumnType ?? "missing"), on \(move.source) it is \(table.keyColumnType ?? "missing")")
                continue
            }
            let filter = there.slotExpression(slotCount: self.map.slotCount).filter(slots: move.slots)
            if try target.query(RebalanceSQL.anyRow(in: there.relation, filter: filter)).value() == "t" {
                let count = try target.query(RebalanceSQL.count(in: there.relation, filter: filter)).value() ?? "?"
                report.problems.append("\(move.target) already holds \(count) row(s) of the moving slots in \(there.relation); they would clash with the copy (see `shardctl verify --slots \(move.slotList)`, then delete them)")
            }
        }
        if !missing.isEmpty {
            report.notes.append("\(move.target) lacks \(missing.joined(separator: ", ")): their schema will be copied from \(move.source) (pg_dump --schema-only | psql)")
            for tool in ["pg_dump", "psql"] {
                do { _ = try SchemaCopier.tool(tool) } catch { report.problems.append("\(error)") }
            }
        }
    }
}
