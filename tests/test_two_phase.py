"""Atomic writes over several shards (DESIGN §6): a transaction that writes on two shards, and a statement
that writes on several, commit with PREPARE TRANSACTION / COMMIT PREPARED and a durable decision log; a
failure on one shard rolls back every shard; a proxy that dies between the phases resolves on restart."""

from __future__ import annotations

import random

import psycopg
import pytest

from sgtest import wait_until

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
