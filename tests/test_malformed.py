"""Malformed or vanishing clients get a FATAL ErrorResponse or a closed socket; everyone else keeps working,
and no backend is left dirty."""

from __future__ import annotations

import socket
import struct
import time

import pytest

import pgraw
from sgtest import wait_until

VALID_STARTUP = pgraw.startup_packet({"user": "postgres", "database": "app"})


@pytest.fixture
def small_proxy(proxy_factory):
    return proxy_factory.start(pool={"size": 1})


@pytest.fixture
def witness(small_proxy):
    """A client connected before the misbehaving one; it must keep working."""
    with small_proxy.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
        yield c


def assert_others_work(proxy, witness, tag: int = 0):
    assert proxy.alive(), f"proxy exited with {proxy.proc.returncode}:\n{proxy.log()}"
    assert witness.execute("SELECT %s::int + 1", (tag,)).fetchone() == (tag + 1,)
    for i in range(3):  # new clients, landing on every event loop
        with proxy.connect() as c:
            assert c.execute("SELECT %s::text", (f"new-{i}",)).fetchone() == (f"new-{i}",)


def assert_fatal_or_closed(messages: list[pgraw.Message], codes: tuple[str, ...] = ("08P01",)):
    """What the proxy sent before closing: nothing, or FATAL ErrorResponse(s) with a SQLSTATE in `codes`."""
    for m in messages:
        assert m.type == b"E", f"expected only an ErrorResponse before the close, got {m.type!r}"
        f = m.error_fields()
        assert f.get("S") == "FATAL", f
        assert f.get("C") in codes, f
        assert f.get("M"), f


STARTUP_GARBAGE = {
    # first bytes of a valid startup packet, then the client half-closes
    "truncated_startup": VALID_STARTUP[:7],
    # a length field of 2^31-1: the proxy must not wait for 2 GiB
    "length_2_31_minus_1": struct.pack("!ii", 0x7FFFFFFF, pgraw.PROTOCOL_3_0),
    "negative_length": struct.pack("!ii", -8, pgraw.PROTOCOL_3_0),
    "length_too_small": struct.pack("!i", 4),
    # an HTTP request where a startup packet belongs
    "http_request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    # random bytes with a plausible length
    "random_bytes": struct.pack("!i", 16) + bytes.fromhex("deadbeefcafebabe0011223344556677")[:12],
    # protocol 2.0 (unsupported)
    "protocol_2": pgraw.startup_packet({"user": "postgres", "database": "app"}, version=2 << 16),
    # a startup packet whose last parameter has no value
    "missing_value": struct.pack("!ii", 4 + 4 + 5, pgraw.PROTOCOL_3_0) + b"user\x00",
    # CancelRequest with trailing bytes
    "bad_cancel": struct.pack("!iiiii", 20, pgraw.CANCEL_REQUEST_CODE, 1, 2, 3),
}


@pytest.mark.parametrize("name", sorted(STARTUP_GARBAGE))
def test_bad_startup_gets_fatal_or_close(small_proxy, witness, name):
    c = small_proxy.raw()
    try:
        c.send(STARTUP_GARBAGE[name])
        if name == "truncated_startup":
            c.sock.shutdown(socket.SHUT_WR)  # the client gives up mid-packet
        messages = c.read_until_closed(timeout=5)
    except TimeoutError:
        pytest.fail(f"{name}: the proxy neither answered nor closed the connection within 5 s")
    finally:
        c.close()
    # PostgreSQL answers an unknown protocol version with 0A000; 08P01 is the protocol-violation code.
    codes = ("08P01", "0A000") if name in ("protocol_2", "random_bytes") else ("08P01",)
    assert_fatal_or_closed(messages, codes)
    assert_others_work(small_proxy, witness)


def test_truncated_startup_then_close_without_reading(small_proxy, witness):
    for _ in range(20):
        c = small_proxy.raw()
        c.send(VALID_STARTUP[: len(VALID_STARTUP) // 2])
        c.close()
    assert_others_work(small_proxy, witness)


def test_oversized_message_after_login(small_proxy, witness, direct):
    c = small_proxy.raw_login()
    try:
        c.send(b"Q" + struct.pack("!i", 0x7FFFFFFF) + b"SELECT 1")
        messages = c.read_until_closed(timeout=5)
    finally:
        c.close()
    assert_fatal_or_closed(messages)
    assert_others_work(small_proxy, witness)


@pytest.mark.parametrize("in_transaction", [False, True], ids=["idle", "in_transaction"])
def test_unknown_message_type_after_login(small_proxy, witness, direct, table_name, in_transaction):
    direct.execute(f"CREATE TABLE {table_name} (id int)")
    c = small_proxy.raw_login()
    try:
        if in_transaction:
            c.query("BEGIN")
            c.query(f"INSERT INTO {table_name} VALUES (1)")
        c.send(pgraw.frame(b"z", b"hello"))
        messages = c.read_until_closed(timeout=5)
    finally:
        c.close()
    assert messages, "expected a FATAL ErrorResponse for an unknown message type"
    assert_fatal_or_closed(messages)
    assert_others_work(small_proxy, witness)
    assert direct.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (0,)
    wait_until(lambda: not [a for a in small_proxy.backend_activity(direct)
                            if (a["state"] or "").startswith("idle in transaction")],
               5, message="no proxy backend idle in transaction")


def test_invalid_frame_length_after_login(small_proxy, witness):
    """After login, a frame with an invalid (too small) length."""
    c = small_proxy.raw_login()
    try:
        c.send(b"Q" + struct.pack("!i", 2))
        messages = c.read_until_closed(timeout=5)
    finally:
        c.close()
    assert_fatal_or_closed(messages)
    assert_others_work(small_proxy, witness)


@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in_transaction"])
def test_client_vanishing_mid_query_leaves_no_dirty_backend(small_proxy, witness, direct, table_name,
                                                            in_transaction):
    direct.execute(f"CREATE TABLE {table_name} (id int)")
    tag = f"vanish_{table_name}"
    c = small_proxy.raw_login()
    if in_transaction:
        c.query("BEGIN")
        c.query(f"INSERT INTO {table_name} VALUES (1)")
    c.send(pgraw.query_message(f"SELECT pg_sleep(3) AS {tag}"))
    wait_until(lambda: direct.execute("SELECT 1 FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'",
                                      (f"%{tag}%",)).fetchone(), 5, message="the query to start on the backend")
    c.close()  # vanish without Terminate while the backend is busy

    # Many quick statements on the size-1 pool, from new clients and the old one: every answer is the
    # right one (no leftover rows of the vanished query), and none waits for the abandoned pg_sleep(3).
    start = time.monotonic()
    for i in range(15):
        with small_proxy.connect() as n:
            assert n.execute("SELECT %s::int * 3", (i,)).fetchone() == (i * 3,)
        assert witness.execute("SELECT %s::text", (f"w{i}",)).fetchone() == (f"w{i}",)
    elapsed = time.monotonic() - start
    assert elapsed < 2.5, f"quick statements took {elapsed:.1f}s: they waited for the vanished client's backend"

    assert direct.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (0,)
    # The abandoned backend finishes its sleep and goes away; it never comes back to the pool and nothing
    # of the proxy stays idle in a transaction.
    wait_until(lambda: not direct.execute("SELECT 1 FROM pg_stat_activity WHERE query LIKE %s AND pid <> "
                                          "pg_backend_pid()", (f"%{tag}%",)).fetchone(),
               8, message="the abandoned backend to close")
    assert not [a for a in small_proxy.backend_activity(direct) if (a["state"] or "").startswith("idle in")]
    assert_others_work(small_proxy, witness)


def unsynced_batch(sql: str) -> bytes:
    """Parse/Bind/Execute of an unnamed statement followed by Flush, not Sync: results come back, but the
    backend stays inside the implicit transaction of the batch (or, after an error, skips until Sync)."""
    return (pgraw.frame(b"P", b"\x00" + sql.encode() + b"\x00" + b"\x00\x00")
            + pgraw.frame(b"B", b"\x00\x00" + b"\x00\x00" + b"\x00\x00" + b"\x00\x00")
            + pgraw.frame(b"E", b"\x00" + b"\x00\x00\x00\x00")
            + pgraw.frame(b"H"))


def test_vanished_unsynced_write_is_never_committed(small_proxy, witness, direct, table_name):
    """A client leaving after Execute without Sync (e.g. a crash inside a psycopg pipeline) must not hand
    its backend, still inside the batch's implicit transaction, to the next client, whose Sync would
    commit the vanished client's write."""
    direct.execute(f"CREATE TABLE {table_name} (id int)")
    for _ in range(2):  # once per event loop's pool, more or less
        c = small_proxy.raw_login()
        c.send(unsynced_batch(f"INSERT INTO {table_name} VALUES (42)"))
        assert [c.read_message().type for _ in range(3)] == [b"1", b"2", b"C"]
        c.close()  # vanish: PostgreSQL would roll the implicit transaction back
    for i in range(6):
        with small_proxy.connect() as n:
            assert n.execute("SELECT %s::int", (i,)).fetchone() == (i,)
    assert_others_work(small_proxy, witness)
    assert direct.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (0,), \
        "rows of a client that never sent Sync were committed by other clients"


def test_vanished_failed_unsynced_batch_does_not_break_next_client(small_proxy, witness):
    """After a failed Execute without Sync the backend skips everything until Sync; handed to another
    client it would swallow that client's statements."""
    c = small_proxy.raw_login()
    c.send(unsynced_batch("SELECT 1/0"))
    assert [c.read_message().type for _ in range(2)] == [b"1", b"E"]
    c.close()
    for i in range(6):
        with small_proxy.connect() as n:
            assert n.execute("SELECT %s::int", (i,)).fetchone() == (i,)
    assert_others_work(small_proxy, witness)


def test_bogus_cancel_request_is_harmless(small_proxy, witness):
    import threading

    result = {}

    def run():
        result["v"] = witness.execute("SELECT pg_sleep(0.5), 'done'").fetchone()[1]

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.1)
    for key in ((1, 2), (0, 0), (-1, -1)):
        c = small_proxy.raw()
        c.send(struct.pack("!iiii", 16, pgraw.CANCEL_REQUEST_CODE, *key))
        assert c.read_until_closed(timeout=5) == []
        c.close()
    t.join(10)
    assert result == {"v": "done"}
    assert_others_work(small_proxy, witness)
