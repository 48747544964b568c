"""A slow client must not make the proxy buffer a large result: reading from the backend pauses while the
client's socket is full, so the proxy's memory stays flat however large the result."""

from __future__ import annotations

import socket
import struct
import time

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
