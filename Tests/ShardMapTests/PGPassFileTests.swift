import Foundation
import ShardMap
import Testing

@Suite("pgpass lookup")
struct PGPassFileTests {
    static let contents = #"""
        # comment line: *:*:*:*:never
        db.example.com:5432:app:alice:first
        *:*:app:bob:wild\:card\\pw
        localhost:5432:*:carol:local
        db.example.com:5432:app:alice:second
        host\:with\:colons:6000:*:*:escaped
        db.example.com:*:*:dave:pw:with:colons
        \*:5432:*:erin:literal-star
        """#

    func lookup(_ host: String, _ port: Int, _ database: String, _ user: String) -> String? {
        PGPassFile.password(in: Self.contents, host: host, port: port, database: database, user: user)
    }

    @Test("first matching line wins")
    func firstMatch() {
        #expect(lookup("db.example.com", 5432, "app", "alice") == "first")
    }

    @Test("wildcards and escapes")
    func wildcardsAndEscapes() {
        #expect(lookup("anything", 1234, "app", "bob") == #"wild:card\pw"#)
        #expect(lookup("anything", 1234, "other", "bob") == nil)
        #expect(lookup("host:with:colons", 6000, "x", "y") == "escaped")
        #expect(lookup("db.example.com", 1, "any", "dave") == "pw")
        #expect(lookup("*", 5432, "x", "erin") == "literal-star")
        #expect(lookup("elsewhere", 5432, "x", "erin") == nil)
    }

    @Test("an empty host or the default socket directory matches localhost")
    func localhost() {
        #expect(lookup("", 5432, "x", "carol") == "local")
        #expect(lookup(PostgresURL.defaultSocketDirectory, 5432, "x", "carol") == "local")
        #expect(lookup("/some/other/dir", 5432, "x", "carol") == nil)
        #expect(lookup("localhost", 5433, "x", "carol") == nil)
    }

    @Test("no lookup for an empty database or user")
    func emptyNames() {
        #expect(lookup("db.example.com", 5432, "", "alice") == nil)
        #expect(lookup("db.example.com", 5432, "app", "") == nil)
    }

    @Test("CRLF line endings and comments")
    func lineEndings() {
        let text = "# h:5432:d:u:commented\r\nh:5432:d:u:crlf\r\n"
        #expect(PGPassFile.password(in: text, host: "h", port: 5432, database: "d", user: "u") == "crlf")
    }

    @Test("reads PGPASSFILE, else ~/.pgpass, and ignores files others can read")
    func files() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("pgpass-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        let home = directory.appendingPathComponent(".pgpass")
        try write("h:5432:d:u:from-home\n", to: home, permissions: 0o600)
        let explicit = directory.appendingPathComponent("explicit")
        try write("h:5432:d:u:from-pgpassfile\n", to: explicit, permissions: 0o600)

        func password(_ environment: [String: String]) -> String? {
            PGPassFile.password(host: "h", port: 5432, database: "d", user: "u", environment: environment)
        }
        #expect(password(["HOME": directory.path]) == "from-home")
        #expect(password(["HOME": directory.path, "PGPASSFILE": explicit.path]) == "from-pgpassfile")
        #expect(password(["HOME": directory.path, "PGPASSFILE": ""]) == "from-home")
        #expect(password(["PGPASSFILE": directory.appendingPathComponent("missing").path]) == nil)
        #expect(PGPassFile.path(environment: ["HOME": "/home/x"]) == "/home/x/.pgpass")

        // libpq ignores a password file with group or world permissions.
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: explicit.path)
        #expect(password(["PGPASSFILE": explicit.path]) == nil)
        // ... and one that is not a regular file.
        #expect(password(["PGPASSFILE": directory.path]) == nil)
    }

    private func write(_ text: String, to url: URL, permissions: Int) throws {
        try Data(text.utf8).write(to: url)
        try FileManager.default.setAttributes([.posixPermissions: permissions], ofItemAtPath: url.path)
    }
}
