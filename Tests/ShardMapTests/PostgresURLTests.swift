import ShardMap
import Testing

@Suite("PostgreSQL URLs")
struct PostgresURLTests {
    @Test("percent-decodes user, password, database and parameters")
    func fullURL() throws {
        let url = try PostgresURL(
            parsing: "postgresql://app%20user:p%40ss%3Aw%2Frd%25@db.example.com:5433/my%20db?sslmode=require&application_name=shard%2Bgate")
        #expect(url.host == "db.example.com")
        #expect(url.port == 5433)
        #expect(url.user == "app user")
        #expect(url.password == "p@ss:w/rd%")
        #expect(url.database == "my db")
        #expect(url.parameters == ["sslmode": "require", "application_name": "shard+gate"])
        #expect(!url.isUnixSocket)
    }

    @Test("postgres:// works too and '+' stays a plus")
    func shortScheme() throws {
        let url = try PostgresURL(parsing: "postgres://u:a+b@h/d")
        #expect(url.password == "a+b")
        #expect(url.host == "h" && url.port == 5432 && url.database == "d")
    }

    @Test("IPv6 hosts in brackets")
    func ipv6() throws {
        let url = try PostgresURL(parsing: "postgresql://bob@[::1]:6543/app")
        #expect(url.host == "::1")
        #expect(url.port == 6543)
        #expect(url.endpoint == "[::1]:6543")
        #expect(url.redacted == "postgresql://bob@[::1]:6543/app")
        let noPort = try PostgresURL(parsing: "postgresql://[2001:db8::7]/app")
        #expect(noPort.host == "2001:db8::7" && noPort.port == 5432)
    }

    @Test("libpq defaults: port 5432, user postgres, database = user, socket directory")
    func defaults() throws {
        let empty = try PostgresURL(parsing: "postgresql://")
        #expect(empty.host == PostgresURL.defaultSocketDirectory)
        #expect(empty.port == 5432 && empty.user == "postgres" && empty.database == "postgres")
        #expect(empty.password == nil && empty.parameters.isEmpty)
        let bob = try PostgresURL(parsing: "postgresql://bob@localhost")
        #expect(bob.user == "bob" && bob.database == "bob" && bob.host == "localhost")
        let noUser = try PostgresURL(parsing: "postgresql://localhost:5500/app")
        #expect(noUser.user == "postgres" && noUser.database == "app" && noUser.port == 5500)
        let emptyPassword = try PostgresURL(parsing: "postgresql://bob:@h/x")
        #expect(emptyPassword.password == nil)
    }

    @Test("Unix sockets via ?host= or an encoded path")
    func unixSockets() throws {
        let url = try PostgresURL(parsing: "postgresql:///app?host=/tmp/pg&port=5500")
        #expect(url.host == "/tmp/pg")
        #expect(url.port == 5500)
        #expect(url.isUnixSocket)
        #expect(url.unixSocketPath == "/tmp/pg/.s.PGSQL.5500")
        #expect(url.parameters.isEmpty)
        let encoded = try PostgresURL(parsing: "postgresql://%2Fvar%2Frun%2Fpostgresql/app")
        #expect(encoded.host == "/var/run/postgresql" && encoded.unixSocketPath == "/var/run/postgresql/.s.PGSQL.5432")
        #expect(try PostgresURL(parsing: encoded.connectionString) == encoded)
    }

    @Test("query parameters override the URI's parts")
    func overrides() throws {
        let url = try PostgresURL(parsing: "postgresql://a:b@h:1/d?user=x&password=y&dbname=z&port=2&host=k&ssl=true")
        #expect(url.user == "x" && url.password == "y" && url.database == "z" && url.port == 2 && url.host == "k")
        #expect(url.parameters == ["sslmode": "require"])
    }

    @Test("redaction never shows the password")
    func redaction() throws {
        let url = try PostgresURL(parsing: "postgresql://app:s3cr%21t@db:5432/app?sslmode=verify-full")
        #expect(url.redacted == "postgresql://app@db:5432/app?sslmode=verify-full")
        #expect(url.description == url.redacted)
        #expect("\(url)" == url.redacted)
        #expect(url.masked == "postgresql://app:***@db:5432/app?sslmode=verify-full")
        #expect(url.connectionString == "postgresql://app:s3cr%21t@db:5432/app?sslmode=verify-full")
        #expect(!url.redacted.contains("s3cr") && !url.masked.contains("s3cr"))
    }

    @Test(
        "connection strings round-trip",
        arguments: [
            "postgresql://app:p%40ss%3Aw%2Frd@db.example.com:5433/my%20db?sslmode=require&application_name=x",
            "postgresql://bob@[::1]:6543/app", "postgresql://", "postgresql:///app?host=/tmp&port=5500",
            "postgresql://ünïcødé:pä$$@h/δb?options=-c%20search_path%3Dx",
        ]
    )
    func roundTrip(text: String) throws {
        let url = try PostgresURL(parsing: text)
        #expect(try PostgresURL(parsing: url.connectionString) == url)
        #expect(try PostgresURL(parsing: url.redacted) == PostgresURL(
            host: url.host, port: url.port, user: url.user, password: nil, database: url.database,
            parameters: url.parameters))
    }

    @Test(
        "refuses malformed URLs",
        arguments: [
            ("mysql://h/db", "not a connection URL; it must start with postgresql:// or postgres://"),
            ("db.example.com:5432", "not a connection URL; it must start with postgresql:// or postgres://"),
            ("postgresql://h:abc/db", #"port "abc" is not a number in 1-65535"#),
            ("postgresql://h:0/db", #"port "0" is not a number in 1-65535"#),
            ("postgresql://h:65536/db", #"port "65536" is not a number in 1-65535"#),
            ("postgresql://[::1/db", #"missing "]" after the IPv6 address"#),
            ("postgresql://[]/db", "the IPv6 address between [] is empty"),
            ("postgresql://[::1]x/db", #"unexpected "x" after the IPv6 address; expected ":" or "/""#),
            ("postgresql://h1,h2/db", "several hosts are not supported; give one host per URL"),
            ("postgresql://h/db?sslmode=bogus",
             #"sslmode "bogus" is not one of disable, allow, prefer, require, verify-ca, verify-full"#),
            ("postgresql://h/db?sslmode", #"query parameter without "=""#),
            ("postgresql://h/db?a=b=c", #"query parameter with more than one "=""#),
            ("postgresql://u:%zz@h/db", "invalid percent-encoding in the password"),
            ("postgresql://u:%4@h/db", "invalid percent-encoding in the password"),
            ("postgresql://u@h/d%00b", "%00 is not allowed in the database name"),
            ("postgresql://u@h/%ff", "the database name is not valid UTF-8 after percent-decoding"),
        ]
    )
    func errors(text: String, problem: String) {
        #expect(throws: ShardMapError(field: "", problem: problem)) {
            try PostgresURL(parsing: text)
        }
    }

    @Test("error messages do not repeat the password")
    func errorsHideSecrets() {
        do {
            _ = try PostgresURL(parsing: "postgresql://u:topsecret@h:nope/db")
            Issue.record("expected an error")
        } catch {
            #expect(!"\(error)".contains("topsecret"))
        }
    }
}
