import Foundation
import ShardMap

/// Steps 2–3 of a move: schema on the target, publication, subscription, copy and catch-up.
extension Rebalancer {
    /// The move's tables as the shard behind `db` describes them (tables missing there are left out).
    func tables(of index: Int, on db: PGConnection) throws -> [ShardTable] {
        try self.journal.moves[index].tables.compactMap { entry in
            guard let type = ShardKeyType(rawValue: entry.type) else { return nil }
            return try ShardTable.load(mapName: entry.mapName, key: entry.key, type: type, on: db)
        }
    }

    func prepareSchema(_ index: Int) throws {
        let move = self.journal.moves[index]
        let source = try self.sessions.primary(move.source)
        let target = try self.sessions.primary(move.target)
        var entries: [RebalanceJournal.Table] = []
        var missing: [String] = []
        for (name, key, type) in ShardTable.shardedTables(of: self.map) {
            guard let table = try ShardTable.load(mapName: name, key: key, type: type, on: source) else { continue }
            entries.append(.init(mapName: name, key: key, type: type.rawValue, relation: table.relation))
            if try ShardTable.load(mapName: name, key: key, type: type, on: target) == nil {
                missing.append(table.relation)
            }
        }
        if !missing.isEmpty {
            // Journaled first: --abort drops what this step created, even if shardctl dies right after.
            self.journal.moves[index].createdTables = missing
            try self.save()
            self.console.line("\(self.label(index)): copying the schema of \(missing.joined(separator: ", ")) to \(move.target) (pg_dump --schema-only | psql)")
            do {
                try SchemaCopier.copy(relations: missing, from: try self.sessions.url(of: move.source),
                                      sourcePassword: source.password, to: try self.sessions.url(of: move.target),
                                      targetPassword: target.password)
            } catch let failure as SchemaCopier.Failure {
                throw RebalanceError.step("schema copy to \(move.target)", failure.description)
            }
        }
        self.journal.moves[index].tables = entries
        try self.advance(index, to: .schemaReady, "tables ready on \(move.target): \(entries.map(\.mapName).joined(separator: ", "))")
    }

    func publish(_ index: Int) throws {
        let move = self.journal.moves[index]
        let source = try self.sessions.primary(move.source)
        let tables = try self.tables(of: index, on: source)
        if !tables.isEmpty,
           try source.query("SELECT count(*) FROM pg_publication WHERE pubname = $1", [move.name]).value() == "0" {
            let filtered = tables.map {
                RebalanceSQL.FilteredTable(relation: $0.relation,
                                           filter: $0.slotExpression(slotCount: self.map.slotCount).filter(slots: move.slotNumbers))
            }
            try source.execute(RebalanceSQL.createPublication(move.name, tables: filtered))
        }
        try self.advance(index, to: .published, tables.isEmpty ? "no tables to publish" : "publication \(move.name) on \(move.source)")
    }

    func subscribe(_ index: Int) async throws {
        let move = self.journal.moves[index]
        guard !move.tables.isEmpty else {
            try self.advance(index, to: .subscribed, "nothing to copy")
            return
        }
        try await self.announceCopies(index)
        let source = try self.sessions.primary(move.source)
        let target = try self.sessions.primary(move.target)
        if try target.query("SELECT count(*) FROM pg_subscription WHERE subname = $1", [move.name]).value() == "0" {
            // A slot without its subscription: CREATE SUBSCRIPTION made it, then failed. Start over.
            try self.dropSlots(index, on: source, subscriptionOID: nil)
            let conninfo = PGConnectionInfo.conninfo(for: try self.sessions.url(of: move.source), password: source.password,
                                                     applicationName: move.name)
            self.console.line("\(self.label(index)): subscribing \(move.target) to \(move.source); PostgreSQL copies the rows")
            try target.execute(RebalanceSQL.createSubscription(move.name, conninfo: conninfo, publication: move.name))
        }
        self.journal.moves[index].subscriptionOid = try target.query("SELECT oid::text FROM pg_subscription WHERE subname = $1", [move.name]).value()
        try self.advance(index, to: .subscribed, "subscription \(move.name) on \(move.target)")
        try await hold(at: .copy, options: self.options, console: self.console)
    }

    /// Waits until every table is copied and the subscription streams within `maxLagBytes`.
    func catchUp(_ index: Int) async throws {
        let move = self.journal.moves[index]
        guard !move.tables.isEmpty, let oid = move.subscriptionOid else {
            try self.advance(index, to: .caughtUp, "nothing to copy")
            return
        }
        let source = try self.sessions.primary(move.source)
        let target = try self.sessions.primary(move.target)
        let tables = try self.tables(of: index, on: source)
        var expected: [String: Int] = [:]
        for table in tables {
            let filter = table.slotExpression(slotCount: self.map.slotCount).filter(slots: move.slotNumbers)
            expected[table.relation] = Int(try source.query(RebalanceSQL.count(in: table.relation, filter: filter)).value() ?? "0") ?? 0
        }
        let total = expected.values.reduce(0, +)
        let started = Date()
        while true {
            let progress = try CopyProgress.sample(source: source, target: target, slot: move.name, subscriptionOID: oid)
            let copied = progress.readyTables.reduce(0) { $0 + (expected[$1] ?? 0) } + progress.rowsInFlight
            var line = "copy \(move.source) -> \(move.target): tables \(progress.readyTables.count)/\(progress.tableCount) copied, "
                + "rows \(min(copied, total))/\(total), lag \(progress.lagBytes.map(Self.bytes) ?? "?")"
            if progress.errors > 0 { line += ", replication errors \(progress.errors) (see \(move.target)'s server log)" }
            self.console.progress(line)
            if progress.allReady, let lag = progress.lagBytes, lag <= self.options.maxLagBytes {
                break
            }
            if let limit = self.options.copyTimeoutSeconds, Date().timeIntervalSince(started) > limit {
                throw RebalanceError.copy("not caught up after \(Int(limit)) s (\(line)); the copy goes on in PostgreSQL: run --resume to keep waiting, or --abort")
            }
            try await Task.sleep(for: .milliseconds(self.options.pollIntervalMs))
        }
        self.console.endProgress()
        try self.advance(index, to: .caughtUp, "copied \(total) rows, caught up")
    }

    static func bytes(_ count: UInt64) -> String {
        if count < 1024 { return "\(count) B" }
        if count < 1 << 20 { return "\(count / 1024) kB" }
        return String(format: "%.1f MB", Double(count) / Double(1 << 20))
    }
}

/// One sample of a subscription's copy and streaming state.
struct CopyProgress {
    var tableCount: Int
    /// Relations whose initial copy is done (`r`eady or `s`ynchronized).
    var readyTables: [String]
    /// Rows the table-sync workers have copied into tables not done yet.
    var rowsInFlight: Int
    /// Source WAL not yet confirmed by the subscription (`nil` before it confirmed anything).
    var lagBytes: UInt64?
    /// Apply and sync errors so far.
    var errors: Int
    /// Every table `r`eady: copied, and the apply worker streams its changes.
    var allReady: Bool

    static func sample(source: PGConnection, target: PGConnection, slot: String, subscriptionOID: String) throws -> CopyProgress {
        let states = try target.query("""
            SELECT n.nspname, c.relname, r.srsubstate::text FROM pg_subscription_rel r
            JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE r.srsubid = $1::oid
            """, [subscriptionOID]).rows
        let ready = states.filter { $0[2] == "r" || $0[2] == "s" }.map {
            SQLText.relation(schema: $0[0] ?? "", name: $0[1] ?? "")
        }
        let inFlight = try target.query("""
            SELECT coalesce(sum(tuples_processed), 0)::text FROM pg_stat_progress_copy
            WHERE relid IN (SELECT srrelid FROM pg_subscription_rel WHERE srsubid = $1::oid AND srsubstate NOT IN ('r', 's'))
            """, [subscriptionOID]).value()
        let errors = try target.query("""
            SELECT (apply_error_count + sync_error_count)::text FROM pg_stat_subscription_stats WHERE subid = $1::oid
            """, [subscriptionOID]).value()
        let lag = try source.query("""
            SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text FROM pg_replication_slots
            WHERE slot_name = $1
            """, [slot]).value()
        return CopyProgress(tableCount: states.count, readyTables: ready, rowsInFlight: Int(inFlight ?? "0") ?? 0,
                            lagBytes: lag.flatMap { Int64($0) }.map { UInt64(max(0, $0)) }, errors: Int(errors ?? "0") ?? 0,
                            allReady: !states.isEmpty && states.allSatisfy { $0[2] == "r" })
    }
}
