"""Small helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import time

import psycopg
import pytest

# The proxy runs one event loop per CPU core and accepts clients onto them round robin; each loop has its
# own backend pool today. Tests that need two clients on the same pooled backend open PEERS clients, so
# that some of them land on every loop.
LOOPS = os.cpu_count() or 2
PEERS = max(4, LOOPS + 2)


def wait_until(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    """Polls `predicate` until it returns a truthy value; returns it, or fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}", pytrace=False)
        time.sleep(interval)


def drop_tables(direct, *names: str) -> None:
    """Drops test tables without hanging on a lock that a misbehaving backend may still hold."""
    try:
        direct.execute("SET lock_timeout = '5s'")
        direct.execute(f"DROP TABLE IF EXISTS {', '.join(names)}")
    except psycopg.Error as e:
        print(f"warning: could not drop {names}: {e}")
