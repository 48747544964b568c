#!/usr/bin/env python3
"""`SELECT * FROM big ORDER BY x` over 2 million rows spread over the shards, through ShardGate: the k-way
merge must stream, so the proxy's resident memory stays flat (target: under 200 MiB) while the rows flow.

  bench/merge_stream_rss.py [--map DIR/shardmap.json] [--bin .build/release/shardgate] [--rows 2000000]
                            [--limit-mib 200] [--keep]

It loads `big` straight into each shard's primary (each row on the shard owning its slot), starts the proxy
with a map that lists `big` as sharded by `id`, reads the result in libpq's single-row mode (so the client
never buffers it), checks that every row arrived in order, samples the proxy's RSS every 20 ms and prints
the maximum. Exit status 1 when a row is missing or out of order, or the RSS exceeds the limit.
"""

from __future__ import annotations

import argparse
import threading
import time

import merge_common as mc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--map", help="the cluster's shardmap.json (default $SHARDGATE_TEST_MAP)")
    parser.add_argument("--bin", help="the shardgate binary (default $SHARDGATE_BIN)")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--limit-mib", type=float, default=200.0)
    parser.add_argument("--keep", action="store_true", help="keep the table for another run")
    args = parser.parse_args()
    shard_map = mc.load_map(args.map)
    binary = mc.proxy_binary(args.bin)

    t0 = time.monotonic()
    counts = mc.create_big(shard_map, args.rows)
    mc.wait_for_replicas(shard_map)
    print(f"loaded {sum(counts.values())} rows ({', '.join(f'{k}: {v}' for k, v in counts.items())}) "
          f"in {time.monotonic() - t0:.1f}s")
    proxy = mc.Proxy(binary, shard_map, {"big": {"shard_key": "id", "type": "bigint"}})
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(proxy.rss_kib())
            time.sleep(0.02)

    try:
        baseline = proxy.rss_kib()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        conn = mc.psycopg.connect(proxy.conninfo(), autocommit=True)
        pgconn = conn.pgconn
        start = time.monotonic()
        pgconn.send_query(b"SELECT * FROM big ORDER BY x")
        pgconn.set_single_row_mode()
        rows = 0
        previous = None
        in_order = True
        error = None
        while True:
            res = pgconn.get_result()
            if res is None:
                break
            if res.status == mc.psycopg.pq.ExecStatus.SINGLE_TUPLE:
                x = int(res.get_value(0, 1))
                if previous is not None and x < previous:
                    in_order = False
                previous = x
                rows += 1
            elif res.status == mc.psycopg.pq.ExecStatus.FATAL_ERROR:
                error = (res.error_message or b"").decode()
        elapsed = time.monotonic() - start
        conn.close()
        stop.set()
        sampler.join()
    finally:
        proxy.stop()
        if not args.keep:
            mc.drop_big(shard_map)
    peak = max(samples) if samples else 0
    print(f"| rows | seconds | rows/s | proxy RSS before | proxy RSS max | limit |")
    print(f"|---:|---:|---:|---:|---:|---:|")
    print(f"| {rows} | {elapsed:.1f} | {rows / max(elapsed, 1e-9):.0f} | {baseline / 1024:.1f} MiB | "
          f"{peak / 1024:.1f} MiB | {args.limit_mib:.0f} MiB |")
    problems = []
    if error:
        problems.append(f"the query failed: {error}")
    if rows != args.rows:
        problems.append(f"{rows} rows arrived, {args.rows} expected")
    if not in_order:
        problems.append("rows arrived out of ORDER BY x order")
    if peak / 1024 > args.limit_mib:
        problems.append(f"the proxy's RSS reached {peak / 1024:.1f} MiB (limit {args.limit_mib:.0f} MiB)")
    for problem in problems:
        print(f"FAIL: {problem}")
    if not problems:
        print("ok: the merge streamed")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
