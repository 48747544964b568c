#!/usr/bin/env python3
"""Cross-shard merge latency against a single node holding the same data (issue 6's benchmark rows):
a 2-shard `ORDER BY ... LIMIT 100` and a `count(*) GROUP BY`, as latency ratios.

  bench/merge_latency.py [--map DIR/shardmap.json] [--bin .build/release/shardgate] [--rows 1000000]
                         [--runs 30]

`big` (id, x, pad) goes into each shard by slot and, whole, into a database `merge_single` on the first
shard's primary (the single node). Each query runs `--runs` times through ShardGate and directly on the
single node, after two warm-up runs; the table shows median and p90 milliseconds and ShardGate/single.
Both sides share this machine's cores, so read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import merge_common as mc

QUERIES = [
    ("ORDER BY x LIMIT 100", "SELECT id, x FROM big ORDER BY x LIMIT 100"),
    ("ORDER BY x DESC LIMIT 100 OFFSET 1000", "SELECT id, x FROM big ORDER BY x DESC LIMIT 100 OFFSET 1000"),
    ("count(*) GROUP BY x % 100", "SELECT x % 100, count(*) FROM big GROUP BY 1"),
    ("count(*), avg(x)", "SELECT count(*), avg(x) FROM big"),
]


def timed(conn, sql: str, runs: int) -> list[float]:
    for _ in range(2):
        conn.execute(sql).fetchall()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        conn.execute(sql).fetchall()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--map")
    parser.add_argument("--bin")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    shard_map = mc.load_map(args.map)
    binary = mc.proxy_binary(args.bin)
    mc.create_big(shard_map, args.rows)
    first = shard_map["shards"][0]["primary"]
    with mc.psycopg.connect(first, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS merge_single")
        admin.execute("CREATE DATABASE merge_single")
    single = mc.psycopg.connect(mc.direct_conninfo(first, "merge_single"), autocommit=True)
    single.execute("CREATE TABLE big (id bigint PRIMARY KEY, x bigint, pad text)")
    single.execute(f"INSERT INTO big SELECT g, (g * 7919) % 1000003 - 500000, md5(g::text) "
                   f"FROM generate_series(1::bigint, {args.rows}) g")
    single.execute("ANALYZE big")
    mc.wait_for_replicas(shard_map)
    proxy = mc.Proxy(binary, shard_map, {"big": {"shard_key": "id", "type": "bigint"}})
    try:
        via = mc.psycopg.connect(proxy.conninfo(), autocommit=True)
        print(f"{args.rows} rows over {len(shard_map['shards'])} shards; {args.runs} runs per query\n")
        print("| query | single node median ms | p90 | ShardGate median ms | p90 | ShardGate/single |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, sql in QUERIES:
            if sorted(map(tuple, via.execute(sql).fetchall())) != sorted(map(tuple, single.execute(sql).fetchall())):
                mc.fail(f"{name}: ShardGate's result differs from the single node's")
            a = timed(single, sql, args.runs)
            b = timed(via, sql, args.runs)
            ma, mb = statistics.median(a), statistics.median(b)
            pa, pb = sorted(a)[int(0.9 * (len(a) - 1))], sorted(b)[int(0.9 * (len(b) - 1))]
            print(f"| {name} | {ma:.2f} | {pa:.2f} | {mb:.2f} | {pb:.2f} | {mb / ma:.2f} |")
        via.close()
    finally:
        proxy.stop()
        single.close()
        with mc.psycopg.connect(first, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS merge_single WITH (FORCE)")
        mc.drop_big(shard_map)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
