"""The extended query protocol with unnamed statements (psycopg 3, asyncpg), pipelines and COPY."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import uuid

import asyncpg
import psycopg
import pytest

from sgtest import LOOPS


def test_psycopg3_parameters_text_and_binary(proxy, table_name, direct):
    direct.execute(f"CREATE TABLE {table_name} (id bigint PRIMARY KEY, name text, price numeric, at timestamptz, "
                   "u uuid, tags text[], data jsonb, raw bytea)")
    at = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    u = uuid.uuid4()
    row = (-(2 ** 62), "naïve 'quoted'", decimal.Decimal("12.345"), at, u, ["a", None, "c"],
           psycopg.types.json.Jsonb({"k": [1, 2]}), b"\x00\xff")
    # prepare_threshold=None (set by proxy.connect): psycopg never prepares named statements.
    with proxy.connect() as c:
        c.execute(f"INSERT INTO {table_name} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", row)
        for binary in (False, True):
            got = c.cursor(binary=binary).execute(f"SELECT * FROM {table_name} WHERE id = %s", (row[0],)).fetchone()
            assert got[:6] == row[:6] and got[6] == {"k": [1, 2]} and got[7] == b"\x00\xff", (binary, got)
        # Parameters sent in binary format too.
        assert c.execute("SELECT %b::int8 + 1, %b::text", (41, "bin")).fetchone() == (42, "bin")
        # executemany (a pipeline of Parse/Bind/Execute).
        c.cursor().executemany(f"INSERT INTO {table_name} (id, name) VALUES (%s, %s)",
                               [(i, f"n{i}") for i in range(1, 301)])
        assert c.execute(f"SELECT count(*), sum(id) FROM {table_name} WHERE id > 0").fetchone() == \
            (300, 300 * 301 // 2)
        # Nothing was prepared under a name on the backend.
        assert c.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)


def test_psycopg3_pipeline_and_errors(proxy_factory):
    proxy = proxy_factory.start(pool={"size": 1})
    with proxy.connect() as c, proxy.connect() as other:
        with c.pipeline():
            curs = [c.execute("SELECT %s::int * 2", (i,)) for i in range(50)]
        assert [cur.fetchone()[0] for cur in curs] == [i * 2 for i in range(50)]

        # An error inside a pipeline: later statements of the batch are skipped, the session goes on.
        with pytest.raises(psycopg.errors.DivisionByZero):
            with c.pipeline():
                c.execute("SELECT 1")
                c.execute("SELECT 1 / %s::int", (0,))
                c.execute("SELECT 3")
        assert c.execute("SELECT %s::text", ("after",)).fetchone() == ("after",)

        # Extended-protocol error outside a pipeline.
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            c.execute("SELECT %s::int", ("x",))
        assert c.execute("SELECT %s::int", (7,)).fetchone() == (7,)

        # A transaction through the extended protocol keeps its backend.
        with c.transaction():
            pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
            for i in range(5):
                assert c.execute("SELECT pg_backend_pid(), %s::int", (i,)).fetchone() == (pid, i)
        assert other.execute("SELECT %s::int + 1", (1,)).fetchone() == (2,)


def test_psycopg3_copy(proxy, direct, table_name):
    direct.execute(f"CREATE TABLE {table_name} (id int PRIMARY KEY, name text, score float8)")
    with proxy.connect() as c:
        with c.cursor().copy(f"COPY {table_name} (id, name, score) FROM STDIN") as copy:
            for i in range(1, 20001):
                copy.write_row((i, f"name\t{i}", i / 4))
        assert c.execute(f"SELECT count(*), sum(score) FROM {table_name}").fetchone() == (20000, 20000 * 20001 / 8)
        out = []
        with c.cursor().copy(f"COPY (SELECT id, name FROM {table_name} ORDER BY id) TO STDOUT") as copy:
            for row in copy.rows():
                out.append(row)
        assert len(out) == 20000 and out[0] == ("1", "name\t1") and out[-1] == ("20000", "name\t20000")
        # Binary COPY.
        with c.cursor().copy(f"COPY {table_name} (id, name, score) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "text", "float8"])
            copy.write_row((30000, "bin", 1.5))
        # A COPY that fails mid-stream leaves the session usable.
        with pytest.raises(psycopg.errors.UniqueViolation):
            with c.cursor().copy(f"COPY {table_name} (id, name, score) FROM STDIN") as copy:
                for i in range(1, 1000):
                    copy.write_row((40000 + i, "dup", 0))
                copy.write_row((1, "dup", 0))
        assert c.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (20001,)


def test_psycopg2_simple_protocol(proxy, direct, table_name):
    import psycopg2

    direct.execute(f"CREATE TABLE {table_name} (id int, v text)")
    conn = psycopg2.connect(proxy.conninfo())
    try:
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {table_name} VALUES (%s, %s)", (1, "o'clock"))
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        cur.execute(f"SELECT v FROM {table_name}")
        assert cur.fetchone() == ("o'clock",)
        cur.execute("SELECT pg_backend_pid()")
        assert cur.fetchone()[0] == pid  # psycopg2 opened a transaction: same backend
        conn.commit()
        with pytest.raises(psycopg2.errors.SyntaxError):
            cur.execute("SELEC 1")
        conn.rollback()
        import io
        cur.copy_expert(f"COPY {table_name} FROM STDIN", io.StringIO("".join(f"{i}\tv{i}\n" for i in range(2, 1002))))
        conn.commit()
        buf = io.StringIO()
        cur.copy_expert(f"COPY (SELECT count(*) FROM {table_name}) TO STDOUT", buf)
        assert buf.getvalue() == "1001\n"
        conn.commit()
    finally:
        conn.close()


def test_asyncpg_fetch_with_arguments(proxy_factory, direct, table_name):
    proxy = proxy_factory.start(pool={"size": 2})
    direct.execute(f"CREATE TABLE {table_name} (id bigint PRIMARY KEY, name text, at timestamptz, n numeric)")

    async def connect():
        # statement_cache_size=0: asyncpg then uses unnamed prepared statements only. By default it caches
        # NAMED prepared statements per connection, which live on one backend connection; under
        # transaction pooling the next statement may run on another backend, where that name does not
        # exist (or names another client's statement).
        return await asyncpg.connect(host=proxy.host, port=proxy.port, user="postgres", database="app", ssl=False,
                                     statement_cache_size=0, timeout=5)

    async def worker(k: int):
        c = await connect()
        try:
            for i in range(20):
                key = k * 1000 + i
                await c.execute(f"INSERT INTO {table_name} VALUES ($1, $2, $3, $4)", key, f"w{k}",
                                datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), decimal.Decimal("1.5"))
                row = await c.fetchrow(f"SELECT id, name, n FROM {table_name} WHERE id = $1", key)
                assert (row["id"], row["name"], row["n"]) == (key, f"w{k}", decimal.Decimal("1.5"))
            async with c.transaction():
                pid = await c.fetchval("SELECT pg_backend_pid()")
                await c.execute(f"UPDATE {table_name} SET name = $1 WHERE id = $2", "tx", k * 1000)
                assert await c.fetchval("SELECT pg_backend_pid()") == pid
            await c.executemany(f"INSERT INTO {table_name} (id, name) VALUES ($1, $2)",
                                [(k * 1000 + 500 + j, "many") for j in range(10)])
            rows = await c.fetch(f"SELECT id FROM {table_name} WHERE id >= $1 AND id < $2 ORDER BY id",
                                 k * 1000, k * 1000 + 1000)
            assert [r["id"] for r in rows] == [k * 1000 + i for i in range(20)] + [k * 1000 + 500 + j for j in range(10)]
            with pytest.raises(asyncpg.DivisionByZeroError):
                await c.fetchval("SELECT 1 / $1::int", 0)
            assert await c.fetchval("SELECT $1::text", "after error") == "after error"
            await c.copy_records_to_table(table_name, records=[(k * 1000 + 900, "copied", None, None)])
        finally:
            await c.close()

    async def run():
        await asyncio.gather(*(worker(k) for k in range(1, 9)))

    asyncio.run(asyncio.wait_for(run(), 45))
    assert direct.execute(f"SELECT count(*), count(*) FILTER (WHERE name = 'tx') FROM {table_name}").fetchone() == \
        (8 * 31, 8)


def test_named_prepared_statements_never_run_another_clients_statement(proxy_factory):
    """Named prepared statements are multiplexed: each client's names map to statements ShardGate prepares
    on whichever backend serves it. Two clients sharing the pool's only backend, each with its own _pg3_0
    (psycopg names every connection's first statement so), always run their own."""
    proxy = proxy_factory.start(pool={"size": 1}, env={"SHARDGATE_THREADS": "1"})
    a = proxy.connect(prepare_threshold=0)
    b = proxy.connect(prepare_threshold=0)
    try:
        def pid(c):
            return c.execute("SELECT pg_backend_pid()", prepare=False).fetchone()[0]

        for i in range(5):
            assert a.execute("SELECT 'A-query', %s::int", (i,)).fetchone() == ("A-query", i)
            assert b.execute("SELECT 'B-query', %s::int, 'extra'", (i,)).fetchone() == ("B-query", i, "extra")
        assert pid(a) == pid(b), "one backend served both"
        a.close()
        for i in range(3):
            assert b.execute("SELECT 'B-query', %s::int, 'extra'", (i,)).fetchone() == ("B-query", i, "extra")
    finally:
        a.close()
        b.close()
