"""`shardgate dev`, the README's first command: a local cluster plus the proxy, stopped by Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg

from conftest import free_port
from sgtest import wait_until

REPO = Path(__file__).resolve().parent.parent
# Ports of their own: never the dev defaults (5500-5503, 6432) nor the test cluster's (15500+).
BASE_PORT = 18500
LISTEN_PORT = 18432


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_dev_starts_a_two_shard_cluster_with_replicas_and_stops_it_on_ctrl_c(sg_env, tmp_path):
    cluster = Path("/tmp") / f"sg-dev-test-{os.getpid()}"  # short: unix socket paths are limited
    log = open(tmp_path / "dev.log", "w+")
    proc = subprocess.Popen(
        [str(sg_env.bin), "dev", "--reset", "--dir", str(cluster), "--base-port", str(BASE_PORT),
         "--listen", f"127.0.0.1:{LISTEN_PORT}",
         # Not the default admin port 9930: that is the `shardgate dev` a user may be running.
         "--admin", f"127.0.0.1:{free_port()}"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _listening(LISTEN_PORT) or proc.poll() is not None, timeout=90,
                   message="shardgate dev to listen")
        assert proc.poll() is None, (tmp_path / "dev.log").read_text()
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{LISTEN_PORT}/app", autocommit=True) as conn:
            # A table-less read runs on shard s0's replica once the lag monitor has sampled it (until
            # then reads go to the primary); a transaction always runs on the primary.
            wait_until(lambda: conn.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone()
                       == (BASE_PORT + 1, True), timeout=15, message="reads to reach s0's replica")
            with conn.transaction():
                assert conn.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone() == (BASE_PORT, False)
        # Each shard is a primary with a streaming replica.
        for shard in range(2):
            primary = BASE_PORT + 2 * shard
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{primary}/app", autocommit=True) as direct:
                rows = direct.execute("SELECT state FROM pg_stat_replication").fetchall()
                assert rows == [("streaming",)], f"shard {shard}: {rows}"
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{primary + 1}/app", autocommit=True) as replica:
                assert replica.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        log.seek(0)
        assert f'psql "postgresql://postgres@127.0.0.1:{LISTEN_PORT}/app"' in log.read()

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        for port in [LISTEN_PORT] + [BASE_PORT + i for i in range(4)]:
            wait_until(lambda: not _listening(port), timeout=20, message=f"port {port} to close")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run([str(REPO / "scripts/pgcluster"), "stop", "--dir", str(cluster)], capture_output=True)
        subprocess.run(["rm", "-rf", str(cluster)])
        log.close()
