"""A slow client must not make the proxy buffer a large result: reading from the backend pauses while the
client's socket is full, so the proxy's memory stays flat however large the result."""

from __future__ import annotations

import socket
import struct
import time

import psycopg
import pytest

import pgraw
from sgtest import wait_until

ROW_BYTES = 1 << 20        # 1 MiB per row
ROWS = 400                 # ~400 MiB result, far more than the proxy may hold


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_slow_client_does_not_make_the_proxy_buffer_the_result(proxy_factory):
    proxy = proxy_factory.start(pool={"size": 2})
    pid = proxy.proc.pid
    conn = proxy.raw_login()
    # Keep the client's receive buffer small, so that it fills quickly when the client stops reading.
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    before = rss_mib(pid)
    conn.send(pgraw.query_message(f"SELECT repeat('x', {ROW_BYTES}) FROM generate_series(1, {ROWS})"))
    # Do not read for a while: the backend keeps producing, the proxy must stop reading from it.
    time.sleep(3)
    stalled = rss_mib(pid)
    assert stalled - before < 64, f"proxy RSS grew from {before:.1f} to {stalled:.1f} MiB while the client did not read"

    # Now read everything and check it all arrived, intact and in order.
    conn.sock.settimeout(30)
    received_rows = 0
    peak = stalled
    buf = bytearray()
    done = False
    deadline = time.monotonic() + 120
    while not done:
        assert time.monotonic() < deadline, "result did not arrive in time"
        chunk = conn.sock.recv(1 << 20)
        assert chunk, "proxy closed the connection"
        buf += chunk
        while len(buf) >= 5:
            length = struct.unpack("!I", buf[1:5])[0]
            if len(buf) < 1 + length:
                break
            kind = bytes(buf[:1])
            if kind == b"D":
                (value_length,) = struct.unpack("!i", buf[7:11])
                assert value_length == ROW_BYTES
                received_rows += 1
                if received_rows % 50 == 0:
                    peak = max(peak, rss_mib(pid))
            elif kind == b"E":
                raise AssertionError(f"error from the proxy: {pgraw.parse_error_fields(bytes(buf[5:1 + length]))}")
            elif kind == b"Z":
                done = True
            del buf[:1 + length]
    assert received_rows == ROWS
    assert peak - before < 64, f"proxy RSS peaked at {peak:.1f} MiB (from {before:.1f}) while relaying {ROWS} MiB"
    # The session is usable afterwards.
    rows = pgraw.data_rows(conn.query("SELECT 'after'"))
    assert rows == [["after"]]
    conn.close()


def test_slow_backend_does_not_make_the_proxy_buffer_client_data(proxy_factory, direct):
    """The other direction: while the backend does not read (its COPY waits for a lock), the proxy stops
    reading from the client instead of buffering what the client sends."""
    import threading

    direct.execute("DROP TABLE IF EXISTS sg_bp")
    direct.execute("CREATE TABLE sg_bp (line text)")
    proxy = proxy_factory.start(pool={"size": 2})
    pid = proxy.proc.pid
    conn = proxy.raw_login()
    chunk_rows = 1024
    line = b"y" * 1023 + b"\n"                   # 1 KiB per row, 1 MiB per CopyData message
    chunks = 200                                  # 200 MiB in all
    copy_data = pgraw.frame(b"d", line * chunk_rows)
    locker = psycopg.connect(direct.info.dsn, autocommit=False)
    try:
        locker.execute("LOCK TABLE sg_bp IN ACCESS EXCLUSIVE MODE")   # COPY below waits, reading nothing
        before = rss_mib(pid)
        sent = threading.Event()

        def send_all():
            conn.sock.settimeout(120)
            conn.send(pgraw.query_message("COPY sg_bp FROM STDIN"))
            for _ in range(chunks):
                conn.send(copy_data)
            conn.send(pgraw.frame(b"c"))
            sent.set()

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        time.sleep(3)
        assert not sent.is_set(), "all 200 MiB were accepted while the backend read nothing: the proxy buffered them"
        stalled = rss_mib(pid)
        assert stalled - before < 64, f"proxy RSS grew from {before:.1f} to {stalled:.1f} MiB while the backend did not read"
        locker.rollback()                                             # let the COPY run
        sender.join(timeout=30)
        assert sent.is_set(), "the client could not finish sending once the backend read again"
        messages = conn.read_until_ready(timeout=120)
        tags = [m.payload for m in messages if m.type == b"C"]
        assert tags and tags[0].startswith(b"COPY %d" % (chunks * chunk_rows)), messages
        assert direct.execute("SELECT count(*) FROM sg_bp").fetchone() == (chunks * chunk_rows,)
    finally:
        locker.close()
        conn.close()
        direct.execute("DROP TABLE IF EXISTS sg_bp")
