import Foundation
import ShardMap
import Testing

/// Writing a new map version over the file it was loaded from keeps the file's `${VAR}` references.
@Suite struct ShardMapPersistTests {
    static let file = #"""
        {
          "version": 3,
          "shards": [
            {"name": "s0", "primary": "postgresql://app:${S0_PW}@127.0.0.1:5500/app", "replicas": []},
            {"name": "s1", "primary": "postgresql://app:${S1_PW}@127.0.0.1:5502/app", "replicas": []}
          ],
          "slots": {"s0": "0-511", "s1": "512-1023"},
          "tables": {"users": {"shard_key": "id", "type": "bigint"}},
          "auth": {"method": "scram-sha-256", "users": [{"name": "app", "password": "${APP_PW}"}]}
        }
        """#
    static let environment = ["S0_PW": "zero", "S1_PW": "one", "APP_PW": "secret"]

    @Test func aSlotMoveRewritesVersionAndSlotsOnly() throws {
        let original = Data(Self.file.utf8)
        var map = try ShardMap.decode(original, environment: Self.environment)
        map.version = 4
        for slot in 0..<100 { map.slotOwners[slot] = 1 }
        let written = map.fileData(replacing: original, environment: Self.environment)
        let text = String(decoding: written, as: UTF8.self)
        #expect(text.contains("${S0_PW}") && text.contains("${S1_PW}") && text.contains("${APP_PW}"))
        #expect(!text.contains("zero") && !text.contains("secret"))
        #expect(!text.contains("pool"), "defaults the file left out stay out")
        let reread = try ShardMap.decode(written, environment: Self.environment)
        #expect(reread == map)
    }

    @Test func aNewShardIsWrittenOutAndTheOthersKeepTheirReferences() throws {
        let original = Data(Self.file.utf8)
        var map = try ShardMap.decode(original, environment: Self.environment)
        map.version = 5
        map.shards.append(Shard(name: "s2", primary: try PostgresURL(parsing: "postgresql://app@127.0.0.1:5504/app")))
        let written = map.fileData(replacing: original, environment: Self.environment)
        let text = String(decoding: written, as: UTF8.self)
        #expect(text.contains("${S0_PW}") && text.contains("5504"))
        #expect(try ShardMap.decode(written, environment: Self.environment) == map)
    }
}
