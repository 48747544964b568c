"""Pausing slots (the admin port's POST /slots/pause, used by a rebalance's cutover): statements on the paused
slots queue — they are not refused — until resume; statements on other slots never wait; the pause waits for
transactions in flight on the slots."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request

import psycopg

from sgtest import wait_until

TOKEN = "pause-test-token"
SLOT_SQL = "((hashint8extended(%s::bigint, 8816678312871386365) & 1023) + 227) & 1023"


def post(proxy, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(proxy.admin_url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_statements_on_paused_slots_queue_and_others_go_on(proxy_factory):
    table = f"pz_{random.randrange(1 << 30):x}"

    def mutate(m):
        m["tables"][table] = {"shard_key": "id", "type": "bigint"}

    proxy = proxy_factory.start(mutate=mutate, env={"SHARDGATE_ADMIN_TOKEN": TOKEN})
    with proxy.connect() as c:
        c.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, v int)")
        slot_a = c.execute(f"SELECT {SLOT_SQL}", (1,)).fetchone()[0]
        other = next(k for k in range(2, 1000) if c.execute(f"SELECT {SLOT_SQL}", (k,)).fetchone()[0] != slot_a)
        c.execute(f"INSERT INTO {table} (id, v) VALUES (1, 0), ({other}, 0)")
    try:
        status, body = post(proxy, "/slots/pause", {"slots": str(slot_a), "timeout_ms": 5000})
        assert status == 200 and body.get("drained") is True, body
        done = threading.Event()
        errors: list[Exception] = []

        def write_paused():
            try:
                with proxy.connect() as w:
                    w.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
            done.set()

        started = time.monotonic()
        t = threading.Thread(target=write_paused)
        t.start()
        # The other slot is not held up, reads or writes.
        with proxy.connect() as c:
            for _ in range(20):
                c.execute(f"UPDATE {table} SET v = v + 1 WHERE id = %s", (other,))
                assert c.execute(f"SELECT v FROM {table} WHERE id = %s", (other,)).fetchone() is not None
            assert c.execute("SELECT 1").fetchone() == (1,)
        assert not done.wait(0.5), "a statement on a paused slot ran during the pause"
        status, body = post(proxy, "/slots/resume", {"slots": str(slot_a)})
        assert status == 200, body
        assert done.wait(10), "the queued statement did not go on after resume"
        t.join()
        assert not errors, errors
        assert time.monotonic() - started >= 0.5
        with proxy.connect() as c:
            assert c.execute(f"SELECT v FROM {table} WHERE id = 1").fetchone() == (1,)
    finally:
        post(proxy, "/slots/resume", {"slots": "0-1023"})
        with proxy.connect() as c:
            c.execute(f"DROP TABLE IF EXISTS {table}")


def test_a_pause_waits_for_a_transaction_in_flight_on_the_slot(proxy_factory):
    table = f"pz_{random.randrange(1 << 30):x}"

    def mutate(m):
        m["tables"][table] = {"shard_key": "id", "type": "bigint"}

    proxy = proxy_factory.start(mutate=mutate, env={"SHARDGATE_ADMIN_TOKEN": TOKEN})
    with proxy.connect() as c:
        c.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, v int)")
        c.execute(f"INSERT INTO {table} (id, v) VALUES (1, 0)")
        slot = c.execute(f"SELECT {SLOT_SQL}", (1,)).fetchone()[0]
    tx = proxy.connect(autocommit=False)
    try:
        tx.execute(f"UPDATE {table} SET v = 5 WHERE id = 1")
        # Not drained while the transaction is open: 504 after the timeout, slots stay paused.
        status, body = post(proxy, "/slots/pause", {"slots": str(slot), "timeout_ms": 300})
        assert status == 504, (status, body)
        # The open transaction goes on (it already touched the slot), and commits.
        assert tx.execute(f"SELECT v FROM {table} WHERE id = 1").fetchone() == (5,)
        tx.commit()
        status, body = post(proxy, "/slots/pause", {"slots": str(slot), "timeout_ms": 2000})
        assert status == 200 and body.get("drained") is True, body
    finally:
        tx.close()
        post(proxy, "/slots/resume", {"slots": "0-1023"})
        with proxy.connect() as c:
            c.execute(f"DROP TABLE IF EXISTS {table}")
