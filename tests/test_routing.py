"""Shard-key routing on the 2-shard test cluster (primary + streaming replica each), proven by where each
statement ran: `inet_server_port()` and `pg_is_in_recovery()` returned through the proxy, and rows checked
directly on each shard against PostgreSQL's own slot expression (DESIGN §3, §4)."""

from __future__ import annotations

import random
import urllib.parse

import psycopg
import pytest

from sgtest import wait_until

SLOT_SQL = "((hashint8extended({k}, 8816678312871386365) & 1023) + 227) & 1023"


def _port(url: str) -> int:
    return urllib.parse.urlparse(url).port


class Cluster:
    """The shards of the map the proxy runs with: ports, direct connections, slot ownership."""

    def __init__(self, map_: dict):
        self.map = map_
        self.names = [s["name"] for s in map_["shards"]]
        self.primary = {s["name"]: _port(s["primary"]) for s in map_["shards"]}
        self.replica = {s["name"]: _port(s["replicas"][0]) for s in map_["shards"]}
        self.owner = [None] * 1024
        for name, ranges in map_["slots"].items():
            for part in ranges.split(","):
                lo, _, hi = part.partition("-")
                for slot in range(int(lo), int(hi or lo) + 1):
                    self.owner[slot] = name
        self.conns = {name: psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=app", autocommit=True)
                      for name, port in self.primary.items()}

    def slot(self, key: int) -> int:
        # Asked of the server, not computed here: the proxy must agree with PostgreSQL.
        return self.conns[self.names[0]].execute(f"SELECT {SLOT_SQL.format(k='%s::bigint')}", (key,)).fetchone()[0]

    def shard_of(self, key: int) -> str:
        return self.owner[self.slot(key)]

    def keys_on(self, shard: str, count: int, start: int = 1) -> list[int]:
        keys, k = [], start
        while len(keys) < count:
            if self.shard_of(k) == shard:
                keys.append(k)
            k += 1
        return keys

    def close(self):
        for c in self.conns.values():
            c.close()


@pytest.fixture
def sharded(proxy_factory, request):
    """A proxy with replicas and three tables of this test's own: `<t>_users` sharded by id, `<t>_orders`
    sharded by user_id, `<t>_countries` a reference table. Created through the proxy (DDL goes to every
    shard) and dropped afterwards."""
    tag = f"rt{random.randrange(1 << 30):x}"
    tables = {"users": f"{tag}_users", "orders": f"{tag}_orders", "countries": f"{tag}_countries"}

    def mutate(m):
        m["tables"][tables["users"]] = {"shard_key": "id", "type": "bigint"}
        m["tables"][tables["orders"]] = {"shard_key": "user_id", "type": "bigint"}
        m["tables"][tables["countries"]] = {"reference": True}
        m.pop("unlisted_tables", None)

    proxy = proxy_factory.start(mutate=mutate, replicas=True)
    cluster = Cluster(proxy.map)
    with proxy.connect() as c:
        c.execute(f"CREATE TABLE {tables['users']} (id bigint PRIMARY KEY, name text)")
        c.execute(f"CREATE TABLE {tables['orders']} (id bigserial, user_id bigint, total numeric, PRIMARY KEY (user_id, id))")
        c.execute(f"CREATE TABLE {tables['countries']} (code text PRIMARY KEY, name text)")
    yield proxy, cluster, tables
    with proxy.connect() as c:
        c.execute(f"DROP TABLE IF EXISTS {', '.join(tables.values())}")
    cluster.close()


def where(conn, sql, params=()):
    """(port, in_recovery) of the server that ran `SELECT inet_server_port(), pg_is_in_recovery() ...`."""
    return conn.execute(sql, params).fetchone()


def wait_replicated(cluster: Cluster, shard: str, sql: str, params=()):
    """Waits until `sql` returns a row on `shard`'s replica (streaming replication is asynchronous)."""
    with psycopg.connect(f"host=127.0.0.1 port={cluster.replica[shard]} user=postgres dbname=app", autocommit=True) as r:
        wait_until(lambda: r.execute(sql, params).fetchone(), timeout=10, message=f"{shard}'s replica to replay")


def test_keyed_writes_land_on_the_owner_shard_and_keyed_reads_run_on_its_replica(sharded):
    proxy, cluster, t = sharded
    users = t["users"]
    keys = list(range(-50, 50)) + [2**62, -(2**62), 9_000_000_000_000_000_000 - 2**63]
    with proxy.connect() as c:
        for k in keys:
            port, in_recovery = c.execute(
                f"INSERT INTO {users} (id, name) VALUES (%s, 'n') RETURNING inet_server_port(), pg_is_in_recovery()",
                (k,)).fetchone()
            assert (port, in_recovery) == (cluster.primary[cluster.shard_of(k)], False), k
    # Each row is on exactly the shard that owns its slot, checked on each shard directly.
    for name, conn in cluster.conns.items():
        rows = conn.execute(f"SELECT id, {SLOT_SQL.format(k='id')} FROM {users}").fetchall()
        assert rows, f"{name} has no rows"
        for key, slot in rows:
            assert cluster.owner[slot] == name, (key, slot, name)
        assert sorted(k for k, _ in rows) == sorted(k for k in keys if cluster.shard_of(k) == name)
    # A session that never wrote reads from the owner's replica.
    for k in random.Random(7).sample(keys, 12):
        shard = cluster.shard_of(k)
        wait_replicated(cluster, shard, f"SELECT 1 FROM {users} WHERE id = %s", (k,))
        with proxy.connect() as reader:
            assert where(reader, f"SELECT inet_server_port(), pg_is_in_recovery() FROM {users} WHERE id = %s", (k,)) \
                == (cluster.replica[shard], True)


def test_in_lists_across_shards_run_on_both_owners(sharded):
    proxy, cluster, t = sharded
    a = cluster.keys_on("s0", 3)
    b = cluster.keys_on("s1", 3)
    with proxy.connect() as c:
        for k in a + b:
            c.execute(f"INSERT INTO {t['users']} (id, name) VALUES (%s, 'x')", (k,))
    for k in a + b:
        wait_replicated(cluster, cluster.shard_of(k), f"SELECT 1 FROM {t['users']} WHERE id = %s", (k,))
    with proxy.connect() as reader:
        rows = reader.execute(f"SELECT id, inet_server_port(), pg_is_in_recovery() FROM {t['users']} "
                              f"WHERE id IN ({', '.join(map(str, a + b))})").fetchall()
        assert sorted(r[0] for r in rows) == sorted(a + b)
        for key, port, in_recovery in rows:
            assert (port, in_recovery) == (cluster.replica[cluster.shard_of(key)], True)
        # Only the owners: keys all on s0 never reach s1.
        ports = {r[1] for r in reader.execute(f"SELECT id, inet_server_port() FROM {t['users']} WHERE id = ANY(%s)",
                                              (a,)).fetchall()}
        assert ports == {cluster.replica["s0"]}


def test_ddl_and_reference_writes_run_on_every_shard(sharded):
    proxy, cluster, t = sharded
    for name, conn in cluster.conns.items():
        assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (t["users"],)).fetchone() == (True,), name
    with proxy.connect() as c:
        assert c.execute(f"INSERT INTO {t['countries']} VALUES ('fr', 'France'), ('jp', 'Japan')").rowcount == 2
        assert c.execute(f"UPDATE {t['countries']} SET name = upper(name)").rowcount == 2
        c.execute(f"CREATE INDEX ON {t['users']} (name)")
    for name, conn in cluster.conns.items():
        assert conn.execute(f"SELECT code, name FROM {t['countries']} ORDER BY code").fetchall() == \
            [("fr", "FRANCE"), ("jp", "JAPAN")], name
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = %s", (t["users"],)).fetchone() == (2,)
    # Reference reads go to one shard (a replica).
    wait_replicated(cluster, "s0", f"SELECT 1 FROM {t['countries']} WHERE name = 'FRANCE'")
    wait_replicated(cluster, "s1", f"SELECT 1 FROM {t['countries']} WHERE name = 'FRANCE'")
    with proxy.connect() as reader:
        rows = reader.execute(f"SELECT name, inet_server_port(), pg_is_in_recovery() FROM {t['countries']}").fetchall()
        assert sorted(r[0] for r in rows) == ["FRANCE", "JAPAN"]
        assert len({(r[1], r[2]) for r in rows}) == 1 and rows[0][2] is True


def test_transactions_run_on_primaries(sharded):
    proxy, cluster, t = sharded
    k = cluster.keys_on("s1", 1)[0]
    # A keyed statement that returns a row whether or not the key exists.
    located = f"SELECT inet_server_port(), pg_is_in_recovery() FROM (SELECT 1) x LEFT JOIN {t['users']} u ON u.id = %s"
    with proxy.connect(autocommit=False) as c:
        assert where(c, located, (k,)) == (cluster.primary["s1"], False)
        c.execute(f"INSERT INTO {t['users']} (id, name) VALUES (%s, 'tx')", (k,))
        # Not visible elsewhere before COMMIT.
        assert cluster.conns["s1"].execute(f"SELECT count(*) FROM {t['users']} WHERE id = %s", (k,)).fetchone() == (0,)
        c.commit()
    assert cluster.conns["s1"].execute(f"SELECT name FROM {t['users']} WHERE id = %s", (k,)).fetchone() == ("tx",)
    # BEGIN READ ONLY may read on replicas.
    wait_replicated(cluster, "s1", f"SELECT 1 FROM {t['users']} WHERE id = %s", (k,))
    with proxy.connect() as c:
        c.execute("BEGIN READ ONLY")
        assert where(c, located, (k,)) == (cluster.replica["s1"], True)
        c.execute("COMMIT")


def test_a_transaction_that_writes_on_two_shards_rolls_back_on_both(sharded):
    # Commit over several shards is tests/test_two_phase.py's; here ROLLBACK undoes the writes everywhere.
    proxy, cluster, t = sharded
    a, b = cluster.keys_on("s0", 1)[0], cluster.keys_on("s1", 1)[0]
    with proxy.connect(autocommit=False) as c:
        c.execute(f"INSERT INTO {t['users']} (id, name) VALUES (%s, 'a')", (a,))
        assert c.execute(f"SELECT count(*) FROM {t['users']} WHERE id = %s", (b,)).fetchone() == (0,)
        c.execute(f"INSERT INTO {t['users']} (id, name) VALUES (%s, 'b')", (b,))
        assert c.execute(f"SELECT count(*) FROM {t['users']} WHERE id IN (%s, %s)", (a, b)).fetchone() == (2,)
        c.rollback()
    for conn in cluster.conns.values():
        assert conn.execute(f"SELECT count(*) FROM {t['users']}").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)


def test_multi_row_inserts_are_split_per_shard(sharded):
    proxy, cluster, t = sharded
    keys = cluster.keys_on("s0", 5) + cluster.keys_on("s1", 5)
    random.Random(3).shuffle(keys)
    values = ", ".join(f"({k}, 'k{k}')" for k in keys)
    with proxy.connect() as c:
        cur = c.execute(f"INSERT INTO {t['users']} (id, name) VALUES {values} RETURNING id")
        assert sorted(r[0] for r in cur.fetchall()) == sorted(keys)
        assert cur.rowcount == 10
        # Rows all on one shard go there alone.
        one = cluster.keys_on("s1", 3, start=10_000)
        c.execute(f"INSERT INTO {t['users']} (id, name) VALUES {', '.join(f'({k}, null)' for k in one)}")
    for name, conn in cluster.conns.items():
        got = sorted(r[0] for r in conn.execute(f"SELECT id FROM {t['users']}").fetchall())
        assert got == sorted(k for k in keys + one if cluster.shard_of(k) == name)


def test_keyless_writes_run_everywhere_and_report_the_total(sharded):
    proxy, cluster, t = sharded
    keys = cluster.keys_on("s0", 4) + cluster.keys_on("s1", 6)
    with proxy.connect() as c:
        c.execute(f"INSERT INTO {t['users']} (id, name) VALUES {', '.join(f'({k}, null)' for k in keys)}")
        assert c.execute(f"UPDATE {t['users']} SET name = 'all'").rowcount == 10
        assert c.execute(f"DELETE FROM {t['users']} WHERE name = 'all'").rowcount == 10


def test_refused_shapes_get_0A000_or_42P01(sharded):
    proxy, cluster, t = sharded
    with proxy.connect() as c:
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            c.execute(f"UPDATE {t['users']} SET id = 5 WHERE id = 1")
        assert "shard key" in str(e.value)
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            c.execute(f"SELECT * FROM {t['users']} u JOIN {t['orders']} o ON o.id = u.id")
        with pytest.raises(psycopg.errors.UndefinedTable) as e:
            c.execute("SELECT * FROM not_in_the_map")
        assert "not_in_the_map" in str(e.value)
        # The session goes on.
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_co_located_joins_run_on_the_owner(sharded):
    proxy, cluster, t = sharded
    k = cluster.keys_on("s1", 1)[0]
    with proxy.connect() as c:
        c.execute(f"INSERT INTO {t['users']} (id, name) VALUES (%s, 'u')", (k,))
        c.execute(f"INSERT INTO {t['orders']} (user_id, total) VALUES (%s, 10), (%s, 5)", (k, k))
        rows = c.execute(f"SELECT u.name, o.total, inet_server_port() FROM {t['users']} u JOIN {t['orders']} o "
                         f"ON o.user_id = u.id WHERE u.id = %s ORDER BY o.total", (k,)).fetchall()
        assert [(r[0], int(r[1])) for r in rows] == [("u", 5), ("u", 10)]
        assert {r[2] for r in rows} == {cluster.primary["s1"]}   # read-your-writes: the session wrote s1


def test_overrides_pick_the_shard(sharded):
    proxy, cluster, t = sharded
    with proxy.connect() as c:
        assert where(c, "/* shard: s1 */ SELECT inet_server_port(), pg_is_in_recovery()") == (cluster.replica["s1"], True)
        k = cluster.keys_on("s0", 1)[0]
        assert where(c, f"/* shard_key: {k} */ SELECT inet_server_port(), pg_is_in_recovery()") == \
            (cluster.replica["s0"], True)
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            c.execute("/* shard: nope */ SELECT 1")


def test_settings_follow_the_session_to_every_shard(sharded):
    proxy, cluster, t = sharded
    a, b = cluster.keys_on("s0", 1)[0], cluster.keys_on("s1", 1)[0]
    with proxy.connect() as c:
        c.execute("SET statement_timeout = 4321")
        c.execute("SET application_name = 'routed'")
        for k in (a, b, a, b):
            assert c.execute(f"SELECT current_setting('statement_timeout'), current_setting('application_name') "
                             f"FROM (SELECT 1) x LEFT JOIN {t['users']} ON id = %s", (k,)).fetchone() == ("4321ms", "routed")


def test_a_session_reads_its_own_writes_while_others_use_replicas(sharded):
    """Read-your-writes at the level routing can see without the lag monitor: after a write on a shard the
    session reads that shard from its primary."""
    proxy, cluster, t = sharded
    k = cluster.keys_on("s0", 1)[0]
    with proxy.connect() as writer, proxy.connect() as other:
        for i in range(50):
            writer.execute(f"INSERT INTO {t['users']} (id, name) VALUES (%s, %s) ON CONFLICT (id) "
                           f"DO UPDATE SET name = excluded.name", (k, f"w{i}"))
            assert writer.execute(f"SELECT name FROM {t['users']} WHERE id = %s", (k,)).fetchone() == (f"w{i}",)
        assert where(other, f"SELECT inet_server_port(), pg_is_in_recovery() FROM {t['users']} WHERE id = %s", (k,)) \
            == (cluster.replica["s0"], True)


def test_statements_without_a_key_skip_a_shard_that_owns_no_slots(proxy_factory):
    """A shard just added to the map (no slots, no tables yet — before a rebalance) must not make keyless
    reads and writes fail: they run on the shards that own slots. Its server here is s1's, database
    `postgres`, where the table does not exist; a statement sent there fails with 42P01."""
    table = f"rt{random.randrange(1 << 30):x}_empty_shard"

    def mutate(m):
        m["tables"][table] = {"shard_key": "id", "type": "bigint"}
        m.pop("unlisted_tables", None)
        extra = dict(m["shards"][1], name="s_new", replicas=[])
        extra["primary"] = extra["primary"].rsplit("/", 1)[0] + "/postgres"
        m["shards"].append(extra)

    proxy = proxy_factory.start(mutate=mutate, replicas=True)
    cluster = Cluster({**proxy.map, "shards": proxy.map["shards"][:2]})
    for conn in cluster.conns.values():
        conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, name text)")
    try:
        keys = cluster.keys_on("s0", 3) + cluster.keys_on("s1", 4)
        with proxy.connect() as c:
            for k in keys:
                c.execute(f"INSERT INTO {table} (id, name) VALUES (%s, 'n')", (k,))
            assert c.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == len(keys)
            assert c.execute(f"SELECT id FROM {table} ORDER BY id").fetchall() == [(k,) for k in sorted(keys)]
            assert c.execute(f"UPDATE {table} SET name = 'all'").rowcount == len(keys)
            # The new shard is in the map: a statement naming it by override still goes there.
            with pytest.raises(psycopg.errors.UndefinedTable):
                c.execute(f"/* shard: s_new */ SELECT count(*) FROM {table}")
    finally:
        for conn in cluster.conns.values():
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        cluster.close()
