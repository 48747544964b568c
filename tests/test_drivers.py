"""Real drivers through ShardGate on a table sharded over both shards, many connections sharing a small pool:
asyncpg with its default statement cache (named prepared statements, binary codecs, executemany), psycopg 3
with server-side prepared statements (prepare_threshold) and executemany, and 50 raw clients that give the
same statement name to different texts. Each checks that rows land on the shard owning their key and read
back equal."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import random
import threading
import urllib.parse
import uuid

import asyncpg
import psycopg
import pytest

import pgraw
from sgtest import owned_slots, run_threads

SLOT_SQL = "((hashint8extended(id, 8816678312871386365) & 1023) + 227) & 1023"


@pytest.fixture
def sharded(proxy_factory):
    table = f"drv_{random.randrange(1 << 30):x}"
    proxy = proxy_factory.start(pool={"size": 4}, mutate=lambda m: m["tables"].__setitem__(
        table, {"shard_key": "id", "type": "bigint"}))
    primaries = [psycopg.connect(s["primary"], autocommit=True) for s in proxy.map["shards"]]
    with proxy.connect() as c:
        c.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, name text, score float8, n numeric, "
                  "at timestamptz, u uuid, tags text[], data jsonb, raw bytea)")
    yield proxy, table, primaries
    for p in primaries:
        p.execute(f"DROP TABLE IF EXISTS {table}")
        p.close()


def _check_placement(proxy, table, primaries, expected: int) -> None:
    """Every row is on the shard owning its key's slot, and there are `expected` in all."""
    total = 0
    for shard, p, slots in zip(proxy.map["shards"], primaries, owned_slots(proxy.map)):
        count, stray = p.execute(f"SELECT count(*), count(*) FILTER (WHERE NOT ({SLOT_SQL} = ANY(%s))) FROM {table}",
                                 (sorted(slots),)).fetchone()
        assert stray == 0, f"{stray} rows on {shard['name']} belong elsewhere"
        assert count > 0, f"no rows on {shard['name']}"
        total += count
    assert total == expected


def test_asyncpg_statement_cache_executemany_and_binary_codecs(sharded):
    """asyncpg's defaults: every statement prepared under a name and cached per connection, values in
    binary. 16 connections over a pool of 4 per server: the names are ShardGate's to map onto backends."""
    proxy, table, primaries = sharded
    at = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)

    def row(key: int):
        return (key, f"naïve {key}", key / 7, decimal.Decimal(f"{key}.25"), at + datetime.timedelta(seconds=key),
                uuid.UUID(int=key), ["a", None, f"t{key}"], f'{{"k": {key}}}', bytes([key % 256, 0, 255]))

    async def worker(k: int):
        c = await asyncpg.connect(host=proxy.host, port=proxy.port, user="postgres", database="app", ssl=False,
                                  timeout=10)
        try:
            keys = [k * 1000 + i for i in range(40)]
            await c.executemany(f"INSERT INTO {table} (id, name, score, n, at, u, tags, data, raw) "
                                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                                [row(key) for key in keys])
            select = await c.prepare(f"SELECT * FROM {table} WHERE id = $1")
            for key in keys:
                got = tuple(await select.fetchrow(key))
                assert got == row(key), (got, row(key))
            # The cached statements are used again (fetch by text hits asyncpg's cache).
            for key in keys[:10]:
                assert await c.fetchval(f"SELECT name FROM {table} WHERE id = $1", key) == f"naïve {key}"
            assert await c.fetchval(f"SELECT count(*) FROM {table} WHERE id = ANY($1::bigint[])", keys) == len(keys)
        finally:
            await c.close()

    async def run():
        await asyncio.gather(*(worker(k) for k in range(1, 17)))

    asyncio.run(asyncio.wait_for(run(), 50))
    _check_placement(proxy, table, primaries, 16 * 40)


def test_psycopg3_server_side_prepared_and_executemany(sharded):
    """psycopg 3 prepares a statement on the server after prepare_threshold executions (here 1) and runs
    executemany as a pipeline; 12 connections over a pool of 4 per server."""
    proxy, table, primaries = sharded

    def worker(k: int) -> None:
        with proxy.connect(prepare_threshold=1) as c:
            keys = [k * 1000 + i for i in range(30)]
            c.cursor().executemany(f"INSERT INTO {table} (id, name, n) VALUES (%s, %s, %s)",
                                   [(key, f"p{key}", decimal.Decimal(key) / 4) for key in keys])
            for _ in range(2):
                for key in keys:
                    got = c.execute(f"SELECT id, name, n FROM {table} WHERE id = %s", (key,)).fetchone()
                    assert got == (key, f"p{key}", decimal.Decimal(key) / 4), got
            c.execute(f"UPDATE {table} SET name = %s WHERE id = %s", ("updated", keys[0]))
            assert c.execute(f"SELECT name FROM {table} WHERE id = %s", (keys[0],)).fetchone() == ("updated",)

    errors = run_threads(lambda i: worker(i + 1), 12, timeout=50)
    assert not errors, errors[:3]
    _check_placement(proxy, table, primaries, 12 * 30)


def test_fifty_clients_one_statement_name_different_texts(sharded):
    """50 clients each prepare statement "s" with their own text and run it 20 times, over a pool of 4 per
    server: every answer is the client's own. Half of them read the sharded table by key (routed at each
    Bind), half run a statement without a table."""
    proxy, table, _ = sharded
    with proxy.connect() as c:
        c.cursor().executemany(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", [(k, f"row{k}") for k in range(50)])
    start = threading.Barrier(50)

    def client(k: int) -> None:
        with contextlib.closing(proxy.raw_login()) as raw:
            text = (f"SELECT {k}::int AS client, name, $1::bigint AS arg FROM {table} WHERE id = {k}" if k % 2
                    else f"SELECT {k}::int AS client, 'none' AS name, $1::bigint AS arg")
            raw.send(pgraw.parse_message(text, name="s") + pgraw.SYNC)
            assert [m.type for m in raw.read_until_ready()] == [b"1", b"Z"]
            start.wait(20)
            expected_name = f"row{k}" if k % 2 else "none"
            for i in range(20):
                raw.send(pgraw.bind_message((i,), statement="s") + pgraw.execute_message() + pgraw.SYNC)
                answer = raw.read_until_ready()
                assert pgraw.data_rows(answer) == [[str(k), expected_name, str(i)]], (k, i, answer)

    errors = run_threads(client, 50, timeout=50)
    assert not errors, errors[:3]


def test_an_execute_with_a_row_limit_over_several_shards(sharded):
    """asyncpg's fetchrow/fetchval send Execute with a row limit of 1. Over several shards the shards run the
    portal to the end and the client gets the first rows, then PortalSuspended when there were more — merged
    (ORDER BY) or concatenated. Fetching on from such a portal (a cursor over several shards) is refused."""
    proxy, table, _ = sharded
    with proxy.connect() as c:
        c.cursor().executemany(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", [(k, f"r{k}") for k in range(1, 41)])

    async def run():
        c = await asyncpg.connect(host=proxy.host, port=proxy.port, user="postgres", database="app", ssl=False,
                                  timeout=10)
        try:
            assert await c.fetchval(f"SELECT count(*) FROM {table}") == 40
            assert tuple(await c.fetchrow(f"SELECT id, name FROM {table} ORDER BY id DESC")) == (40, "r40")
            assert (await c.fetchrow(f"SELECT id FROM {table} WHERE id > $1", 10))["id"] > 10
            assert await c.fetchrow(f"SELECT id FROM {table} WHERE id > $1", 1000) is None
            async with c.transaction():
                # asyncpg binds the cursor's portal, syncs, then fetches from it: the group that bound it has
                # ended, and a cursor over several shards is refused (never an empty answer).
                cursor = await c.cursor(f"SELECT id FROM {table} ORDER BY id")
                with pytest.raises(asyncpg.FeatureNotSupportedError, match="cursor over several shards"):
                    await cursor.fetch(3)
        finally:
            await c.close()

    asyncio.run(asyncio.wait_for(run(), 30))

    with contextlib.closing(proxy.raw_login()) as raw:
        raw.send(pgraw.parse_message(f"SELECT id FROM {table} ORDER BY id") + pgraw.bind_message()
                 + pgraw.execute_message(max_rows=2) + pgraw.SYNC)
        answer = raw.read_until_ready()
        assert [m.type for m in answer] == [b"1", b"2", b"D", b"D", b"s", b"Z"]
        assert pgraw.data_rows(answer) == [["1"], ["2"]]
        raw.send(pgraw.parse_message(f"SELECT id FROM {table} WHERE id <= 3") + pgraw.bind_message()
                 + pgraw.execute_message(max_rows=5) + pgraw.SYNC)
        answer = raw.read_until_ready()
        assert [m.type for m in answer] == [b"1", b"2", b"D", b"D", b"D", b"C", b"Z"]
        assert answer[-2].payload == b"SELECT 3\x00"


def test_sql_level_prepare_execute_deallocate(sharded):
    """SQL-level PREPARE/EXECUTE/DEALLOCATE as psql users and ORMs send them: EXECUTE runs on the shard owning
    the key among its arguments (the owner's primary for a write, its replica for a read), types declared
    in PREPARE apply, and mistakes get PostgreSQL's errors while the session goes on."""
    proxy, table, primaries = sharded
    with proxy.connect() as c:
        c.execute(f"PREPARE ins (bigint, text, numeric) AS INSERT INTO {table} (id, name, n) VALUES ($1, $2, $3)")
        for key in range(1, 41):
            c.execute(f"EXECUTE ins({key}, 'it''s {key}', '{key}.5')")
        c.execute(f"PREPARE one AS SELECT name, n, inet_server_port(), pg_is_in_recovery() FROM {table} WHERE id = $1")
        where = {}
        for key in range(1, 41):
            # Until the replica has replayed the writes the read goes to the primary; wait for the answer.
            name, n, port, standby = c.execute(f"EXECUTE one({key})").fetchone()
            assert (name, n) == (f"it's {key}", decimal.Decimal(f"{key}.5"))
            where[key] = port
        shard_ports = {}
        for shard, p in zip(proxy.map["shards"], primaries):
            for (key,) in p.execute(f"SELECT id FROM {table}").fetchall():
                shard_ports[key] = shard
        for key, port in where.items():
            owner = shard_ports[key]
            allowed = {urllib.parse.urlsplit(u).port for u in [owner["primary"], *owner.get("replicas", [])]}
            assert port in allowed, (key, port, allowed)
        # A text prepared over all shards: the fan-out merge applies to EXECUTE as to the text itself.
        c.execute(f"PREPARE total AS SELECT count(*), sum(n) FROM {table} WHERE id > $1")
        assert c.execute("EXECUTE total(20)").fetchone() == (20, sum(decimal.Decimal(f"{k}.5") for k in range(21, 41)))
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            c.execute("PREPARE one AS SELECT 1")
        with pytest.raises(psycopg.errors.SyntaxError, match="wrong number of parameters"):
            c.execute("EXECUTE one(1, 2)")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="constant"):
            c.execute("EXECUTE one(id)")
        c.execute("DEALLOCATE one")
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            c.execute("EXECUTE one(1)")
        c.execute("DEALLOCATE ALL")
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            c.execute("EXECUTE ins(99, 'x', 1)")
        # Not transactional, as in PostgreSQL: a PREPARE in a rolled-back transaction stays.
        with c.transaction(force_rollback=True):
            c.execute(f"PREPARE later AS SELECT name FROM {table} WHERE id = $1")
        assert c.execute("EXECUTE later(7)").fetchone() == ("it's 7",)
    _check_placement(proxy, table, primaries, 40)


def test_psycopg3_deallocates_and_prepares_its_names_again(sharded):
    """psycopg 3 evicts statements past prepared_max (a protocol Close with libpq >= 17, `DEALLOCATE _pg3_N`
    before) and, after a ROLLBACK, sends `DEALLOCATE ALL` and prepares the same texts again under new names.
    DEALLOCATE ALL must drop the client's names and nothing on the shared backends (which other clients'
    statements live on), in simple protocol and in pipeline mode: every answer stays the right one."""
    proxy, table, primaries = sharded
    with proxy.connect() as c:
        c.cursor().executemany(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", [(k, f"r{k}") for k in range(1, 31)])

    def worker(k: int) -> None:
        with proxy.connect(autocommit=False, prepare_threshold=0) as c:
            c.prepared_max = 3
            for round in range(3):
                # Six shapes through a cache of three: evictions send DEALLOCATE _pg3_N.
                for shape in range(6):
                    key = (k + shape + round) % 30 + 1
                    got = c.execute(f"SELECT name, {shape}::int FROM {table} WHERE id = %s", (key,)).fetchone()
                    assert got == (f"r{key}", shape), (k, round, shape, got)
                # A ROLLBACK makes psycopg forget every name (DEALLOCATE ALL) and reuse _pg3_0 for a new text.
                c.execute(f"SELECT name FROM {table} WHERE id = %s", (k,))
                c.rollback()
            with c.pipeline():
                for shape in range(6):
                    key = (k + shape) % 30 + 1
                    cur = c.execute(f"SELECT name, {shape} + 100 FROM {table} WHERE id = %s", (key,))
                    assert cur.fetchone() == (f"r{key}", shape + 100)
                c.rollback()
            assert c.execute(f"SELECT name FROM {table} WHERE id = %s", (5,)).fetchone() == ("r5",)

    errors = run_threads(lambda i: worker(i + 1), 8, timeout=50)
    assert not errors, errors[:3]


def test_a_batch_over_several_shards_then_one_keeps_every_answer(sharded):
    """One extended-protocol batch (no Sync between): a read over both shards, a keyed read, a write over
    both shards, a keyed read. Each answer arrives, in order, and the write is there for the read after it."""
    proxy, table, primaries = sharded
    with proxy.connect() as c:
        c.cursor().executemany(f"INSERT INTO {table} (id, name, score) VALUES (%s, %s, 1)",
                               [(k, f"r{k}") for k in range(1, 41)])
    with contextlib.closing(proxy.raw_login()) as raw:
        raw.send(pgraw.extended(f"SELECT count(*) FROM {table} WHERE name LIKE $1", ("r%",))
                 + pgraw.extended(f"SELECT name FROM {table} WHERE id = $1", (5,))
                 + pgraw.extended(f"UPDATE {table} SET score = score + $1", (2,))
                 + pgraw.extended(f"SELECT score FROM {table} WHERE id = $1", (7,))
                 + pgraw.SYNC)
        answer = raw.read_until_ready()
        assert pgraw.errors(answer) == []
        assert [m.type for m in answer] == [b"1", b"2", b"D", b"C"] * 2 + [b"1", b"2", b"C"] + [b"1", b"2", b"D", b"C", b"Z"]
        assert pgraw.data_rows(answer) == [["40"], ["r5"], ["3"]]
        assert [m.payload.rstrip(b"\0") for m in answer if m.type == b"C"][2] == b"UPDATE 40"
        assert answer[-1].payload == b"I"


def test_an_extended_write_over_several_shards_is_atomic(sharded):
    """A keyless UPDATE through the extended protocol outside a transaction that fails on one shard (a CHECK
    only that shard's rows violate) changes no shard; the same without the violation changes both, in one
    two-phase commit."""
    proxy, table, primaries = sharded
    with proxy.connect() as c:
        c.execute(f"ALTER TABLE {table} ADD CHECK (score >= 0)")
        c.cursor().executemany(f"INSERT INTO {table} (id, name, score) VALUES (%s, %s, 5)",
                               [(k, f"r{k}") for k in range(1, 41)])
    primaries[1].execute(f"UPDATE {table} SET score = 0")   # only s1's rows would go negative

    def scores():
        return [p.execute(f"SELECT min(score), max(score), count(*) FROM {table}").fetchone() for p in primaries]

    before = scores()
    assert before[0][:2] == (5, 5) and before[1][:2] == (0, 0) and before[0][2] + before[1][2] == 40
    with proxy.connect() as c:
        with pytest.raises(psycopg.errors.CheckViolation):
            c.execute(f"UPDATE {table} SET score = score - %s", (1,))
        assert scores() == before, "the shard without the violation must not keep its part"
        # In a pipeline the batch goes on to another shard before its Sync: still all or nothing.
        with pytest.raises(psycopg.errors.CheckViolation):
            with c.pipeline():
                c.execute(f"UPDATE {table} SET score = score - %s", (1,))
                c.execute(f"SELECT name FROM {table} WHERE id = %s", (3,))
        assert scores() == before
        cur = c.execute(f"UPDATE {table} SET score = score + %s", (1,))
        assert cur.rowcount == 40
    after = scores()
    assert after[0][:2] == (6, 6) and after[1][:2] == (1, 1)
    for p in primaries:
        assert p.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)


def test_a_multi_row_insert_with_parameters_is_split_per_shard(sharded):
    """SQLAlchemy's insertmanyvalues and Django's bulk_create send one INSERT with many rows of parameters:
    each shard gets its rows with only their parameters, renumbered (text and binary values, a parameter
    outside VALUES, RETURNING), in one atomic write."""
    proxy, table, primaries = sharded
    keys = list(range(1, 41))
    with proxy.connect() as c:
        rows = ", ".join(["(%s, %s, %s)"] * len(keys))
        values = [v for k in keys for v in (k, f"m{k}", k / 4)]
        cur = c.execute(f"INSERT INTO {table} (id, name, score) VALUES {rows} RETURNING id, name", values)
        assert sorted(cur.fetchall()) == [(k, f"m{k}") for k in keys]
        assert cur.rowcount == len(keys)
        # Binary parameters, and one used outside VALUES by every shard's part.
        rows = ", ".join(["(%b, %b, %b)"] * 4)
        values = [v for k in (1, 2, 3, 4) for v in (k, f"again{k}", 0.0)]
        c.execute(f"INSERT INTO {table} (id, name, score) VALUES {rows} ON CONFLICT (id) DO UPDATE SET name = %s",
                  values + ["conflicted"])
        assert c.execute(f"SELECT count(*) FROM {table} WHERE name = 'conflicted'").fetchone() == (4,)
        # A row failing on one shard (NULL id) leaves no shard with its part.
        with pytest.raises(psycopg.errors.NotNullViolation):
            c.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s), (%s, %s), (%s, %s)",
                      [100, "x", 101, "y", None, "z"])
        assert c.execute(f"SELECT count(*) FROM {table} WHERE id IN (100, 101)").fetchone() == (0,)
    _check_placement(proxy, table, primaries, len(keys))


def test_discard_all_drops_the_clients_statements_and_they_can_be_prepared_again(sharded):
    """DISCARD ALL deallocates every prepared statement, on the backend and for the client, as in PostgreSQL:
    the client's name is gone, and preparing it again works (the backend gets the Parse again rather than
    ShardGate assuming it still holds the statement)."""
    proxy, table, _ = sharded
    text = f"SELECT name FROM {table} WHERE id = $1"
    run = pgraw.bind_message((1,), statement="q") + pgraw.execute_message() + pgraw.SYNC
    with contextlib.closing(proxy.raw_login()) as raw:
        raw.send(pgraw.parse_message(text, name="q") + run)
        assert pgraw.errors(raw.read_until_ready()) == []
        assert pgraw.errors(raw.query("DISCARD ALL")) == []
        raw.send(run)
        assert [e.get("C") for e in pgraw.errors(raw.read_until_ready())] == ["26000"]
        raw.send(pgraw.parse_message(text, name="q") + run)
        assert pgraw.errors(raw.read_until_ready()) == []
        assert pgraw.data_rows(raw.query("SELECT 'still here'")) == [["still here"]]
