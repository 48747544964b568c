import Foundation
import PostgresNIO
import ShardMap
import Testing

@Suite("PostgresNIO through ShardGate", .serialized)
struct PostgresNIOThroughProxyTests {
    static var auth: [String: Any] { [
        "auth": ["method": "scram-sha-256", "users": [["name": "app", "password": "${SG_IT_APP_PW}"]]],
        "pool": ["size": 2],
    ] }

    @Test func scramLoginRunsReadsOnTheFirstShardsReplicaAndTransactionsOnItsPrimary() async throws {
        let map = try TestCluster.map()
        let proxy = try await RunningProxy(extra: Self.auth, environment: ["SG_IT_APP_PW": "correct horse"])
        defer {
            let (status, log) = proxy.stop()
            #expect(status == 0, "shardgate exited with \(status):\n\(log)")
        }
        let connection = try await TestCluster.connect(port: proxy.port, user: "app", password: "correct horse")
        let rows = try await connection.query("SELECT inet_server_port(), pg_is_in_recovery(), current_database()", logger: TestCluster.logger)
        var seen = 0
        for try await (port, inRecovery, database) in rows.decode((Int, Bool, String).self) {
            // A read without a table goes to shard 0, on its replica.
            #expect(port == map.shards[0].replicas[0].port)
            #expect(inRecovery == true)
            #expect(database == "app")
            seen += 1
        }
        #expect(seen == 1)
        _ = try await connection.query("BEGIN", logger: TestCluster.logger)
        for try await (port, inRecovery) in try await connection.query(
            "SELECT inet_server_port(), pg_is_in_recovery()", logger: TestCluster.logger).decode((Int, Bool).self) {
            #expect(port == map.shards[0].primary.port)
            #expect(inRecovery == false)
        }
        _ = try await connection.query("COMMIT", logger: TestCluster.logger)
        // Parameters travel in the extended protocol (unnamed statement), text and binary.
        let echoed = try await connection.query("SELECT \(Int64(-42))::int8 + 1, \("ünïcode")::text", logger: TestCluster.logger)
        for try await (number, text) in echoed.decode((Int64, String).self) {
            #expect(number == -41)
            #expect(text == "ünïcode")
        }
        try await connection.close()
    }

    @Test func wrongPasswordIsRefusedWith28P01() async throws {
        let proxy = try await RunningProxy(extra: Self.auth, environment: ["SG_IT_APP_PW": "correct horse"])
        defer { proxy.stop() }
        do {
            let connection = try await TestCluster.connect(port: proxy.port, user: "app", password: "wrong")
            try? await connection.close()
            Issue.record("login with a wrong password succeeded")
        } catch let error as PSQLError {
            #expect(error.serverInfo?[.sqlState] == "28P01")
            #expect(error.serverInfo?[.message] == "password authentication failed for user \"app\"")
            #expect(error.serverInfo?[.severity] == "FATAL")
        }
    }

    @Test func manyConnectionsShareASmallPool() async throws {
        let proxy = try await RunningProxy(extra: Self.auth, environment: ["SG_IT_APP_PW": "pw"])
        defer {
            let (status, log) = proxy.stop()
            #expect(status == 0, "shardgate exited with \(status):\n\(log)")
        }
        let port = proxy.port
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for client in 0..<24 {
                group.addTask {
                    let connection = try await TestCluster.connect(port: port, user: "app", password: "pw", id: client)
                    var sum = 0
                    for i in 0..<25 {
                        let rows = try await connection.query("SELECT \(client * 1000 + i)::int8", logger: TestCluster.logger)
                        for try await value in rows.decode(Int.self) { sum += value }
                    }
                    try await connection.close()
                    return sum
                }
            }
            return try await group.reduce(0, +)
        }
        let expected = (0..<24).reduce(0) { acc, c in acc + (0..<25).reduce(0) { $0 + c * 1000 + $1 } }
        #expect(total == expected)
    }

    /// PostgresNIO's prepared statements: Parse under the type's name once per connection, then Bind/Execute
    /// of that name. Through ShardGate the name is the client's; 12 connections share a pool of 2, and two
    /// statement types interleave on each.
    struct Echo: PostgresPreparedStatement {
        static let sql = "SELECT $1::int8 + 1, $2::text"
        typealias Row = (Int64, String)
        var number: Int64
        var text: String
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings()
            bindings.append(self.number)
            bindings.append(self.text)
            return bindings
        }
        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    struct Negate: PostgresPreparedStatement {
        static let sql = "SELECT -$1::int8"
        typealias Row = Int64
        var number: Int64
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings()
            bindings.append(self.number)
            return bindings
        }
        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    @Test func preparedStatementsWorkAcrossPooledBackends() async throws {
        let proxy = try await RunningProxy(extra: Self.auth, environment: ["SG_IT_APP_PW": "pw"])
        defer {
            let (status, log) = proxy.stop()
            #expect(status == 0, "shardgate exited with \(status):\n\(log)")
        }
        let port = proxy.port
        let checked = try await withThrowingTaskGroup(of: Int.self) { group in
            for client in 0..<12 {
                group.addTask {
                    let connection = try await TestCluster.connect(port: port, user: "app", password: "pw", id: 100 + client)
                    var checked = 0
                    for i in 0..<20 {
                        let number = Int64(client * 1000 + i)
                        for try await (plusOne, text) in try await connection.execute(
                            Echo(number: number, text: "c\(client)"), logger: TestCluster.logger) {
                            #expect(plusOne == number + 1)
                            #expect(text == "c\(client)")
                            checked += 1
                        }
                        for try await negated in try await connection.execute(Negate(number: number), logger: TestCluster.logger) {
                            #expect(negated == -number)
                            checked += 1
                        }
                    }
                    try await connection.close()
                    return checked
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(checked == 12 * 20 * 2)
    }
}

@Suite("Slot function against a real PostgreSQL")
struct SlotFunctionLiveTests {
    /// DESIGN §3: the Swift slot function must equal PostgreSQL's hash partitioning, asked of a live server.
    @Test func bigintAndTextSlotsMatchTheServer() async throws {
        let map = try TestCluster.map()
        let primary = map.shards[0].primary
        let connection = try await TestCluster.connect(host: primary.host, port: primary.port, user: primary.user,
                                                       password: primary.password, database: primary.database)
        var generator = SystemRandomNumberGenerator()
        var keys: [Int64] = [0, 1, -1, 42, .max, .min, Int64(Int32.max), Int64(Int32.min)]
        for _ in 0..<3000 { keys.append(Int64.random(in: .min ... .max, using: &generator)) }
        for _ in 0..<1000 { keys.append(Int64.random(in: -100_000...100_000, using: &generator)) }
        let list = keys.map(String.init).joined(separator: ",")
        let rows = try await connection.query(PostgresQuery(unsafeSQL: """
            SELECT k, ((hashint8extended(k, 8816678312871386365) & 1023) + 227) & 1023
            FROM unnest(ARRAY[\(list)]::int8[]) AS k
            """), logger: TestCluster.logger)
        var checked = 0
        for try await (key, slot) in rows.decode((Int64, Int64).self) {
            #expect(SlotHash.slot(bigint: key) == Int(slot), "key \(key)")
            checked += 1
        }
        #expect(checked == keys.count)

        let texts = (0..<1000).map { "user-\($0)-\(UUID().uuidString)" } + ["", "ünïcödé", "日本語", "🙂", "user-1"]
        let textRows = try await connection.query(
            "SELECT t, ((hashtextextended(t, 8816678312871386365) & 1023) + 227) & 1023 FROM unnest(\(texts)::text[]) AS t",
            logger: TestCluster.logger)
        var checkedTexts = 0
        for try await (text, slot) in textRows.decode((String, Int64).self) {
            #expect(SlotHash.slot(text: text) == Int(slot), "key \(text)")
            checkedTexts += 1
        }
        #expect(checkedTexts == texts.count)
        try await connection.close()
    }
}
