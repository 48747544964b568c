"""Fixtures for the integration tests: real PostgreSQL servers (started by scripts/test or scripts/pgcluster),
a real `shardgate serve` process per test, real clients.

Environment (exported by scripts/test):
  SHARDGATE_TEST_MAP   shardmap.json of the running test cluster (trust auth, s0 primary = the backend)
  SHARDGATE_BIN        the shardgate binary to test
  SHARDGATE_TEST_DIR   the cluster directory (only informative here)
  SHARDGATE_TEST_LOG_LEVEL  optional: the proxy's log level (default info)

Without SHARDGATE_TEST_MAP / SHARDGATE_BIN every test FAILS (it does not skip): a run that tested nothing
must never look green.
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

import pgraw
from sgtest import drop_tables

PORT_RANGE = range(16400, 17000)
# Ports that belong to other things on this machine (shardgate dev, pgbouncer, the admin port).
FORBIDDEN_PORTS = {5500, 5501, 5502, 5503, 6432, 9930}
# How long a proxy may take to exit after SIGTERM: its drain grace (10 s) plus slack.
STOP_TIMEOUT = 20.0
# What a crashing Swift program writes: the runtime's "Fatal error: ..." and the backtracer's banner.
CRASH_MARKERS = ("Fatal error", "*** Program crashed", "*** Signal ")


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backend:
    host: str
    port: int
    user: str
    database: str

    def conninfo(self, **extra: str) -> str:
        params = {"host": self.host, "port": str(self.port), "user": self.user, "dbname": self.database,
                  "connect_timeout": "5", "application_name": "sg-test-direct"}
        params.update(extra)
        return psycopg.conninfo.make_conninfo(**params)


@dataclass(frozen=True)
class TestEnv:
    map_path: Path
    bin: Path
    base_map: dict
    backend: Backend  # shard s0's primary, where the proxy sends everything for now


def _load_env() -> TestEnv:
    missing = [name for name in ("SHARDGATE_TEST_MAP", "SHARDGATE_BIN") if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not set: these tests need a running test cluster and a built proxy. "
            "Run scripts/test, or start a cluster with `scripts/pgcluster start --dir DIR --shards 2 --base-port P` "
            "and export SHARDGATE_TEST_MAP=DIR/shardmap.json SHARDGATE_BIN=$(swift build --show-bin-path)/shardgate",
            pytrace=False)
    map_path = Path(os.environ["SHARDGATE_TEST_MAP"])
    binary = Path(os.environ["SHARDGATE_BIN"])
    if not map_path.is_file():
        pytest.fail(f"SHARDGATE_TEST_MAP={map_path} is not a file", pytrace=False)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"SHARDGATE_BIN={binary} is not an executable file", pytrace=False)
    base_map = json.loads(map_path.read_text())
    url = urllib.parse.urlparse(base_map["shards"][0]["primary"])
    backend = Backend(host=url.hostname or "127.0.0.1", port=url.port or 5432, user=url.username or "postgres",
                      database=url.path.lstrip("/") or "postgres")
    try:
        with psycopg.connect(backend.conninfo(), autocommit=True) as c:
            c.execute("SELECT 1")
    except psycopg.Error as e:
        pytest.fail(f"the test cluster's first primary ({backend.host}:{backend.port}) is not reachable: {e}",
                    pytrace=False)
    return TestEnv(map_path=map_path, bin=binary, base_map=base_map, backend=backend)


_ENV: TestEnv | None = None


@pytest.fixture(scope="session")
def sg_env() -> TestEnv:
    global _ENV
    if _ENV is None:
        _ENV = _load_env()
    return _ENV


@pytest.fixture(autouse=True)
def _require_env(sg_env: TestEnv) -> None:
    """Every test needs the cluster; without it every test errors (never skips)."""


# ---------------------------------------------------------------------------------------------
# The proxy process
# ---------------------------------------------------------------------------------------------
def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_used_ports: set[int] = set()


def free_port() -> int:
    candidates = [p for p in PORT_RANGE if p not in FORBIDDEN_PORTS and p not in _used_ports]
    random.shuffle(candidates)
    for port in candidates:
        if _port_is_free(port):
            _used_ports.add(port)
            return port
    raise RuntimeError("no free port in 16400-16999")


@dataclass
class Proxy:
    host: str
    port: int
    proc: subprocess.Popen
    map_path: Path
    log_path: Path
    map: dict
    backend: Backend
    #: set when the test itself stopped the proxy (so teardown does not judge the exit twice)
    stopped_by_test: bool = False
    exit_code: int | None = None
    killed: bool = False
    default_user: str = "postgres"
    default_password: str | None = None
    #: the admin HTTP port, e.g. http://127.0.0.1:16500
    admin_url: str = ""

    # -- connecting ------------------------------------------------------------------------
    def conninfo(self, **extra) -> str:
        params = {"host": self.host, "port": str(self.port), "user": self.default_user, "dbname": "app",
                  "connect_timeout": "5", "sslmode": "disable"}
        if self.default_password is not None:
            params["password"] = self.default_password
        params.update({k: str(v) for k, v in extra.items()})
        return psycopg.conninfo.make_conninfo(**params)

    def connect(self, autocommit: bool = True, prepare_threshold: int | None = None, **extra) -> psycopg.Connection:
        """psycopg 3 through the proxy. prepare_threshold=None: only unnamed statements, which is what
        transaction pooling supports (named prepared statements live on one backend connection)."""
        return psycopg.connect(self.conninfo(**extra), autocommit=autocommit, prepare_threshold=prepare_threshold)

    def raw(self, timeout: float = 5.0) -> pgraw.RawConn:
        return pgraw.RawConn.open(self.host, self.port, timeout=timeout)

    def raw_login(self, **kw) -> pgraw.RawConn:
        c = self.raw()
        kw.setdefault("user", self.default_user)
        if self.default_password is not None:
            kw.setdefault("password", self.default_password)
        c.login(**kw)
        return c

    # -- process ---------------------------------------------------------------------------
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        self.exit_code = self.proc.wait(timeout)
        return self.exit_code

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait; SIGKILL if it does not exit in time (that is recorded as a failure)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait(10)
        self.exit_code = self.proc.returncode
        return self.exit_code

    def backend_ports(self) -> set[int]:
        """Local ports of the proxy's pooled TCP connections to the backend server (from /proc), to find the
        proxy's backends in pg_stat_activity (column client_port) without guessing. The lag monitor's own
        connections (application_name shardgate-lag-monitor) are left out: they are not pool members."""
        ports = self._tcp_ports_to_backend()
        if not ports:
            return ports
        with psycopg.connect(self.backend.conninfo(), autocommit=True) as direct:
            monitor = {r[0] for r in direct.execute(
                "SELECT client_port FROM pg_stat_activity WHERE application_name = 'shardgate-lag-monitor' "
                "AND client_port = ANY(%s)", (list(ports),)).fetchall()}
        return ports - monitor

    def _tcp_ports_to_backend(self) -> set[int]:
        inodes = set()
        fd_dir = Path(f"/proc/{self.proc.pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        ports = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()
                local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
                if inode not in inodes or state != "01":  # 01 = ESTABLISHED
                    continue
                if int(remote.rsplit(":", 1)[1], 16) == self.backend.port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
        return ports

    def backend_activity(self, direct: psycopg.Connection) -> list[dict]:
        """pg_stat_activity rows of this proxy's backend connections."""
        ports = list(self.backend_ports())
        if not ports:
            return []
        cur = direct.cursor(row_factory=psycopg.rows.dict_row)
        return cur.execute(
            "SELECT pid, state, query, xact_start, application_name, client_port FROM pg_stat_activity "
            "WHERE client_port = ANY(%s) AND client_addr = '127.0.0.1'", (ports,)).fetchall()


@dataclass
class ProxyFactory:
    env: TestEnv
    tmp_path: Path
    proxies: list[Proxy] = field(default_factory=list)

    def make_map(self, pool: dict | None = None, auth: dict | None = None, tls: dict | None = None,
                 mutate=None, replicas: bool = False) -> dict:
        """The test cluster's map with these sections. Without `replicas=True` the replicas are left out, so
        that every statement runs on a primary: the protocol and pooling tests check what s0's primary sees
        (tables they create directly there are read through the proxy at once, without replication lag)."""
        m = copy.deepcopy(self.env.base_map)
        if not replicas:
            for shard in m["shards"]:
                shard["replicas"] = []
        if pool is not None:
            m["pool"] = pool
        if auth is not None:
            m["auth"] = auth
        if tls is not None:
            m["tls"] = tls
        if mutate is not None:
            mutate(m)
        return m

    def start(self, pool: dict | None = None, auth: dict | None = None, tls: dict | None = None, mutate=None,
              replicas: bool = False,
              env: dict[str, str] | None = None, user: str = "postgres", password: str | None = None,
              wait: str = "login", timeout: float = 30.0) -> Proxy:
        """Writes a variant of the test cluster's map and starts `shardgate serve` with it.

        wait="login": until a full PostgreSQL login (as `user`/`password`) and `SELECT 1` succeed;
        wait="listen": until the proxy answers a startup packet with any protocol message (for maps whose
        backend is meant to be unreachable).
        """
        m = self.make_map(pool=pool, auth=auth, tls=tls, mutate=mutate, replicas=replicas)
        n = len(self.proxies)
        map_path = self.tmp_path / f"shardmap-{n}.json"
        map_path.write_text(json.dumps(m, indent=2))
        log_path = self.tmp_path / f"shardgate-{n}.log"
        port = free_port()
        proc_env = {k: v for k, v in os.environ.items()
                    if k not in ("SHARDGATE_MAP", "SHARDGATE_LISTEN", "SHARDGATE_THREADS")}
        proc_env["SHARDGATE_LOG_LEVEL"] = os.environ.get("SHARDGATE_TEST_LOG_LEVEL", "info")
        # Never the default admin port 9930 (it may be in use; several proxies run one after another).
        admin_port = free_port()
        proc_env["SHARDGATE_ADMIN"] = f"127.0.0.1:{admin_port}"
        proc_env.update(env or {})
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [str(self.env.bin), "serve", "--map", str(map_path), "--listen", f"127.0.0.1:{port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=proc_env,
                start_new_session=True)  # a Ctrl-C sent to a test's pty must never reach the proxy
        proxy = Proxy(host="127.0.0.1", port=port, proc=proc, map_path=map_path, log_path=log_path, map=m,
                      backend=self.env.backend, default_user=user, default_password=password,
                      admin_url=f"http://{proc_env['SHARDGATE_ADMIN']}")
        self.proxies.append(proxy)
        self._wait_ready(proxy, wait, timeout)
        return proxy

    def _wait_ready(self, proxy: Proxy, wait: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not proxy.alive():
                pytest.fail(f"shardgate exited with {proxy.proc.returncode} before accepting clients:\n{proxy.log()}",
                            pytrace=False)
            try:
                c = proxy.raw(timeout=5)
            except OSError as e:
                last_error = e
                time.sleep(0.05)
                continue
            try:
                if wait == "listen":
                    c.send(pgraw.startup_packet({"user": proxy.default_user, "database": "app"}))
                    c.read_message(timeout=5)
                    return
                c.login(user=proxy.default_user, password=proxy.default_password)
                rows = pgraw.data_rows(c.query("SELECT 1"))
                assert rows == [["1"]], rows
                c.send(pgraw.TERMINATE)
                return
            except (OSError, pgraw.ClosedError, pgraw.LoginRefused, TimeoutError) as e:
                last_error = e
                time.sleep(0.1)
            finally:
                c.close()
        pytest.fail(f"shardgate did not accept a PostgreSQL login within {timeout}s (last error: {last_error}):\n"
                    f"{proxy.log()}", pytrace=False)

    def check_all(self) -> list[str]:
        """Stops every proxy still running; returns what was wrong with how they ended."""
        problems = []
        for p in self.proxies:
            judged_by_test = p.stopped_by_test
            if p.alive():
                p.stop()
            rc = p.proc.returncode
            log = p.log()
            if p.killed:
                problems.append(f"shardgate on port {p.port} did not exit within {STOP_TIMEOUT}s of SIGTERM "
                                f"(killed)")
            elif rc != 0 and not judged_by_test:
                problems.append(f"shardgate on port {p.port} exited with status {rc} (crash or failed shutdown)")
            crash = next((m for m in CRASH_MARKERS if m in log), None)
            if crash:
                problems.append(f"shardgate on port {p.port} crashed (its log has {crash!r})")
            if problems and problems[-1].startswith(f"shardgate on port {p.port}"):
                problems.append(f"---- log of shardgate on port {p.port} ({p.log_path}) ----\n{log[-20000:]}")
        return problems


@pytest.fixture
def proxy_factory(sg_env: TestEnv, tmp_path: Path, request):
    factory = ProxyFactory(env=sg_env, tmp_path=tmp_path)
    request.node._sg_factory = factory
    yield factory
    problems = factory.check_all()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def proxy(proxy_factory: ProxyFactory) -> Proxy:
    """A proxy in front of the test cluster with trust auth and the default pool."""
    return proxy_factory.start()


@pytest.fixture
def direct(sg_env: TestEnv):
    """A superuser connection straight to the backend (shard s0's primary), autocommit."""
    with psycopg.connect(sg_env.backend.conninfo(), autocommit=True) as c:
        yield c


@pytest.fixture
def table_name(request, direct) -> str:
    """A fresh table name for this test (dropped afterwards)."""
    name = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name.lower())[:40] + \
           f"_{random.randrange(1 << 30):x}"
    yield name
    drop_tables(direct, name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the log of every proxy the test started."""
    outcome = yield
    report = outcome.get_result()
    factory: ProxyFactory | None = getattr(item, "_sg_factory", None)
    if factory is None or not report.failed:
        return
    for p in factory.proxies:
        report.sections.append((f"shardgate log (port {p.port}, {p.log_path})", p.log()[-20000:]))
