import ShardCtlKit
import ShardMap
import Testing

@Suite("The SQL a rebalance generates")
struct RebalanceSQLTests {
    @Test func slotExpressionsPerKeyTypeAreTheDesignsFormula() {
        #expect(SlotExpression(column: "id", type: .bigint).sql
            == "(((hashint8extended(\"id\", 8816678312871386365) & 1023) + 227) & 1023)")
        #expect(SlotExpression(column: "token", type: .text).sql
            == "(((hashtextextended(\"token\", 8816678312871386365) & 1023) + 227) & 1023)")
        #expect(SlotExpression(column: "u", type: .uuid).sql
            == "(((uuid_hash_extended(\"u\", 8816678312871386365) & 1023) + 227) & 1023)")
    }

    @Test func otherSlotCountsUseTheMaskOrExactArithmetic() {
        // 0x49a0f4dd15e5a8e3 mod 256 = 0xe3.
        #expect(SlotExpression(column: "id", type: .bigint, slotCount: 256).sql
            == "(((hashint8extended(\"id\", 8816678312871386365) & 255) + 227) & 255)")
        #expect(SlotExpression(column: "id", type: .bigint, slotCount: 1000).sql
            == "(mod(hashint8extended(\"id\", 8816678312871386365)::numeric + 18446744073709551616 + 5305509591434766563, 18446744073709551616) % 1000)")
    }

    @Test func rowFiltersListTheSlotsAndQuoteTheColumn() {
        let expression = SlotExpression(column: "User \"Id\"", type: .bigint)
        #expect(expression.filter(slots: [3, 1, 2, 2]).hasSuffix(" IN (1, 2, 3)"))
        #expect(expression.filter(slots: [3]).hasPrefix("(((hashint8extended(\"User \"\"Id\"\"\", "))
        #expect(expression.filter(slots: []) == "false")
    }

    @Test func thePublicationFiltersEveryTableAndLeavesOutTruncate() {
        let sql = RebalanceSQL.createPublication("shardgate_rb_1_1", tables: [
            .init(relation: "\"public\".\"users\"", filter: "x IN (1)"),
            .init(relation: "\"public\".\"sessions\"", filter: "y IN (2)"),
        ])
        #expect(sql == """
            CREATE PUBLICATION "shardgate_rb_1_1" FOR TABLE "public"."users" WHERE (x IN (1)), TABLE "public"."sessions" \
            WHERE (y IN (2)) WITH (publish = 'insert, update, delete', publish_via_partition_root = true)
            """)
    }

    @Test func theSubscriptionCopiesAndNamesItsSlot() {
        let sql = RebalanceSQL.createSubscription("shardgate_rb_1_1", conninfo: "host='h' password='it''s'",
                                                  publication: "shardgate_rb_1_1")
        #expect(sql == """
            CREATE SUBSCRIPTION "shardgate_rb_1_1" CONNECTION 'host=''h'' password=''it''''s''' PUBLICATION \
            "shardgate_rb_1_1" WITH (copy_data = true, create_slot = true, enabled = true, slot_name = 'shardgate_rb_1_1')
            """)
    }

    @Test func deletesGoInBatchesByCtid() {
        #expect(RebalanceSQL.deleteBatch(from: "\"public\".\"t\"", filter: "f", limit: 10000) == """
            DELETE FROM ONLY "public"."t" WHERE ctid = ANY(ARRAY(SELECT ctid FROM ONLY "public"."t" WHERE f LIMIT 10000))
            """)
    }

    @Test func quoting() {
        #expect(SQLText.identifier("a\"b") == "\"a\"\"b\"")
        #expect(SQLText.literal("it's") == "'it''s'")
        #expect(SQLText.regclassText(mapName: "app.users") == "\"app\".\"users\"")
        #expect(SQLText.regclassText(mapName: "users") == "\"users\"")
        #expect(PGConnectionInfo.quote("a'b\\c") == "'a\\'b\\\\c'")
    }

    @Test func subscriptionConninfoKeepsRealPasswordsAndDropsTheRedactedOne() throws {
        var url = PostgresURL(host: "10.0.0.5", port: 5433, user: "rb", password: "***", database: "app",
                              parameters: ["sslmode": "disable"])
        #expect(PGConnectionInfo.conninfo(for: url, password: nil, applicationName: "sub")
            == "host='10.0.0.5' port='5433' user='rb' dbname='app' application_name='sub' sslmode='disable'")
        #expect(PGConnectionInfo.conninfo(for: url, password: "from-pgpass", applicationName: "sub")
            .hasSuffix(" password='from-pgpass'"))
        url.password = "s3cret"
        #expect(PGConnectionInfo.conninfo(for: url, password: nil, applicationName: "sub").hasSuffix(" password='s3cret'"))
        #expect(!PGConnectionInfo.parameters(for: PostgresURL(host: "h", password: "***")).contains { $0.key == "password" },
                "a redacted password is left to libpq (PGPASSWORD, PGPASSFILE)")
    }

    @Test func schemaCopyUsesPgDumpAndOneTransaction() {
        #expect(SchemaCopier.dumpArguments(conninfo: "c", relations: ["\"public\".\"t\""]) == [
            "--schema-only", "--no-owner", "--no-privileges", "--no-publications", "--no-subscriptions",
            "--no-comments", "--dbname=c", "-t", "\"public\".\"t\"",
        ])
        #expect(SchemaCopier.restoreArguments(conninfo: "c").contains("--single-transaction"))
    }

    @Test func theMapUpdateWrapsTheMapWithFences() throws {
        let map = try RebalanceTestMaps.map(["0-511", "512-1023"])
        let update = ShardMapUpdate(map: map, fences: ["s1": try #require(LSN("0/3000060"))])
        let wrapped = String(decoding: update.body, as: UTF8.self)
        #expect(wrapped.hasPrefix("{\"map\":{"))
        #expect(wrapped.hasSuffix(",\"fences\":{\"s1\":\"0/3000060\"}}"))
        #expect(ShardMapUpdate(map: map).body == map.jsonData(redactingSecrets: true), "no fences: the plain map")
    }
}
