"""pgbench through ShardGate: 64 clients on a pool of 10, zero errors."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from sgtest import drop_tables

CLIENTS = 64
POOL = {"size": 10}


def pgbench(proxy, *args: str, timeout: float = 50) -> str:
    cmd = ["pgbench", "-h", proxy.host, "-p", str(proxy.port), "-U", "postgres", *args, "app"]
    env = dict(os.environ, PGSSLMODE="disable", PGCONNECT_TIMEOUT="10")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{out}"
    return out


def check_run(out: str) -> int:
    """Asserts a pgbench run had no errors; returns the number of transactions processed."""
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    assert m, out
    processed = int(m.group(1))
    assert processed > 0, out
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert failed is None or failed.group(1) == "0", out
    assert not re.search(r"aborted|\berror\b", out, re.IGNORECASE), out
    return processed


@pytest.fixture
def bench_proxy(proxy_factory, direct):
    proxy = proxy_factory.start(pool=POOL)
    out = pgbench(proxy, "-i", "-s", "1", "-q")
    assert "done in" in out, out
    yield proxy
    drop_tables(direct, "pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")


def test_pgbench_init_select_only_and_tpcb(bench_proxy, direct):
    assert direct.execute("SELECT count(*) FROM pgbench_accounts").fetchone() == (100000,)

    out = pgbench(bench_proxy, "-S", "-c", str(CLIENTS), "-j", "4", "-T", "5")
    assert f"number of clients: {CLIENTS}" in out
    check_run(out)

    before = direct.execute("SELECT count(*) FROM pgbench_history").fetchone()[0]
    out = pgbench(bench_proxy, "-c", str(CLIENTS), "-j", "4", "-T", "5")
    processed = check_run(out)
    # Every TPC-B-like transaction committed exactly one history row, and the balances add up.
    history = direct.execute("SELECT count(*) FROM pgbench_history").fetchone()[0] - before
    assert history == processed, (history, processed)
    b, t, a = direct.execute("SELECT (SELECT sum(bbalance) FROM pgbench_branches), "
                             "(SELECT sum(tbalance) FROM pgbench_tellers), "
                             "(SELECT sum(abalance) FROM pgbench_accounts)").fetchone()
    assert b == t == a, (b, t, a)
    # Nothing left open on the backend.
    assert not [x for x in bench_proxy.backend_activity(direct) if (x["state"] or "").startswith("idle in")]


def test_pgbench_extended_protocol(bench_proxy):
    # -M extended: unnamed statements with Parse/Bind/Execute/Sync (named ones, -M prepared, need a
    # session-pooled backend and are not expected to work through a transaction pooler).
    out = pgbench(bench_proxy, "-M", "extended", "-c", "16", "-j", "2", "-T", "3")
    check_run(out)
    out = pgbench(bench_proxy, "-M", "extended", "-S", "-c", str(CLIENTS), "-j", "4", "-t", "50")
    assert check_run(out) == CLIENTS * 50
