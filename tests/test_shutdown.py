"""Graceful shutdown: SIGTERM stops accepting, lets open transactions finish (bounded), exits 0."""

from __future__ import annotations

import signal
import socket
import time

import psycopg
import pytest

from sgtest import wait_until


def refuses_connections(proxy) -> bool:
    try:
        s = socket.create_connection((proxy.host, proxy.port), timeout=1)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    s.close()
    return False


def test_sigterm_waits_for_open_transaction_then_exits_0(proxy, direct, table_name):
    direct.execute(f"CREATE TABLE {table_name} (id int)")
    in_tx = proxy.connect(autocommit=False)
    idle = proxy.connect()
    try:
        in_tx.execute(f"INSERT INTO {table_name} VALUES (1)")
        assert idle.execute("SELECT 1").fetchone() == (1,)

        proxy.signal(signal.SIGTERM)
        proxy.stopped_by_test = True
        wait_until(lambda: refuses_connections(proxy), 5, message="the proxy to stop accepting connections")
        with pytest.raises(psycopg.OperationalError):
            proxy.connect()

        # The idle client is told to go; the one in a transaction is still being waited for.
        with pytest.raises(psycopg.OperationalError):
            idle.execute("SELECT 1")
        time.sleep(0.5)
        assert proxy.alive(), "the proxy exited while a client still had a transaction open"

        in_tx.execute(f"INSERT INTO {table_name} VALUES (2)")
        in_tx.commit()  # must really commit
        start = time.monotonic()
        assert proxy.wait(timeout=15) == 0, proxy.log()
        assert time.monotonic() - start < 8, "the proxy kept waiting after the last transaction ended"
    finally:
        in_tx.close()
        idle.close()
    assert direct.execute(f"SELECT array_agg(id ORDER BY id) FROM {table_name}").fetchone() == ([1, 2],)
    assert "Fatal error" not in proxy.log()


def test_sigterm_drain_is_bounded(proxy, direct, table_name):
    """A client that never ends its transaction does not keep the proxy alive forever; its uncommitted
    work is rolled back."""
    direct.execute(f"CREATE TABLE {table_name} (id int)")
    stuck = proxy.connect(autocommit=False)
    try:
        stuck.execute(f"INSERT INTO {table_name} VALUES (1)")
        start = time.monotonic()
        proxy.signal(signal.SIGTERM)
        proxy.stopped_by_test = True
        assert proxy.wait(timeout=30) == 0, proxy.log()
        assert time.monotonic() - start < 25
        with pytest.raises(psycopg.OperationalError):
            stuck.execute(f"INSERT INTO {table_name} VALUES (2)")
            stuck.commit()
    finally:
        stuck.close()
    assert direct.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (0,)
    wait_until(lambda: not direct.execute(
        "SELECT 1 FROM pg_stat_activity WHERE state LIKE 'idle in transaction%%' AND query LIKE %s",
        (f"%{table_name}%",)).fetchone(), 5, message="the backend transaction to be gone")


def test_sigint_with_idle_clients_exits_0_promptly(proxy):
    c = proxy.connect()
    try:
        assert c.execute("SELECT 1").fetchone() == (1,)
        start = time.monotonic()
        proxy.signal(signal.SIGINT)
        proxy.stopped_by_test = True
        assert proxy.wait(timeout=15) == 0, proxy.log()
        assert time.monotonic() - start < 5
        with pytest.raises(psycopg.OperationalError):
            c.execute("SELECT 1")
    finally:
        c.close()
