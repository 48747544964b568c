import Foundation
import ShardMap

/// Shard-map JSON used across the tests.
enum Fixtures {
    /// The example of DESIGN §2.
    static let designExample = #"""
        {
          "version": 1,
          "slot_count": 1024,
          "shards": [
            {"name": "s0", "primary": "postgresql://postgres@127.0.0.1:5500/app",
             "replicas": ["postgresql://postgres@127.0.0.1:5501/app"]},
            {"name": "s1", "primary": "postgresql://postgres@127.0.0.1:5502/app",
             "replicas": ["postgresql://postgres@127.0.0.1:5503/app"]}
          ],
          "slots": {"s0": "0-511", "s1": "512-1023"},
          "tables": {
            "users":     {"shard_key": "id", "type": "bigint"},
            "orders":    {"shard_key": "user_id", "type": "bigint"},
            "sessions":  {"shard_key": "token", "type": "text"},
            "countries": {"reference": true}
          }
        }
        """#

    /// A small valid map; `top` is spliced in as extra top-level members, and the other parts replace
    /// the defaults.
    static func map(
        top: String = "",
        version: String = "1",
        shards: String = #"""
            [{"name": "s0", "primary": "postgresql://postgres@127.0.0.1:5500/app"},
             {"name": "s1", "primary": "postgresql://postgres@127.0.0.1:5502/app"}]
            """#,
        slots: String = #"{"s0": "0-511", "s1": "512-1023"}"#,
        tables: String = #"{"orders": {"shard_key": "user_id", "type": "bigint"}}"#
    ) -> String {
        var members = [
            #""version": \#(version)"#, #""shards": \#(shards)"#, #""slots": \#(slots)"#,
            #""tables": \#(tables)"#,
        ]
        if !top.isEmpty { members.append(top) }
        return "{" + members.joined(separator: ",\n") + "}"
    }

    static func decode(_ json: String, environment: [String: String] = [:], baseDirectory: String? = nil)
        throws -> ShardMap {
        try ShardMap.decode(Data(json.utf8), environment: environment, baseDirectory: baseDirectory)
    }
}
