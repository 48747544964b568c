"""Shared helpers of the cross-shard merge benchmarks (bench/merge_stream_rss.py, bench/merge_latency.py):
the cluster's map, a large sharded table loaded straight into each shard by slot, a proxy process with a map
that lists it, the proxy's resident memory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

try:
    import psycopg
except ImportError:  # pragma: no cover
    sys.exit("psycopg 3 is required: python3 -m pip install -r tests/requirements.txt")

SLOT_SEED = 8816678312871386365  # DESIGN §3


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def load_map(path: str | None) -> dict:
    path = path or os.environ.get("SHARDGATE_TEST_MAP")
    if not path:
        fail("no cluster map: pass --map or set SHARDGATE_TEST_MAP (scripts/pgcluster writes DIR/shardmap.json)")
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        fail(f"cannot read the map {path}: {e}")
    raise AssertionError


def proxy_binary(path: str | None) -> str:
    path = path or os.environ.get("SHARDGATE_BIN")
    if not path or not os.access(path, os.X_OK):
        fail("no shardgate binary: pass --bin or set SHARDGATE_BIN (e.g. $(swift build -c release --show-bin-path)/shardgate)")
    return path


def slot_ranges(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if part:
            a, _, b = part.partition("-")
            out.append((int(a), int(b or a)))
    return out


def slot_sql(column: str) -> str:
    return f"((((hashint8extended({column}, {SLOT_SEED}) & 1023) + 227) & 1023))"


def create_big(shard_map: dict, rows: int, table: str = "big") -> dict[str, int]:
    """`table (id bigint primary key, x bigint, pad text)` with ids 1..rows, each row on the shard owning
    its slot; returns the row count per shard."""
    counts = {}
    for shard in shard_map["shards"]:
        ranges = slot_ranges(shard_map["slots"][shard["name"]])
        condition = " OR ".join(f"{slot_sql('g')} BETWEEN {a} AND {b}" for a, b in ranges)
        with psycopg.connect(shard["primary"], autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, x bigint, pad text)")
            conn.execute(f"INSERT INTO {table} SELECT g, (g * 7919) % 1000003 - 500000, md5(g::text) "
                         f"FROM generate_series(1::bigint, {rows}) g WHERE {condition}")
            conn.execute(f"ANALYZE {table}")
            counts[shard["name"]] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return counts


def drop_big(shard_map: dict, table: str = "big") -> None:
    for shard in shard_map["shards"]:
        with psycopg.connect(shard["primary"], autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def wait_for_replicas(shard_map: dict, timeout: float = 120.0) -> None:
    for shard in shard_map["shards"]:
        with psycopg.connect(shard["primary"], autocommit=True) as p:
            lsn = p.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        for replica in shard.get("replicas", []):
            deadline = time.monotonic() + timeout
            with psycopg.connect(replica, autocommit=True) as r:
                while not r.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                    if time.monotonic() > deadline:
                        fail(f"replica {replica} did not catch up within {timeout}s")
                    time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """`shardgate serve` with a map that also lists `tables` (name → rule)."""

    def __init__(self, binary: str, shard_map: dict, tables: dict[str, dict], merge_max_bytes: int | None = None):
        m = json.loads(json.dumps(shard_map))
        m["tables"].update(tables)
        if merge_max_bytes:
            m["merge"] = {"max_bytes": merge_max_bytes}
        self.dir = tempfile.mkdtemp(prefix="sg-merge-bench-")
        self.map_path = Path(self.dir) / "shardmap.json"
        self.map_path.write_text(json.dumps(m, indent=2))
        self.port = free_port()
        self.log = open(Path(self.dir) / "shardgate.log", "wb")
        env = dict(os.environ, SHARDGATE_ADMIN=f"127.0.0.1:{free_port()}", SHARDGATE_LOG_LEVEL="warning")
        self.proc = subprocess.Popen([binary, "serve", "--map", str(self.map_path), "--listen",
                                      f"127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                fail(f"shardgate exited with {self.proc.returncode}; log in {self.log.name}")
            try:
                with psycopg.connect(self.conninfo(), autocommit=True) as c:
                    c.execute("SELECT 1")
                break
            except psycopg.Error:
                if time.monotonic() > deadline:
                    fail(f"shardgate did not accept a login within 30s; log in {self.log.name}")
                time.sleep(0.1)

    def conninfo(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=app sslmode=disable connect_timeout=5"

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def direct_conninfo(url: str, database: str | None = None) -> str:
    parts = urllib.parse.urlparse(url)
    if database:
        parts = parts._replace(path="/" + database)
    return urllib.parse.urlunparse(parts)
