"""Cross-shard reads: the differential test of issue 6.

The same schema and data (users, orders and sessions sharded as in the test cluster's map, countries a
reference table; 22,000 rows with NULLs, duplicates, negative numbers and unicode text) are loaded into a
plain PostgreSQL database (`merge_ref`, on shard s0's primary, read directly) and, through ShardGate, into
the 2-shard cluster (the reference table directly on every primary). The seeded generator in mergegen.py produces more than 300 reads — filters, ORDER BY on
mixed types and directions, LIMIT/OFFSET, every merged aggregate, GROUP BY/HAVING, DISTINCT [ON], joins on
the shard key and with the reference table, IN lists, bind parameters — whose results must be identical
(as multisets unless ORDER BY fixes the order; then compared on what ORDER BY fixes), in the text and binary
result formats and the simple and extended protocols; every query it marks refused must get 0A000.

`test_generator_*` and `test_comparison_*` check the generator and the comparison on their own (against the
reference database only); `test_results_equal_a_single_server` needs ShardGate's cross-shard merge.
"""

from __future__ import annotations

import time
import urllib.parse

import psycopg
import pytest

import mergegen
from mergegen import Query

REF_DB = "merge_ref"


# ---------------------------------------------------------------------------------------------
# Setup helpers
# ---------------------------------------------------------------------------------------------
def shard_urls(shard_map: dict) -> list[tuple[str, str, list[str]]]:
    """(name, primary URL, replica URLs) of every shard."""
    return [(s["name"], s["primary"], s.get("replicas", [])) for s in shard_map["shards"]]


def with_database(url: str, database: str) -> str:
    parts = urllib.parse.urlparse(url)
    return urllib.parse.urlunparse(parts._replace(path="/" + database))


def create_schema(conn) -> None:
    for table in reversed(mergegen.TABLES):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    for ddl in mergegen.SCHEMA:
        conn.execute(ddl)


def copy_rows(conn, table: str, rows: list[tuple]) -> None:
    with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


@pytest.fixture
def reference(sg_env):
    """The reference database (one plain PostgreSQL holding every row), loaded, as a connection."""
    admin_url = sg_env.base_map["shards"][0]["primary"]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {REF_DB}")
        admin.execute(f"CREATE DATABASE {REF_DB}")
    data = mergegen.generate_data()
    conn = psycopg.connect(with_database(admin_url, REF_DB), autocommit=True)
    try:
        create_schema(conn)
        for table in mergegen.TABLES:
            copy_rows(conn, table, data[table])
        conn.execute("ANALYZE")
        yield conn
    finally:
        conn.close()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {REF_DB} WITH (FORCE)")


def rows_by_shard(reference, shard_map: dict, table: str, rows: list[tuple]) -> dict[str, list[tuple]]:
    """Splits a sharded table's rows by the shard owning each key's slot (DESIGN §3, computed by the server)."""
    column, key_type = mergegen.SHARD_KEYS[table]
    position = {"users": 0, "orders": 1, "sessions": 0}[table]
    keys = [row[position] for row in rows]
    array_type = "bigint[]" if key_type == "bigint" else "text[]"
    slot = mergegen.slot_of_sql(key_type) % "k"
    slots = reference.execute(f"SELECT k, {slot} FROM unnest(%s::{array_type}) AS k", (keys,)).fetchall()
    slot_of = dict(slots)
    out: dict[str, list[tuple]] = {}
    for row in rows:
        out.setdefault(mergegen.shard_of_slot(shard_map, slot_of[row[position]]), []).append(row)
    return out


def wait_for_replicas(shard_map: dict, timeout: float = 30.0) -> None:
    """Reads may go to replicas: wait until each has replayed its primary's current WAL position."""
    for _, primary, replicas in shard_urls(shard_map):
        with psycopg.connect(primary, autocommit=True) as p:
            lsn = p.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        for replica in replicas:
            deadline = time.monotonic() + timeout
            with psycopg.connect(replica, autocommit=True) as r:
                while not r.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                    if time.monotonic() > deadline:
                        pytest.fail(f"replica {replica} did not replay {lsn} within {timeout}s", pytrace=False)
                    time.sleep(0.05)


@pytest.fixture
def sharded(sg_env, reference):
    """The same data in the cluster: tables created on every primary, rows inserted through ShardGate in
    per-shard batches (so that no write spans shards), row counts checked on each shard."""
    shard_map = sg_env.base_map
    data = mergegen.generate_data()
    primaries = {name: psycopg.connect(url, autocommit=True) for name, url, _ in shard_urls(shard_map)}
    try:
        for conn in primaries.values():
            create_schema(conn)
        expected: dict[tuple[str, str], int] = {}
        splits = {}
        for table in ("users", "orders", "sessions"):
            splits[table] = rows_by_shard(reference, shard_map, table, data[table])
            for shard in primaries:
                expected[(shard, table)] = len(splits[table].get(shard, []))
        for shard in primaries:
            expected[(shard, "countries")] = len(data["countries"])
        yield shard_map, data, splits, primaries, expected
    finally:
        for conn in primaries.values():
            try:
                for table in reversed(mergegen.TABLES):
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
            finally:
                conn.close()


def load_through_proxy(proxy, splits: dict, data: dict, primaries: dict) -> None:
    """Sharded tables through ShardGate, a batch per shard; the reference table on every primary directly
    (a write to all shards is the two-phase-commit feature, tested on its own)."""
    with proxy.connect() as conn:
        for table, by_shard in splits.items():
            for shard_rows in by_shard.values():
                for sql, params in mergegen.insert_statements(table, shard_rows):
                    conn.execute(sql, params)
    for primary in primaries.values():
        copy_rows(primary, "countries", data["countries"])


# ---------------------------------------------------------------------------------------------
# The generator and the comparison on their own
# ---------------------------------------------------------------------------------------------
def test_generator_is_seeded_and_covers_the_issue():
    first = mergegen.generate_queries()
    again = mergegen.generate_queries()
    assert [q.describe() for q in first] == [q.describe() for q in again], "the generator is not reproducible"
    assert [q.describe() for q in mergegen.generate_queries(seed=7)] != [q.describe() for q in first]
    assert len(first) >= 300
    categories = {q.category for q in first}
    assert {"plain", "order", "aggregate", "group", "distinct", "join", "in-list", "params", "refused"} <= categories
    text = " ".join(q.sql for q in first)
    for construct in ("ORDER BY", "DESC", "NULLS FIRST", "LIMIT", "OFFSET", "FETCH FIRST", "GROUP BY", "HAVING",
                      "DISTINCT ON", "count(DISTINCT", "avg(", "sum(", "min(", "max(", "bool_and(", "JOIN countries",
                      "COLLATE", "IN ("):
        assert construct in text, f"no generated query uses {construct}"
    data = mergegen.generate_data()
    assert sum(len(rows) for rows in data.values()) >= 20000
    assert data == mergegen.generate_data()
    names = {row[1] for row in data["users"]}
    assert None in names and any(n and ord(max(n)) > 0x3000 for n in names), "NULLs and unicode in the data"
    assert any(row[0] < 0 for row in data["users"]), "negative keys"


def test_comparison_agrees_with_itself_on_the_reference(reference):
    """Every generated read, run twice on the reference (the second time in another format/protocol), is
    judged equal; so a difference the real test reports comes from ShardGate, not from the comparison."""
    checked = 0
    for i, query in enumerate(mergegen.generate_queries()):
        if query.mode == "refused":
            continue
        first = mergegen.run(reference, query, binary=i % 3 == 0, simple=i % 5 == 0)
        second = mergegen.run(reference, query, binary=i % 3 == 0, simple=i % 5 != 0)
        assert first.sqlstate is None, f"the reference cannot run {query.describe()}: {first.message}"
        assert mergegen.compare(query, first, second) == [], query.describe()
        checked += 1
    assert checked >= 280


def test_comparison_finds_differences(reference):
    """The comparison must fail on a wrong result: a missing row, a changed value, a wrong order, a wrong
    column type, a float off by more than rounding, an error instead of a result."""
    queries = {q.mode: q for q in mergegen.generate_queries() if q.mode != "refused"}
    exact = Query("SELECT id, name, balance FROM users ORDER BY id LIMIT 50", "exact")
    good = mergegen.run(reference, exact)
    assert len(good.rows) == 50

    def altered(**changes):
        result = mergegen.Result(columns=list(good.columns), rows=list(good.rows), tag=good.tag)
        for key, value in changes.items():
            setattr(result, key, value)
        return result

    assert mergegen.compare(exact, good, altered()) == []
    assert mergegen.compare(exact, good, altered(rows=good.rows[:-1]))
    assert mergegen.compare(exact, good, altered(rows=[good.rows[1], good.rows[0]] + good.rows[2:]))
    changed = list(good.rows)
    changed[7] = (changed[7][0], b"not the name", changed[7][2])
    assert mergegen.compare(exact, good, altered(rows=changed))
    far = list(good.rows)
    row = next(r for r in far if r[2] is not None)
    far[far.index(row)] = (row[0], row[1], str(float(row[2]) + 1).encode())
    assert mergegen.compare(exact, good, altered(rows=far))
    near = list(good.rows)
    near[near.index(row)] = (row[0], row[1], repr(float(row[2]) * (1 + 1e-15)).encode())
    assert mergegen.compare(exact, good, altered(rows=near)) == [], "last-bit float differences are tolerated"
    assert mergegen.compare(exact, good, altered(columns=[(n, 25) for n, _ in good.columns]))
    assert mergegen.compare(exact, good, altered(tag="SELECT 49"))
    assert mergegen.compare(exact, good, mergegen.Result(sqlstate="0A000", message="x"))
    multiset = queries["multiset"]
    m = mergegen.run(reference, multiset)
    shuffled = mergegen.Result(columns=m.columns, rows=list(reversed(m.rows)), tag=m.tag)
    assert mergegen.compare(multiset, m, shuffled) == [], "a multiset ignores order"
    if m.rows:
        assert mergegen.compare(multiset, m, mergegen.Result(columns=m.columns, rows=m.rows[1:] + m.rows[:1] * 2,
                                                             tag=m.tag))
    refused = Query("SELECT string_agg(name, ',') FROM users", "refused")
    assert mergegen.compare(refused, good, mergegen.Result(sqlstate="0A000")) == []
    assert mergegen.compare(refused, good, good)


# ---------------------------------------------------------------------------------------------
# The differential test
# ---------------------------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_results_equal_a_single_server(proxy_factory, reference, sharded):
    shard_map, data, splits, primaries, expected = sharded
    proxy = proxy_factory.start()
    load_through_proxy(proxy, splits, data, primaries)
    for (shard, table), count in expected.items():
        got = primaries[shard].execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert got == count, f"{table} on {shard}: {got} rows, expected {count} (rows went to the wrong shard?)"
    assert all(count > 0 for (shard, table), count in expected.items()), "every shard holds rows of every table"
    wait_for_replicas(shard_map)
    problems = []
    failed: dict[str, set[int]] = {}
    queries = mergegen.generate_queries()
    with proxy.connect() as conn:
        for i, query in enumerate(queries):
            # Every query in the text format over the extended protocol; some also over the simple
            # protocol and in the binary format.
            for binary, simple in [(False, False)] + ([(False, True)] if i % 4 == 0 else []) \
                    + ([(True, False)] if i % 3 == 0 else []):
                ref = mergegen.run(reference, query, binary=binary, simple=simple)
                got = mergegen.run(conn, query, binary=binary, simple=simple)
                for problem in mergegen.compare(query, ref, got):
                    failed.setdefault(query.category, set()).add(i)
                    problems.append(f"query {i} ({'binary' if binary else 'text'}, "
                                    f"{'simple' if simple else 'extended'}): {query.describe()}\n    {problem}")
    total = {c: sum(1 for q in queries if q.category == c) for c in {q.category for q in queries}}
    summary = ", ".join(f"{c} {len(failed.get(c, ()))}/{n}" for c, n in sorted(total.items()))
    assert not problems, (f"{sum(len(v) for v in failed.values())} of {len(queries)} queries differ ({summary}); "
                          f"the first ones:\n" + "\n".join(problems[:40]))
