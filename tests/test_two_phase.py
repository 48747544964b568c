"""Atomic writes over several shards (DESIGN §6): a transaction that writes on two shards, and a statement
that writes on several, commit with PREPARE TRANSACTION / COMMIT PREPARED and a durable decision log; a
failure on one shard rolls back every shard; a proxy that dies between the phases resolves on restart."""

from __future__ import annotations

import contextlib
import random

import psycopg
import pytest

import pgraw
from sgtest import run_threads, wait_until

SLOT_SQL = "((hashint8extended(%s::bigint, 8816678312871386365) & 1023) + 227) & 1023"


def _primaries(m):
    out = []
    for shard in m["shards"]:
        url = psycopg.conninfo.conninfo_to_dict(shard["primary"])
        out.append(psycopg.connect(host=url.get("host", "127.0.0.1"), port=url["port"], user=url.get("user", "postgres"),
                                   dbname=url["dbname"], autocommit=True))
    return out


@pytest.fixture
def setup(proxy_factory, tmp_path):
    table = f"tp_{random.randrange(1 << 30):x}"

    def mutate(m):
        m["tables"][table] = {"shard_key": "id", "type": "bigint"}

    log = tmp_path / "2pc.log"
    start = lambda **kw: proxy_factory.start(mutate=mutate, env={"SHARDGATE_TWO_PHASE_LOG": str(log), **kw.pop("env", {})}, **kw)
    proxy = start()
    primaries = _primaries(proxy.map)
    with proxy.connect() as c:
        c.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, v int CHECK (v < 100))")
        keys = {}
        for k in range(1, 200):
            slot = c.execute(f"SELECT {SLOT_SQL}", (k,)).fetchone()[0]
            keys.setdefault(0 if slot < 512 else 1, k)
            if len(keys) == 2:
                break
    yield proxy, start, table, keys, primaries, log
    for p in primaries:
        for (gid,) in p.execute("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'sg\\_%'").fetchall():
            p.execute(f"ROLLBACK PREPARED '{gid}'")
        p.execute(f"DROP TABLE IF EXISTS {table}")
        p.close()


def _rows(primaries, table):
    return [sorted(p.execute(f"SELECT id, v FROM {table}").fetchall()) for p in primaries]



def test_a_transaction_writing_two_shards_commits_on_both(setup):
    proxy, _, table, keys, primaries, log = setup
    with proxy.connect(autocommit=False) as c:
        c.execute(f"INSERT INTO {table} (id, v) VALUES (%s, 1)", (keys[0],))
        c.execute(f"INSERT INTO {table} (id, v) VALUES (%s, 2)", (keys[1],))
        # Nothing visible before COMMIT.
        assert _rows(primaries, table) == [[], []]
        c.commit()
    assert _rows(primaries, table) == [[(keys[0], 1)], [(keys[1], 2)]]
    text = log.read_text()
    assert "commit sg_" in text and "done sg_" in text
    for p in primaries:
        assert p.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)


def test_a_failure_on_one_shard_rolls_back_every_shard(setup):
    proxy, _, table, keys, primaries, _ = setup
    with proxy.connect() as c:
        c.execute(f"INSERT INTO {table} (id, v) VALUES ({keys[0]}, 10), ({keys[1]}, 95)")
        with pytest.raises(psycopg.errors.CheckViolation):
            c.execute(f"UPDATE {table} SET v = v + 10")   # fine on one shard, violates the check on the other
        assert _rows(primaries, table) == [[(keys[0], 10)], [(keys[1], 95)]]
        # A failure found only at commit (a deferred constraint, checked at PREPARE TRANSACTION on one shard).
        c.execute(f"ALTER TABLE {table} ADD COLUMN u int, ADD CONSTRAINT {table}_u UNIQUE (u) DEFERRABLE INITIALLY DEFERRED")
        other = next(k for k in range(1000, 5000)
                     if c.execute(f"SELECT {SLOT_SQL}", (k,)).fetchone()[0] >= 512)
        c.execute("BEGIN")
        c.execute(f"UPDATE {table} SET v = 11 WHERE id = %s", (keys[0],))
        c.execute(f"UPDATE {table} SET u = 7 WHERE id = %s", (keys[1],))
        c.execute(f"INSERT INTO {table} (id, v, u) VALUES (%s, 1, 7)", (other,))
        with pytest.raises(psycopg.errors.UniqueViolation) as e:
            c.execute("COMMIT")
        assert "rolled back on every shard" in (e.value.diag.message_detail or "")
    assert [[r[:2] for r in rows] for rows in _rows(primaries, table)] == [[(keys[0], 10)], [(keys[1], 95)]]


def test_copy_over_two_shards_is_all_or_nothing(setup):
    proxy, _, table, keys, primaries, log = setup
    with proxy.connect() as c:
        before = log.read_text().count("done sg_")  # the CREATE TABLE over both shards was one already
        with c.cursor().copy(f"COPY {table} (id, v) FROM STDIN") as copy:
            copy.write_row((keys[0], 1))
            copy.write_row((keys[1], 2))
        assert _rows(primaries, table) == [[(keys[0], 1)], [(keys[1], 2)]]
        assert log.read_text().count("done sg_") == before + 1
        # A row the second shard refuses: the first shard's row goes too.
        fresh = {}
        for k in range(1000, 5000):
            fresh.setdefault(0 if c.execute(f"SELECT {SLOT_SQL}", (k,)).fetchone()[0] < 512 else 1, k)
            if len(fresh) == 2:
                break
        with pytest.raises(psycopg.errors.CheckViolation):
            with c.cursor().copy(f"COPY {table} (id, v) FROM STDIN") as copy:
                copy.write_row((fresh[0], 3))
                copy.write_row((fresh[1], 500))
        assert _rows(primaries, table) == [[(keys[0], 1)], [(keys[1], 2)]]
        assert c.execute(f"SELECT count(*) FROM {table}").fetchone() == (2,)


def test_copy_without_a_column_list_finds_the_key_in_the_first_column(setup):
    """COPY without a column list: ShardGate asks where the key is among the columns — here the first
    (pgbench_accounts' aid is too)."""
    proxy, _, table, keys, primaries, _ = setup
    with proxy.connect() as c:
        with c.cursor().copy(f"COPY {table} FROM STDIN") as copy:
            copy.write_row((keys[0], 7))
            copy.write_row((keys[1], 8))
    assert _rows(primaries, table) == [[(keys[0], 7)], [(keys[1], 8)]]


def _tags(messages):
    """The client-visible shape of an extended-protocol answer: message types, command tags, SQLSTATEs."""
    out = []
    for m in messages:
        if m.type == b"C":
            out.append(m.payload.rstrip(b"\x00").decode())
        elif m.type == b"E":
            out.append("E:" + m.error_fields()["C"])
        elif m.type == b"Z":
            out.append("Z:" + m.payload.decode())
        else:
            out.append(m.type.decode())
    return out


@pytest.mark.parametrize("pipelined", [False, True], ids=["sync-each", "one-sync"])
def test_extended_protocol_commit_of_a_transaction_writing_two_shards(setup, pipelined):
    """COMMIT as Parse/Bind/Execute (pgjdbc, pgbench -M prepared, psycopg's pipeline mode): a two-phase commit,
    answered in the extended protocol's shape — CommandComplete at the Execute, ReadyForQuery at the Sync."""
    proxy, _, table, keys, primaries, log = setup
    before = log.read_text().count("done sg_")
    with contextlib.closing(proxy.raw_login()) as raw:
        steps = [("BEGIN", ()), (f"INSERT INTO {table} (id, v) VALUES ($1, 1)", (keys[0],)),
                 (f"INSERT INTO {table} (id, v) VALUES ($1, 2)", (keys[1],)), ("COMMIT", ())]
        if pipelined:
            raw.send(b"".join(pgraw.extended(sql, params) for sql, params in steps) + pgraw.SYNC)
            assert _tags(raw.read_until_ready()) == ["1", "2", "BEGIN", "1", "2", "INSERT 0 1", "1", "2", "INSERT 0 1",
                                                      "1", "2", "COMMIT", "Z:I"]
        else:
            for sql, params in steps:
                raw.send(pgraw.extended(sql, params) + pgraw.SYNC)
                answer = _tags(raw.read_until_ready())
                assert answer[:2] == ["1", "2"] and answer[-1] == ("Z:I" if sql == "COMMIT" else "Z:T"), answer
        assert _rows(primaries, table) == [[(keys[0], 1)], [(keys[1], 2)]]
        assert log.read_text().count("done sg_") == before + 1
        for p in primaries:
            assert p.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)
        raw.send(pgraw.extended("SELECT count(*) FROM " + table) + pgraw.SYNC)
        assert pgraw.data_rows(raw.read_until_ready()) == [["2"]]


def test_extended_protocol_commit_failing_at_prepare_and_rollback(setup):
    proxy, _, table, keys, primaries, _ = setup
    with proxy.connect() as c:
        c.execute(f"ALTER TABLE {table} ADD COLUMN u int, ADD CONSTRAINT {table}_u UNIQUE (u) DEFERRABLE INITIALLY DEFERRED")
        c.execute(f"INSERT INTO {table} (id, v, u) VALUES ({keys[0]}, 10, 1), ({keys[1]}, 20, 2)")
        other = next(k for k in range(1000, 5000) if c.execute(f"SELECT {SLOT_SQL}", (k,)).fetchone()[0] >= 512)
    with contextlib.closing(proxy.raw_login()) as raw:
        # The deferred constraint fails at PREPARE TRANSACTION on the second shard: the error is the Execute's
        # answer, the rest of the batch is skipped, the Sync answers idle — and neither shard changed.
        raw.send(pgraw.extended("BEGIN") + pgraw.extended(f"UPDATE {table} SET v = 11 WHERE id = $1", (keys[0],))
                 + pgraw.extended(f"INSERT INTO {table} (id, v, u) VALUES ($1, 1, 2)", (other,))
                 + pgraw.extended("COMMIT") + pgraw.extended("SELECT 1") + pgraw.SYNC)
        answer = raw.read_until_ready()
        assert _tags(answer) == ["1", "2", "BEGIN", "1", "2", "UPDATE 1", "1", "2", "INSERT 0 1", "1", "2", "E:23505",
                                 "Z:I"], _tags(answer)
        assert "rolled back on every shard" in pgraw.errors(answer)[0].get("D", "")
        assert [[r[:2] for r in rows] for rows in _rows(primaries, table)] == [[(keys[0], 10)], [(keys[1], 20)]]
        # ROLLBACK of a transaction over both shards, through the extended protocol.
        raw.send(pgraw.extended("BEGIN") + pgraw.extended(f"UPDATE {table} SET v = 12 WHERE id = $1", (keys[0],))
                 + pgraw.extended(f"UPDATE {table} SET v = 22 WHERE id = $1", (keys[1],)) + pgraw.extended("ROLLBACK")
                 + pgraw.SYNC)
        assert _tags(raw.read_until_ready())[-4:] == ["1", "2", "ROLLBACK", "Z:I"]
        # A statement ShardGate refuses fails the transaction (25P02 after it); ROLLBACK still ends it.
        raw.send(pgraw.extended("BEGIN") + pgraw.extended(f"UPDATE {table} SET v = 13 WHERE id = $1", (keys[0],))
                 + pgraw.extended(f"UPDATE {table} SET v = 23 WHERE id = $1", (keys[1],)) + pgraw.SYNC)
        assert _tags(raw.read_until_ready())[-1] == "Z:T"
        raw.send(pgraw.extended(f"SELECT string_agg(v::text, ',') FROM {table}") + pgraw.SYNC)
        assert _tags(raw.read_until_ready())[-2:] == ["E:0A000", "Z:E"]
        raw.send(pgraw.extended("SELECT 1") + pgraw.SYNC)
        assert _tags(raw.read_until_ready())[-2:] == ["E:25P02", "Z:E"]
        raw.send(pgraw.extended("COMMIT") + pgraw.SYNC)
        assert _tags(raw.read_until_ready()) == ["1", "2", "ROLLBACK", "Z:I"]
        assert [[r[:2] for r in rows] for rows in _rows(primaries, table)] == [[(keys[0], 10)], [(keys[1], 20)]]


def test_psycopg3_pipeline_commit_over_two_shards(setup):
    proxy, _, table, keys, primaries, _ = setup
    with proxy.connect(autocommit=False) as c:
        with c.pipeline():
            c.execute(f"INSERT INTO {table} (id, v) VALUES (%s, 5)", (keys[0],))
            c.execute(f"INSERT INTO {table} (id, v) VALUES (%s, 6)", (keys[1],))
            c.commit()
    assert _rows(primaries, table) == [[(keys[0], 5)], [(keys[1], 6)]]


@pytest.mark.parametrize("fault,committed", [("crash-after-decision", True), ("crash-before-decision", False)])
def test_a_proxy_dying_between_the_phases_is_resolved_on_restart(setup, fault, committed):
    proxy, start, table, keys, primaries, log = setup
    proxy.stop()
    proxy.stopped_by_test = True
    crashing = start(env={"SHARDGATE_FAULT": fault})
    crashing.stopped_by_test = True
    with pytest.raises(psycopg.OperationalError):
        with crashing.connect(autocommit=False) as c:
            c.execute(f"INSERT INTO {table} (id, v) VALUES (%s, 1)", (keys[0],))
            c.execute(f"INSERT INTO {table} (id, v) VALUES (%s, 2)", (keys[1],))
            c.commit()
    assert crashing.wait(10) == 70
    # Both shards hold the prepared transaction (and its locks) until a proxy with the same log resolves it.
    assert all(p.execute("SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'sg\\_%'").fetchone()[0] == 1
               for p in primaries)
    restarted = start()
    wait_until(lambda: all(p.execute("SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'sg\\_%'").fetchone()[0] == 0
                           for p in primaries), 20, message="the prepared transactions resolved")
    expected = [[(keys[0], 1)], [(keys[1], 2)]] if committed else [[], []]
    assert _rows(primaries, table) == expected
    with restarted.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_concurrent_writes_over_both_shards_never_deadlock_across_shards(proxy_factory, tmp_path):
    """Writes over several shards take the shards one after another in shard order, so two sessions never
    hold a row lock each on a different shard and wait for the other's (a cycle no PostgreSQL sees). Eight
    sessions update the same rows of a reference table (on every shard) — autocommit statements in
    ShardGate's implicit transaction, and explicit transactions in the simple and the extended protocol,
    like pgbench's TPC-B — with lock_timeout as the tripwire that turns a deadlock into an error."""
    ref = f"ref_{random.randrange(1 << 30):x}"
    proxy = proxy_factory.start(mutate=lambda m: m["tables"].__setitem__(ref, {"reference": True}),
                                env={"SHARDGATE_TWO_PHASE_LOG": str(tmp_path / "2pc.log")})
    primaries = _primaries(proxy.map)
    with proxy.connect() as c:
        c.execute(f"CREATE TABLE {ref} (id int PRIMARY KEY, n int NOT NULL)")
        c.execute(f"INSERT INTO {ref} VALUES (1, 0), (2, 0)")
    rounds, sessions = 25, 8

    def worker(k: int) -> None:
        with proxy.connect(prepare_threshold=0 if k % 2 else None) as c:
            c.execute("SET lock_timeout = '5s'")
            for i in range(rounds):
                if i % 3 == 0:
                    c.execute(f"UPDATE {ref} SET n = n + 1 WHERE id = 1")
                    c.execute(f"UPDATE {ref} SET n = n + 1 WHERE id = 2")
                else:
                    with c.transaction():
                        c.execute(f"UPDATE {ref} SET n = n + 1 WHERE id = %s", (1,))
                        c.execute(f"UPDATE {ref} SET n = n + 1 WHERE id = %s", (2,))

    try:
        errors = run_threads(worker, sessions, timeout=50)
        assert not errors, errors[:3]
        for p in primaries:
            assert p.execute(f"SELECT id, n FROM {ref} ORDER BY id").fetchall() == \
                [(1, rounds * sessions), (2, rounds * sessions)]
    finally:
        for p in primaries:
            p.execute(f"DROP TABLE IF EXISTS {ref}")
            p.close()
