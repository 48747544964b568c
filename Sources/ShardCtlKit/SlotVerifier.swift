import ShardMap

/// `shardctl verify`: per-slot row counts and checksums of every sharded table on every shard, to find
/// rows that live on a shard other than their slot's owner (left over by a move, or written around the
/// proxy) and whether they equal the owner's rows.
public struct SlotVerifier {
    let map: ShardMap
    let sessions: ShardSessions
    /// The slots to check (`nil`: all).
    let slots: [Int]?

    public init(map: ShardMap, sessions: ShardSessions, slots: [Int]? = nil) {
        self.map = map
        self.sessions = sessions
        self.slots = slots
    }

    /// Count and checksum of one slot's rows on one shard.
    struct SlotDigest: Equatable {
        var rows: Int
        var checksum: String
    }

    /// The per-slot query for `table`: slot, row count and md5 of the rows' text in key order.
    public static func digestQuery(_ table: ShardTable, slotCount: Int, slots: [Int]?) -> String {
        let expression = table.slotExpression(slotCount: slotCount)
        let order = table.orderColumns.isEmpty
            ? "t::text" : table.orderColumns.map { "t." + SQLText.identifier($0) }.joined(separator: ", ")
        var sql = "SELECT (\(expression.sql))::int AS slot, count(*)::text, md5(string_agg(t::text, E'\\n' ORDER BY \(order))) "
            + "FROM \(table.relation) t"
        if let slots { sql += " WHERE \(expression.filter(slots: slots))" }
        return sql + " GROUP BY 1 ORDER BY 1"
    }

    public func run() throws -> VerifyReport {
        var report = VerifyReport(mapVersion: self.map.version, shards: self.map.shards.map(\.name),
                                  slotCount: self.slots?.count ?? self.map.slotCount)
        for (name, key, type) in ShardTable.shardedTables(of: self.map) {
            var digests: [Int: [Int: SlotDigest]] = [:]  // shard index → slot → digest
            var presentOn: [Int] = []
            for (index, shard) in self.map.shards.enumerated() {
                let db = try self.sessions.primary(shard.name)
                guard let table = try ShardTable.load(mapName: name, key: key, type: type, on: db) else { continue }
                if let problem = table.keyTypeProblem {
                    report.notes.append("\(shard.name): \(problem)")
                    continue
                }
                presentOn.append(index)
                let rows = try db.query(Self.digestQuery(table, slotCount: self.map.slotCount, slots: self.slots)).rows
                for row in rows {
                    guard let slot = Int(row[0] ?? ""), let count = Int(row[1] ?? "") else { continue }
                    digests[index, default: [:]][slot] = SlotDigest(rows: count, checksum: row[2] ?? "")
                }
            }
            var summary = VerifyReport.TableSummary(name: name, presentOn: presentOn.map { self.map.shards[$0].name })
            var stray: [Key: (slots: [Int], rows: Int, ownerRows: Int)] = [:]
            for (shard, perSlot) in digests {
                for (slot, digest) in perSlot {
                    let owner = self.map.shardIndex(ofSlot: slot)
                    if owner == shard {
                        summary.ownerRows += digest.rows
                        continue
                    }
                    let ownerDigest = digests[owner]?[slot]
                    let key = Key(holder: shard, owner: owner, identical: ownerDigest == digest)
                    var entry = stray[key] ?? ([], 0, 0)
                    entry.slots.append(slot)
                    entry.rows += digest.rows
                    entry.ownerRows += ownerDigest?.rows ?? 0
                    stray[key] = entry
                }
            }
            for key in stray.keys.sorted() {
                let entry = stray[key]!
                report.findings.append(.init(table: name, holder: self.map.shards[key.holder].name,
                                             owner: self.map.shards[key.owner].name, slots: entry.slots.sorted(),
                                             rows: entry.rows, ownerRows: entry.ownerRows, identical: key.identical))
            }
            summary.strayRows = stray.values.reduce(0) { $0 + $1.rows }
            report.tables.append(summary)
        }
        return report
    }

    struct Key: Hashable, Comparable {
        var holder: Int
        var owner: Int
        var identical: Bool

        static func < (a: Key, b: Key) -> Bool {
            (a.holder, a.owner, a.identical ? 1 : 0) < (b.holder, b.owner, b.identical ? 1 : 0)
        }
    }
}

/// What `shardctl verify` found.
public struct VerifyReport: Sendable, Equatable {
    /// One table's totals.
    public struct TableSummary: Sendable, Equatable {
        public var name: String
        public var presentOn: [String]
        /// Rows on the shard that owns their slot.
        public var ownerRows = 0
        /// Rows on a shard that does not own their slot.
        public var strayRows = 0
    }

    /// Rows of some slots on a shard that does not own them.
    public struct Finding: Sendable, Equatable {
        public var table: String
        public var holder: String
        public var owner: String
        public var slots: [Int]
        public var rows: Int
        /// The owner's rows in the same slots.
        public var ownerRows: Int
        /// Whether every slot's rows equal the owner's (count and checksum).
        public var identical: Bool
    }

    public var mapVersion: Int
    public var shards: [String]
    public var slotCount: Int
    public var tables: [TableSummary] = []
    public var findings: [Finding] = []
    public var notes: [String] = []

    /// A slot list cut after 12 ranges.
    static func abbreviated(_ slots: [Int]) -> String {
        let ranges = SlotRanges.format(slots).split(separator: ",")
        guard ranges.count > 12 else { return ranges.joined(separator: ",") }
        return ranges.prefix(12).joined(separator: ",") + ",… (\(ranges.count - 12) more ranges)"
    }

    /// No row outside its owner.
    public var isClean: Bool { self.findings.isEmpty }

    public func render() -> String {
        var lines = ["verify: map version \(self.mapVersion), shards \(self.shards.joined(separator: ", ")), \(self.slotCount) slot(s) checked"]
        for table in self.tables {
            let missing = self.shards.filter { !table.presentOn.contains($0) }
            var line = "  \(table.name): \(table.ownerRows) row(s) on their owners"
            line += table.strayRows == 0 ? ", none elsewhere" : ", \(table.strayRows) row(s) on shards that do not own them"
            if table.presentOn.isEmpty { line = "  \(table.name): not present on any shard" }
            else if !missing.isEmpty { line += " (table missing on \(missing.joined(separator: ", ")))" }
            lines.append(line)
        }
        for finding in self.findings {
            let what = finding.identical
                ? "an identical copy of the owner's rows"
                : "differs from the owner's \(finding.ownerRows) row(s)"
            lines.append("  STALE \(finding.table): \(finding.holder) holds \(finding.rows) row(s) of \(finding.slots.count) slot(s) owned by \(finding.owner) — \(what); slots \(Self.abbreviated(finding.slots))")
        }
        lines += self.notes.map { "  note: " + $0 }
        lines.append(self.isClean ? "clean: every row is on its slot's owner" : "NOT clean: \(self.findings.count) finding(s)")
        return lines.joined(separator: "\n")
    }
}
