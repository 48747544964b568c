"""pgbench through ShardGate: 64 clients on a pool of 10, zero errors."""

from __future__ import annotations

import os
import re
import subprocess

import psycopg
import pytest

from sgtest import drop_tables, owned_slots

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


SHARDED = {"pgbench_accounts": {"shard_key": "aid", "type": "bigint"},
           "pgbench_history": {"shard_key": "aid", "type": "bigint"},
           "pgbench_branches": {"reference": True}, "pgbench_tellers": {"reference": True}}
SLOT_SQL = "((hashint8extended(aid::bigint, 8816678312871386365) & 1023) + 227) & 1023"


@pytest.fixture
def sharded_bench_proxy(proxy_factory, tmp_path):
    """pgbench's tables with routing on: accounts and history sharded by aid over both shards, branches and
    tellers reference tables (on every shard); loaded by `pgbench -i` through ShardGate."""
    proxy = proxy_factory.start(pool=POOL, mutate=lambda m: m["tables"].update(SHARDED),
                                env={"SHARDGATE_TWO_PHASE_LOG": str(tmp_path / "2pc.log")})
    out = pgbench(proxy, "-i", "-s", "1", "-q", timeout=120)
    assert "done in" in out, out
    primaries = [psycopg.connect(s["primary"], autocommit=True) for s in proxy.map["shards"]]
    yield proxy, primaries
    for p in primaries:
        p.execute("DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history")
        p.close()


# TPC-B over both shards holds a backend of its account's shard while it waits for one of the other shard.
# With more clients than pool slots this starved before pools kept a reserve for sessions that already
# hold a backend (PoolStateMachine): 64 clients on a pool of 10, as the issue asks.
TPCB_CLIENTS = 64


@pytest.mark.parametrize("mode", ["extended", "prepared"])
def test_pgbench_sharded_by_aid_select_only_and_tpcb(sharded_bench_proxy, mode):
    """`pgbench -M extended|prepared` with data sharded over 2 shards by aid: select-only with 64 clients on
    a pool of 10 per server, TPC-B-like likewise; zero errors, and the data adds up on each shard. Every TPC-B
    transaction writes its account's shard and the reference tables on both: a two-phase commit ended by
    pgbench's `END` (an Execute under -M prepared), its writes taken shard by shard so that sessions
    updating the same 10 tellers never deadlock across shards."""
    proxy, primaries = sharded_bench_proxy
    owned = owned_slots(proxy.map)
    counts = [p.execute("SELECT count(*) FROM pgbench_accounts").fetchone()[0] for p in primaries]
    assert sum(counts) == 100000 and all(c > 0 for c in counts), counts
    for p, slots in zip(primaries, owned):
        stray = p.execute(f"SELECT count(*) FROM pgbench_accounts WHERE NOT ({SLOT_SQL} = ANY(%s))",
                          (sorted(slots),)).fetchone()[0]
        assert stray == 0

    out = pgbench(proxy, "-M", mode, "-S", "-c", str(CLIENTS), "-j", "4", "-T", "5")
    assert f"number of clients: {CLIENTS}" in out
    check_run(out)

    out = pgbench(proxy, "-M", mode, "-c", str(TPCB_CLIENTS), "-j", "4", "-T", "8", timeout=80)
    processed = check_run(out)
    # One history row per committed transaction, on its account's shard; each shard's copy of the
    # reference tables saw every transaction; the account balances (split over the shards) add up to them.
    history = [p.execute(f"SELECT count(*), count(*) FILTER (WHERE NOT ({SLOT_SQL} = ANY(%s))) FROM pgbench_history",
                         (sorted(slots),)).fetchone() for p, slots in zip(primaries, owned)]
    assert sum(h[0] for h in history) == processed and all(h[1] == 0 for h in history), (history, processed)
    sums = [p.execute("SELECT (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(tbalance) FROM pgbench_tellers), "
                      "(SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts), (SELECT sum(delta) FROM pgbench_history)")
            .fetchone() for p in primaries]
    (b0, t0, a0, h0), (b1, t1, a1, h1) = sums
    assert b0 == b1 == t0 == t1 == a0 + a1 == h0 + h1, sums
    for p in primaries:
        assert p.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)


MIXED_TRANSACTION = """\\set aid random(1, 100000)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT count(*) FROM pgbench_accounts WHERE abalance > 100000;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid + 1;
END;
"""
MIXED_SCAN = "SELECT sum(abalance) FROM pgbench_accounts WHERE bid = 1;\n"


@pytest.mark.parametrize("mode", ["simple", "extended"])
def test_pgbench_mixed_fan_out_and_transactions_share_a_small_pool(sharded_bench_proxy, tmp_path, mode):
    """64 clients on a pool of 10 mixing transactions that write one shard and then read every shard,
    autocommit reads of every shard, and keyed reads. A read over both shards by a session holding nothing
    takes one shard's backend, then the other's: before, two such reads (or a read and a transaction)
    each held one shard while waiting for the other, and clients got checkout timeouts."""
    proxy, primaries = sharded_bench_proxy
    transaction, scan = tmp_path / "transaction.sql", tmp_path / "scan.sql"
    transaction.write_text(MIXED_TRANSACTION)
    scan.write_text(MIXED_SCAN)
    out = pgbench(proxy, "-n", "-M", mode, "-c", "64", "-j", "4", "-T", "8", "-f", f"{transaction}@5",
                  "-f", f"{scan}@1", "-S", timeout=80)
    check_run(out)
    for p in primaries:
        assert p.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)
