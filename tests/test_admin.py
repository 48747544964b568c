"""The admin HTTP port (DESIGN §7) of a real `shardgate serve`, and `shardctl status` / `shardctl map`.

The proxy gets `SHARDGATE_ADMIN=127.0.0.1:<free port>` from conftest; `proxy.admin_url` is its base URL.
Mutating endpoints need `SHARDGATE_ADMIN_TOKEN` in the proxy's environment.
"""

from __future__ import annotations

import datetime
import json
import re
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest

from conftest import free_port
from sgtest import wait_until

TOKEN = "t0ken-for-tests"
LSN = re.compile(r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


# ---------------------------------------------------------------------------------------------
# HTTP helpers
# ---------------------------------------------------------------------------------------------
class Reply:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self):
        return json.loads(self.body)


@pytest.fixture
def proxy(proxy_factory):
    """The admin tests watch replicas too: a proxy with the test cluster's replicas in its map."""
    return proxy_factory.start(replicas=True)


def http(proxy, method: str, path: str, body=None, token: str | None = None, timeout: float = 10.0) -> Reply:
    data = None
    headers = {}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(proxy.admin_url.rstrip("/") + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers, e.read())


def replica_urls(m: dict) -> list[tuple[str, str]]:
    return [(s["name"], r) for s in m["shards"] for r in s["replicas"]]


def endpoint(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlparse(url)
    return parsed.hostname, parsed.port


def lag_when_sampled(proxy, timeout: float = 15.0) -> dict:
    """/lag once every replica of the map has been sampled healthy."""
    def ready():
        lag = http(proxy, "GET", "/lag").json()
        if lag["sampled_at"] and lag["replicas"] and all(r["healthy"] for r in lag["replicas"]):
            return lag
        return None
    return wait_until(ready, timeout, interval=0.1, message="every replica sampled healthy in /lag")


def replica_conninfo(m: dict, shard: int = 0) -> str:
    url = urllib.parse.urlparse(m["shards"][shard]["replicas"][0])
    return psycopg.conninfo.make_conninfo(host=url.hostname, port=str(url.port), user=url.username or "postgres",
                                          dbname=url.path.lstrip("/"), connect_timeout="5")


def primary_conninfo(m: dict, shard: int = 0) -> str:
    url = urllib.parse.urlparse(m["shards"][shard]["primary"])
    return psycopg.conninfo.make_conninfo(host=url.hostname, port=str(url.port), user=url.username or "postgres",
                                          dbname=url.path.lstrip("/"), connect_timeout="5")


def shardctl(sg_env) -> Path:
    binary = sg_env.bin.parent / "shardctl"
    if not binary.is_file():
        pytest.fail(f"no shardctl next to SHARDGATE_BIN ({binary}); build it with `swift build --product shardctl`",
                    pytrace=False)
    return binary


# ---------------------------------------------------------------------------------------------
# Reading endpoints
# ---------------------------------------------------------------------------------------------
def test_health(proxy):
    reply = http(proxy, "GET", "/health")
    assert reply.status == 200
    assert reply.json() == {"status": "ok"}


def test_lag_has_the_fields_of_the_design_for_every_server(proxy):
    lag = lag_when_sampled(proxy)
    assert set(lag) == {"replicas", "primaries", "sampled_at"}
    assert ISO.match(lag["sampled_at"]), lag["sampled_at"]
    sampled = datetime.datetime.fromisoformat(lag["sampled_at"].replace("Z", "+00:00"))
    assert abs((datetime.datetime.now(datetime.timezone.utc) - sampled).total_seconds()) < 60

    expected = replica_urls(proxy.map)
    assert [(r["shard"], endpoint(r["url"])) for r in lag["replicas"]] == [(s, endpoint(u)) for s, u in expected]
    for r in lag["replicas"]:
        assert set(r) == {"shard", "url", "healthy", "in_rotation", "replay_lsn", "lag_bytes", "lag_ms"}
        assert isinstance(r["healthy"], bool) and isinstance(r["in_rotation"], bool)
        assert LSN.match(r["replay_lsn"]), r
        assert isinstance(r["lag_bytes"], int) and r["lag_bytes"] >= 0
        assert isinstance(r["lag_ms"], int) and r["lag_ms"] >= 0
        assert "@" not in r["url"] or ":" not in r["url"].split("@")[0].split("//")[1], "no password in the URL"
    assert [p["shard"] for p in lag["primaries"]] == [s["name"] for s in proxy.map["shards"]]
    for p in lag["primaries"]:
        assert set(p) == {"shard", "url", "healthy", "wal_lsn"}
        assert p["healthy"] is True
        assert LSN.match(p["wal_lsn"]), p


def test_lag_urls_never_show_passwords(proxy_factory):
    def with_passwords(m):
        for s in m["shards"]:
            s["primary"] = s["primary"].replace("postgres@", "postgres:hunter2@")
            s["replicas"] = [r.replace("postgres@", "postgres:hunter2@") for r in s["replicas"]]
    proxy = proxy_factory.start(replicas=True, mutate=with_passwords)
    for path in ("/lag", "/status", "/shardmap", "/metrics"):
        assert "hunter2" not in http(proxy, "GET", path).text, path
    assert "***" in http(proxy, "GET", "/shardmap").text


def test_status_reports_map_pools_clients_and_counters(proxy):
    with proxy.connect() as c:
        c.execute("SELECT 1").fetchall()
        status = http(proxy, "GET", "/status").json()
        assert status["clients"] >= 1
    assert status["map_version"] == proxy.map["version"]
    assert [s["name"] for s in status["shards"]] == [s["name"] for s in proxy.map["shards"]]
    assert sum(s["slot_count"] for s in status["shards"]) == proxy.map.get("slot_count", 1024)
    for pool in status["pools"]:
        assert {"shard", "role", "server", "size", "busy", "idle", "waiting"} <= set(pool)
    assert status["paused_slots"] == ""
    assert status["counters"]["queries_total"] >= 1
    assert set(status["counters"]["queries"]) == {"single", "multi", "all", "any", "local"}


def test_metrics_parse_as_prometheus_text_with_lag_per_replica(proxy):
    from prometheus_client.parser import text_string_to_metric_families

    lag_when_sampled(proxy)
    with proxy.connect() as c:
        for _ in range(5):
            c.execute("SELECT 1").fetchall()
    reply = http(proxy, "GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(reply.text)}

    lag = families["shardgate_replica_lag_bytes"]
    assert lag.type == "gauge"
    servers = {(s.labels["shard"], endpoint(s.labels["server"])) for s in lag.samples}
    assert servers == {(s, endpoint(u)) for s, u in replica_urls(proxy.map)}
    assert all(s.value >= 0 for s in lag.samples)
    assert {s.labels["shard"] for s in families["shardgate_replica_in_rotation"].samples} == \
        {s["name"] for s in proxy.map["shards"] if s["replicas"]}
    assert "shardgate_replica_lag_seconds" in families

    # prometheus_client names counter families without the _total suffix.
    queries = families["shardgate_queries"]
    assert queries.type == "counter"
    assert sum(s.value for s in queries.samples if s.name == "shardgate_queries_total") >= 5
    assert {s.labels["route"] for s in queries.samples} == {"single", "multi", "all", "any", "local"}
    assert families["shardgate_query_duration_seconds"].type == "histogram"
    assert families["shardgate_map_version"].samples[0].value == proxy.map["version"]
    for name in ("shardgate_pool_size", "shardgate_pool_busy", "shardgate_pool_idle", "shardgate_pool_waiting",
                 "shardgate_clients"):
        assert name in families, name


def test_shardmap_is_the_live_map(proxy):
    reply = http(proxy, "GET", "/shardmap")
    assert reply.status == 200
    shown = reply.json()
    assert shown["version"] == proxy.map["version"]
    assert [s["name"] for s in shown["shards"]] == [s["name"] for s in proxy.map["shards"]]


def test_unknown_paths_are_404_json(proxy):
    reply = http(proxy, "GET", "/no-such-thing")
    assert reply.status == 404
    assert "error" in reply.json()
    wrong_method = http(proxy, "GET", "/slots/pause")
    assert wrong_method.status == 405
    assert wrong_method.headers["Allow"] == "POST"


# ---------------------------------------------------------------------------------------------
# Token-protected endpoints
# ---------------------------------------------------------------------------------------------
MUTATING = [("PUT", "/shardmap"), ("POST", "/slots/pause"), ("POST", "/slots/resume")]


@pytest.mark.parametrize("method,path", MUTATING)
def test_mutating_endpoints_are_forbidden_without_a_configured_token(proxy_factory, method, path):
    proxy = proxy_factory.start(replicas=True, env={"SHARDGATE_ADMIN_TOKEN": ""})
    reply = http(proxy, method, path, body={"slots": "1"}, token="anything")
    assert reply.status == 403
    message = reply.json()["error"]
    assert "--admin-token" in message and "SHARDGATE_ADMIN_TOKEN" in message


@pytest.mark.parametrize("method,path", MUTATING)
def test_mutating_endpoints_answer_401_without_the_token(proxy_factory, method, path):
    proxy = proxy_factory.start(replicas=True, env={"SHARDGATE_ADMIN_TOKEN": TOKEN})
    for token in (None, "wrong", TOKEN + "x", TOKEN[:-1]):
        reply = http(proxy, method, path, body={"slots": "1"}, token=token)
        assert reply.status == 401, (token, reply.text)
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert http(proxy, "GET", "/status").json()["paused_slots"] == ""


def test_pause_and_resume_slots_with_the_token(proxy_factory):
    proxy = proxy_factory.start(replicas=True, env={"SHARDGATE_ADMIN_TOKEN": TOKEN})
    reply = http(proxy, "POST", "/slots/pause", body={"slots": "5,7-9", "timeout_ms": 2000}, token=TOKEN)
    assert reply.status == 200, reply.text
    assert reply.json()["paused_slots"] == "5,7-9"
    assert reply.json()["drained"] is True
    assert http(proxy, "GET", "/status").json()["paused_slots"] == "5,7-9"
    # Statements that touch no paused slot never wait.
    with proxy.connect() as c:
        assert c.execute("SELECT 1").fetchall() == [(1,)]
    bad = http(proxy, "POST", "/slots/pause", body={"slots": "0-5000"}, token=TOKEN)
    assert bad.status == 400 and "out of range" in bad.json()["error"]
    reply = http(proxy, "POST", "/slots/resume", body={"slots": "5,7-9"}, token=TOKEN)
    assert reply.status == 200, reply.text
    assert reply.json()["paused_slots"] == ""
    assert http(proxy, "GET", "/status").json()["paused_slots"] == ""


def test_put_shardmap_needs_a_higher_version_validates_and_persists(proxy_factory):
    proxy = proxy_factory.start(replicas=True, env={"SHARDGATE_ADMIN_TOKEN": TOKEN})
    live = http(proxy, "GET", "/shardmap").json()

    same = http(proxy, "PUT", "/shardmap", body=live, token=TOKEN)
    assert same.status == 409, same.text
    assert "not higher" in same.json()["error"]

    broken = dict(live, version=live["version"] + 1, slots={**live["slots"], live["shards"][0]["name"]: ""})
    invalid = http(proxy, "PUT", "/shardmap", body=broken, token=TOKEN)
    assert invalid.status == 400, invalid.text
    assert invalid.json()["error"].startswith("shardmap: ")
    assert http(proxy, "GET", "/shardmap").json()["version"] == live["version"], "a refused map changes nothing"

    newer = dict(live, version=live["version"] + 1)
    reply = http(proxy, "PUT", "/shardmap", body=newer, token=TOKEN)
    assert reply.status == 200, reply.text
    assert http(proxy, "GET", "/shardmap").json()["version"] == live["version"] + 1
    assert http(proxy, "GET", "/status").json()["map_version"] == live["version"] + 1
    assert json.loads(proxy.map_path.read_text())["version"] == live["version"] + 1, "persisted to the map file"
    with proxy.connect() as c:
        assert c.execute("SELECT 1").fetchall() == [(1,)]


# ---------------------------------------------------------------------------------------------
# Rotation as the admin port shows it
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_replica_with_replay_paused_leaves_rotation_and_rejoins(proxy_factory):
    def small_lag(m):
        m["replicas"] = {"max_lag_bytes": 8192, "max_lag_ms": 600000, "poll_ms": 50}
    proxy = proxy_factory.start(replicas=True, mutate=small_lag)
    lag_when_sampled(proxy)
    table = "t_admin_lag"
    with psycopg.connect(primary_conninfo(proxy.map), autocommit=True) as primary, \
            psycopg.connect(replica_conninfo(proxy.map), autocommit=True) as replica:
        primary.execute(f"DROP TABLE IF EXISTS {table}")
        primary.execute(f"CREATE TABLE {table} (id int, pad text)")
        try:
            replica.execute("SELECT pg_wal_replay_pause()")
            primary.execute(f"INSERT INTO {table} SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g")

            def out():
                r = http(proxy, "GET", "/lag").json()["replicas"][0]
                return r if not r["in_rotation"] and (r["lag_bytes"] or 0) > 8192 else None
            state = wait_until(out, 15, message="the paused replica out of rotation in /lag")
            assert state["healthy"] is True
            status = http(proxy, "GET", "/status").json()
            assert "max_lag_bytes" in (status["replicas"][0]["reason"] or "")
            # Routing agrees: a read for shard s0 goes to its primary while the replica is out.
            with proxy.connect() as c:
                assert c.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")
        wait_until(lambda: http(proxy, "GET", "/lag").json()["replicas"][0]["in_rotation"], 15,
                   message="the replica back in rotation after resume")
        with proxy.connect() as c:
            assert c.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        primary.execute(f"DROP TABLE IF EXISTS {table}")


def test_a_replica_nobody_listens_for_is_unhealthy_and_reads_keep_working(proxy_factory):
    def dead_replica(m):
        m["shards"][0]["replicas"] = ["postgresql://postgres@127.0.0.1:9/app"]
    proxy = proxy_factory.start(replicas=True, mutate=dead_replica)

    def reported():
        r = http(proxy, "GET", "/lag").json()["replicas"][0]
        return r if r["healthy"] is False else None
    state = wait_until(reported, 10, message="the dead replica reported unhealthy")
    assert state["in_rotation"] is False
    assert state["replay_lsn"] is None and state["lag_bytes"] is None
    with proxy.connect() as c:
        # Reads of shard s0 keep succeeding, on its primary.
        for _ in range(20):
            assert c.execute("SELECT 1, pg_is_in_recovery()").fetchall() == [(1, False)]


# ---------------------------------------------------------------------------------------------
# shardctl
# ---------------------------------------------------------------------------------------------
def test_shardctl_status_prints_the_proxys_state(proxy, sg_env):
    lag_when_sampled(proxy)
    result = subprocess.run([str(shardctl(sg_env)), "status", "--proxy", proxy.admin_url],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"map version {proxy.map['version']}" in out
    for shard in proxy.map["shards"]:
        assert shard["name"] in out
        for url in shard["replicas"]:
            host, port = endpoint(url)
            assert f"{host}:{port}" in out
    assert "IN ROTATION" in out and "LAG BYTES" in out
    assert "paused slots: none" in out


def test_shardctl_status_fails_clearly_for_an_unreachable_proxy(sg_env):
    result = subprocess.run([str(shardctl(sg_env)), "status", "--proxy", "http://127.0.0.1:9"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "cannot reach proxy http://127.0.0.1:9: connection refused" in result.stderr


def test_shardctl_map_show_and_validate(proxy, sg_env, tmp_path):
    shown = subprocess.run([str(shardctl(sg_env)), "map", "show", "--proxy", proxy.admin_url],
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["version"] == proxy.map["version"]

    valid = subprocess.run([str(shardctl(sg_env)), "map", "validate", str(proxy.map_path)],
                           capture_output=True, text=True, timeout=30)
    assert valid.returncode == 0, valid.stderr
    assert "valid" in valid.stdout

    broken = json.loads(proxy.map_path.read_text())
    broken["slots"][broken["shards"][0]["name"]] = "0-10"
    bad_path = tmp_path / "broken.json"
    bad_path.write_text(json.dumps(broken))
    invalid = subprocess.run([str(shardctl(sg_env)), "map", "validate", str(bad_path)],
                             capture_output=True, text=True, timeout=30)
    assert invalid.returncode == 1
    assert "shardmap: slots" in invalid.stderr and "not owned" in invalid.stderr


# ---------------------------------------------------------------------------------------------
# startup failures
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("taken", ["admin", "listen"])
def test_serve_exits_1_when_a_port_is_taken(proxy_factory, sg_env, tmp_path, taken):
    """A port held by another process: `shardgate serve` says which and exits 1 at once, every time, with the lag
    monitor, collation lookup and two-phase recovery already talking to the real cluster (a proxy once stayed
    alive here, deaf to SIGTERM)."""
    map_path = tmp_path / "shardmap.json"
    map_path.write_text(json.dumps(proxy_factory.make_map(replicas=True)))
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    held = holder.getsockname()[1]
    listen = held if taken == "listen" else free_port()
    admin = held if taken == "admin" else free_port()
    expected = (f"admin port: cannot listen on 127.0.0.1:{held}: " if taken == "admin"
                else f"cannot listen on 127.0.0.1:{held}: ")
    try:
        for _ in range(5):
            result = subprocess.run(
                [str(sg_env.bin), "serve", "--map", str(map_path), "--listen", f"127.0.0.1:{listen}",
                 "--admin", f"127.0.0.1:{admin}"],
                capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
            assert result.returncode == 1, result.stderr
            assert expected in result.stderr and "in use" in result.stderr, result.stderr
    finally:
        holder.close()
