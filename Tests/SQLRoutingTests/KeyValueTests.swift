import ShardMap
@testable import SQLRouting
import Testing

@Suite("Key values: arrays and bind parameters")
struct KeyValueTests {
    @Test("array_in text forms", arguments: [
        ("{1,2,3}", ["1", "2", "3"] as [String?]),
        ("{}", []),
        (" { 1 , 2 } ", ["1", "2"]),
        (#"{"a,b","c\"d",NULL,"NULL",null}"#, ["a,b", "c\"d", nil, "NULL", nil]),
        ("{{1,2},{3,4}}", ["1", "2", "3", "4"]),
        ("[0:1]={5,6}", ["5", "6"]),
        (#"{a\,b,  c d  }"#, ["a,b", "c d"]),
    ])
    func textArrays(_ text: String, _ expected: [String?]) {
        #expect(PostgresArray.parseText(text.utf8) == expected)
    }

    @Test("malformed array text is refused", arguments: ["", "1,2", "{1,2", "{1,,2}", "{1}x", "{,1}", "{\"a}"])
    func malformedArrays(_ text: String) {
        #expect(PostgresArray.parseText(text.utf8) == nil)
    }

    @Test("array_recv binary form")
    func binaryArrays() throws {
        let bytes = Binary.array(elementType: 20, [Binary.bytes(Int64(7)), nil, Binary.bytes(Int64(-1))])
        let (elementType, elements) = try #require(PostgresArray.decodeBinary(bytes))
        #expect(elementType == 20)
        #expect(elements.map { $0.map(Array.init) } == [Binary.bytes(Int64(7)), nil, Binary.bytes(Int64(-1))])
        // Empty array: zero dimensions.
        let empty = Binary.bytes(Int32(0)) + Binary.bytes(Int32(0)) + Binary.bytes(UInt32(20))
        #expect(PostgresArray.decodeBinary(empty)?.elements.isEmpty == true)
        #expect(PostgresArray.decodeBinary(Array(bytes.dropLast())) == nil)
        #expect(PostgresArray.decodeBinary(bytes + [0]) == nil)
    }

    func plan(_ sql: String, _ parameters: BindParameter...) throws -> RoutePlan {
        let map = RoutingFixtures.designMap
        return try RoutePlanner.plan(SQLAnalyzer.analyze(sql, tables: map.tables), map: map,
                                     parameters: BindParameters(parameters))
    }

    @Test("binary parameters by type OID, and by length when the OID is unspecified")
    func binaryParameters() throws {
        let sql = "SELECT * FROM users WHERE id = $1"
        #expect(try plan(sql, Binary.int2(42)).target == on(42))
        #expect(try plan(sql, Binary.int4(42)).target == on(42))
        #expect(try plan(sql, Binary.int8(42)).target == on(42))
        #expect(try plan(sql, .binary(Binary.bytes(Int32(2)))).target == on(2))
        #expect(try plan(sql, .binary(Array("42".utf8), typeOID: 25)).target == on(42))
        // A 3-byte integer is not one: the key is unknown, so every shard.
        #expect(try plan(sql, .binary([0, 0, 1])).target == .allShards)
        let text = "SELECT * FROM sessions WHERE token = $1"
        #expect(try plan(text, .binary(Array("user-10".utf8), typeOID: 1043)).target == on(text: "user-10"))
        #expect(try plan(text, .binary(Array("user-1".utf8))).target == on(text: "user-1"))
    }

    @Test("array parameters: text and binary, with NULL elements")
    func arrayParameters() throws {
        let sql = "SELECT * FROM users WHERE id = ANY($1)"
        #expect(try plan(sql, .text("{2,NULL,3}")).target == on(2, 3))
        #expect(try plan(sql, .binary(Binary.array(elementType: 21, [Binary.bytes(Int16(5)), nil]))).target == on(5))
        let texts = Binary.array(elementType: 25, [Array("user-1".utf8), Array("user-10".utf8)])
        #expect(try plan("SELECT * FROM sessions WHERE token = ANY($1)", .binary(texts, typeOID: 1009)).target
            == bothShards)
        #expect(try plan(sql, .text("{}")).target == .anyShard)
        #expect(try plan(sql, .null).target == .anyShard)
        #expect(try plan(sql, .text("{1,x}")).target == .allShards)
    }

    @Test("numbers compared with text keys keep their digits only in canonical form")
    func numbersAsText() throws {
        #expect(try plan("SELECT * FROM sessions WHERE token = 7::text").target == on(text: "7"))
        #expect(try plan("SELECT * FROM sessions WHERE token = 007::text").target == .allShards)
        #expect(try plan("SELECT * FROM sessions WHERE token = 1e3::text").target == .allShards)
        #expect(try plan("INSERT INTO sessions (token) VALUES (2)").target == on(text: "2"))
    }
}
