"""Small helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import threading
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


def run_threads(target, count: int, timeout: float = 45) -> list:
    """Runs target(i) in `count` threads; returns their exceptions (empty when all succeeded)."""
    errors: list = []
    lock = threading.Lock()

    def wrap(i):
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - collected and reported
            with lock:
                errors.append((i, e))

    threads = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [i for i, t in enumerate(threads) if t.is_alive()]
    assert not stuck, f"threads {stuck} still running after {timeout}s"
    return errors


def owned_slots(shard_map: dict) -> list[set[int]]:
    """The slots each shard of a shard map owns, in the order of its "shards"."""
    out = []
    for shard in shard_map["shards"]:
        slots: set[int] = set()
        for part in str(shard_map["slots"][shard["name"]]).split(","):
            lo, _, hi = part.partition("-")
            slots.update(range(int(lo), int(hi or lo) + 1))
        out.append(slots)
    return out
