"""Transaction pooling: a backend per transaction, shared between many clients, and session state that
follows each client (and only that client) across pooled backends."""

from __future__ import annotations

import asyncio
import threading
import time

import asyncpg
import psycopg
import pytest

import pgraw
from sgtest import PEERS, run_threads, wait_until


def backend_pid(conn) -> int:
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def test_backend_pid_is_stable_within_a_transaction(proxy_factory, direct, table_name):
    proxy = proxy_factory.start(pool={"size": 4})
    direct.execute(f"CREATE TABLE {table_name} (client int, n int)")
    outside_pids: dict[int, set[int]] = {}

    def client(i):
        with proxy.connect() as c:
            outside_pids[i] = set()
            for n in range(5):
                with c.transaction():
                    pids = {backend_pid(c)}
                    c.execute(f"INSERT INTO {table_name} VALUES (%s, %s)", (i, n))
                    c.execute("SELECT pg_sleep(0.01)")
                    pids.add(backend_pid(c))
                    # Uncommitted rows of this transaction are visible to it: same backend.
                    assert c.execute(f"SELECT count(*) FROM {table_name} WHERE client = %s AND n = %s",
                                     (i, n)).fetchone() == (1,)
                    pids.add(backend_pid(c))
                    assert len(pids) == 1, f"client {i}: transaction ran on backends {pids}"
                outside_pids[i].add(backend_pid(c))

    errors = run_threads(client, 8)
    assert not errors, errors
    assert direct.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (40,)
    # Pooling really happened: 8 busy clients on 4 backends, so some client used more than one backend.
    assert any(len(p) > 1 for p in outside_pids.values()), outside_pids


def test_failed_transaction_keeps_its_backend_until_rollback(proxy_factory, direct, table_name):
    """After an error inside BEGIN the transaction is aborted (status 'E'): the client must stay on that
    backend and see 25P02 until it rolls back, not be moved to a fresh backend where statements succeed."""
    proxy = proxy_factory.start(pool={"size": 2})
    direct.execute(f"CREATE TABLE {table_name} (id int)")
    with proxy.connect() as c, proxy.connect() as other:
        c.execute("BEGIN")
        pid = backend_pid(c)
        c.execute(f"INSERT INTO {table_name} VALUES (1)")
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1 / 0")
        for _ in range(3):
            assert other.execute("SELECT 1").fetchone() == (1,)
            with pytest.raises(psycopg.errors.InFailedSqlTransaction):
                c.execute(f"INSERT INTO {table_name} VALUES (2)")
        c.execute("ROLLBACK")
        assert c.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (0,)
        # The backend went back to the pool clean.
        activity = {a["pid"]: a["state"] for a in proxy.backend_activity(direct)}
        assert activity.get(pid) in (None, "idle"), activity


def test_twenty_clients_share_a_pool_of_two(proxy_factory, direct, table_name):
    proxy = proxy_factory.start(pool={"size": 2, "checkout_timeout_ms": 20000})
    direct.execute(f"CREATE TABLE {table_name} (client int, n int, pid int)")
    conns = [proxy.connect() for _ in range(20)]
    try:
        def client(i):
            c = conns[i]
            for n in range(10):
                with c.transaction():
                    pid = backend_pid(c)
                    c.execute(f"INSERT INTO {table_name} VALUES (%s, %s, %s)", (i, n, pid))
                    c.execute(f"UPDATE {table_name} SET n = n + 100 WHERE client = %s AND n = %s", (i, n))
                    assert backend_pid(c) == pid

        errors = run_threads(client, 20)
        assert not errors, errors
    finally:
        for c in conns:
            c.close()
    count, min_n, pids = direct.execute(
        f"SELECT count(*), min(n), count(DISTINCT pid) FROM {table_name}").fetchone()
    assert (count, min_n) == (200, 100)
    assert pids <= 2, f"20 clients on a pool of size 2 ran on {pids} backend connections"


def test_pool_size_bounds_backend_connections(proxy_factory, direct):
    proxy = proxy_factory.start(pool={"size": 1, "checkout_timeout_ms": 20000})
    seen_ports: set[int] = set()
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            seen_ports.update(proxy.backend_ports())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        def client(i):
            with proxy.connect() as c:
                for _ in range(5):
                    with c.transaction():
                        c.execute("SELECT pg_sleep(0.02)")

        errors = run_threads(client, 6)
        assert not errors, errors
        seen_ports.update(proxy.backend_ports())
    finally:
        stop.set()
        sampler.join(5)
    assert 1 <= len(seen_ports) <= 1, f"pool size 1 but the proxy opened {len(seen_ports)} backend connections"


def test_client_disconnect_mid_transaction_rolls_back(proxy_factory, direct, table_name):
    """Psycopg closing (Terminate) and a raw socket vanishing, both inside a transaction: the backend must
    not keep the transaction open, the rows are not visible, and the pool keeps serving."""
    proxy = proxy_factory.start(pool={"size": 1})
    direct.execute(f"CREATE TABLE {table_name} (id int, who text)")

    # 1. psycopg: BEGIN; INSERT; close() -> Terminate while the transaction is open.
    c = proxy.connect(autocommit=False)
    c.execute(f"INSERT INTO {table_name} VALUES (1, 'psycopg')")
    pid1 = backend_pid(c)
    c.close()

    # 2. raw socket: BEGIN; INSERT; close the socket without Terminate.
    raw = proxy.raw_login()
    raw.query("BEGIN")
    raw.query(f"INSERT INTO {table_name} VALUES (2, 'raw')")
    pid2 = int(pgraw.data_rows(raw.query("SELECT pg_backend_pid()"))[0][0])
    raw.close()

    def no_open_transaction():
        stuck = direct.execute(
            "SELECT pid, state FROM pg_stat_activity WHERE pid = ANY(%s) AND state LIKE 'idle in transaction%%'",
            ([pid1, pid2],)).fetchall()
        return not stuck

    wait_until(no_open_transaction, 5, message="the backends of the vanished clients to leave their transactions")
    assert direct.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (0,)
    assert not [a for a in proxy.backend_activity(direct) if a["state"].startswith("idle in transaction")]
    # The pool still serves, with clean backends.
    with proxy.connect() as c2:
        for i in range(10):
            assert c2.execute("SELECT %s::int, txid_current_if_assigned() IS NULL", (i,)).fetchone() == (i, True)
        assert c2.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (0,)


def _defaults(direct) -> dict[str, str]:
    with psycopg.connect(direct.info.dsn, autocommit=True) as fresh:
        return {name: fresh.execute(f"SHOW {name}").fetchone()[0] for name in ("TimeZone", "DateStyle")}


def test_session_parameters_follow_their_client_only(proxy_factory, direct):
    proxy = proxy_factory.start(pool={"size": 1})
    defaults = _defaults(direct)
    assert defaults["TimeZone"] != "Asia/Tokyo" and defaults["DateStyle"] != "SQL, DMY"

    def settings(conn):
        return conn.execute(
            "SELECT current_setting('application_name'), current_setting('TimeZone'), "
            "current_setting('DateStyle'), pg_backend_pid()").fetchone()

    a = proxy.connect()
    bs = [proxy.connect(application_name=f"b{i}") for i in range(PEERS)]
    try:
        a.execute("SET application_name = 'a'")
        a.execute("SET TimeZone = 'Asia/Tokyo'")
        a.execute("SET DateStyle = 'SQL, DMY'")
        a_pid = settings(a)[3]
        shared = 0
        for round_ in range(3):
            for i, b in enumerate(bs):
                app, tz, ds, pid = settings(b)
                assert (app, tz, ds) == (f"b{i}", defaults["TimeZone"], defaults["DateStyle"]), \
                    f"client b{i} sees {(app, tz, ds)} on backend {pid} (client a set Asia/Tokyo on {a_pid})"
                shared += pid == a_pid
                # A's values survive the other clients' use of its backend.
                assert settings(a)[:3] == ("a", "Asia/Tokyo", "SQL, DMY")
                assert a.execute("SELECT '2024-03-05'::date::text, "
                                 "to_char('2024-01-01 00:00+00'::timestamptz, 'HH24 TZ')").fetchone() == \
                    ("05/03/2024", "09 JST")
        assert shared > 0, "no B client ran on client A's backend; the test proved nothing"
        # RESET brings A back to the server defaults, on any backend.
        a.execute("RESET TimeZone")
        assert settings(a)[1] == defaults["TimeZone"]
    finally:
        a.close()
        for b in bs:
            b.close()


def test_startup_parameters_are_honored(proxy_factory, direct):
    proxy = proxy_factory.start(pool={"size": 1})
    defaults = _defaults(direct)
    with proxy.connect(application_name="from-startup", client_encoding="LATIN1") as c, \
            proxy.connect() as plain:
        for _ in range(3):
            assert c.execute("SELECT current_setting('application_name'), current_setting('client_encoding')"
                             ).fetchone() == ("from-startup", "LATIN1")
            # Characters really go through the LATIN1 conversion both ways.
            assert c.execute("SELECT %s::text || 'é', length('é')", ("ü",)).fetchone() == ("üé", 1)
            assert plain.execute("SELECT current_setting('application_name'), current_setting('client_encoding')"
                                 ).fetchone() == ("", "UTF8")
        # The backend serving the client carries its application_name while it does.
        row = c.execute("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()
        assert row == ("from-startup",)

    async def asyncpg_startup():
        # asyncpg puts server_settings into the startup packet.
        conns = [await asyncpg.connect(host=proxy.host, port=proxy.port, user="postgres", database="app", ssl=False,
                                       statement_cache_size=0, timeout=5,
                                       server_settings={"TimeZone": "Asia/Tokyo", "DateStyle": "SQL, DMY",
                                                        "application_name": "apg"})]
        conns += [await asyncpg.connect(host=proxy.host, port=proxy.port, user="postgres", database="app",
                                        ssl=False, statement_cache_size=0, timeout=5) for _ in range(PEERS)]
        try:
            for _ in range(3):
                assert await conns[0].fetchval("SELECT current_setting('TimeZone')") == "Asia/Tokyo"
                assert await conns[0].fetchval("SELECT current_setting('DateStyle')") == "SQL, DMY"
                assert await conns[0].fetchval("SELECT current_setting('application_name')") == "apg"
                for other in conns[1:]:
                    assert await other.fetchval("SELECT current_setting('TimeZone')") == defaults["TimeZone"]
                    assert await other.fetchval("SELECT current_setting('DateStyle')") == defaults["DateStyle"]
        finally:
            for x in conns:
                await x.close()

    asyncio.run(asyncio.wait_for(asyncpg_startup(), 30))


def test_options_startup_parameter_is_applied_to_its_client_only(proxy_factory, direct):
    """libpq's `options` (PGOPTIONS, '-c name=value ...') is applied like PostgreSQL applies it, follows the
    client across pooled backends, and never reaches another client."""
    proxy = proxy_factory.start(pool={"size": 1})
    defaults = _defaults(direct)
    expr = "SELECT current_setting('TimeZone'), current_setting('statement_timeout'), current_setting('search_path')"
    with proxy.connect(options="-c TimeZone=Asia/Tokyo -c statement_timeout=4321 -csearch_path=pg_catalog") as c:
        others = [proxy.connect() for _ in range(PEERS)]
        try:
            c_pid = backend_pid(c)
            assert any(backend_pid(o) == c_pid for o in others), "no client shares the backend"
            for _ in range(3):
                assert c.execute(expr).fetchone() == ("Asia/Tokyo", "4321ms", "pg_catalog")
                for o in others:
                    assert o.execute(expr).fetchone() == (defaults["TimeZone"], "0", '"$user", public')
        finally:
            for o in others:
                o.close()


UNREPORTED_SETTINGS = {
    # id: (statement run by client A, expression, value A expects afterwards, default every other client expects)
    "search_path": ("SET search_path = pg_catalog", "current_setting('search_path')", "pg_catalog", '"$user", public'),
    "statement_timeout": ("SET statement_timeout = 1234", "current_setting('statement_timeout')", "1234ms", "0"),
    "role": ("SET ROLE sg_md5", "current_user", "sg_md5", "postgres"),
    "session_authorization": ("SET SESSION AUTHORIZATION sg_md5", "session_user", "sg_md5", "postgres"),
}


@pytest.mark.parametrize("setting", sorted(UNREPORTED_SETTINGS))
def test_unreported_settings_follow_their_client_and_never_leak(proxy_factory, setting):
    """SET of a parameter PostgreSQL does not report is replayed on every backend that serves its client
    and reset before a backend serves another: on a pool of one backend, client A keeps its setting while
    every other client, served by the same backend in between, sees the default."""
    statement, expr, mine, default = UNREPORTED_SETTINGS[setting]
    proxy = proxy_factory.start(pool={"size": 1}, env={"SHARDGATE_THREADS": "1"})
    a = proxy.connect()
    bs = [proxy.connect() for _ in range(PEERS)]
    try:
        a.execute(statement)
        a_pid = backend_pid(a)
        for _ in range(3):
            for b in bs:
                assert b.execute(f"SELECT {expr}").fetchone() == (default,), f"after client A ran {statement!r}"
                assert backend_pid(b) == a_pid, "one backend serves everyone"
            assert a.execute(f"SELECT {expr}").fetchone() == (mine,)
        # Inside a transaction too, and after RESET the client is back to the default.
        with a.transaction():
            assert a.execute(f"SELECT {expr}").fetchone() == (mine,)
        a.execute(f"RESET {setting.replace('_', ' ') if setting == 'session_authorization' else setting}")
        assert a.execute(f"SELECT {expr}").fetchone() == (default,)
        a.execute(statement)
    finally:
        a.close()
        for b in bs:
            b.close()
    with proxy.connect() as later:  # a client that connects after A left
        for _ in range(PEERS):
            assert later.execute(f"SELECT {expr}").fetchone() == (default,)


def test_a_setting_rolled_back_with_its_transaction_is_forgotten(proxy_factory):
    """SET inside a transaction is undone by ROLLBACK (PostgreSQL's rule) and kept by COMMIT, on whatever
    backend serves the client next."""
    proxy = proxy_factory.start(pool={"size": 1}, env={"SHARDGATE_THREADS": "1"})
    with proxy.connect() as a, proxy.connect() as b:
        a.execute("BEGIN")
        a.execute("SET search_path = pg_catalog")
        a.execute("ROLLBACK")
        b.execute("SELECT 1")
        assert a.execute("SELECT current_setting('search_path')").fetchone() == ('"$user", public',)
        a.execute("BEGIN")
        a.execute("SET statement_timeout = 4242")
        a.execute("COMMIT")
        assert b.execute("SELECT current_setting('statement_timeout')").fetchone() == ("0",)
        assert a.execute("SELECT current_setting('statement_timeout')").fetchone() == ("4242ms",)
        # A SET that fails changes nothing.
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            a.execute("SET statement_timeout = 'soon'")
        assert a.execute("SELECT current_setting('statement_timeout')").fetchone() == ("4242ms",)


def test_temp_tables_and_advisory_locks_stay_with_their_client(proxy_factory):
    """Temporary tables and session advisory locks live as long as the session: the client that makes them
    keeps its backend, so another client can neither see its temp table nor share its lock."""
    proxy = proxy_factory.start(pool={"size": 2}, env={"SHARDGATE_THREADS": "1"})
    a = proxy.connect()
    bs = [proxy.connect() for _ in range(PEERS)]
    try:
        a.execute("CREATE TEMP TABLE sg_scratch (n int)")
        a.execute("INSERT INTO sg_scratch VALUES (1), (2)")
        assert a.execute("SELECT pg_try_advisory_lock(424242)").fetchone() == (True,)
        for b in bs:
            assert b.execute("SELECT to_regclass('sg_scratch')").fetchone() == (None,)
            # The same session would get the lock; another cannot. (The transaction-level probe does not
            # pin B's backend, as a session-level lock would.)
            assert b.execute("SELECT pg_try_advisory_xact_lock(424242)").fetchone() == (False,)
        assert a.execute("SELECT count(*) FROM sg_scratch").fetchone() == (2,)
    finally:
        a.close()
        for b in bs:
            b.close()
    with proxy.connect() as later:  # A's backend was closed with A: its lock goes with it (once the server sees it)
        wait_until(lambda: later.execute("SELECT pg_try_advisory_lock(424242)").fetchone() == (True,), 5,
                   message="the lock of the closed session to be released")
        later.execute("SELECT pg_advisory_unlock_all()")


def test_session_holding_state_is_closed_when_its_backend_dies(proxy_factory, direct):
    """A pinned session (here: a temporary table lives on its backend) cannot carry on on another backend
    without its state: it is closed, like a direct connection whose server went away."""
    proxy = proxy_factory.start(pool={"size": 2}, env={"SHARDGATE_THREADS": "1"})
    a = proxy.connect()
    other = proxy.connect()
    try:
        a.execute("CREATE TEMP TABLE t_pinned (x int)")
        pid = backend_pid(a)
        direct.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            a.execute("SELECT count(*) FROM t_pinned")
        # Not just that statement: the session must not go on without its table on a fresh backend.
        with pytest.raises(psycopg.OperationalError):
            got = a.execute("SELECT 1").fetchone()
            pytest.fail(f"the session went on without its state: {got}")
        assert other.execute("SELECT 1").fetchone() == (1,)
    finally:
        a.close()
        other.close()


def test_settings_survive_the_loss_of_an_idle_backend(proxy_factory, direct):
    """Settings are replayed, not pinned: when the backend that served a client dies between statements,
    the next statement runs on a fresh backend with the client's settings."""
    proxy = proxy_factory.start(pool={"size": 2}, env={"SHARDGATE_THREADS": "1"})
    with proxy.connect() as a:
        a.execute("SET search_path = pg_catalog")
        pid = backend_pid(a)
        direct.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_until(lambda: not direct.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchall(),
                   timeout=10, message="the backend to exit")
        assert a.execute("SELECT current_setting('search_path')").fetchone() == ("pg_catalog",)
        assert backend_pid(a) != pid


def test_checkout_timeout_gives_error_and_session_survives(proxy_factory):
    proxy = proxy_factory.start(pool={"size": 1, "checkout_timeout_ms": 300})
    holders = [proxy.connect() for _ in range(PEERS)]
    timed_out = []
    try:
        for h in holders:
            try:
                h.execute("BEGIN")
                h.execute("SELECT 1")
            except psycopg.Error as e:
                timed_out.append((h, e))
        assert timed_out, "every client got a backend; the pool is not bounded"
        h, e = timed_out[0]
        assert e.sqlstate == "53300", e
        assert "no backend connection" in str(e) and "300 ms" in str(e), str(e)
        for other in holders:
            if other not in [t[0] for t in timed_out]:
                other.execute("COMMIT")
        # The error failed the client's transaction, as any error does in PostgreSQL; after ROLLBACK the
        # client is not broken.
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            h.execute("SELECT 'in the failed transaction'")
        h.execute("ROLLBACK")
        assert h.execute("SELECT 'ok'").fetchone() == ("ok",)
    finally:
        for x in holders:
            x.close()


def test_large_results_and_messages_stream_through(proxy_factory):
    proxy = proxy_factory.start(pool={"size": 1})
    with proxy.connect() as c, proxy.connect() as other:
        # 24 rows of 1 MiB each, then 200k small rows.
        rows = c.execute("SELECT i, repeat(chr(65 + i % 26), 1 << 20) FROM generate_series(1, 24) i").fetchall()
        assert [len(r[1]) for r in rows] == [1 << 20] * 24
        assert all(r[1] == chr(65 + r[0] % 26) * (1 << 20) for r in rows)
        assert c.execute("SELECT count(*), sum(length(x)) FROM (SELECT i::text AS x FROM generate_series(1, 200000) i) s"
                         ).fetchone() == (200000, sum(len(str(i)) for i in range(1, 200001)))
        n = sum(1 for _ in c.cursor().stream("SELECT i FROM generate_series(1, 200000) i"))
        assert n == 200000
        # A 5 MB parameter (one large Bind message from the client).
        big = "x" * (5 << 20)
        assert c.execute("SELECT length(%s::text), md5(%s::text) = md5(repeat('x', 5 << 20))", (big, big)
                         ).fetchone() == (5 << 20, True)
        assert other.execute("SELECT 1").fetchone() == (1,)


def test_pipelined_simple_queries_across_a_transaction(proxy_factory, direct, table_name):
    """Several Query messages sent at once, a transaction among them: each gets its answer, in order,
    from the backend that holds the transaction."""
    proxy = proxy_factory.start(pool={"size": 1})
    direct.execute(f"CREATE TABLE {table_name} (id int)")
    c = proxy.raw_login()
    try:
        c.send(b"".join(pgraw.query_message(q) for q in (
            "BEGIN", f"INSERT INTO {table_name} VALUES (1)", "SELECT pg_backend_pid()",
            f"INSERT INTO {table_name} VALUES (2)", "SELECT pg_backend_pid()", "COMMIT",
            f"SELECT count(*) FROM {table_name}", "SELECT 1/0", "SELECT 'after error'")))
        answers = [c.read_until_ready() for _ in range(9)]
    finally:
        c.close()
    statuses = [a[-1].payload for a in answers]
    assert statuses == [b"T", b"T", b"T", b"T", b"T", b"I", b"I", b"I", b"I"], statuses
    pids = [pgraw.data_rows(answers[i]) for i in (2, 4)]
    assert pids[0] == pids[1], pids
    assert pgraw.data_rows(answers[6]) == [["2"]]
    assert pgraw.errors(answers[7])[0]["C"] == "22012"
    assert pgraw.data_rows(answers[8]) == [["after error"]]


def test_invalid_startup_parameters_are_refused_like_postgresql(proxy):
    async def run():
        for settings, sqlstate in (({"DateStyle": "bogus"}, "22023"), ({"no_such_param": "x"}, "42704")):
            with pytest.raises(asyncpg.PostgresError) as info:
                await asyncpg.connect(host=proxy.host, port=proxy.port, user="postgres", database="app", ssl=False,
                                      statement_cache_size=0, server_settings=settings, timeout=5)
            assert info.value.sqlstate == sqlstate, (settings, info.value.sqlstate, str(info.value))
        # A startup parameter PostgreSQL does not report back (search_path) is honored too.
        c = await asyncpg.connect(host=proxy.host, port=proxy.port, user="postgres", database="app", ssl=False,
                                  statement_cache_size=0, server_settings={"search_path": "pg_catalog"}, timeout=5)
        try:
            for _ in range(3):
                assert await c.fetchval("SELECT current_setting('search_path')") == "pg_catalog"
        finally:
            await c.close()

    asyncio.run(asyncio.wait_for(run(), 30))


def test_idle_backends_are_closed_after_idle_timeout(proxy_factory, direct):
    proxy = proxy_factory.start(pool={"size": 2, "idle_timeout_ms": 300})
    with proxy.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
        assert proxy.backend_ports(), "no backend connection after a statement"
        wait_until(lambda: not proxy.backend_ports(), 5, message="idle backends to be closed after 300 ms")
        # and a new one is opened on demand
        assert c.execute("SELECT 2").fetchone() == (2,)
        # a transaction that is idle for longer than idle_timeout keeps its backend
        with c.transaction():
            pid = backend_pid(c)
            time.sleep(1.0)
            assert backend_pid(c) == pid
