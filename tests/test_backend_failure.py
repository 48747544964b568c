"""A backend that fails turns into an ErrorResponse for the client it served, and only for that client."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

import pgraw
from sgtest import wait_until


def find_active_pid(direct, tag: str) -> int:
    row = wait_until(lambda: direct.execute(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND state = 'active' AND pid <> pg_backend_pid()",
        (f"%{tag}%",)).fetchone(), 5, message=f"a backend running {tag}")
    return row[0]


def run_in_thread(fn):
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - inspected by the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def test_terminated_backend_mid_statement_errors_that_client_only(proxy, direct):
    victim = proxy.connect()
    bystanders = [proxy.connect() for _ in range(3)]
    try:
        tag = "victim_sleep_autocommit"
        t, box = run_in_thread(lambda: victim.execute(f"SELECT pg_sleep(10) AS {tag}").fetchone())
        busy = [run_in_thread(lambda b=b: b.execute("SELECT pg_sleep(1), 'bystander'").fetchone()[1])
                for b in bystanders]
        pid = find_active_pid(direct, tag)
        start = time.monotonic()
        assert direct.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        t.join(5)
        assert not t.is_alive(), "the client of the terminated backend got no answer"
        assert time.monotonic() - start < 5
        err = box.get("error")
        assert isinstance(err, psycopg.Error), box
        assert err.sqlstate in ("08006", "57P01"), (err.sqlstate, str(err))
        # The client goes on (a new backend serves it), and it never ran on the dead backend again.
        assert victim.execute("SELECT 'next'").fetchone() == ("next",)
        assert victim.execute("SELECT pg_backend_pid()").fetchone()[0] != pid
        for bt, bbox in busy:
            bt.join(5)
            assert bbox == {"value": "bystander"}, bbox
        for b in bystanders:
            assert b.execute("SELECT 1").fetchone() == (1,)
    finally:
        victim.close()
        for b in bystanders:
            b.close()


@pytest.mark.parametrize("while_running", [True, False], ids=["mid_statement", "idle_in_transaction"])
def test_terminated_backend_inside_transaction_closes_client(proxy, direct, table_name, while_running):
    """Losing the backend inside BEGIN...: the client is closed with FATAL; a later COMMIT can never
    appear to succeed and the rows are not there."""
    direct.execute(f"CREATE TABLE {table_name} (id int)")
    victim = proxy.connect(autocommit=False)
    bystander = proxy.connect()
    try:
        victim.execute(f"INSERT INTO {table_name} VALUES (1)")
        if while_running:
            tag = "victim_sleep_in_tx"
            t, box = run_in_thread(lambda: victim.execute(f"SELECT pg_sleep(10) AS {tag}").fetchone())
            pid = find_active_pid(direct, tag)
        else:
            pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]
        direct.execute("SELECT pg_terminate_backend(%s)", (pid,))
        if while_running:
            t.join(5)
            assert not t.is_alive()
            err = box.get("error")
            assert isinstance(err, psycopg.Error), box
            assert err.sqlstate in ("08006", "57P01"), (err.sqlstate, str(err))
        # Whatever the client sends next, and however soon, never commits anything.
        with pytest.raises(psycopg.Error) as later:
            victim.execute(f"INSERT INTO {table_name} VALUES (2)")
            victim.commit()
        print("error seen by the client after losing its backend:", repr(later.value))
        if not (victim.closed or victim.pgconn.status == psycopg.pq.ConnStatus.BAD):
            # psycopg may notice the closed socket before libpq marks the connection bad
            # ("connection socket closed"): the connection must still be unusable.
            with pytest.raises(psycopg.OperationalError):
                victim.execute("SELECT 1")
        assert direct.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (0,)
        assert bystander.execute("SELECT 'fine'").fetchone() == ("fine",)
        with proxy.connect() as fresh:
            assert fresh.execute("SELECT 'fresh'").fetchone() == ("fresh",)
    finally:
        victim.close()
        bystander.close()


def test_idle_pooled_backends_terminated_are_replaced(proxy_factory, direct):
    proxy = proxy_factory.start(pool={"size": 2})
    clients = [proxy.connect() for _ in range(4)]
    try:
        for c in clients:
            c.execute("SELECT 1")
        pids = [a["pid"] for a in proxy.backend_activity(direct)]
        assert pids, "the proxy has no backend connections to terminate"
        for pid in pids:
            direct.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_until(lambda: not set(pids) & {a["pid"] for a in proxy.backend_activity(direct)}, 5,
                   message="the proxy to drop the terminated backends")
        for i, c in enumerate(clients):
            assert c.execute("SELECT %s::int", (i,)).fetchone() == (i,)
            assert c.execute("SELECT pg_backend_pid()").fetchone()[0] not in pids
    finally:
        for c in clients:
            c.close()


def test_unreachable_backend_refuses_login_with_clear_fatal(proxy_factory):
    def dead_backend(m):
        # Port 1 on loopback: nothing listens there.
        m["shards"][0]["primary"] = "postgresql://postgres@127.0.0.1:1/app"

    proxy = proxy_factory.start(mutate=dead_backend, wait="listen")
    start = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as info:
        proxy.connect()
    assert time.monotonic() - start < 10
    msg = str(info.value)
    assert "FATAL" in msg and "127.0.0.1:1" in msg, msg
    raw = proxy.raw()
    try:
        with pytest.raises(pgraw.LoginRefused) as refused:
            raw.login()
        assert refused.value.fields["S"] == "FATAL"
        assert refused.value.fields["C"] in ("08006", "08001", "57P03"), refused.value.fields
    finally:
        raw.close()
    assert proxy.alive()
