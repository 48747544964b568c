#!/usr/bin/env python3
"""Regenerates Tests/ResultMergeTests/PostgresGoldenData.swift: what a real PostgreSQL server says about the
values the cross-shard merger compares and computes, so that ResultMerge's unit tests check its value model
against PostgreSQL itself (issue 6):

  * ORDER BY order of edge and random values of every type the merger sorts (int2/4/8, numeric, float4/8,
    text in "C" and in the server's collation, varchar, char(n), name, bool, date, time, timestamp,
    timestamptz in a time zone with second offsets, uuid, bytea) -- as dense ranks, in text and binary form;
  * float8out / float4out text of random bit patterns (shortest-exact output, extra_float_digits = 1);
  * numeric_add and numeric_div (avg's division) results of random operands;
  * sum/avg/count/min/max over random multisets split into "shard" partials, with PostgreSQL's result over
    the whole multiset.

Usage:
  python3 bench/merge_golden.py --dsn postgresql://postgres@127.0.0.1:35500/app [--out FILE] [--seed N]

It needs a running PostgreSQL 15 (any database; it creates only temporary tables) and psycopg 3. It fails
loudly (exit status 1) when the server cannot be reached.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
from pathlib import Path

try:
    import psycopg
except ImportError:  # pragma: no cover - environment problem, reported plainly
    sys.exit("merge_golden: psycopg 3 is required (python3 -m pip install 'psycopg[binary]')")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "Tests" / "ResultMergeTests" / "PostgresGoldenData.swift"

# Type name → (SQL type, binary send function, extra edge values as SQL literals).
TYPES = {
    "int2": ("int2", "int2send", ["-32768", "32767", "0", "-1", "1"]),
    "int4": ("int4", "int4send", ["-2147483648", "2147483647", "0", "-1", "1"]),
    "int8": ("int8", "int8send", ["-9223372036854775808", "9223372036854775807", "0", "-1", "1"]),
    "numeric": ("numeric", "numeric_send", ["'NaN'", "'Infinity'", "'-Infinity'", "0", "0.000", "-0.5", "1.0", "1.00",
                                             "1e100", "-1e100", "1e-100", "123456789012345678901234567890.123456789",
                                             "9999.9999", "10000", "0.0001", "-0.0001"]),
    "float4": ("float4", "float4send", ["'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "0", "1.5", "-1.5", "3.4028235e38",
                                         "1e-45", "0.1"]),
    "float8": ("float8", "float8send", ["'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "0", "5e-324", "-5e-324",
                                         "1.7976931348623157e308", "0.1", "0.30000000000000004"]),
    "text": ("text", "textsend", ["''", "' '", "'a'", "'A'", "'a '", "'ab'", "'B'", "'é'", "'É'", "'e'", "'中文'",
                                   "'🎉'", "'z'", "'Z'", "'0'", "'-'", "'_'"]),
    "varchar": ("varchar(12)", "varcharsend", ["''", "'a'", "'B'", "'b'"]),
    "bpchar": ("char(5)", "bpcharsend", ["''", "'a'", "'a   '", "'ab'", "'B'"]),
    "name": ("name", "namesend", ["''", "'a'", "'B'", "'_x'"]),
    "bool": ("bool", "boolsend", ["true", "false"]),
    "date": ("date", "date_send", ["'infinity'", "'-infinity'", "'4713-01-01 BC'", "'0001-01-01 BC'", "'0001-01-01'",
                                   "'2000-01-01'", "'1999-12-31'", "'2000-02-29'", "'5874897-12-31'"]),
    "time": ("time", "time_send", ["'00:00:00'", "'24:00:00'", "'23:59:59.999999'", "'12:00:00.5'"]),
    "timestamp": ("timestamp", "timestamp_send", ["'infinity'", "'-infinity'", "'0044-03-15 12:00:00 BC'",
                                                  "'2000-01-01 00:00:00'", "'1970-01-01 00:00:00.000001'",
                                                  "'294276-12-31 23:59:59.999999'"]),
    "timestamptz": ("timestamptz", "timestamptz_send", ["'infinity'", "'-infinity'", "'1890-06-01 12:00:00+00'",
                                                        "'1937-06-30 23:59:59+00'", "'2000-01-01 00:00:00+00'",
                                                        "'2024-03-31 01:30:00+00'", "'2024-10-27 01:30:00+00'"]),
    "uuid": ("uuid", "uuid_send", ["'00000000-0000-0000-0000-000000000000'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
                                   "'80000000-0000-0000-0000-000000000000'"]),
    "bytea": ("bytea", "byteasend", ["''::bytea", "'\\x00'::bytea", "'\\x0000'::bytea", "'\\xff'::bytea",
                                     "'\\x7f80'::bytea"]),
}

TEXT_POOL = ["a", "b", "A", "B", "é", "e", "E", "É", "ß", "ss", "中", "文", "🎉", "ä", "z", "Z", "0", "9", " ", "-",
             "_", "ö", "o", "Ö", "ñ", "n"]


def random_literal(kind: str, rng: random.Random) -> str:
    if kind in ("int2", "int4", "int8"):
        bits = {"int2": 15, "int4": 31, "int8": 63}[kind]
        return str(rng.randrange(-(1 << bits), 1 << bits))
    if kind == "numeric":
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 30)))
        scale = rng.randrange(0, len(digits) + 3)
        text = digits if scale == 0 else (digits[:-scale] or "0") + "." + digits[-scale:].rjust(scale, "0")
        return ("-" if rng.random() < 0.4 else "") + text
    if kind == "float8":
        value = struct.unpack(">d", struct.pack(">Q", rng.getrandbits(64)))[0]
        return "'NaN'" if value != value else repr(value).replace("inf", "'Infinity'")
    if kind == "float4":
        value = struct.unpack(">f", struct.pack(">I", rng.getrandbits(32)))[0]
        if value != value or value in (float("inf"), float("-inf")):
            return "0"
        return repr(value)
    if kind in ("text", "varchar", "name"):
        length = rng.randrange(0, 6)
        return "'" + "".join(rng.choice(TEXT_POOL) for _ in range(length)).replace("'", "''") + "'"
    if kind == "bpchar":
        return "'" + "".join(rng.choice("abAB ") for _ in range(rng.randrange(0, 5))) + "'"
    if kind == "bool":
        return rng.choice(["true", "false"])
    if kind == "date":
        return f"'{rng.randrange(1, 4000):04d}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}" \
               + (" BC'" if rng.random() < 0.1 else "'")
    if kind == "time":
        return f"'{rng.randrange(0, 24):02d}:{rng.randrange(0, 60):02d}:{rng.randrange(0, 60):02d}." \
               f"{rng.randrange(0, 1000000):06d}'"
    if kind in ("timestamp", "timestamptz"):
        zone = f"{rng.choice('+-')}{rng.randrange(0, 14):02d}:{rng.choice(['00', '30', '45'])}" \
            if kind == "timestamptz" else ""
        return f"'{rng.randrange(1800, 2100):04d}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d} " \
               f"{rng.randrange(0, 24):02d}:{rng.randrange(0, 60):02d}:{rng.randrange(0, 60):02d}." \
               f"{rng.randrange(0, 1000000):06d}{zone}'"
    if kind == "uuid":
        return "'" + "%032x" % rng.getrandbits(128) + "'"
    if kind == "bytea":
        return "'\\x" + "".join("%02x" % rng.randrange(256) for _ in range(rng.randrange(0, 5))) + "'::bytea"
    raise ValueError(kind)


def swift_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def order_vectors(cur, rng: random.Random) -> tuple[list[str], str]:
    """Rows: kind|collation|text(hex)|binary(hex)|rank (NULL: empty text, rank 0)."""
    lines = []
    collation = cur.execute("SHOW lc_collate").fetchone()[0]
    for kind, (sql_type, send, edges) in TYPES.items():
        literals = list(edges) + [random_literal(kind, rng) for _ in range(40)] + ["NULL"]
        cur.execute(f"CREATE TEMP TABLE golden_order (i int, v {sql_type}) ON COMMIT DROP")
        for i, literal in enumerate(literals):
            cur.execute(f"INSERT INTO golden_order VALUES ({i}, {literal})")
        collations = [("C", ' COLLATE "C"'), ("default", "")] if kind in ("text", "varchar", "bpchar") else [("", "")]
        for name, clause in collations:
            # The type's output function's text (a cast of bool to text says 'true', its output 't').
            shown = "CASE WHEN v THEN 't' WHEN NOT v THEN 'f' END" if kind == "bool" else "v::text"
            rows = cur.execute(
                f"SELECT {shown}, encode({send}(v), 'hex'), CASE WHEN v IS NULL THEN 0 ELSE "
                f"dense_rank() OVER (ORDER BY v{clause}) END FROM golden_order ORDER BY i").fetchall()
            for text, binary, rank in rows:
                text_hex = "" if text is None else text.encode().hex()
                lines.append(f"{kind}|{name}|{'N' if text is None else 'V'}{text_hex}|{binary or ''}|{rank}")
        cur.execute("DROP TABLE golden_order")
    return lines, collation


def float_vectors(cur, rng: random.Random) -> list[str]:
    """Rows: kind|bits(hex)|PostgreSQL's text."""
    lines = []
    values8 = [rng.getrandbits(64) for _ in range(1500)]
    # Also values near the fixed/exponent thresholds and small integers.
    for exponent in range(-8, 20):
        for mantissa in (1, 1.5, 9.99999, 1.2345678901234567):
            values8.append(struct.unpack(">Q", struct.pack(">d", mantissa * 10.0 ** exponent))[0])
    # Large integers: where a short decimal can fall exactly halfway between two doubles.
    for _ in range(400):
        values8.append(struct.unpack(">Q", struct.pack(">d", float(rng.randrange(1 << 53, 1 << 72))))[0])
        values8.append(struct.unpack(">Q", struct.pack(">d", float(rng.randrange(1, 10 ** 6) * 10 ** rng.randrange(16, 22))))[0])
    for bits in values8:
        value = struct.unpack(">d", struct.pack(">Q", bits))[0]
        if value != value:
            continue
        text = cur.execute("SELECT %s::float8::text", (value,)).fetchone()[0]
        lines.append(f"float8|{bits:016x}|{text}")
    values4 = [rng.getrandbits(32) for _ in range(800)]
    for exponent in range(-8, 10):
        for mantissa in (1, 1.5, 9.99999, 1.2345678):
            values4.append(struct.unpack(">I", struct.pack(">f", mantissa * 10.0 ** exponent))[0])
    for _ in range(300):
        values4.append(struct.unpack(">I", struct.pack(">f", float(rng.randrange(1 << 24, 1 << 40))))[0])
        values4.append(struct.unpack(">I", struct.pack(">f", float(rng.randrange(1, 10 ** 4) * 10 ** rng.randrange(7, 12))))[0])
    for bits in values4:
        value = struct.unpack(">f", struct.pack(">I", bits))[0]
        if value != value or value in (float("inf"), float("-inf")):
            continue
        # Through float4send/recv so that the exact float4 reaches the server.
        text = cur.execute("SELECT (%s::float8)::float4::text", (float(value),)).fetchone()[0]
        lines.append(f"float4|{bits:08x}|{text}")
    return lines


def numeric_vectors(cur, rng: random.Random) -> list[str]:
    """Rows: add|a|b|a+b and div|a|count|a/count (numeric_div, as avg divides)."""
    lines = []
    for _ in range(400):
        a, b = random_literal("numeric", rng), random_literal("numeric", rng)
        result = cur.execute(f"SELECT ({a}::numeric + {b}::numeric)::text").fetchone()[0]
        lines.append(f"add|{a}|{b}|{result}")
    for _ in range(600):
        a = random_literal("numeric", rng) if rng.random() < 0.7 else random_literal("int8", rng)
        count = rng.choice([1, 2, 3, 7, 9, 10, 11, 12345, rng.randrange(1, 1 << 40)])
        result = cur.execute(f"SELECT ({a}::numeric / {count}::numeric)::text").fetchone()[0]
        lines.append(f"div|{a}|{count}|{result}")
    return lines


def aggregate_vectors(cur, rng: random.Random) -> list[str]:
    """Rows: agg|type|shard partials (sum;count;avg;min;max per shard, ',' between shards)|sum|avg|min|max.

    The partials are what each shard's `sum(x), count(x), avg(x), min(x), max(x)` return for its part; the
    totals are what one server returns for `sum(x), avg(x), min(x), max(x)` over every value.
    """
    lines = []
    for kind in ("int2", "int4", "int8", "numeric", "float4", "float8"):
        sql_type = TYPES[kind][0]
        for case in range(25):
            count = rng.randrange(0, 40)
            values = [random_literal(kind, rng) if rng.random() > 0.1 else "NULL" for _ in range(count)]
            if kind in ("float4", "float8"):
                # Small dyadic values: sums are exact in any order, so the merged result must equal PostgreSQL's.
                values = [str(rng.randrange(-4000, 4000) / 8) if v != "NULL" else v for v in values]
            shards = rng.randrange(1, 5)
            parts = [[] for _ in range(shards)]
            for v in values:
                parts[rng.randrange(shards)].append(v)
            partial_texts = []
            for part in parts:
                rows = ", ".join(f"({v}::{sql_type})" for v in part) or f"(NULL::{sql_type})"
                partial = cur.execute(f"SELECT sum(x)::text, count(x)::text, avg(x)::text, min(x)::text, max(x)::text "
                                      f"FROM (VALUES {rows}) v(x)" + ("" if part else " WHERE false")).fetchone()
                partial_texts.append(";".join("N" if t is None else t for t in partial))
            rows = ", ".join(f"({v}::{sql_type})" for v in values) or f"(NULL::{sql_type})"
            total = cur.execute(f"SELECT sum(x)::text, avg(x)::text, min(x)::text, max(x)::text FROM (VALUES {rows}) v(x)"
                                + ("" if values else " WHERE false")).fetchone()
            lines.append(f"agg|{kind}|{','.join(partial_texts)}|" + "|".join("N" if t is None else t for t in total))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True, help="PostgreSQL connection string")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    try:
        conn = psycopg.connect(args.dsn, autocommit=False)
    except psycopg.Error as error:
        print(f"merge_golden: cannot connect to {args.dsn}: {error}", file=sys.stderr)
        return 1
    with conn:
        cur = conn.cursor()
        cur.execute("SET extra_float_digits = 1")
        cur.execute("SET DateStyle = 'ISO, MDY'")
        # Second-precision offsets before 1937 (Amsterdam mean time was +00:19:32).
        cur.execute("SET TimeZone = 'Europe/Amsterdam'")
        cur.execute("SET bytea_output = 'hex'")
        version = cur.execute("SHOW server_version").fetchone()[0]
        order, collation = order_vectors(cur, rng)
        floats = float_vectors(cur, rng)
        numerics = numeric_vectors(cur, rng)
        aggregates = aggregate_vectors(cur, rng)
        conn.rollback()
    out = Path(args.out)
    with out.open("w") as f:
        f.write(f"// Generated by bench/merge_golden.py from PostgreSQL {version} (lc_collate {collation}, TimeZone\n")
        f.write("// Europe/Amsterdam, DateStyle ISO). Do not edit; rerun the script. A Swift file rather than a\n")
        f.write("// resource: the test target declares none.\n\n")
        f.write(f'let goldenServerVersion = "{swift_string(version)}"\n')
        f.write(f'let goldenCollation = "{swift_string(collation)}"\n\n')
        for name, lines in (("goldenOrder", order), ("goldenFloats", floats), ("goldenNumerics", numerics),
                            ("goldenAggregates", aggregates)):
            f.write(f"let {name} = \"\"\"\n")
            for line in lines:
                f.write(swift_string(line) + "\n")
            f.write('"""\n\n')
    print(f"merge_golden: wrote {out} ({len(order)} order, {len(floats)} float, {len(numerics)} numeric, "
          f"{len(aggregates)} aggregate rows) from PostgreSQL {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
