#!/usr/bin/env bash
# bench/pgbench.sh — ShardGate vs PgBouncer vs direct PostgreSQL, same run, same machine.
#
#   bench/pgbench.sh                      # full run (builds ShardGate in release mode first)
#   BENCH_SECONDS=3 BENCH_SKIP_SHARDGATE=1 bench/pgbench.sh   # quick check of direct + PgBouncer
#
# Starts its own 2-shard cluster (scripts/pgcluster, /tmp/shardgate-bench, primaries on 25500 and
# 25502). Database `app` on shard s0's primary holds all of `pgbench -i -s 10`: direct PostgreSQL and
# PgBouncer (transaction pooling, pool 10, on 127.0.0.1:26432) serve it. Database `sharded` holds the
# same data split the way ShardGate routes it: pgbench_accounts sharded by aid over s0 and s1 (each
# keeps the rows of the slots it owns), the other pgbench tables as reference tables. ShardGate (pool 10
# per server, on 127.0.0.1:26433, admin 29930) serves `sharded` with routing on: every statement is
# parsed and sent to the shard owning its aid. The script runs `pgbench -n -S` (select-only) in simple,
# extended and prepared protocol mode at 16 and 64 clients against each, then pgbench's TPC-B-like script
# in the three modes at 8 and 64 clients (BENCH_TPCB_CLIENTS), and prints a Markdown table. PgBouncer 1.18 in
# transaction mode does not support `-M prepared` (named statements are per server connection): those
# cells show "n/a". Then
# bench/idle_rss.py measures the memory of each pooler holding 1000 idle client connections.
# Everything is stopped on exit. Loopback only.
#
# Environment:
#   BENCH_SECONDS=15          duration of each pgbench run
#   BENCH_WARMUP=3            seconds of untimed warm-up per target (0 = none)
#   BENCH_CLIENTS="16 64"     client counts for select-only
#   BENCH_TPCB_CLIENTS="8 64" client counts for TPC-B-like ("" = skip it). Through ShardGate each TPC-B
#                             transaction holds backends of both shards; the pools' reserve for sessions
#                             that already hold one keeps 64 clients on 10 slots moving (docs/DECISIONS.md)
#   BENCH_IDLE_CONNECTIONS=1000   idle connections for the memory measurement (0 = skip it)
#   BENCH_SKIP_SHARDGATE=1    leave ShardGate out (no build; its columns show "—")
#   BENCH_USE_REPLICAS=1      keep the replicas in ShardGate's map (by default they are left out: reads
#                             would go to replicas while direct and PgBouncer hit a primary; see bench/README.md)
#   SHARDGATE_BIN=PATH        use this shardgate binary instead of building the release one
#   BENCH_MALLOCS=2000        transactions per client for the allocation count (0 = skip it): each pooler's
#                             malloc calls over `pgbench -S -c 16 -t N` (simple, extended), counted by a
#                             perf uprobe on libc's malloc (root and linux-perf; else skipped, and said so).
#                             A count, not a time: the same for the same binary whatever else the machine does
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BENCH_SECONDS=${BENCH_SECONDS:-15}
BENCH_WARMUP=${BENCH_WARMUP:-3}
BENCH_CLIENTS=${BENCH_CLIENTS:-16 64}
BENCH_TPCB_CLIENTS=${BENCH_TPCB_CLIENTS-8 64}
BENCH_IDLE_CONNECTIONS=${BENCH_IDLE_CONNECTIONS:-1000}
BENCH_SKIP_SHARDGATE=${BENCH_SKIP_SHARDGATE:-0}
BENCH_USE_REPLICAS=${BENCH_USE_REPLICAS:-0}
BENCH_MALLOCS=${BENCH_MALLOCS:-2000}
MODES=(simple extended prepared)
SCALE=10

CLUSTER_DIR=/tmp/shardgate-bench
PG_PORT=25500          # shard s0 primary (replica on 25501); s1 primary 25502 (replica 25503)
PG_PORT_S1=25502
PGB_PORT=26432
SG_PORT=26433
SG_ADMIN_PORT=29930

# One pgbench run is bounded by -T; `timeout` also bounds a pooler that hangs.
RUN_LIMIT=$((BENCH_SECONDS + 60))

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

AS_ROOT=0
[[ $(id -u) -ne 0 ]] || AS_ROOT=1
# PgBouncer, like PostgreSQL, refuses to run as root.
as_pg() { if [[ $AS_ROOT -eq 1 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

for tool in pgbench psql pgbouncer python3; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install postgresql-client-15 pgbouncer python3)"
done

# 64 pgbench clients, PgBouncer's max_client_conn 2000 and 1000 idle connections need descriptors.
ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
(($(ulimit -n) >= BENCH_IDLE_CONNECTIONS + 100)) || die "open-file limit $(ulimit -n) is too low (need $((BENCH_IDLE_CONNECTIONS + 100))); raise the hard limit"

WORK=$(mktemp -d /tmp/shardgate-bench-run.XXXXXX)
chmod 755 "$WORK"
[[ $AS_ROOT -eq 0 ]] || chown postgres: "$WORK"
SG_PID="" PGB_PID="" CLUSTER_STARTED=0 OK=0 MALLOC_PROBE_ADDED=""

cleanup() {
    local rc=$?
    set +e
    trap '' INT TERM # a second Ctrl-C must not interrupt the teardown (children inherit the ignore)
    if [[ -n $SG_PID ]] && kill -0 "$SG_PID" 2>/dev/null; then
        log "stopping ShardGate (pid $SG_PID)"
        kill -TERM "$SG_PID"
        for _ in $(seq 1 100); do kill -0 "$SG_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$SG_PID" 2>/dev/null && { log "ShardGate ignored SIGTERM for 10s; killing it"; kill -KILL "$SG_PID"; }
        wait "$SG_PID" 2>/dev/null
    fi
    if [[ -n $PGB_PID ]] && kill -0 "$PGB_PID" 2>/dev/null; then
        log "stopping PgBouncer (pid $PGB_PID)"
        kill -TERM "$PGB_PID" # immediate shutdown
        for _ in $(seq 1 50); do kill -0 "$PGB_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$PGB_PID" 2>/dev/null && kill -KILL "$PGB_PID"
    fi
    [[ -z $MALLOC_PROBE_ADDED ]] || perf probe -q -d "$MALLOC_PROBE_ADDED" >/dev/null 2>&1
    if [[ $CLUSTER_STARTED -eq 1 ]]; then
        scripts/pgcluster stop --dir "$CLUSTER_DIR" >&2
    fi
    if [[ $OK -eq 1 ]]; then
        rm -rf "$WORK" "$CLUSTER_DIR"
    else
        log "kept logs for inspection: $WORK (pgbench, PgBouncer, ShardGate) and $CLUSTER_DIR/logs"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- machine -----------------------------------------------------------------------------------
PG_BINDIR=$(pg_config --bindir 2>/dev/null || true)
[[ -x $PG_BINDIR/postgres ]] || PG_BINDIR=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
HEADER=$WORK/header.md
{
    echo "# ShardGate benchmark: pgbench select-only and TPC-B-like, scale $SCALE"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- machine: $(uname -m), $(nproc) cores, $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo 2>/dev/null || echo '?'), $(awk '/MemTotal/{printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "- PostgreSQL: $("$PG_BINDIR/postgres" --version)"
    echo "- PgBouncer: $(pgbouncer --version | head -n 1)"
    if [[ $BENCH_SKIP_SHARDGATE == 1 ]]; then
        echo "- ShardGate: skipped (BENCH_SKIP_SHARDGATE=1)"
    else
        echo "- ShardGate: $(git rev-parse --short HEAD 2>/dev/null || echo 'no commit') $( [[ -z $(git status --porcelain 2>/dev/null | head -n 1) ]] || echo '(with uncommitted changes)'), ${SHARDGATE_BIN:-release build}; $(swift --version 2>/dev/null | head -n 1 || echo 'swift ?')"
    fi
    echo "- pgbench: -n -j 2 -T $BENCH_SECONDS; select-only (-S) at clients {${BENCH_CLIENTS// /, }}, TPC-B-like at {${BENCH_TPCB_CLIENTS// /, }}; protocol {simple, extended, prepared}; pools: 10 server connections"
    echo "- direct and PgBouncer: one PostgreSQL with all rows; ShardGate: routing on, pgbench_accounts and pgbench_history sharded by aid over 2 shards (primaries), branches and tellers reference tables on both"
    echo "- TPC-B through ShardGate: every transaction updates its account on one shard and the reference tables (teller, branch) on both, so it ends in a two-phase commit over both shards (PREPARE TRANSACTION, a decision fsynced to the log, COMMIT PREPARED), and each reference write goes to the shards one after another; direct and PgBouncer commit once on one server"
    echo "- PgBouncer 1.18 in transaction mode does not support -M prepared (a named statement lives on one server connection): n/a"
    echo "- everything (pgbench, PostgreSQL, the pooler) shares this one machine, over loopback"
    echo "- CPU µs/tx: the pooler process's user+system CPU over the run (/proc/PID/stat) divided by the transactions pgbench completed — what the pooler costs per transaction, steadier than tps when everything shares $(nproc) cores"
} >"$HEADER"
cat "$HEADER"
echo

# ---- ShardGate build -----------------------------------------------------------------------------
if [[ $BENCH_SKIP_SHARDGATE != 1 ]]; then
    if [[ -z ${SHARDGATE_BIN:-} ]]; then
        log "building ShardGate (swift build -c release --product shardgate)"
        swift build -c release --product shardgate >"$WORK/build.log" 2>&1 || {
            tail -n 40 "$WORK/build.log" >&2
            die "release build failed (log: $WORK/build.log)"
        }
        SHARDGATE_BIN=$(swift build -c release --show-bin-path)/shardgate
    fi
    [[ -x $SHARDGATE_BIN ]] || die "no shardgate binary at $SHARDGATE_BIN"
fi

# ---- cluster + data ------------------------------------------------------------------------------
log "starting a 2-shard cluster in $CLUSTER_DIR"
CLUSTER_STARTED=1
scripts/pgcluster start --reset --dir "$CLUSTER_DIR" --shards 2 --base-port "$PG_PORT" >&2
log "pgbench -i -s $SCALE on s0's primary (port $PG_PORT), database app"
pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres app >"$WORK/pgbench-init.log" 2>&1 || {
    cat "$WORK/pgbench-init.log" >&2
    die "pgbench -i failed"
}
# The sharded copy: each shard keeps the accounts of the slots the map gives it (DESIGN §3's slot
# expression; s0 owns 0-511, s1 512-1023).
for port in "$PG_PORT" "$PG_PORT_S1"; do
    if [[ $port == "$PG_PORT" ]]; then keep="< 512"; else keep=">= 512"; fi
    log "database sharded on port $port: pgbench -i -s $SCALE, keeping accounts whose slot is $keep"
    psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE sharded" >&2
    pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$port" -U postgres sharded >>"$WORK/pgbench-init.log" 2>&1 || {
        cat "$WORK/pgbench-init.log" >&2
        die "pgbench -i (sharded) failed"
    }
    psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d sharded -v ON_ERROR_STOP=1 >&2 <<EOF
DELETE FROM pgbench_accounts WHERE NOT (((hashint8extended(aid, 8816678312871386365) & 1023) + 227) & 1023 $keep);
VACUUM ANALYZE pgbench_accounts;
EOF
done
# Let the replicas catch up before load starts, so their replay does not compete with the runs.
for port in "$PG_PORT" "$PG_PORT_S1"; do
    psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d app -c CHECKPOINT
done

wait_sql() { # wait_sql NAME PORT PID LOG [DB] — until `SELECT 1` works through the pooler on PORT
    local name=$1 port=$2 pid=$3 logf=$4 db=${5:-app} deadline=$((SECONDS + 60))
    until psql -X -q -A -t -h 127.0.0.1 -p "$port" -U postgres -d "$db" -c 'SELECT 1' >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$logf" >&2 || true
            die "$name exited during startup (log: $logf)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$logf" >&2 || true
            die "$name does not answer SELECT 1 on 127.0.0.1:$port after 60s (log: $logf)"
        fi
        sleep 0.2
    done
}

# ---- PgBouncer -----------------------------------------------------------------------------------
log "starting PgBouncer on 127.0.0.1:$PGB_PORT (transaction pooling, pool_size 10)"
printf '"postgres" ""\n' >"$WORK/userlist.txt"
cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK/userlist.txt
pool_mode = transaction
default_pool_size = 10
max_client_conn = 2000
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
log_connections = 0
log_disconnections = 0
; pgbench/psql send these; PgBouncer would otherwise refuse the startup packet
ignore_startup_parameters = extra_float_digits,options
EOF
[[ $AS_ROOT -eq 0 ]] || chown postgres: "$WORK/userlist.txt" "$WORK/pgbouncer.ini"
as_pg pgbouncer -d -q "$WORK/pgbouncer.ini" || die "pgbouncer did not start (log: $WORK/pgbouncer.log)"
for _ in $(seq 1 50); do [[ -s $WORK/pgbouncer.pid ]] && break; sleep 0.1; done
PGB_PID=$(cat "$WORK/pgbouncer.pid" 2>/dev/null || true)
[[ -n $PGB_PID ]] || die "pgbouncer wrote no pid file (log: $WORK/pgbouncer.log)"
wait_sql PgBouncer "$PGB_PORT" "$PGB_PID" "$WORK/pgbouncer.log"

# ---- ShardGate -----------------------------------------------------------------------------------
if [[ $BENCH_SKIP_SHARDGATE != 1 ]]; then
    # The cluster's map for database `sharded`: pgbench_accounts sharded by aid, the other pgbench
    # tables reference tables; a pool of 10 per server (like PgBouncer's). Unless BENCH_USE_REPLICAS=1
    # the replicas are left out, so that every target serves reads from primaries.
    python3 - "$CLUSTER_DIR/shardmap.json" "$WORK/shardmap.json" "$BENCH_USE_REPLICAS" <<'EOF'
import json, sys
src, dst, use_replicas = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
m = json.load(open(src))
m["pool"] = {"size": 10}
for shard in m["shards"]:
    shard["primary"] = shard["primary"].rsplit("/", 1)[0] + "/sharded"
    shard["replicas"] = [r.rsplit("/", 1)[0] + "/sharded" for r in shard["replicas"]] if use_replicas else []
m["tables"] = {"pgbench_accounts": {"shard_key": "aid", "type": "bigint"},
               "pgbench_history": {"shard_key": "aid", "type": "bigint"},
               "pgbench_branches": {"reference": True}, "pgbench_tellers": {"reference": True}}
m.pop("unlisted_tables", None)
json.dump(m, open(dst, "w"), indent=2)
EOF
    sg_args=(serve --map "$WORK/shardmap.json" --listen "127.0.0.1:$SG_PORT")
    # Builds from before the admin port existed refuse the flag; the benchmark does not need it.
    if "$SHARDGATE_BIN" serve --help 2>&1 | grep -q -- '--admin'; then
        sg_args+=(--admin "127.0.0.1:$SG_ADMIN_PORT")
    else
        log "note: this shardgate has no --admin option; running without the admin port"
    fi
    log "starting ShardGate on 127.0.0.1:$SG_PORT: $SHARDGATE_BIN ${sg_args[*]}"
    "$SHARDGATE_BIN" "${sg_args[@]}" >"$WORK/shardgate.log" 2>&1 &
    SG_PID=$!
    wait_sql ShardGate "$SG_PORT" "$SG_PID" "$WORK/shardgate.log" sharded
fi

# ---- runs ----------------------------------------------------------------------------------------
TARGETS=(direct pgbouncer)
declare -A PORT=([direct]=$PG_PORT [pgbouncer]=$PGB_PORT [shardgate]=$SG_PORT)
declare -A DB=([direct]=app [pgbouncer]=app [shardgate]=sharded)
[[ $BENCH_SKIP_SHARDGATE == 1 ]] || TARGETS+=(shardgate)
declare -A TPS LAT CPU MALLOC
declare -A PID_OF=([pgbouncer]=$PGB_PID [shardgate]=${SG_PID:-})
FAILURES=0
CLK_TCK=$(getconf CLK_TCK)

cpu_ticks() { # cpu_ticks PID — user+system CPU of the process so far, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}

run_pgbench() { # run_pgbench TARGET MODE CLIENTS SECONDS OUTFILE [WORKLOAD]
    local script=(-S)
    [[ ${6:-select} == select ]] || script=()
    timeout --kill-after=5 "$RUN_LIMIT" pgbench -n "${script[@]}" -M "$2" -c "$3" -j 2 -T "$4" \
        -h 127.0.0.1 -p "${PORT[$1]}" -U postgres "${DB[$1]}" >"$5" 2>&1
}

if ((BENCH_WARMUP > 0)); then
    for target in "${TARGETS[@]}"; do
        log "warm-up: $target, ${BENCH_WARMUP}s"
        run_pgbench "$target" simple 16 "$BENCH_WARMUP" "$WORK/warmup-$target.log" || true
    done
fi

# Cells: select-only in every mode and client count, then TPC-B-like (which writes, so it runs last).
CELLS=()
for mode in "${MODES[@]}"; do for clients in $BENCH_CLIENTS; do CELLS+=("select,$mode,$clients"); done; done
for mode in "${MODES[@]}"; do for clients in $BENCH_TPCB_CLIENTS; do CELLS+=("tpcb,$mode,$clients"); done; done
for cell in "${CELLS[@]}"; do
    IFS=, read -r workload mode clients <<<"$cell"
    # Targets alternate inside each cell so that drift (thermal, page cache) hits all alike.
    for target in "${TARGETS[@]}"; do
        if [[ $target == pgbouncer && $mode == prepared ]]; then
            TPS[$target,$cell]=n/a LAT[$target,$cell]=n/a
            continue
        fi
        out=$WORK/pgbench-$target-$workload-$mode-$clients.log
        log "pgbench $workload -M $mode -c $clients against $target (port ${PORT[$target]}), ${BENCH_SECONDS}s"
        pid=${PID_OF[$target]:-}
        [[ -z $pid ]] || ticks_before=$(cpu_ticks "$pid")
        if run_pgbench "$target" "$mode" "$clients" "$BENCH_SECONDS" "$out" "$workload"; then
            TPS[$target,$cell]=$(awk '/^tps = /{printf "%.0f", $3; exit}' "$out")
            LAT[$target,$cell]=$(awk '/^latency average = /{printf "%.3f", $4; exit}' "$out")
            if [[ -n $pid ]]; then
                # The pooler's own CPU per transaction: the cost it adds, less noisy than tps on a shared machine.
                CPU[$target,$cell]=$(awk -v a="$ticks_before" -v b="$(cpu_ticks "$pid")" -v hz="$CLK_TCK" \
                    '/^number of transactions actually processed: /{ if ($6 > 0) printf "%.1f", (b - a) / hz * 1e6 / $6; exit }' "$out")
            fi
            failed=$(awk -F'[: ]+' '/^number of failed transactions/{print $5; exit}' "$out")
            if [[ ${failed:-0} != 0 ]]; then
                log "warning: $target $cell: $failed failed transactions (see $out)"
                FAILURES=$((FAILURES + 1))
            fi
        else
            log "pgbench failed against $target ($cell); last lines of $out:"
            tail -n 5 "$out" >&2
            TPS[$target,$cell]=ERR LAT[$target,$cell]=ERR
            FAILURES=$((FAILURES + 1))
        fi
    done
done

# ---- allocations per transaction -----------------------------------------------------------------
# malloc calls of each pooler process over a fixed number of transactions, by a perf uprobe on libc's
# malloc (Swift's allocations and PgBouncer's both end there). Connection setup of the 16 clients falls
# inside the count too, spread over 16 × BENCH_MALLOCS transactions.
MALLOCS=$WORK/mallocs.md
: >"$MALLOCS"
malloc_probe() { # makes sure the perf event probe_libc:malloc exists (adds the uprobe when it is missing)
    command -v perf >/dev/null || { log "allocation count skipped: perf not found (apt-get install linux-perf)"; return 1; }
    [[ $AS_ROOT -eq 1 ]] || { log "allocation count skipped: uprobes need root"; return 1; }
    local libc
    libc=$(ldd "$(command -v pgbouncer)" | awk '/libc\.so\.6/{print $3; exit}')
    [[ -n $libc ]] || { log "allocation count skipped: libc of pgbouncer not found"; return 1; }
    if ! perf probe -l 2>/dev/null | grep -q 'probe_libc:malloc '; then
        perf probe -q -x "$libc" --add malloc >"$WORK/perf-probe.log" 2>&1 \
            || { log "allocation count skipped: perf probe failed ($(tail -n 1 "$WORK/perf-probe.log"))"; return 1; }
        MALLOC_PROBE_ADDED=probe_libc:malloc
    fi
}
if ((BENCH_MALLOCS > 0)) && malloc_probe; then
    for mode in simple extended; do
        for target in "${TARGETS[@]}"; do
            pid=${PID_OF[$target]:-}
            [[ -n $pid ]] || continue
            out=$WORK/mallocs-$target-$mode.log
            log "allocation count: pgbench -S -M $mode -c 16 -t $BENCH_MALLOCS against $target (pid $pid)"
            if timeout --kill-after=5 $((RUN_LIMIT * 4)) perf stat -x, -e probe_libc:malloc -p "$pid" -o "$out.perf" -- \
                pgbench -n -S -M "$mode" -c 16 -j 2 -t "$BENCH_MALLOCS" -h 127.0.0.1 -p "${PORT[$target]}" \
                -U postgres "${DB[$target]}" >"$out" 2>&1; then
                MALLOC[$target,$mode]=$(awk -F, -v tx=$((16 * BENCH_MALLOCS)) '$3 ~ /malloc/ { printf "%.2f (%d in all)", $1 / tx, $1; exit }' "$out.perf")
            else
                log "allocation count failed against $target ($mode); see $out"
                MALLOC[$target,$mode]=ERR
                FAILURES=$((FAILURES + 1))
            fi
        done
        echo "| $mode | 16 | ${MALLOC[pgbouncer,$mode]:-—} | ${MALLOC[shardgate,$mode]:-—} |" >>"$MALLOCS"
    done
fi

# ---- idle connections ----------------------------------------------------------------------------
IDLE=$WORK/idle.md
: >"$IDLE"
if ((BENCH_IDLE_CONNECTIONS > 0)); then
    idle_targets=(pgbouncer)
    [[ $BENCH_SKIP_SHARDGATE == 1 ]] || idle_targets+=(shardgate)
    for target in "${idle_targets[@]}"; do
        if [[ $target == shardgate ]]; then pid=$SG_PID label=ShardGate; else pid=$PGB_PID label=PgBouncer; fi
        log "idle connections: $BENCH_IDLE_CONNECTIONS against $label (pid $pid)"
        if line=$(timeout 300 python3 bench/idle_rss.py --pid "$pid" --port "${PORT[$target]}" --database "${DB[$target]}" \
            --connections "$BENCH_IDLE_CONNECTIONS" --label "$label"); then
            echo "- $line" >>"$IDLE"
        else
            echo "- $label: idle-connection measurement failed" >>"$IDLE"
            FAILURES=$((FAILURES + 1))
        fi
    done
fi

# ---- table ---------------------------------------------------------------------------------------
tps() { echo "${TPS[$1]:-—}"; } # tps TARGET,MODE,CLIENTS — or "—" when not measured
lat() { echo "${LAT[$1]:-—}"; }
cpu() { echo "${CPU[$1]:-—}"; }
ratio() { # a/b with 2 decimals, "—" unless both are numbers
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "—" }'
}
mallocs_table() {
    echo "malloc calls per transaction (pooler process, pgbench -S -t $BENCH_MALLOCS per client, perf uprobe on libc malloc):"
    echo
    echo "| mode | clients | pgbouncer mallocs/tx | shardgate mallocs/tx |"
    echo "|---|---:|---:|---:|"
    cat "$MALLOCS"
}
TABLE=$WORK/table.md
{
    echo "| workload | mode | clients | direct tps | pgbouncer tps | shardgate tps | shardgate/pgbouncer | shardgate/direct | direct avg ms | pgbouncer avg ms | shardgate avg ms | pgbouncer CPU µs/tx | shardgate CPU µs/tx |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for k in "${CELLS[@]}"; do
        IFS=, read -r workload mode clients <<<"$k"
        d=$(tps "direct,$k") p=$(tps "pgbouncer,$k") s=$(tps "shardgate,$k")
        [[ $workload == select ]] && name=select-only || name=TPC-B-like
        echo "| $name | $mode | $clients | $d | $p | $s | $(ratio "$s" "$p") | $(ratio "$s" "$d") | $(lat "direct,$k") | $(lat "pgbouncer,$k") | $(lat "shardgate,$k") | $(cpu "pgbouncer,$k") | $(cpu "shardgate,$k") |"
    done
} >"$TABLE"

echo
cat "$HEADER"
echo
cat "$TABLE"
if [[ -s $MALLOCS ]]; then
    echo
    mallocs_table
fi
if [[ -s $IDLE ]]; then
    echo
    echo "Idle client connections (memory of the pooler process, from /proc/PID/status):"
    echo
    cat "$IDLE"
fi

mkdir -p bench/results
result=bench/results/pgbench-$(date -u +%Y%m%d-%H%M%S).md
{ cat "$HEADER"; echo; cat "$TABLE"; [[ ! -s $MALLOCS ]] || { echo; mallocs_table; }; [[ ! -s $IDLE ]] || { echo; cat "$IDLE"; }; } >"$result"
echo
log "saved to $result"

if ((FAILURES > 0)); then
    log "$FAILURES run(s) failed; logs kept in $WORK"
    exit 1
fi
OK=1
