import SQLRouting
import Testing

/// One row of the merge planner's table: SQL → shard SQL and merge plan, or the error it is refused with.
struct MergeCase: Sendable, CustomTestStringConvertible {
    enum Expectation: Sendable {
        /// The plan (its `unchangedPrefixCharacters` is not compared; `shardSQL` nil: the SQL unchanged).
        case plan(MergePlan)
        case refused(sqlState: String)
    }

    var sql: String
    var expectation: Expectation

    var testDescription: String { sql }
}

// MARK: - Builders

func s(_ i: Int) -> MergePlan.Column { .fromStart(i) }
func e(_ k: Int) -> MergePlan.Column { .fromEnd(k) }

func asc(_ column: MergePlan.Column, nullsFirst: Bool? = nil, collation: String? = nil) -> MergePlan.SortKey {
    MergePlan.SortKey(column: column, descending: false, nullsFirst: nullsFirst, collation: collation)
}

func desc(_ column: MergePlan.Column, nullsFirst: Bool? = nil, collation: String? = nil) -> MergePlan.SortKey {
    MergePlan.SortKey(column: column, descending: true, nullsFirst: nullsFirst, collation: collation)
}

func agg(
    _ function: MergePlan.AggregateFunction, _ column: MergePlan.Column, distinct: Bool = false,
    sum: MergePlan.Column? = nil, count: MergePlan.Column? = nil, name: String? = nil
) -> MergePlan.Aggregate {
    MergePlan.Aggregate(column: column, function: function, isDistinct: distinct, sumColumn: sum, countColumn: count,
                        outputName: name)
}

func col(_ column: MergePlan.Column) -> MergePlan.Operand { .column(column) }
func num(_ text: String) -> MergePlan.Operand { .constant(.number(text)) }
func str(_ text: String) -> MergePlan.Operand { .constant(.string(text)) }

/// A planned statement.
func merged(
    _ sql: String, shard: String? = nil, hidden: Int = 0, sort: [MergePlan.SortKey] = [], offset: MergePlan.Bound? = nil,
    limit: MergePlan.Bound? = nil, ties: Bool = false, distinct: MergePlan.Distinct? = nil,
    grouping: MergePlan.Grouping? = nil
) -> MergeCase {
    MergeCase(sql: sql, expectation: .plan(MergePlan(
        shardSQL: shard ?? sql, hiddenColumnCount: hidden, sortKeys: sort, offset: offset, limit: limit, withTies: ties,
        distinct: distinct, grouping: grouping)))
}

/// An aggregate query's grouping.
func grouped(
    _ keys: [MergePlan.Column], _ aggregates: [MergePlan.Aggregate], having: MergePlan.Predicate? = nil,
    groupBy: Bool? = nil
) -> MergePlan.Grouping {
    MergePlan.Grouping(keys: keys, aggregates: aggregates, having: having, hasGroupBy: groupBy ?? !keys.isEmpty)
}

func refusedMerge(_ sql: String, _ sqlState: String = "0A000") -> MergeCase {
    MergeCase(sql: sql, expectation: .refused(sqlState: sqlState))
}

let h1 = "\"?sg1\"", h2 = "\"?sg2\"", h3 = "\"?sg3\""

// MARK: - The table

enum MergeCases {
    static let concatenation: [MergeCase] = [
        merged("SELECT * FROM users"),
        merged("SELECT id, name FROM users WHERE age > 30"),
        merged("SELECT * FROM users WHERE id IN (1, 2, 3)"),
        merged("SELECT u.id, o.total FROM users u JOIN orders o ON o.user_id = u.id"),
        merged("WITH x AS (SELECT id FROM users WHERE age > 3) SELECT * FROM x"),
        merged("SELECT * FROM users FOR UPDATE"),
        merged("TABLE users"),
        merged("/* comment */ SELECT 1 FROM users"),
        merged("SELECT id FROM users WHERE name IS DISTINCT FROM 'x'"),
    ]

    static let orderBy: [MergeCase] = [
        merged("SELECT id, name FROM users ORDER BY name", sort: [asc(s(1))]),
        merged("SELECT id, name FROM users ORDER BY 1 DESC", sort: [desc(s(0))]),
        merged("SELECT id, name AS n FROM users ORDER BY n DESC NULLS LAST", sort: [desc(s(1), nullsFirst: false)]),
        merged("SELECT id FROM users ORDER BY name", shard: "SELECT id, name AS \(h1) FROM users ORDER BY name", hidden: 1,
               sort: [asc(s(1))]),
        merged("SELECT id FROM users ORDER BY age + 1 DESC, name NULLS FIRST",
               shard: "SELECT id, age + 1 AS \(h1), name AS \(h2) FROM users ORDER BY age + 1 DESC, name NULLS FIRST",
               hidden: 2, sort: [desc(s(1)), asc(s(2), nullsFirst: true)]),
        merged("SELECT id, age + 1 FROM users ORDER BY age+1", sort: [asc(s(1))]),
        merged("SELECT id, (age + 1) FROM users ORDER BY age + 1", sort: [asc(s(1))]),
        merged("SELECT id, lower(name) FROM users ORDER BY lower", sort: [asc(s(1))]),
        merged("SELECT name FROM users ORDER BY name COLLATE \"C\"", sort: [asc(s(0), collation: "C")]),
        merged("SELECT name FROM users ORDER BY name COLLATE \"default\" DESC", sort: [desc(s(0))]),
        merged("SELECT name FROM users ORDER BY name COLLATE ucs_basic", sort: [asc(s(0), collation: "C")]),
        merged("SELECT id, name FROM users ORDER BY name COLLATE \"en_US\" DESC",
               sort: [desc(s(1), collation: "en_US")]),
        merged("SELECT * FROM users ORDER BY name", shard: "SELECT *, name AS \(h1) FROM users ORDER BY name", hidden: 1,
               sort: [asc(e(1))]),
        merged("SELECT *, age FROM users ORDER BY 2", sort: [asc(s(1))]),
        merged("SELECT id, * FROM users ORDER BY 1", sort: [asc(s(0))]),
        merged("SELECT *, age FROM users ORDER BY age", sort: [asc(e(1))]),
        merged("SELECT u.*, o.total FROM users u JOIN orders o ON o.user_id = u.id ORDER BY o.total DESC",
               sort: [desc(e(1))]),
        merged("SELECT id, name FROM users ORDER BY name DESC, id", sort: [desc(s(1)), asc(s(0))]),
        merged("SELECT 'a;b' AS x, id FROM users ORDER BY \"x\"", sort: [asc(s(0))]),
        merged("SELECT id FROM users u ORDER BY u.name", shard: "SELECT id, u.name AS \(h1) FROM users u ORDER BY u.name",
               hidden: 1, sort: [asc(s(1))]),
        refusedMerge("SELECT id FROM users ORDER BY 2", "42P10"),
        refusedMerge("SELECT id AS a, name AS a FROM users ORDER BY a", "42702"),
        merged("SELECT id AS a, id AS a FROM users ORDER BY a", sort: [asc(s(0))]),
        refusedMerge("SELECT id FROM users ORDER BY random()"),
        refusedMerge("SELECT id FROM users ORDER BY id + random()"),
        refusedMerge("SELECT id FROM users ORDER BY id USING <"),
    ]

    static let limits: [MergeCase] = [
        merged("SELECT id FROM users LIMIT 10", limit: .constant(10)),
        merged("SELECT id FROM users ORDER BY id LIMIT 10 OFFSET 20", shard: "SELECT id FROM users ORDER BY id LIMIT 30",
               sort: [asc(s(0))], offset: .constant(20), limit: .constant(10)),
        merged("SELECT id FROM users ORDER BY id OFFSET 5", shard: "SELECT id FROM users ORDER BY id", sort: [asc(s(0))],
               offset: .constant(5)),
        merged("SELECT id FROM users ORDER BY id OFFSET 5 LIMIT 3", shard: "SELECT id FROM users ORDER BY id LIMIT 8",
               sort: [asc(s(0))], offset: .constant(5), limit: .constant(3)),
        merged("SELECT id FROM users LIMIT $1 OFFSET $2", shard: "SELECT id FROM users LIMIT ($1)::int8 + ($2)::int8",
               offset: .parameter(2), limit: .parameter(1)),
        merged("SELECT id FROM users ORDER BY id LIMIT 10 OFFSET $1",
               shard: "SELECT id FROM users ORDER BY id LIMIT 10 + ($1)::int8", sort: [asc(s(0))], offset: .parameter(1),
               limit: .constant(10)),
        merged("SELECT id FROM users ORDER BY id OFFSET $1", shard: "SELECT id FROM users ORDER BY id OFFSET 0 * ($1)::int8",
               sort: [asc(s(0))], offset: .parameter(1)),
        merged("SELECT id FROM users ORDER BY id LIMIT ALL OFFSET 2", shard: "SELECT id FROM users ORDER BY id",
               sort: [asc(s(0))], offset: .constant(2)),
        merged("SELECT id FROM users ORDER BY id LIMIT NULL", sort: [asc(s(0))]),
        merged("SELECT id FROM users ORDER BY id FETCH FIRST 5 ROWS ONLY", sort: [asc(s(0))], limit: .constant(5)),
        merged("SELECT id FROM users ORDER BY id OFFSET 2 ROWS FETCH FIRST 5 ROWS ONLY",
               shard: "SELECT id FROM users ORDER BY id LIMIT 7", sort: [asc(s(0))], offset: .constant(2),
               limit: .constant(5)),
        merged("SELECT id FROM users ORDER BY id FETCH FIRST 3 ROWS WITH TIES", sort: [asc(s(0))], limit: .constant(3),
               ties: true),
        merged("SELECT id FROM users ORDER BY id OFFSET 1 FETCH FIRST 3 ROWS WITH TIES",
               shard: "SELECT id FROM users ORDER BY id FETCH FIRST 4 ROWS WITH TIES", sort: [asc(s(0))],
               offset: .constant(1), limit: .constant(3), ties: true),
        merged("SELECT id FROM users ORDER BY id OFFSET $2 FETCH FIRST $1 ROWS WITH TIES",
               shard: "SELECT id FROM users ORDER BY id FETCH FIRST (($1)::int8 + ($2)::int8) ROWS WITH TIES",
               sort: [asc(s(0))], offset: .parameter(2), limit: .parameter(1), ties: true),
        merged("SELECT id FROM users ORDER BY id FETCH FIRST ROW ONLY", sort: [asc(s(0))], limit: .constant(1)),
        merged("SELECT id FROM users ORDER BY id LIMIT 9223372036854775807 OFFSET 1",
               shard: "SELECT id FROM users ORDER BY id", sort: [asc(s(0))], offset: .constant(1),
               limit: .constant(9_223_372_036_854_775_807)),
        merged("SELECT id FROM users ORDER BY id LIMIT 5 OFFSET 5 FOR UPDATE",
               shard: "SELECT id FROM users ORDER BY id LIMIT 10 FOR UPDATE", sort: [asc(s(0))], offset: .constant(5),
               limit: .constant(5)),
        merged("SELECT id FROM users ORDER BY id LIMIT $1::int OFFSET 3",
               shard: "SELECT id FROM users ORDER BY id LIMIT ($1)::int8 + 3", sort: [asc(s(0))], offset: .constant(3),
               limit: .parameter(1)),
        merged("SELECT id FROM users ORDER BY id DESC NULLS FIRST LIMIT 3 OFFSET 0",
               shard: "SELECT id FROM users ORDER BY id DESC NULLS FIRST LIMIT 3", sort: [desc(s(0), nullsFirst: true)],
               offset: .constant(0), limit: .constant(3)),
        merged("SELECT id FROM users WHERE name IS DISTINCT FROM 'x' ORDER BY id LIMIT 1 OFFSET 1",
               shard: "SELECT id FROM users WHERE name IS DISTINCT FROM 'x' ORDER BY id LIMIT 2", sort: [asc(s(0))],
               offset: .constant(1), limit: .constant(1)),
        merged("SELECT 'a;b' AS x, id FROM users ORDER BY \"x\" LIMIT 2 OFFSET 2;",
               shard: "SELECT 'a;b' AS x, id FROM users ORDER BY \"x\" LIMIT 4;", sort: [asc(s(0))], offset: .constant(2),
               limit: .constant(2)),
        merged("SELECT id FROM users -- comment\nORDER BY name /* c */ LIMIT 1 OFFSET 1",
               shard: "SELECT id, name AS \(h1) FROM users -- comment\nORDER BY name LIMIT 2", hidden: 1,
               sort: [asc(s(1))], offset: .constant(1), limit: .constant(1)),
        merged("SELECT id FROM users ORDER BY id LIMIT '5' OFFSET 2::bigint", shard: "SELECT id FROM users ORDER BY id LIMIT 7",
               sort: [asc(s(0))], offset: .constant(2), limit: .constant(5)),
        refusedMerge("SELECT id FROM users LIMIT 'x'", "22P02"),
        refusedMerge("SELECT id FROM users LIMIT -1", "2201W"),
        refusedMerge("SELECT id FROM users OFFSET -1", "2201X"),
        refusedMerge("SELECT id FROM users LIMIT 1 + 1"),
        refusedMerge("SELECT id FROM users ORDER BY id LIMIT (SELECT 1)"),
        refusedMerge("SELECT id FROM users LIMIT 1.5"),
    ]

    static let distinct: [MergeCase] = [
        merged("SELECT DISTINCT country FROM users", distinct: .rows),
        merged("SELECT DISTINCT country FROM users ORDER BY country LIMIT 5 OFFSET 1",
               shard: "SELECT DISTINCT country FROM users ORDER BY country LIMIT 6", sort: [asc(s(0))],
               offset: .constant(1), limit: .constant(5), distinct: .rows),
        merged("SELECT DISTINCT ON (country) country, name FROM users ORDER BY country, age DESC",
               shard: "SELECT DISTINCT ON (country) country, name, age AS \(h1) FROM users ORDER BY country, age DESC",
               hidden: 1, sort: [asc(s(0)), desc(s(2))], distinct: .on([s(0)])),
        merged("SELECT DISTINCT ON (1) country, name FROM users ORDER BY 1", sort: [asc(s(0))], distinct: .on([s(0)])),
        merged("SELECT DISTINCT ON (lower(name)) name FROM users ORDER BY lower(name), id",
               shard: "SELECT DISTINCT ON (lower(name)) name, lower(name) AS \(h1), id AS \(h2) FROM users "
                   + "ORDER BY lower(name), id",
               hidden: 2, sort: [asc(s(1)), asc(s(2))], distinct: .on([s(1)])),
        merged("SELECT DISTINCT ON (country, active) * FROM users", distinct: .on([]))
            .replacingDistinct(shard: "SELECT DISTINCT ON (country, active) *, country AS \(h1), active AS \(h2) FROM users",
                               hidden: 2, on: [e(2), e(1)]),
        refusedMerge("SELECT DISTINCT country FROM users ORDER BY age", "42P10"),
    ]

    static let aggregates: [MergeCase] = [
        merged("SELECT count(*) FROM users", grouping: grouped([], [agg(.count, s(0))])),
        merged("SELECT count(*), sum(age), min(name), max(created_at) FROM users WHERE active",
               grouping: grouped([], [agg(.count, s(0)), agg(.sum, s(1)), agg(.min, s(2)), agg(.max, s(3))])),
        merged("SELECT avg(age) FROM users",
               shard: "SELECT avg(age), sum(age) AS \(h1), count(age) AS \(h2) FROM users", hidden: 2,
               grouping: grouped([], [agg(.avg, s(0), sum: s(1), count: s(2))])),
        merged("SELECT avg(age) FILTER (WHERE active) AS a FROM users",
               shard: "SELECT avg(age) FILTER (WHERE active) AS a, sum(age) FILTER (WHERE active) AS \(h1), "
                   + "count(age) FILTER (WHERE active) AS \(h2) FROM users",
               hidden: 2, grouping: grouped([], [agg(.avg, s(0), sum: s(1), count: s(2))])),
        merged("SELECT pg_catalog.avg(age) FROM users",
               shard: "SELECT pg_catalog.avg(age), pg_catalog.sum(age) AS \(h1), pg_catalog.count(age) AS \(h2) FROM users",
               hidden: 2, grouping: grouped([], [agg(.avg, s(0), sum: s(1), count: s(2))])),
        merged("SELECT count(DISTINCT country) FROM users", shard: "SELECT country FROM users GROUP BY country",
               grouping: grouped([], [agg(.count, s(0), distinct: true, name: "count")], groupBy: false)),
        merged("SELECT count(DISTINCT country) AS n, count(*) FROM users WHERE age > 1",
               shard: "SELECT country AS n, count(*) FROM users WHERE age > 1 GROUP BY country",
               grouping: grouped([], [agg(.count, s(0), distinct: true, name: "n"), agg(.count, s(1))], groupBy: false)),
        merged("SELECT sum(DISTINCT age), avg(DISTINCT age) FROM users", shard: "SELECT age, age FROM users GROUP BY age",
               grouping: grouped([], [agg(.sum, s(0), distinct: true, name: "sum"),
                                      agg(.avg, s(1), distinct: true, name: "avg")], groupBy: false)),
        merged("SELECT min(DISTINCT age) FROM users", grouping: grouped([], [agg(.min, s(0))])),
        merged("SELECT count(*) FILTER (WHERE age > 3) FROM users", grouping: grouped([], [agg(.count, s(0))])),
        merged("SELECT avg(DISTINCT age) FILTER (WHERE active) FROM users",
               shard: "SELECT CASE WHEN (active) THEN (age) END FROM users GROUP BY CASE WHEN (active) THEN (age) END",
               grouping: grouped([], [agg(.avg, s(0), distinct: true, name: "avg")], groupBy: false)),
        merged("SELECT bool_and(active), bool_or(active), every(active) FROM users",
               grouping: grouped([], [agg(.boolAnd, s(0)), agg(.boolOr, s(1)), agg(.boolAnd, s(2))])),
        merged("SELECT max(name COLLATE \"C\") FROM users", grouping: grouped([], [agg(.max, s(0))])),
        merged("SELECT sum(amount) FROM orders o JOIN users u ON u.id = o.user_id WHERE u.country = 'de'",
               grouping: grouped([], [agg(.sum, s(0))])),
        merged("SELECT (SELECT max(id) FROM countries), count(*) FROM users", grouping: grouped([], [agg(.count, s(1))])),
        merged("SELECT count(*) FROM users HAVING count(*) > 1",
               shard: "SELECT count(*) FROM users HAVING (count(*) > 1) OR true",
               grouping: grouped([], [agg(.count, s(0))], having: .compare(.greater, col(s(0)), num("1")))),
        merged("SELECT count(DISTINCT name) FROM users ORDER BY 1", shard: "SELECT name FROM users GROUP BY name",
               sort: [asc(s(0))], grouping: grouped([], [agg(.count, s(0), distinct: true, name: "count")], groupBy: false)),
    ]

    static let groupBy: [MergeCase] = [
        merged("SELECT country, count(*) FROM users GROUP BY country", grouping: grouped([s(0)], [agg(.count, s(1))])),
        merged("SELECT country, count(*) FROM users GROUP BY 1", grouping: grouped([s(0)], [agg(.count, s(1))])),
        merged("SELECT country AS c, count(*) FROM users GROUP BY c", grouping: grouped([s(0)], [agg(.count, s(1))])),
        merged("SELECT count(*) FROM users GROUP BY country",
               shard: "SELECT count(*), country AS \(h1) FROM users GROUP BY country", hidden: 1,
               grouping: grouped([s(1)], [agg(.count, s(0))])),
        merged("SELECT country, count(*) FROM users GROUP BY country HAVING count(*) > 5 ORDER BY 2 DESC LIMIT 3",
               shard: "SELECT country, count(*) FROM users GROUP BY country HAVING (count(*) > 5) OR true",
               sort: [desc(s(1))], limit: .constant(3),
               grouping: grouped([s(0)], [agg(.count, s(1))], having: .compare(.greater, col(s(1)), num("5")))),
        merged("SELECT country FROM users GROUP BY country HAVING count(*) >= $1",
               shard: "SELECT country, count(*) AS \(h1), CASE WHEN false THEN (count(*)) ELSE $1 END AS \(h2) FROM users "
                   + "GROUP BY country HAVING (count(*) >= $1) OR true",
               hidden: 2, grouping: grouped([s(0)], [agg(.count, s(1))],
                                            having: .compare(.greaterOrEqual, col(s(1)), col(s(2))))),
        merged("SELECT count(DISTINCT name) FROM users HAVING count(DISTINCT name) > $1",
               shard: "SELECT name FROM users GROUP BY name HAVING (count(DISTINCT name) > $1) OR true",
               grouping: grouped([], [agg(.count, s(0), distinct: true, name: "count")],
                                 having: .compare(.greater, col(s(0)), .constant(.parameter(1))), groupBy: false)),
        merged("SELECT country, avg(age) FROM users GROUP BY country ORDER BY avg(age) DESC NULLS LAST LIMIT 2",
               shard: "SELECT country, avg(age), sum(age) AS \(h1), count(age) AS \(h2) FROM users GROUP BY country",
               hidden: 2, sort: [desc(s(1), nullsFirst: false)], limit: .constant(2),
               grouping: grouped([s(0)], [agg(.avg, s(1), sum: s(2), count: s(3))])),
        merged("SELECT country, count(*) FROM users GROUP BY country ORDER BY max(age)",
               shard: "SELECT country, count(*), max(age) AS \(h1) FROM users GROUP BY country", hidden: 1,
               sort: [asc(s(2))], grouping: grouped([s(0)], [agg(.count, s(1)), agg(.max, s(2))])),
        merged("SELECT country, count(*) FROM users GROUP BY country ORDER BY country LIMIT 10 OFFSET 10",
               shard: "SELECT country, count(*) FROM users GROUP BY country", sort: [asc(s(0))], offset: .constant(10),
               limit: .constant(10), grouping: grouped([s(0)], [agg(.count, s(1))])),
        merged("SELECT country, count(*) FROM users GROUP BY country ORDER BY country LIMIT $1 OFFSET $2",
               shard: "SELECT country, count(*) FROM users GROUP BY country OFFSET 0 * ($2)::int8 "
                   + "LIMIT NULLIF(0 * ($1)::int8, 0)",
               sort: [asc(s(0))], offset: .parameter(2), limit: .parameter(1),
               grouping: grouped([s(0)], [agg(.count, s(1))])),
        merged("SELECT country, count(DISTINCT name) FROM users GROUP BY country",
               shard: "SELECT country, name FROM users GROUP BY country, name",
               grouping: grouped([s(0)], [agg(.count, s(1), distinct: true, name: "count")])),
        merged("SELECT country, count(DISTINCT name) FILTER (WHERE age > 1) FROM users GROUP BY country",
               shard: "SELECT country, CASE WHEN (age > 1) THEN (name) END FROM users GROUP BY country, "
                   + "CASE WHEN (age > 1) THEN (name) END",
               grouping: grouped([s(0)], [agg(.count, s(1), distinct: true, name: "count")])),
        merged("SELECT country, count(*) FROM users GROUP BY country HAVING country <> 'de' AND "
                   + "(count(*) BETWEEN 2 AND 10 OR max(age) IS NULL)",
               shard: "SELECT country, count(*), CASE WHEN false THEN (country) ELSE 'de' END AS \(h1), max(age) AS \(h2) "
                   + "FROM users GROUP BY country HAVING (country <> 'de' AND "
                   + "(count(*) BETWEEN 2 AND 10 OR max(age) IS NULL)) OR true",
               hidden: 2, grouping: grouped([s(0)], [agg(.count, s(1)), agg(.max, s(3))], having: .and([
                   .compare(.notEqual, col(s(0)), col(s(2))),
                   .or([.and([.compare(.greaterOrEqual, col(s(1)), num("2")), .compare(.lessOrEqual, col(s(1)), num("10"))]),
                        .isNull(col(s(3)), negated: false)]),
               ]))),
        merged("SELECT country, count(*) FROM users GROUP BY country HAVING country IN ('de', 'fr')",
               shard: "SELECT country, count(*), CASE WHEN false THEN (country) ELSE 'de' END AS \(h1), "
                   + "CASE WHEN false THEN (country) ELSE 'fr' END AS \(h2) FROM users GROUP BY country "
                   + "HAVING (country IN ('de', 'fr')) OR true",
               hidden: 2, grouping: grouped([s(0)], [agg(.count, s(1))], having: .or([
                   .compare(.equal, col(s(0)), col(s(2))), .compare(.equal, col(s(0)), col(s(3)))]))),
        merged("SELECT country, count(*) FROM users GROUP BY country HAVING min(created_at) >= '2024-01-01'",
               shard: "SELECT country, count(*), min(created_at) AS \(h1), CASE WHEN false THEN (min(created_at)) "
                   + "ELSE '2024-01-01' END AS \(h2) FROM users GROUP BY country HAVING (min(created_at) >= '2024-01-01') "
                   + "OR true",
               hidden: 2, grouping: grouped([s(0)], [agg(.count, s(1)), agg(.min, s(2))],
                                            having: .compare(.greaterOrEqual, col(s(2)), col(s(3))))),
        merged("SELECT country, count(*) FROM users GROUP BY country HAVING NOT bool_or(active) AND sum(age) > -3.5",
               shard: "SELECT country, count(*), bool_or(active) AS \(h1), sum(age) AS \(h2) FROM users GROUP BY country "
                   + "HAVING (NOT bool_or(active) AND sum(age) > -3.5) OR true",
               hidden: 2, grouping: grouped([s(0)], [agg(.count, s(1)), agg(.boolOr, s(2)), agg(.sum, s(3))], having: .and([
                   .not(.value(col(s(2)))), .compare(.greater, col(s(3)), num("-3.5"))]))),
        merged("SELECT country, count(*) FROM users GROUP BY country HAVING max(created_at) > '2024-01-01'::date",
               shard: "SELECT country, count(*), max(created_at) AS \(h1) FROM users GROUP BY country HAVING "
                   + "(max(created_at) > '2024-01-01'::date) OR true",
               hidden: 1, grouping: grouped([s(0)], [agg(.count, s(1)), agg(.max, s(2))],
                                            having: .compare(.greater, col(s(2)), str("2024-01-01")))),
        merged("SELECT country, u.id, count(*) FROM users u GROUP BY u.id",
               grouping: grouped([s(1)], [agg(.count, s(2))])),
        merged("SELECT age + 1, count(*) FROM users GROUP BY age",
               shard: "SELECT age + 1, count(*), age AS \(h1) FROM users GROUP BY age", hidden: 1,
               grouping: grouped([s(2)], [agg(.count, s(1))])),
        merged("SELECT DISTINCT count(*) FROM users GROUP BY country",
               shard: "SELECT DISTINCT count(*), country AS \(h1) FROM users GROUP BY country", hidden: 1, distinct: .rows,
               grouping: grouped([s(1)], [agg(.count, s(0))])),
        merged("SELECT count(*) AS \"n\", country FROM users GROUP BY country ORDER BY n",
               shard: "SELECT count(*) AS \"n\", country FROM users GROUP BY country",
               sort: [asc(s(0))], grouping: grouped([s(1)], [agg(.count, s(0))])),
        merged("SELECT u.country, count(o.id) FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.country "
                   + "ORDER BY 2 DESC",
               shard: "SELECT u.country, count(o.id) FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.country",
               sort: [desc(s(1))], grouping: grouped([s(0)], [agg(.count, s(1))])),
        merged("SELECT country, count(*) FROM users GROUP BY country ORDER BY country COLLATE \"C\" DESC",
               shard: "SELECT country, count(*) FROM users GROUP BY country", sort: [desc(s(0), collation: "C")],
               grouping: grouped([s(0)], [agg(.count, s(1))])),
        merged("SELECT country, count(*) FROM users GROUP BY country ORDER BY lower(country)",
               shard: "SELECT country, count(*), lower(country) AS \(h1) FROM users GROUP BY country", hidden: 1,
               sort: [asc(s(2))], grouping: grouped([s(0)], [agg(.count, s(1))])),
        merged("SELECT country, count(*) FROM users GROUP BY country ORDER BY count(DISTINCT name) DESC",
               shard: "SELECT country, count(*), name AS \(h1) FROM users GROUP BY country, name", hidden: 1,
               sort: [desc(s(2))], grouping: grouped([s(0)], [agg(.count, s(1)), agg(.count, s(2), distinct: true)])),
        merged("SELECT u.*, count(*) FROM users u GROUP BY u.id",
               shard: "SELECT u.*, count(*), u.id AS \(h1) FROM users u GROUP BY u.id", hidden: 1,
               grouping: grouped([e(1)], [agg(.count, e(2))])),
    ]

    static let refusals: [MergeCase] = [
        refusedMerge("SELECT string_agg(name, ',') FROM users"),
        refusedMerge("SELECT array_agg(id) FROM users"),
        refusedMerge("SELECT count(*) + 1 FROM users"),
        refusedMerge("SELECT round(avg(age), 2) FROM users"),
        refusedMerge("SELECT CASE WHEN count(*) > 0 THEN 1 END FROM users"),
        refusedMerge("SELECT id, row_number() OVER (ORDER BY id) FROM users"),
        refusedMerge("SELECT id FROM users WINDOW w AS (ORDER BY id)"),
        refusedMerge("SELECT id FROM users UNION SELECT user_id FROM orders"),
        refusedMerge("SELECT count(*) FROM users GROUP BY ROLLUP(country)"),
        refusedMerge("SELECT count(*) FROM users GROUP BY GROUPING SETS ((country), ())"),
        refusedMerge("SELECT count(*) FROM users GROUP BY DISTINCT country"),
        refusedMerge("SELECT sum(age ORDER BY id) FROM users"),
        refusedMerge("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY age) FROM users"),
        refusedMerge("SELECT stddev(age) FROM users"),
        refusedMerge("SELECT myschema.sum(age) FROM users"),
        refusedMerge("SELECT country, count(*) FROM users GROUP BY country HAVING sum(age) / count(*) > 3"),
        refusedMerge("SELECT country, count(*) FROM users GROUP BY country HAVING lower(country) LIKE 'a%'"),
        refusedMerge("SELECT DISTINCT ON (country) country, count(*) FROM users GROUP BY country"),
        refusedMerge("SELECT count(DISTINCT name), country FROM users"),
        refusedMerge("SELECT count(DISTINCT 1) FROM users"),
        refusedMerge("SELECT count(*) FROM users GROUP BY country ORDER BY count(*) + 1"),
        refusedMerge("SELECT max(age) FROM users GROUP BY 3", "42P10"),
        refusedMerge("SELECT count(*) FROM users GROUP BY 1", "42803"),
        refusedMerge("SELECT 1 FROM users; SELECT 2 FROM users"),
        refusedMerge("EXPLAIN SELECT * FROM users"),
        refusedMerge("COPY (SELECT * FROM users) TO STDOUT"),
        refusedMerge("SELEC 1", "42601"),
    ]

    static let all = concatenation + orderBy + limits + distinct + aggregates + groupBy + refusals
}

extension MergeCase {
    /// The same case with a different DISTINCT ON expectation (for `*` queries whose columns count from the end).
    func replacingDistinct(shard: String, hidden: Int, on: [MergePlan.Column]) -> MergeCase {
        guard case .plan(var plan) = expectation else { return self }
        plan.shardSQL = shard
        plan.hiddenColumnCount = hidden
        plan.distinct = .on(on)
        return MergeCase(sql: sql, expectation: .plan(plan))
    }
}
