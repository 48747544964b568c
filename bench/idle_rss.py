#!/usr/bin/env python3
"""Memory of a PostgreSQL proxy holding many idle client connections.

Opens N client connections to HOST:PORT, each completing a real PostgreSQL startup handshake
(StartupMessage with user/database, AuthenticationOk, parameters, ReadyForQuery) and then staying
idle, reads VmRSS and VmHWM of the proxy process from /proc/PID/status, prints them in MiB, and
closes every connection with a Terminate message.

Only trust authentication is supported (the benchmark runs on loopback with auth trust); any other
authentication request is reported as an error. Standard library only.

    bench/idle_rss.py --pid PID [--host 127.0.0.1] [--port 26433] [--connections 1000]
                      [--batch 100] [--user postgres] [--database app] [--label ShardGate]

Exit status 0 when every connection reached ReadyForQuery, 1 otherwise.
"""
from __future__ import annotations

import argparse
import resource
import selectors
import socket
import struct
import sys
import time

PROTOCOL_3_0 = 196608


def startup_message(user: str, database: str) -> bytes:
    params = b"".join(
        k.encode() + b"\0" + v.encode() + b"\0"
        for k, v in (("user", user), ("database", database), ("application_name", "idle_rss"))
    ) + b"\0"
    body = struct.pack("!i", PROTOCOL_3_0) + params
    return struct.pack("!i", len(body) + 4) + body


class Conn:
    """One client connection driven through the startup handshake without blocking."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.ready = False
        self.error: str | None = None

    def feed(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 5:
            kind = chr(self.buf[0])
            (length,) = struct.unpack_from("!i", self.buf, 1)
            if len(self.buf) < 1 + length:
                return
            payload = bytes(self.buf[5 : 1 + length])
            del self.buf[: 1 + length]
            if kind == "R":
                (code,) = struct.unpack_from("!i", payload, 0)
                if code != 0:
                    self.error = f"server asked for authentication (code {code}); only trust is supported"
            elif kind == "E":
                fields = {f[:1]: f[1:] for f in payload.split(b"\0") if f}
                self.error = "ErrorResponse: " + fields.get(b"M", b"?").decode(errors="replace")
            elif kind == "Z":
                self.ready = True
            # 'S' ParameterStatus, 'K' BackendKeyData, 'N' NoticeResponse: nothing to do


def open_batch(host: str, port: int, n: int, msg: bytes, timeout: float) -> list[Conn]:
    """Connect n sockets, send the startup message on each, wait until all are ready or failed."""
    sel = selectors.DefaultSelector()
    conns: list[Conn] = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=timeout)
        s.sendall(msg)
        s.setblocking(False)
        c = Conn(s)
        conns.append(c)
        sel.register(s, selectors.EVENT_READ, c)
    deadline = time.monotonic() + timeout
    pending = len(conns)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for key, _ in sel.select(timeout=left):
            c: Conn = key.data
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                c.error = c.error or "connection closed during startup"
            else:
                c.feed(data)
            if c.ready or c.error:
                sel.unregister(c.sock)
                pending -= 1
    for c in conns:
        if not (c.ready or c.error):
            c.error = f"no ReadyForQuery within {timeout:.0f}s"
    sel.close()
    return conns


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM (kB) of pid, from /proc/PID/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(rest.split()[0])
    return out


def mib(kb: int) -> str:
    return f"{kb / 1024:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pid", type=int, required=True, help="proxy process id (for /proc/PID/status)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=26433)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--user", default="postgres")
    ap.add_argument("--database", default="app")
    ap.add_argument("--label", default="proxy")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per batch")
    args = ap.parse_args()

    # Each connection is one file descriptor here; make sure the soft limit allows them.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 64
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            print(f"error: open-file limit {hard} < {need}; raise it (ulimit -n)", file=sys.stderr)
            return 1
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    msg = startup_message(args.user, args.database)
    before = proc_status(args.pid)
    conns: list[Conn] = []
    t0 = time.monotonic()
    try:
        while len(conns) < args.connections:
            n = min(args.batch, args.connections - len(conns))
            conns += open_batch(args.host, args.port, n, msg, args.timeout)
            bad = [c for c in conns if c.error]
            if bad:
                print(f"error: {len(bad)} connection(s) failed, first: {bad[0].error}", file=sys.stderr)
                return 1
        elapsed = time.monotonic() - t0
        time.sleep(1.0)  # let the proxy settle (lazy allocations, pool warm-up)
        after = proc_status(args.pid)
    finally:
        terminate = b"X" + struct.pack("!i", 4)
        for c in conns:
            try:
                c.sock.setblocking(True)
                c.sock.sendall(terminate)
            except OSError:
                pass
            c.sock.close()

    per_conn_kib = (after["VmRSS"] - before["VmRSS"]) / max(1, len(conns))
    print(
        f"{args.label}: {len(conns)} idle connections (opened in {elapsed:.1f}s): "
        f"VmRSS {mib(before['VmRSS'])} -> {mib(after['VmRSS'])} MiB, "
        f"VmHWM {mib(after['VmHWM'])} MiB, "
        f"~{per_conn_kib:.1f} KiB RSS per idle connection"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
