"""`shardctl rebalance` and `shardctl verify` against real proxies and a real 3-shard cluster (issue 7's
"Done when").

Needs a cluster of at least 3 shards: `SHARDGATE_TEST_SHARDS=3 scripts/test` (or a cluster started with
`scripts/pgcluster start --dir D --shards 3 --base-port P` and SHARDGATE_TEST_MAP=D/shardmap.json).
With fewer shards every test here FAILS and says so; nothing is skipped.

Each test starts two proxies (`shardgate serve --admin`, token in SHARDGATE_ADMIN_TOKEN), creates its own
tables directly on every shard primary, runs writers through the proxies that log every acknowledged
write, and drives `shardctl` as a subprocess. Afterwards it checks, straight on the primaries, that every
acknowledged write is present exactly once on its slot's owner, that no rows are left on a shard that
does not own their slot, that `shardctl verify` is clean, that no rebalance object (publication,
subscription, replication slot) is left, and that no writer saw an error.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest

TOKEN = "rebalance-t0ken"
SLOT_SQL = "((((hashint8extended({col}, 8816678312871386365) & 1023) + 227) & 1023))"
TEXT_SLOT_SQL = "((((hashtextextended({col}, 8816678312871386365) & 1023) + 227) & 1023))"
ITEMS, TOKENS, COUNTRIES = "rb_items", "rb_tokens", "rb_countries"


# ---------------------------------------------------------------------------------------------
# Cluster, proxies, shardctl
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def cluster(sg_env):
    shards = sg_env.base_map["shards"]
    if len(shards) < 3:
        pytest.fail(f"the rebalance tests need a cluster of at least 3 shards, this one has {len(shards)} "
                    f"({sg_env.map_path}); run them with SHARDGATE_TEST_SHARDS=3 scripts/test, or start one with "
                    "scripts/pgcluster start --dir D --shards 3 --base-port P and SHARDGATE_TEST_MAP=D/shardmap.json",
                    pytrace=False)
    return shards


def conninfo(url: str) -> str:
    u = urllib.parse.urlparse(url)
    return psycopg.conninfo.make_conninfo(host=u.hostname, port=str(u.port or 5432), user=u.username or "postgres",
                                          dbname=u.path.lstrip("/") or "postgres", connect_timeout="5",
                                          application_name="sg-test-rebalance")


def primaries(shards) -> list[psycopg.Connection]:
    return [psycopg.connect(conninfo(s["primary"]), autocommit=True) for s in shards]


def shardctl_bin(sg_env) -> Path:
    binary = sg_env.bin.parent / "shardctl"
    if not binary.is_file():
        pytest.fail(f"no shardctl next to SHARDGATE_BIN ({binary}); build it with `swift build --product shardctl`",
                    pytrace=False)
    return binary


def add_tables(m: dict) -> None:
    """Only this module's tables: verify and the rebalance then look at nothing another test left."""
    m["tables"] = {ITEMS: {"shard_key": "id", "type": "bigint"}, TOKENS: {"shard_key": "token", "type": "text"},
                   COUNTRIES: {"reference": True}}


def create_tables(shards) -> None:
    for db in primaries(shards):
        with db:
            drop_rebalance_objects(db)
            db.execute(f"DROP TABLE IF EXISTS {ITEMS}, {TOKENS}, {COUNTRIES}")
            db.execute(f"CREATE TABLE {ITEMS} (id bigint PRIMARY KEY, writer int NOT NULL, val text NOT NULL)")
            db.execute(f"CREATE TABLE {TOKENS} (token text PRIMARY KEY, val text NOT NULL)")
            db.execute(f"CREATE TABLE {COUNTRIES} (code text PRIMARY KEY, name text)")
            db.execute(f"INSERT INTO {COUNTRIES} VALUES ('fr', 'France'), ('de', 'Germany'), ('jp', 'Japan')")


def drop_rebalance_objects(db) -> None:
    for (name,) in db.execute("SELECT subname FROM pg_subscription WHERE subname LIKE 'shardgate\\_rb\\_%'").fetchall():
        db.execute(f'DROP SUBSCRIPTION IF EXISTS "{name}"')
    for (name,) in db.execute("SELECT pubname FROM pg_publication WHERE pubname LIKE 'shardgate\\_rb\\_%'").fetchall():
        db.execute(f'DROP PUBLICATION IF EXISTS "{name}"')
    db.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
               "WHERE slot_name LIKE 'shardgate\\_rb\\_%' AND NOT active")


def http(admin_url: str, method: str, path: str, body=None, token: str | None = TOKEN, timeout: float = 10.0):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(admin_url.rstrip("/") + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def live_map(proxy) -> dict:
    status, body = http(proxy.admin_url, "GET", "/shardmap", token=None)
    assert status == 200, body
    return body


def owners(m: dict) -> list[int]:
    """Slot → index of its owner in m["shards"]."""
    names = [s["name"] for s in m["shards"]]
    owner = [-1] * m.get("slot_count", 1024)
    for name, ranges in m["slots"].items():
        for part in filter(None, (p.strip() for p in ranges.split(","))):
            lo, _, hi = part.partition("-")
            for slot in range(int(lo), int(hi or lo) + 1):
                owner[slot] = names.index(name)
    assert -1 not in owner
    return owner


def slots_of(m: dict, shard: str) -> list[int]:
    index = [s["name"] for s in m["shards"]].index(shard)
    return [slot for slot, o in enumerate(owners(m)) if o == index]


def slot_list(slots) -> str:
    slots = sorted(set(slots))
    parts, i = [], 0
    while i < len(slots):
        j = i
        while j + 1 < len(slots) and slots[j + 1] == slots[j] + 1:
            j += 1
        parts.append(str(slots[i]) if i == j else f"{slots[i]}-{slots[j]}")
        i = j + 1
    return ",".join(parts)


@dataclass
class Shardctl:
    binary: Path
    proxies: list
    journal: Path

    def args(self, *extra: str) -> list[str]:
        proxies = [a for p in self.proxies for a in ("--proxy", p if isinstance(p, str) else p.admin_url)]
        return [str(self.binary), *extra[:1], *proxies, *extra[1:]]

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        full = self.args(*args)
        if args[0] == "rebalance":
            full += ["--journal", str(self.journal), "--yes"]
        env = dict(os.environ, SHARDGATE_ADMIN_TOKEN=TOKEN)
        result = subprocess.run(full, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)
        print(f"$ {' '.join(full[1:])}\n{result.stdout}{result.stderr}")
        if check:
            assert result.returncode == 0, f"shardctl exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result

    def start_held(self, hold: str, *args: str) -> subprocess.Popen:
        """Starts a rebalance that stops at `hold` (--debug-hold-at) and returns once it is there."""
        full = self.args("rebalance", *args) + ["--journal", str(self.journal), "--yes", "--debug-hold-at", hold]
        env = dict(os.environ, SHARDGATE_ADMIN_TOKEN=TOKEN)
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, env=env)
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith(f"holding at {hold}"):
                return proc
        proc.kill()
        pytest.fail(f"shardctl never reached {hold} (exit {proc.wait()}):\n{''.join(lines)}", pytrace=False)

    def journal_json(self) -> dict:
        return json.loads(self.journal.read_text())


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------
@dataclass
class Writer:
    index: int
    proxy: object
    stop: threading.Event
    items: dict = field(default_factory=dict)   # id -> val, or None once deleted
    tokens: dict = field(default_factory=dict)  # token -> val, or None once deleted
    errors: list = field(default_factory=list)
    latencies: list = field(default_factory=list)
    thread: threading.Thread | None = None
    next_id: int = 0

    def start(self, preload: int = 150) -> None:
        with self.proxy.connect() as c:
            for _ in range(preload):
                self.insert(c)
        self.thread = threading.Thread(target=self.loop, name=f"writer-{self.index}", daemon=True)
        self.thread.start()

    def insert(self, c) -> None:
        self.next_id += 1
        key = self.index * 10_000_000 + self.next_id
        c.execute(f"INSERT INTO {ITEMS} (id, writer, val) VALUES (%s, %s, %s)", (key, self.index, f"v{key}"))
        self.items[key] = f"v{key}"
        if self.next_id % 3 == 0:
            token = f"w{self.index}-{self.next_id}"
            c.execute(f"INSERT INTO {TOKENS} (token, val) VALUES (%s, %s)", (token, "t"))
            self.tokens[token] = "t"

    def loop(self) -> None:
        rng = random.Random(self.index)
        c = self.proxy.connect()
        step = 0
        while not self.stop.is_set():
            step += 1
            alive = [k for k, v in self.items.items() if v is not None]
            op = rng.random()
            started = time.monotonic()
            try:
                if op < 0.45 or len(alive) < 10:
                    self.insert(c)
                elif op < 0.70:
                    key = rng.choice(alive)
                    c.execute(f"UPDATE {ITEMS} SET val = %s WHERE id = %s", (f"u{step}", key))
                    self.items[key] = f"u{step}"
                elif op < 0.85:
                    key = rng.choice(alive)
                    with c.transaction():  # an explicit transaction the pause must wait for
                        c.execute(f"UPDATE {ITEMS} SET val = %s WHERE id = %s", (f"x{step}", key))
                        c.execute(f"UPDATE {ITEMS} SET val = val || '!' WHERE id = %s", (key,))
                    self.items[key] = f"x{step}!"
                elif op < 0.95:
                    key = rng.choice(alive)
                    c.execute(f"DELETE FROM {ITEMS} WHERE id = %s", (key,))
                    self.items[key] = None
                else:
                    live_tokens = [t for t, v in self.tokens.items() if v is not None]
                    if live_tokens:
                        token = rng.choice(live_tokens)
                        c.execute(f"DELETE FROM {TOKENS} WHERE token = %s", (token,))
                        self.tokens[token] = None
            except psycopg.Error as e:
                self.errors.append(f"{type(e).__name__}: {e}")
                c.close()
                c = self.proxy.connect()
            self.latencies.append(time.monotonic() - started)
        c.close()


@dataclass
class Workload:
    writers: list
    stop: threading.Event

    @classmethod
    def start(cls, proxies, count: int = 8) -> "Workload":
        stop = threading.Event()
        writers = [Writer(i, proxies[i % len(proxies)], stop) for i in range(count)]
        for w in writers:
            w.start()
        return cls(writers, stop)

    def finish(self) -> None:
        self.stop.set()
        for w in self.writers:
            w.thread.join(30)
            assert not w.thread.is_alive(), f"{w.thread.name} is stuck (a statement never came back)"

    def report_latency(self) -> str:
        lat = sorted(x * 1000 for w in self.writers for x in w.latencies)
        if not lat:
            return "no statements"
        pick = lambda p: lat[min(len(lat) - 1, max(0, int(p * len(lat) + 0.999) - 1))]
        return (f"{len(lat)} acknowledged statements; latency p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, "
                f"max {lat[-1]:.1f} ms (the max is the longest wait at a pause)")


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------
def check_consistent(shards, m: dict, workload: Workload, shardctl: Shardctl) -> None:
    """Every acknowledged write exactly once on its owner under `m`; nothing on non-owners; verify clean;
    no rebalance leftovers; no writer error."""
    errors = [e for w in workload.writers for e in w.errors]
    assert not errors, f"writers saw {len(errors)} error(s), e.g. {errors[:5]}"
    owner = owners(m)
    items_seen: dict[int, list[tuple[int, str]]] = {}
    tokens_seen: dict[str, list[int]] = {}
    for index, db in enumerate(primaries(shards)):
        with db:
            for key, val, slot in db.execute(f"SELECT id, val, {SLOT_SQL.format(col='id')} FROM {ITEMS}"):
                items_seen.setdefault(key, []).append((index, val))
                assert owner[slot] == index, f"{ITEMS} id {key} (slot {slot}) is on {m['shards'][index]['name']}, owner {m['shards'][owner[slot]]['name']}"
            for token, slot in db.execute(f"SELECT token, {TEXT_SLOT_SQL.format(col='token')} FROM {TOKENS}"):
                tokens_seen.setdefault(token, []).append(index)
                assert owner[slot] == index, f"{TOKENS} {token!r} (slot {slot}) is on shard {index}, owner {owner[slot]}"
            assert db.execute(f"SELECT string_agg(code, ',' ORDER BY code) FROM {COUNTRIES}").fetchone()[0] == "de,fr,jp", \
                "the reference table is untouched"
            leftovers = db.execute(
                "SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE 'shardgate\\_rb\\_%' "
                "UNION ALL SELECT 'subscription ' || subname FROM pg_subscription WHERE subname LIKE 'shardgate\\_rb\\_%' "
                "UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE 'shardgate\\_rb\\_%'"
            ).fetchall()
            assert not leftovers, f"{m['shards'][index]['name']} has rebalance leftovers: {leftovers}"
    for w in workload.writers:
        for key, val in w.items.items():
            seen = items_seen.get(key, [])
            if val is None:
                assert not seen, f"deleted id {key} is still there: {seen}"
            else:
                assert len(seen) == 1, f"id {key} should be present exactly once, found {seen}"
                assert seen[0][1] == val, f"id {key}: expected {val!r}, found {seen[0][1]!r} (an acknowledged write is lost)"
        for token, val in w.tokens.items():
            assert len(tokens_seen.get(token, [])) == (0 if val is None else 1), f"token {token}: {tokens_seen.get(token)}"
    verify = shardctl.run("verify", check=False)
    assert verify.returncode == 0, f"shardctl verify is not clean:\n{verify.stdout}{verify.stderr}"
    assert "clean" in verify.stdout


def check_proxies(proxies, slots: dict | None, min_version: int, copies: dict | None = None) -> None:
    """Every proxy serves (and persisted) the same map, at least `min_version`, with `slots` (when given),
    no copies left by a move, and nothing paused. (A move pushes three versions: copies on the target,
    the cutover, copies withdrawn after the cleanup.)"""
    version = live_map(proxies[0])["version"]
    assert version >= min_version, f"map version {version}, expected at least {min_version}"
    for p in proxies:
        m = live_map(p)
        assert m["version"] == version, f"proxy {p.admin_url} serves map version {m['version']}, others {version}"
        if slots is not None:
            assert m["slots"] == slots, f"proxy {p.admin_url} serves slots {m['slots']}, expected {slots}"
        assert m.get("copies") == copies, f"proxy {p.admin_url} records copies {m.get('copies')}, expected {copies}"
        status, body = http(p.admin_url, "GET", "/status", token=None)
        assert status == 200 and body["paused_slots"] == "", f"{p.admin_url} still pauses {body.get('paused_slots')}"
        assert json.loads(p.map_path.read_text())["version"] == version, "the proxy persisted the map"


def start_proxies(proxy_factory, count: int = 2) -> list:
    return [proxy_factory.start(mutate=add_tables, env={"SHARDGATE_ADMIN_TOKEN": TOKEN}) for _ in range(count)]


def pauses_of(shardctl: Shardctl) -> list[float]:
    return [m["pause_ms"] for m in shardctl.journal_json()["moves"] if m.get("pause_ms") is not None]


# ---------------------------------------------------------------------------------------------
# Done when: moves under load, there and back
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_moves_under_load_lose_and_duplicate_nothing(cluster, proxy_factory, sg_env, tmp_path):
    create_tables(cluster)
    proxies = start_proxies(proxy_factory)
    base = live_map(proxies[0])
    ctl = Shardctl(shardctl_bin(sg_env), proxies, tmp_path / "rebalance.journal")
    workload = Workload.start(proxies, count=8)
    pauses: list[float] = []
    try:
        time.sleep(1)
        from_s0 = slots_of(base, "s0")[-100:]
        ctl.run("rebalance", "--from", "s0", "--count", "100", "--to", "s2")
        pauses += pauses_of(ctl)
        after1 = live_map(proxies[0])
        from_s1 = slots_of(after1, "s1")[-50:]
        ctl.run("rebalance", "--from", "s1", "--count", "50", "--to", "s2")
        pauses += pauses_of(ctl)
        time.sleep(0.5)
        ctl.run("rebalance", "--slots", slot_list(from_s0), "--to", "s0")
        pauses += pauses_of(ctl)
        ctl.run("rebalance", "--slots", slot_list(from_s1), "--to", "s1")
        pauses += pauses_of(ctl)
        time.sleep(0.5)
    finally:
        workload.finish()
    final = live_map(proxies[0])
    assert final["slots"] == base["slots"], "the slots went there and back"
    check_proxies(proxies, base["slots"], base["version"] + 4)
    check_consistent(cluster, final, workload, ctl)
    pauses.sort()
    print(f"pauses per move (shardctl): {['%.1f ms' % p for p in pauses]}; max {pauses[-1]:.1f} ms")
    print(workload.report_latency())


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_even_plans_and_moves_to_balance_the_shards(cluster, proxy_factory, sg_env, tmp_path):
    create_tables(cluster)
    proxies = start_proxies(proxy_factory, count=1)
    base = live_map(proxies[0])
    ctl = Shardctl(shardctl_bin(sg_env), proxies, tmp_path / "rebalance.journal")
    workload = Workload.start(proxies, count=4)
    try:
        ctl.run("rebalance", "--slots", slot_list(slots_of(base, "s1")[:200]), "--to", "s0")
        before = live_map(proxies[0])
        dry = ctl.run("rebalance", "--even", "--dry-run")
        assert "dry run: nothing was changed" in dry.stdout
        assert live_map(proxies[0]) == before
        ctl.run("rebalance", "--even")
    finally:
        workload.finish()
    final = live_map(proxies[0])
    counts = sorted(len(slots_of(final, s["name"])) for s in final["shards"])
    assert counts[-1] - counts[0] <= 1, f"slot counts after --even: {counts}"
    check_consistent(cluster, final, workload, ctl)


# ---------------------------------------------------------------------------------------------
# Done when: killing shardctl, then --resume or --abort
# ---------------------------------------------------------------------------------------------
def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("hold", ["copy", "paused", "flipped"])
def test_killed_shardctl_resumes_to_a_consistent_state(cluster, proxy_factory, sg_env, tmp_path, hold):
    create_tables(cluster)
    proxies = start_proxies(proxy_factory)
    base = live_map(proxies[0])
    ctl = Shardctl(shardctl_bin(sg_env), proxies, tmp_path / "rebalance.journal")
    workload = Workload.start(proxies, count=8)
    try:
        kill(ctl.start_held(hold, "--from", "s0", "--count", "100", "--to", "s2"))
        if hold == "flipped":
            refused = ctl.run("rebalance", "--abort", check=False)
            assert refused.returncode == 1 and "cannot abort" in refused.stderr, refused.stderr
        ctl.run("rebalance", "--resume")
        assert ctl.journal_json()["state"] == "done"
    finally:
        workload.finish()
    check_proxies(proxies, None, base["version"] + 1)
    final = live_map(proxies[0])
    assert len(slots_of(final, "s2")) == len(slots_of(base, "s2")) + 100
    check_consistent(cluster, final, workload, ctl)
    print(workload.report_latency())


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("hold", ["copy", "paused"])
def test_killed_shardctl_aborts_to_the_old_map_with_no_leftovers(cluster, proxy_factory, sg_env, tmp_path, hold):
    create_tables(cluster)
    proxies = start_proxies(proxy_factory)
    base = live_map(proxies[0])
    moving = slots_of(base, "s0")[-100:]
    ctl = Shardctl(shardctl_bin(sg_env), proxies, tmp_path / "rebalance.journal")
    workload = Workload.start(proxies, count=8)
    try:
        kill(ctl.start_held(hold, "--from", "s0", "--count", "100", "--to", "s2"))
        ctl.run("rebalance", "--abort")
        assert ctl.journal_json()["state"] == "aborted"
        time.sleep(0.5)
    finally:
        workload.finish()
    check_proxies(proxies, base["slots"], base["version"])
    target = primaries(cluster)[2]
    copied = target.execute(f"SELECT count(*) FROM {ITEMS} WHERE {SLOT_SQL.format(col='id')} = ANY(%s)", (moving,)).fetchone()[0]
    assert copied == 0, "the copied rows were removed from the target"
    check_consistent(cluster, base, workload, ctl)


# ---------------------------------------------------------------------------------------------
# Done when: a proxy that does not answer the pause
# ---------------------------------------------------------------------------------------------
class SilentPauseProxy:
    """An admin endpoint that serves a real proxy's map but never answers POST /slots/pause (the
    connection stays open), as a hung proxy would; resume is answered."""

    def __init__(self, real):
        self.real = real
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                outer.requests.append(f"GET {self.path}")
                self.reply(*http(outer.real.admin_url, "GET", self.path, token=None))

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.requests.append(f"POST {self.path}")
                if self.path == "/slots/pause":
                    time.sleep(30)  # never answers in time
                    return
                self.reply(200, {"paused_slots": ""})

            def do_PUT(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                new = body.get("map", body)
                real = live_map(outer.real)
                if new.get("slots") == real["slots"]:
                    # A map that changes only the copies (before the copy, after an abort): shardctl sends
                    # it to the real proxy too; answer once that one serves it.
                    outer.requests.append("PUT copies")
                    deadline = time.monotonic() + 5
                    while live_map(outer.real)["version"] < new.get("version", 0) and time.monotonic() < deadline:
                        time.sleep(0.05)
                    return self.reply(200, live_map(outer.real))
                outer.requests.append(f"PUT {self.path}")
                self.reply(500, {"error": "a hung proxy must never get a new map"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.admin_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_proxy_that_does_not_answer_the_pause_leaves_the_old_map_everywhere(cluster, proxy_factory, sg_env, tmp_path):
    create_tables(cluster)
    proxies = start_proxies(proxy_factory)
    base = live_map(proxies[0])
    silent = SilentPauseProxy(proxies[1])
    ctl = Shardctl(shardctl_bin(sg_env), [proxies[0], proxies[1], silent.admin_url], tmp_path / "rebalance.journal")
    workload = Workload.start(proxies, count=8)
    try:
        failed = ctl.run("rebalance", "--from", "s0", "--count", "100", "--to", "s2",
                         "--pause-timeout-ms", "500", "--timeout", "2", check=False)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "old map keeps serving" in failed.stderr, failed.stderr
        assert "PUT /shardmap" not in silent.requests, silent.requests
        assert "POST /slots/resume" in silent.requests, "the pause is released everywhere, also where it hung"
        # The subscription stays (its rows on s2 are copies, filtered from reads) until --abort.
        check_proxies(proxies, base["slots"], base["version"], copies={"s2": slot_list(slots_of(base, "s0")[-100:])})
        time.sleep(0.5)
        # The journal is left at the cutover; --abort removes everything the run made.
        assert ctl.journal_json()["moves"][0]["phase"] == "caught_up"
        ctl.run("rebalance", "--abort")
    finally:
        workload.finish()
        silent.close()
    check_proxies(proxies, base["slots"], base["version"])
    check_consistent(cluster, base, workload, Shardctl(ctl.binary, proxies, ctl.journal))


# ---------------------------------------------------------------------------------------------
# Refusals and verify
# ---------------------------------------------------------------------------------------------
def test_proxies_serving_different_maps_are_refused(cluster, proxy_factory, sg_env, tmp_path):
    create_tables(cluster)
    proxies = start_proxies(proxy_factory)
    newer = dict(live_map(proxies[1]), version=live_map(proxies[1])["version"] + 1)
    status, body = http(proxies[1].admin_url, "PUT", "/shardmap", body=newer)
    assert status == 200, body
    ctl = Shardctl(shardctl_bin(sg_env), proxies, tmp_path / "rebalance.journal")
    result = ctl.run("rebalance", "--slots", "0-9", "--to", "s2", check=False)
    assert result.returncode == 1
    assert "do not serve the same map" in result.stderr
    assert not ctl.journal.exists(), "nothing was started"


def test_verify_reports_rows_left_on_a_shard_that_does_not_own_them(cluster, proxy_factory, sg_env, tmp_path):
    create_tables(cluster)
    proxy = start_proxies(proxy_factory, count=1)[0]
    m = live_map(proxy)
    owner = owners(m)
    with proxy.connect() as c:
        for key in range(1, 200):
            c.execute(f"INSERT INTO {ITEMS} (id, writer, val) VALUES (%s, 0, 'v')", (key,))
    ctl = Shardctl(shardctl_bin(sg_env), [proxy], tmp_path / "rebalance.journal")
    assert ctl.run("verify").returncode == 0
    # A stray copy of one row on a shard that does not own its slot.
    dbs = primaries(cluster)
    slot = dbs[0].execute(f"SELECT {SLOT_SQL.format(col='7::bigint')}").fetchone()[0]
    wrong = (owner[slot] + 1) % len(cluster)
    dbs[wrong].execute(f"INSERT INTO {ITEMS} VALUES (7, 0, 'v')")
    stale = ctl.run("verify", check=False)
    assert stale.returncode == 1
    assert f"{m['shards'][wrong]['name']} holds 1 row(s) of 1 slot(s) owned by {m['shards'][owner[slot]]['name']}" in stale.stdout
    assert "identical copy" in stale.stdout
    dbs[wrong].execute(f"UPDATE {ITEMS} SET val = 'other' WHERE id = 7")
    assert "differs from the owner" in ctl.run("verify", "--slots", str(slot), check=False).stdout
    dbs[wrong].execute(f"DELETE FROM {ITEMS} WHERE id = 7")
    assert ctl.run("verify").returncode == 0


# ---------------------------------------------------------------------------------------------
# Reads over several shards while rows exist twice (copied to the target, not yet deleted from the source)
# ---------------------------------------------------------------------------------------------
def wait_for_copy(db, moving: list[int], expected: int) -> None:
    """Until the subscription on `db` (the target) has copied all `expected` rows of `moving`."""
    deadline = time.monotonic() + 60
    query = f"SELECT count(*) FROM {ITEMS} WHERE {SLOT_SQL.format(col='id')} = ANY(%s)"
    while db.execute(query, (moving,)).fetchone()[0] < expected:
        assert time.monotonic() < deadline, "the subscription did not copy the rows within 60 s"
        time.sleep(0.2)


def check_reads_count_each_row_once(proxy, ids: set[int]) -> None:
    """Keyless reads through the proxy, simple and extended protocol, concatenated and merged."""
    with proxy.connect() as c:
        simple = psycopg.ClientCursor(c)  # the simple query protocol
        assert simple.execute(f"SELECT count(*) FROM {ITEMS}").fetchone()[0] == len(ids)
        rows = [r[0] for r in simple.execute(f"SELECT id FROM {ITEMS}").fetchall()]
        assert sorted(rows) == sorted(ids), f"{len(rows)} rows for {len(ids)} ids"
        rows = [r[0] for r in simple.execute(f"SELECT x.id FROM public.{ITEMS} AS x JOIN {COUNTRIES} ON code = 'fr'")]
        assert sorted(rows) == sorted(ids), f"{len(rows)} rows for {len(ids)} ids"
        rows = [r[0] for r in c.execute(f"SELECT id FROM {ITEMS} WHERE val = %s", ("v",)).fetchall()]
        assert sorted(rows) == sorted(ids), f"{len(rows)} rows for {len(ids)} ids"
        # extended protocol, a bind parameter, a merge (ORDER BY + LIMIT) and an alias
        got = [r[0] for r in c.execute(f"SELECT i.id FROM {ITEMS} i WHERE i.writer >= %s ORDER BY i.id LIMIT 5000", (0,))]
        assert got == sorted(ids)
        assert c.execute(f"SELECT count(DISTINCT id), count(*) FROM {ITEMS} WHERE id > %s", (0,)).fetchone() == (len(ids), len(ids))
        assert c.execute(f"SELECT count(*) FROM {ITEMS} WHERE id = ANY(%s)", ([min(ids), max(ids)],)).fetchone()[0] == 2
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="rebalance"):
            c.execute(f"UPDATE {ITEMS} SET val = val")
        assert c.execute("SELECT 1").fetchone()[0] == 1, "the session keeps working after the refusal"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_reads_over_all_shards_see_each_row_once_during_a_move(cluster, proxy_factory, sg_env, tmp_path):
    create_tables(cluster)
    proxy = start_proxies(proxy_factory, count=1)[0]
    base = live_map(proxy)
    moving = slots_of(base, "s0")[-100:]
    ids = set(range(1, 3001))
    with proxy.connect() as c:
        with c.cursor() as cur:
            cur.executemany(f"INSERT INTO {ITEMS} (id, writer, val) VALUES (%s, 0, 'v')", [(k,) for k in sorted(ids)])
    dbs = primaries(cluster)
    in_moving = dbs[0].execute(f"SELECT count(*) FROM {ITEMS} WHERE {SLOT_SQL.format(col='id')} = ANY(%s)",
                               (moving,)).fetchone()[0]
    assert in_moving > 0
    ctl = Shardctl(shardctl_bin(sg_env), [proxy], tmp_path / "rebalance.journal")
    held = ctl.start_held("copy", "--slots", slot_list(moving), "--to", "s2")
    try:
        wait_for_copy(dbs[2], moving, in_moving)  # now on s0 and s2
        assert live_map(proxy)["copies"] == {"s2": slot_list(moving)}
        check_reads_count_each_row_once(proxy, ids)
    finally:
        kill(held)
    held = ctl.start_held("cleanup", "--resume")
    try:
        m = live_map(proxy)
        assert m["copies"] == {"s0": slot_list(moving)}, "after the cutover the source's rows are the copies"
        assert set(slots_of(m, "s2")) >= set(moving)
        check_reads_count_each_row_once(proxy, ids)
    finally:
        kill(held)
    ctl.run("rebalance", "--resume")
    check_proxies([proxy], None, base["version"] + 3)
    with proxy.connect() as c:
        assert c.execute(f"SELECT count(*) FROM {ITEMS}").fetchone()[0] == len(ids)
        assert c.execute(f"UPDATE {ITEMS} SET val = 'w'").rowcount == len(ids), "keyless writes work again"
