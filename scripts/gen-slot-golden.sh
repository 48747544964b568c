#!/usr/bin/env bash
# Regenerates Tests/ShardMapTests/SlotGoldenData.swift: slot-function golden values computed by a real
# PostgreSQL server, which the ShardMap unit tests compare row by row with SlotHash (DESIGN §3).
#
# For ~5000 bigint, ~1400 text and ~600 uuid keys it records PostgreSQL's extended hash with the
# hash-partition seed, the slot for 1024 slots (the DESIGN's SQL expression) and the slot for 1000
# slots (a modulus that is not a power of two). Before writing anything it proves, with
# satisfies_hash_partition() on real PARTITION BY HASH tables (bigint, integer, smallint, text, uuid),
# that those slots are exactly PostgreSQL's partition remainders.
#
# It starts a throwaway server on a Unix socket in a temporary directory (as the postgres user when
# run as root) and stops it at the end. Usage: scripts/gen-slot-golden.sh [output-file]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/Tests/ShardMapTests/SlotGoldenData.swift}"
PORT="${GOLDEN_PG_PORT:-55439}"
SEED=8816678312871386365          # 0x7A5B22367996DCFD, HASH_PARTITION_SEED
COMBINE=5305509591434766563       # 0x49a0f4dd15e5a8e3, hash_combine64(0, h) adds this

BINDIR=""
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    BINDIR="$(pg_config --bindir)"
else
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ]; then BINDIR="$dir"; break; fi
    done
fi
[ -n "$BINDIR" ] || { echo "gen-slot-golden: no PostgreSQL server binaries (initdb) found" >&2; exit 1; }

WORK="$(mktemp -d /tmp/slot-golden.XXXXXX)"
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK"; fi
cleanup() {
    as_pg "$BINDIR/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

as_pg "$BINDIR/initdb" -D "$WORK/data" -E UTF8 --locale=C.UTF-8 -A trust >"$WORK/initdb.log" 2>&1 \
    || { cat "$WORK/initdb.log" >&2; exit 1; }
as_pg "$BINDIR/pg_ctl" -D "$WORK/data" -w -l "$WORK/server.log" \
    -o "-p $PORT -k $WORK -c listen_addresses=''" start >/dev/null \
    || { cat "$WORK/server.log" >&2; exit 1; }
psql_run() {
    as_pg "$BINDIR/psql" -h "$WORK" -p "$PORT" -d postgres -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

psql_run <<SQL
CREATE FUNCTION slot_mod(h bigint, m int) RETURNS int LANGUAGE sql IMMUTABLE AS \$\$
    SELECT (mod(mod((CASE WHEN h < 0 THEN h::numeric + 18446744073709551616 ELSE h::numeric END)
                    + $COMBINE, 18446744073709551616), m))::int \$\$;

CREATE TABLE golden_bigint (k bigint PRIMARY KEY);
INSERT INTO golden_bigint SELECT DISTINCT k FROM (
    SELECT unnest(ARRAY[0, 1, -1, 42, -42, 127, -128, 255, 256, 32767, -32768, 32768, -32769, 65535, 65536,
        2147483647, -2147483648, 2147483648, -2147483649, 4294967295, 4294967296, -4294967295,
        -4294967296, -4294967297, 9007199254740991, -9007199254740991, 9223372036854775807,
        -9223372036854775808, 9223372036854775806, -9223372036854775807]::bigint[])
    UNION ALL SELECT generate_series(-1000, 1000)
    UNION ALL SELECT 1::bigint << e FROM generate_series(0, 62) e
    UNION ALL SELECT -(1::bigint << e) FROM generate_series(0, 62) e
    UNION ALL SELECT (1::bigint << e) - 1 FROM generate_series(0, 62) e
    UNION ALL SELECT -((1::bigint << e) + 1) FROM generate_series(0, 62) e
    UNION ALL SELECT ('x' || substr(md5('bigint-' || i), 1, 16))::bit(64)::bigint FROM generate_series(1, 2800) i
) keys(k);

CREATE TABLE golden_text (k text PRIMARY KEY);
INSERT INTO golden_text SELECT DISTINCT k FROM (
    SELECT unnest(ARRAY['', 'user-1', 'a', 'ab', 'abc', 'abcd', 'héllo', '日本語', '🙂', 'naïve', 'Straße',
        'e' || U&'\0301', 'tab' || chr(9) || 'x', 'line' || chr(10) || 'break', 'quote''s', 'comma,semi;',
        ' leading space', 'trailing space ', '\${NOT_EXPANDED}', 'Ω≈ç√∫µ≤≥÷', '👩‍👩‍👧‍👦', 'ÄÖÜäöüß'])
    UNION ALL SELECT 'user-' || i FROM generate_series(1, 600) i
    UNION ALL SELECT repeat('x', n) FROM generate_series(1, 40) n
    UNION ALL SELECT left(md5('t' || i) || md5('u' || i) || md5('v' || i), i % 97) FROM generate_series(1, 500) i
    UNION ALL SELECT repeat(chr(945 + i % 24) || chr(26085 + i % 50) || '🙂', 1 + i % 7) || i
        FROM generate_series(1, 300) i
) keys(k);

CREATE TABLE golden_uuid (k uuid PRIMARY KEY);
INSERT INTO golden_uuid SELECT DISTINCT k FROM (
    SELECT unnest(ARRAY['00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
        '01000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000001',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']::uuid[])
    UNION ALL SELECT md5('uuid-' || i)::uuid FROM generate_series(1, 600) i
) keys(k);

CREATE TABLE p_bigint (k bigint) PARTITION BY HASH (k);
CREATE TABLE p_int (k integer) PARTITION BY HASH (k);
CREATE TABLE p_smallint (k smallint) PARTITION BY HASH (k);
CREATE TABLE p_text (k text) PARTITION BY HASH (k);
CREATE TABLE p_uuid (k uuid) PARTITION BY HASH (k);
SQL

# Every recorded slot must be PostgreSQL's own partition remainder, and the DESIGN's SQL expression
# must agree with the general formula.
verdict="$(psql_run <<SQL
SELECT bool_and(satisfies_hash_partition('p_bigint'::regclass, 1024, slot_mod(h, 1024), k)
            AND satisfies_hash_partition('p_bigint'::regclass, 1000, slot_mod(h, 1000), k)
            AND slot_mod(h, 1024) = ((h & 1023) + 227) & 1023)
  FROM (SELECT k, hashint8extended(k, $SEED) h FROM golden_bigint) x
UNION ALL
SELECT bool_and(satisfies_hash_partition('p_int'::regclass, 1024, slot_mod(hashint8extended(k, $SEED), 1024), k::int))
  FROM golden_bigint WHERE k BETWEEN -2147483648 AND 2147483647
UNION ALL
SELECT bool_and(satisfies_hash_partition('p_smallint'::regclass, 1024, slot_mod(hashint8extended(k, $SEED), 1024), k::smallint))
  FROM golden_bigint WHERE k BETWEEN -32768 AND 32767
UNION ALL
SELECT bool_and(satisfies_hash_partition('p_text'::regclass, 1024, slot_mod(h, 1024), k)
            AND satisfies_hash_partition('p_text'::regclass, 1000, slot_mod(h, 1000), k)
            AND slot_mod(h, 1024) = ((h & 1023) + 227) & 1023)
  FROM (SELECT k, hashtextextended(k, $SEED) h FROM golden_text) x
UNION ALL
SELECT bool_and(satisfies_hash_partition('p_uuid'::regclass, 1024, slot_mod(h, 1024), k)
            AND satisfies_hash_partition('p_uuid'::regclass, 1000, slot_mod(h, 1000), k)
            AND slot_mod(h, 1024) = ((h & 1023) + 227) & 1023)
  FROM (SELECT k, uuid_hash_extended(k, $SEED) h FROM golden_uuid) x;
SQL
)"
if [ "$(echo "$verdict" | tr -d '\n')" != "ttttt" ]; then
    echo "gen-slot-golden: PostgreSQL disagrees with the slot formula: $verdict" >&2
    exit 1
fi

server_version="$(psql_run -c 'SHOW server_version')"
rows="$(psql_run <<SQL
COPY (
    SELECT 'bigint', k::text, h, ((h & 1023) + 227) & 1023, slot_mod(h, 1000)
      FROM (SELECT k, hashint8extended(k, $SEED) h FROM golden_bigint) x
    UNION ALL
    SELECT 'text', encode(convert_to(k, 'UTF8'), 'hex'), h, ((h & 1023) + 227) & 1023, slot_mod(h, 1000)
      FROM (SELECT k, hashtextextended(k, $SEED) h FROM golden_text) x
    UNION ALL
    SELECT 'uuid', k::text, h, ((h & 1023) + 227) & 1023, slot_mod(h, 1000)
      FROM (SELECT k, uuid_hash_extended(k, $SEED) h FROM golden_uuid) x
    ORDER BY 1, 2
) TO STDOUT WITH (FORMAT text, DELIMITER ',');
SQL
)"

{
    echo "// Generated by scripts/gen-slot-golden.sh from PostgreSQL $server_version. Do not edit; rerun the script."
    echo "//"
    echo "// Rows: kind,key,hash,slot1024,slot1000. hash is the type's extended hash with the partition seed;"
    echo "// text keys are hex-encoded UTF-8. Every slot was checked with satisfies_hash_partition()."
    echo "// (A Swift file rather than a .csv: the test target declares no resources.)"
    echo ""
    echo "let slotGoldenServerVersion = \"$server_version\""
    echo ""
    echo "let slotGoldenCSV = \"\"\""
    echo "$rows"
    echo "\"\"\""
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "gen-slot-golden: wrote $(echo "$rows" | wc -l) rows to $OUT (PostgreSQL $server_version)"
