import ShardMap

/// Renders `shardctl status` output: per proxy a summary line, a table of shards with their primary
/// and replicas (healthy, in rotation, WAL position, lag), a table of pools, and the paused slots.
public enum StatusFormatter {
    /// The report of one proxy.
    public static func render(proxy: String, _ report: StatusReport) -> String {
        var out: [String] = []
        out.append(self.summary(proxy: proxy, report))
        out.append("")
        out.append(self.servers(report).render())
        out.append("")
        if report.pools.isEmpty {
            out.append("pools: none open")
        } else {
            out.append(self.pools(report).render())
        }
        out.append("")
        out.append(report.pausedSlotCount == 0
            ? "paused slots: none"
            : "paused slots: \(report.pausedSlots) (\(report.pausedSlotCount) \(report.pausedSlotCount == 1 ? "slot" : "slots"))")
        return out.joined(separator: "\n")
    }

    /// Several proxies: each report, and a warning when they do not serve the same map version.
    public static func render(_ reports: [(proxy: String, report: StatusReport)]) -> String {
        var sections = reports.map { self.render(proxy: $0.proxy, $0.report) }
        let versions = Set(reports.map(\.report.mapVersion))
        if versions.count > 1 {
            let list = reports.map { "\($0.proxy) has \($0.report.mapVersion)" }.joined(separator: ", ")
            sections.append("WARNING: the proxies serve different map versions: \(list)")
        }
        return sections.joined(separator: "\n\n")
    }

    static func summary(proxy: String, _ report: StatusReport) -> String {
        let counters = report.counters
        let routes = counters.queries.filter { $0.value > 0 }.sorted { $0.key < $1.key }
            .map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        var parts = [
            "map version \(report.mapVersion)",
            "\(report.shards.count) \(report.shards.count == 1 ? "shard" : "shards")",
            "\(report.clients) \(report.clients == 1 ? "client" : "clients")",
            "\(counters.queriesTotal) queries" + (routes.isEmpty ? "" : " (\(routes))"),
            "\(counters.errors) \(counters.errors == 1 ? "error" : "errors")",
            "reads: \(counters.replicaReads) replica, \(counters.primaryReads) primary (\(counters.fencedReads) read-your-writes)",
        ]
        parts.append(report.sampledAt.map { "lag sampled \($0)" } ?? "lag not sampled yet")
        return "proxy \(proxy): " + parts.joined(separator: "; ")
    }

    static func servers(_ report: StatusReport) -> StatusTable {
        var table = StatusTable(
            headers: ["SHARD", "SLOTS", "ROLE", "SERVER", "HEALTHY", "IN ROTATION", "LSN", "LAG BYTES", "LAG MS", "NOTE"],
            alignments: [.left, .left, .left, .left, .left, .left, .left, .right, .right, .left])
        for shard in report.shards {
            let slots = "\(shard.slotCount)" + (shard.slots.isEmpty ? "" : " (\(shard.slots))")
            let primary = report.primaries.first { $0.shard == shard.name && $0.url == shard.primary }
            table.add([
                shard.name, slots, "primary", shard.primary, primary.map { self.yesNo($0.healthy) } ?? "?", "-",
                primary?.walLsn ?? "-", "", "", primary?.problem ?? "",
            ])
            for url in shard.replicas {
                let replica = report.replicas.first { $0.shard == shard.name && $0.url == url }
                table.add([
                    "", "", "replica", url, replica.map { self.yesNo($0.healthy) } ?? "?",
                    replica.map { self.yesNo($0.inRotation) } ?? "?", replica?.replayLsn ?? "-",
                    replica?.lagBytes.map { "\($0)" } ?? "-", replica?.lagMs.map { "\($0)" } ?? "-", replica?.reason ?? "",
                ])
            }
        }
        return table
    }

    static func pools(_ report: StatusReport) -> StatusTable {
        var table = StatusTable(headers: ["SHARD", "ROLE", "SERVER", "SIZE", "BUSY", "IDLE", "WAITING"],
                                alignments: [.left, .left, .left, .right, .right, .right, .right])
        for pool in report.pools {
            table.add([pool.shard, pool.role, pool.server, "\(pool.size)", "\(pool.busy)", "\(pool.idle)", "\(pool.waiting)"])
        }
        return table
    }

    private static func yesNo(_ value: Bool) -> String { value ? "yes" : "no" }

    /// What `shardctl map validate` prints for a valid map.
    public static func mapSummary(_ map: ShardMap, file: String) -> String {
        let shards = map.shards.indices.map { index in
            let shard = map.shards[index]
            let replicas = shard.replicas.count
            return "  \(shard.name): \(map.slots(of: index).count) slots (\(map.slotRanges(of: index))), primary \(shard.primary), "
                + "\(replicas) \(replicas == 1 ? "replica" : "replicas")"
        }
        let sharded = map.tables.values.filter { if case .sharded = $0 { return true } else { return false } }.count
        return (["\(file): valid: version \(map.version), \(map.slotCount) slots, \(map.shards.count) shards, "
            + "\(map.tables.count) tables (\(sharded) sharded, \(map.tables.count - sharded) reference)"] + shards)
            .joined(separator: "\n")
    }
}
