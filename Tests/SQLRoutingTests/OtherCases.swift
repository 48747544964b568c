import SQLRouting

/// DDL, transaction control, SET/RESET/SHOW, utility statements, catalog queries, overrides, errors.
enum OtherCases {
    static let ddl: [RoutingCase] = [
        write("CREATE TABLE users (id bigint PRIMARY KEY, name text)", .allShards),
        write("CREATE TABLE IF NOT EXISTS orders (id bigint, user_id bigint REFERENCES users (id))", .allShards),
        write("ALTER TABLE users ADD COLUMN email text", .allShards),
        write("DROP TABLE users", .allShards),
        write("DROP TABLE IF EXISTS users, orders", .allShards),
        write("CREATE INDEX users_name ON users (name)", .allShards),
        write("CREATE INDEX CONCURRENTLY ON orders (user_id)", .allShards),
        refused("CREATE TABLE widgets (id int)", "42P01"),
        refused("DROP TABLE widgets", "42P01"),
        write("CREATE SEQUENCE user_ids", .allShards),
        write("CREATE VIEW v AS SELECT * FROM users", .allShards),
        write("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", .allShards),
        write("ALTER TABLE users RENAME COLUMN name TO full_name", .allShards),
        write("GRANT SELECT ON users TO app", .allShards),
        write("COMMENT ON TABLE users IS 'people'", .allShards),
        write("CREATE EXTENSION IF NOT EXISTS pgcrypto", .allShards),
        write("CREATE SCHEMA app", .allShards),
        write("ALTER INDEX users_name RENAME TO users_name2", .allShards),
        refused("SELECT * INTO users_copy FROM users", "42P01"),
    ]

    static let transactions: [RoutingCase] = [
        primary("BEGIN", .anyShard),
        read("BEGIN READ ONLY", .anyShard),
        read("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", .anyShard),
        primary("BEGIN READ WRITE", .anyShard),
        primary("COMMIT", .anyShard),
        primary("ROLLBACK", .anyShard),
        primary("SAVEPOINT sp1", .anyShard),
        primary("RELEASE SAVEPOINT sp1", .anyShard),
        primary("ROLLBACK TO SAVEPOINT sp1", .anyShard),
        primary("PREPARE TRANSACTION 'tx1'", .anyShard),
        primary("COMMIT PREPARED 'tx1'", .anyShard),
        primary("END", .anyShard),
        write("BEGIN; UPDATE users SET name = 'x' WHERE id = 1; COMMIT;", on(1)),
        refused("SELECT * FROM users WHERE id = 1; SELECT * FROM users WHERE id = 2", "0A000"),
    ]

    static let session: [RoutingCase] = [
        read("SET search_path = app, public", .anyShard),
        read("SET LOCAL statement_timeout = '5s'", .anyShard),
        read("SET TIME ZONE 'UTC'", .anyShard),
        read("SET application_name TO 'web'", .anyShard),
        read("RESET search_path", .anyShard),
        read("RESET ALL", .anyShard),
        read("SHOW search_path", .anyShard),
        read("SHOW ALL", .anyShard),
        read("SET TRANSACTION READ ONLY", .anyShard),
        read("SET search_path = public; SELECT 1", .anyShard),
        read("", .anyShard),
    ]

    static let utility: [RoutingCase] = [
        primary("LISTEN events", .anyShard),
        primary("DISCARD ALL", .anyShard),
        primary("VACUUM users", .allShards),
        primary("ANALYZE users", .allShards),
        primary("LOCK TABLE users IN ACCESS EXCLUSIVE MODE", .allShards),
        read("EXPLAIN SELECT * FROM users WHERE id = 1", on(1)),
        write("EXPLAIN ANALYZE UPDATE users SET name = 'x' WHERE id = 2", on(2)),
        read("EXPLAIN UPDATE countries SET name = 'x'", .anyShard),
        refused("DO $$ BEGIN PERFORM 1; END $$", "0A000"),
        refused("CALL do_things()", "0A000"),
        // The session runs SQL-level PREPARE/EXECUTE/DEALLOCATE itself when they come alone; the planner
        // (multi-statement strings, the extended protocol) refuses them.
        refused("PREPARE q AS SELECT 1", "0A000"),
        refused("EXECUTE q", "0A000"),
        refused("DEALLOCATE ALL", "0A000"),
        read("DECLARE c CURSOR FOR SELECT * FROM users WHERE id = 1", on(1)),
        refused("DECLARE c CURSOR FOR SELECT * FROM users", "0A000"),
        refused("VACUUM widgets", "42P01"),
        primary("FETCH 10 FROM c", .anyShard),
    ]

    static let catalog: [RoutingCase] = [
        read("SELECT 1", .anyShard),
        read("SELECT now(), version()", .anyShard),
        read("SELECT * FROM pg_catalog.pg_class", .anyShard),
        read("SELECT relname FROM pg_class WHERE relkind = 'r'", .anyShard),
        read("SELECT * FROM information_schema.tables WHERE table_schema = 'public'", .anyShard),
        read("SELECT * FROM generate_series(1, 10) g", .anyShard),
        read("VALUES (1, 'a'), (2, 'b')", .anyShard),
        read("SELECT current_setting('search_path')", .anyShard),
        read(PsqlQueries.describeTable, .anyShard),
        read(PsqlQueries.listTables, .anyShard),
        read(PsqlQueries.describeColumns, .anyShard),
        read(PsqlQueries.listDatabases, .anyShard),
    ]

    static let overrides: [RoutingCase] = [
        RoutingCase(sql: "/* shard: s1 */ SELECT * FROM users", parameters: [],
                    expectation: .route(.shard(1), primary: false, write: false, rows: nil)),
        read("/* shard: s0 */ SELECT 1", .shard(0)),
        read("/* shard_key: 42 */ SELECT * FROM users WHERE name = 'x'", on(42)),
        read("/* shard_key: 2 */ SELECT * FROM orders", on(2)),
        read("/* shard_key: 'user-1' */ SELECT * FROM sessions", on(text: "user-1")),
        read("-- shard: s1\nSELECT 1", .shard(1)),
        write("/*shard:s0*/ DELETE FROM users", .shard(0)),
        refused("/* shard: s9 */ SELECT 1", "22023"),
        read("/* app: web */ SELECT * FROM users WHERE id = 1", on(1)),
        read("SELECT * FROM users /* shard: s0 */ WHERE id = 1", on(1)),
        primary("/* shard: s1 */ DO $$ BEGIN END $$", .shard(1)),
        write("/* shard: s0 */ UPDATE users SET id = 3 WHERE id = 2", .shard(0)),
        refused("/* shard_key: abc */ SELECT * FROM users", "22P02"),
        read("/* shard: s1 */ SELECT * FROM widgets", .shard(1)),
    ]

    static let errors: [RoutingCase] = [
        refused("SELEC 1", "42601"),
        refused("SELECT * FROM users WHERE", "42601"),
        refused("SELECT 'unterminated", "42601"),
        refused("INSERT INTO users (id) VALUES (1", "42601"),
        refused("SELECT * FROM widgets", "42P01"),
        refused("SELECT * FROM app.users WHERE id = 1", "42P01"),
        refused("INSERT INTO widgets (id) VALUES (1)", "42P01"),
        refused("SELECT * FROM users u JOIN widgets w ON w.user_id = u.id WHERE u.id = 1", "42P01"),
    ]

    static let all = ddl + transactions + session + utility + catalog + overrides + errors
}

/// Queries psql 15 sends for `\d users`, `\dt`, `\l` (as captured from `psql -E`).
enum PsqlQueries {
    static let describeTable = """
        SELECT c.oid,
          n.nspname,
          c.relname
        FROM pg_catalog.pg_class c
             LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname OPERATOR(pg_catalog.~) '^(users)$' COLLATE pg_catalog.default
          AND pg_catalog.pg_table_is_visible(c.oid)
        ORDER BY 2, 3;
        """

    static let listTables = """
        SELECT n.nspname as "Schema",
          c.relname as "Name",
          CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
        WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' \
        WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
          pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
        FROM pg_catalog.pg_class c
             LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
        WHERE c.relkind IN ('r','p','')
              AND n.nspname <> 'pg_catalog'
              AND n.nspname !~ '^pg_toast'
              AND n.nspname <> 'information_schema'
          AND pg_catalog.pg_table_is_visible(c.oid)
        ORDER BY 1,2;
        """

    static let describeColumns = """
        SELECT a.attname,
          pg_catalog.format_type(a.atttypid, a.atttypmod),
          (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)
           FROM pg_catalog.pg_attrdef d
           WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
          a.attnotnull,
          (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t
           WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,
          a.attidentity,
          a.attgenerated
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = '16384' AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum;
        """

    static let listDatabases = """
        SELECT
          d.datname as "Name",
          pg_catalog.pg_get_userbyid(d.datdba) as "Owner",
          pg_catalog.pg_encoding_to_char(d.encoding) as "Encoding",
          pg_catalog.array_to_string(d.datacl, E'\\n') AS "Access privileges"
        FROM pg_catalog.pg_database d
        ORDER BY 1;
        """
}
