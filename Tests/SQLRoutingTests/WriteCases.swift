import SQLRouting

/// INSERT / UPDATE / DELETE / TRUNCATE / COPY.
enum WriteCases {
    static let inserts: [RoutingCase] = [
        write("INSERT INTO users (id, name) VALUES (1, 'a')", on(1), rows: [1: [0]]),
        write("INSERT INTO users (name, id) VALUES ('a', 2)", on(2), rows: [0: [0]]),
        write("INSERT INTO users (id, name) VALUES (2, 'a'), (3, 'b')", on(2), rows: [0: [0, 1]]),
        write("INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b'), (5, 'c')", bothShards,
              rows: [1: [0, 2], 0: [1]]),
        write("INSERT INTO users (id) VALUES ($1), ($2)", bothShards, rows: [0: [0], 1: [1]], .text("2"), .text("42")),
        write("INSERT INTO users (id, name) VALUES ($1, $2)", on(42), rows: [1: [0]], Binary.int8(42), .text("x")),
        write("INSERT INTO users (id) VALUES (-1)", on(-1), rows: [1: [0]]),
        write("INSERT INTO users (id) VALUES ('7')", on(7), rows: [0: [0]]),
        write("INSERT INTO users (id) VALUES (NULL)", .shard(0), rows: [0: [0]]),
        refused("INSERT INTO users (id) VALUES ('abc')", "22P02"),
        refused("INSERT INTO users (id) VALUES (DEFAULT)", "0A000"),
        refused("INSERT INTO users (id) VALUES (1 + 1)", "0A000"),
        refused("INSERT INTO users (name) VALUES ('x')", "0A000"),
        refused("INSERT INTO users VALUES (1, 'x')", "0A000"),
        refused("INSERT INTO users DEFAULT VALUES", "0A000"),
        refused("INSERT INTO users (id, name) SELECT id, name FROM users WHERE id = 1", "0A000"),
        refused("INSERT INTO users (id) VALUES ($1)", "08P01"),
        write("INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id) DO NOTHING", on(1), rows: [1: [0]]),
        write("INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET name = excluded.name",
              on(1), rows: [1: [0]]),
        refused("INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET id = excluded.id + 1",
                "0A000"),
        write("INSERT INTO users (id) VALUES (1) RETURNING *", on(1), rows: [1: [0]]),
        write("INSERT INTO public.users AS u (id) VALUES (2)", on(2), rows: [0: [0]]),
        write("INSERT INTO sessions (token, user_id) VALUES ('user-1', 1)", on(text: "user-1"), rows: [0: [0]]),
        write("INSERT INTO sessions (token) VALUES ($1)", on(text: "user-10"), rows: [1: [0]], .text("user-10")),
        write("INSERT INTO orders (user_id, total) VALUES (42, 10.5)", on(42), rows: [1: [0]]),
        write("INSERT INTO countries (code, name) VALUES ('FR', 'France')", .allShards),
        write("INSERT INTO countries (code, name) SELECT 'DE', 'Germany'", .allShards),
        refused("INSERT INTO countries (code) SELECT country FROM users", "0A000"),
        refused("INSERT INTO orders (user_id) VALUES ((SELECT id FROM users WHERE id = 5))", "0A000"),
    ]

    static let updates: [RoutingCase] = [
        write("UPDATE users SET name = 'x' WHERE id = 1", on(1)),
        write("UPDATE users SET name = $1 WHERE id = $2", on(2), .text("x"), .text("2")),
        write("UPDATE users SET name = 'x'", .allShards),
        write("UPDATE users SET name = 'x' WHERE id IN (1, 2)", bothShards),
        refused("UPDATE users SET id = 5 WHERE id = 1", "0A000"),
        write("UPDATE users u SET name = 'x' WHERE u.id = 2", on(2)),
        write("UPDATE orders o SET total = 0 FROM users u WHERE u.id = o.user_id AND u.id = 42", on(42)),
        refused("UPDATE orders SET total = 0 FROM users WHERE users.name = 'x'", "0A000"),
        write("UPDATE countries SET name = 'X' WHERE code = 'FR'", .allShards),
        write("UPDATE users SET (name, email) = ('a', 'b') WHERE id = 1", on(1)),
        refused("UPDATE users SET (id, name) = (2, 'b') WHERE id = 1", "0A000"),
        refused("UPDATE countries SET name = u.name FROM users u WHERE u.country = countries.code", "0A000"),
    ]

    static let deletes: [RoutingCase] = [
        write("DELETE FROM users WHERE id = 2", on(2)),
        write("DELETE FROM users", .allShards),
        write("DELETE FROM orders WHERE user_id = ANY($1)", bothShards, .text("{1,2}")),
        write("DELETE FROM orders o USING users u WHERE o.user_id = u.id AND u.id = 1", on(1)),
        write("DELETE FROM countries WHERE code = 'FR'", .allShards),
        write("DELETE FROM users WHERE id = 1 RETURNING id", on(1)),
        write("TRUNCATE users", .allShards),
        write("TRUNCATE countries", .allShards),
        // pgbench -i truncates sharded and reference tables in one statement: every shard.
        write("TRUNCATE users, countries, orders", .allShards),
        refused("UPDATE countries SET name = (SELECT max(name) FROM users)", "0A000"),
        read("COPY users TO STDOUT", .allShards),
        write("COPY users FROM STDIN", .allShards),
        write("COPY users (name, id) FROM STDIN WITH (FORMAT csv, HEADER)", .allShards),
        refused("COPY users FROM STDIN (FORMAT binary)", "0A000"),
        refused("COPY users FROM '/tmp/users.csv'", "0A000"),
        refused("COPY users (name) FROM STDIN", "0A000"),
        refused("COPY users FROM STDIN (DELIMITER '||')", "0A000"),
        write("COPY countries FROM STDIN", .allShards),
        read("COPY (SELECT * FROM users WHERE id = 2) TO STDOUT", on(2)),
    ]

    static let all = inserts + updates + deletes
}
