import Foundation

extension ShardMap {
    /// The JSON to write over the map file `original` (its bytes) when this map replaces the one loaded from
    /// it: every section that did not change is written exactly as the file had it — `${VAR}` references to
    /// secrets stay references — and only what changed (always `version`, usually `slots`) is written anew.
    /// A changed shard is replaced by itself in the `shards` list; the others stay as written.
    ///
    /// When `original` cannot be read as a map any more, the whole map is written (`jsonData`).
    public func fileData(replacing original: Data, environment: [String: String], baseDirectory: String? = nil) -> Data {
        guard let raw = try? JSONParser.parse(original), case .object(let rawMembers) = raw,
              let old = try? ShardMap.decode(original, environment: environment, baseDirectory: baseDirectory),
              case .object(let newMembers) = self.jsonValue(redactingSecrets: false)
        else { return self.jsonData(redactingSecrets: false) }
        func rawValue(_ key: String) -> JSONValue? { rawMembers.first { $0.key == key }?.value }
        var out: [(key: String, value: JSONValue)] = []
        for (key, value) in newMembers {
            let unchanged: Bool
            switch key {
            case "slot_count": unchanged = old.slotCount == self.slotCount
            case "tables": unchanged = old.tables == self.tables
            case "auth": unchanged = old.auth == self.auth
            case "pool": unchanged = old.pool == self.pool
            case "replicas": unchanged = old.replicas == self.replicas
            case "tls": unchanged = old.tls == self.tls
            case "unlisted_tables": unchanged = old.unlistedTables == self.unlistedTables
            case "merge": unchanged = old.merge == self.merge
            case "copies": unchanged = old.copies == self.copies
            case "shards":
                out.append((key, self.shardsKeepingReferences(old: old, raw: rawValue(key), new: value)))
                continue
            default: unchanged = false  // version, slots
            }
            if unchanged, let kept = rawValue(key) {
                out.append((key, kept))
            } else if unchanged, rawValue(key) == nil, key != "slot_count" {
                // A default the file left out stays left out.
                continue
            } else {
                out.append((key, value))
            }
        }
        return JSONWriter.data(.object(out))
    }

    private func shardsKeepingReferences(old: ShardMap, raw: JSONValue?, new: JSONValue) -> JSONValue {
        guard case .array(let rawShards)? = raw, case .array(let newShards) = new else { return new }
        var out: [JSONValue] = []
        for (index, shard) in self.shards.enumerated() {
            if let before = old.shard(named: shard.name), before == shard,
               let kept = rawShards.first(where: { element in
                   if case .object(let members) = element, case .string(let name)? = members.first(where: { $0.key == "name" })?.value {
                       return EnvironmentExpansion.escape(shard.name) == name || shard.name == name
                   }
                   return false
               }) {
                out.append(kept)
            } else {
                out.append(newShards[index])
            }
        }
        return .array(out)
    }
}
