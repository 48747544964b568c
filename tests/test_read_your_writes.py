"""Read-your-writes by WAL position (DESIGN §4, issue 5): with replay paused on every replica, a session that
writes row k through ShardGate always reads it back through ShardGate, while a session that never wrote keeps
reading from replicas; once replay resumes, the writing session returns to the replicas."""

from __future__ import annotations

import random
import urllib.parse

import psycopg

from sgtest import wait_until

ITERATIONS = 1000


def _replica_conns(m: dict) -> list[psycopg.Connection]:
    conns = []
    for shard in m["shards"]:
        for url in shard["replicas"]:
            u = urllib.parse.urlparse(url)
            conns.append(psycopg.connect(host=u.hostname, port=u.port, user=u.username or "postgres",
                                         dbname=u.path.lstrip("/"), autocommit=True))
    return conns


def test_a_session_reads_its_own_writes_while_replay_is_paused(proxy_factory):
    table = f"ryw_{random.randrange(1 << 30):x}"

    def mutate(m):
        m["tables"][table] = {"shard_key": "id", "type": "bigint"}
        # Paused replicas must stay in rotation for the whole test (only the fence keeps the writer off them).
        m["replicas"] = {"max_lag_bytes": 1 << 40, "max_lag_ms": 3_600_000, "poll_ms": 50}

    proxy = proxy_factory.start(replicas=True, mutate=mutate)
    replicas = _replica_conns(proxy.map)
    with proxy.connect() as writer, proxy.connect() as reader:
        writer.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, v text)")
        try:
            # The DDL must be replayed before replay stops, or the replicas would not have the table.
            wait_until(lambda: all(r.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
                                   for r in replicas), 15, message="the table on every replica")
            for r in replicas:
                r.execute("SELECT pg_wal_replay_pause()")
            wait_until(lambda: all(r.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] == "paused"
                                   for r in replicas), 10, message="replay paused on every replica")
            misses = 0
            primary_reads = 0
            for k in range(ITERATIONS):
                writer.execute(f"INSERT INTO {table} (id, v) VALUES (%s, %s)", (k, f"v{k}"))
                row = writer.execute(f"SELECT v, pg_is_in_recovery() FROM {table} WHERE id = %s", (k,)).fetchone()
                if row is None or row[0] != f"v{k}":
                    misses += 1
                elif row[1] is False:
                    primary_reads += 1
                if k % 100 == 0:
                    # A session that never wrote is served by replicas all along.
                    assert reader.execute(f"SELECT pg_is_in_recovery() FROM (SELECT 1) x LEFT JOIN {table} t "
                                          f"ON t.id = %s", (k,)).fetchone() == (True,)
            assert misses == 0, f"{misses} of {ITERATIONS} reads after a write missed the row"
            assert primary_reads == ITERATIONS
        finally:
            for r in replicas:
                r.execute("SELECT pg_wal_replay_resume()")
        # Once the replicas have replayed the writes, the writer reads from them again.
        last = ITERATIONS - 1
        wait_until(lambda: writer.execute(f"SELECT pg_is_in_recovery() FROM {table} WHERE id = %s",
                                          (last,)).fetchone() == (True,),
                   timeout=20, message="the writing session back on a replica after replay resumed")
        assert sorted(r[0] for r in writer.execute(f"SELECT id FROM {table}").fetchall()) == list(range(ITERATIONS))
        writer.execute(f"DROP TABLE {table}")
    for r in replicas:
        r.close()
