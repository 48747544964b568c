"""psql through ShardGate: meta-commands, COPY in both directions, errors, Ctrl-C."""

from __future__ import annotations

import os
import subprocess
import time

import pexpect
import psycopg
import pytest

from sgtest import PEERS


def psql(proxy, *args: str, input: str | None = None, timeout: float = 30, check: bool = True,
         env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = ["psql", "-X", "-h", proxy.host, "-p", str(proxy.port), "-U", "postgres", "-d", "app",
           "-v", "VERBOSITY=verbose", *args]
    e = dict(os.environ, PAGER="", PSQL_PAGER="", PGCONNECT_TIMEOUT="5", PGSSLMODE="disable")
    e.update(env or {})
    r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=e)
    if check:
        assert r.returncode == 0, f"psql {args} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def test_meta_commands_d_dt_l(proxy, direct, table_name):
    direct.execute(f"CREATE TABLE {table_name} (id bigint PRIMARY KEY, name text NOT NULL)")
    r = psql(proxy, "-c", r"\dt", "-c", rf"\d {table_name}", "-c", r"\l", "-c", r"\d")
    out = r.stdout
    assert table_name in out
    # \d table shows the columns and the index
    assert "name" in out and "not null" in out and f"{table_name}_pkey" in out
    # \l lists the databases of the server
    assert "app" in out and "template1" in out
    assert r.stderr == "", r.stderr


def test_syntax_error_keeps_session_usable(proxy):
    # One psql session: a syntax error, then more statements, including a transaction.
    script = "SELEC 1;\nSELECT 40 + 2 AS answer;\nBEGIN;\nSELECT 1/0;\nROLLBACK;\nSELECT 'still here' AS s;\n"
    r = psql(proxy, "-A", "-t", input=script, check=False)
    assert "syntax error" in r.stderr and "42601" in r.stderr, r.stderr
    assert "division by zero" in r.stderr and "22012" in r.stderr, r.stderr
    assert r.stdout.split() == ["42", "BEGIN", "ROLLBACK", "still", "here"], r.stdout


def test_copy_from_stdin_and_to_stdout_with_psql(proxy, direct, table_name, tmp_path):
    direct.execute(f"CREATE TABLE {table_name} (id int PRIMARY KEY, name text)")
    src = tmp_path / "in.csv"
    src.write_text("".join(f"{i},name {i}\n" for i in range(1, 5001)))
    dst = tmp_path / "out.csv"
    # \copy (psql sends COPY ... FROM STDIN / TO STDOUT) and an inline COPY FROM STDIN in a script.
    script = (
        f"\\copy {table_name} FROM '{src}' WITH (FORMAT csv)\n"
        f"COPY {table_name} FROM STDIN WITH (FORMAT csv);\n"
        "10001,inline one\n10002,inline two\n\\.\n"
        f"\\copy (SELECT * FROM {table_name} ORDER BY id) TO '{dst}' WITH (FORMAT csv)\n"
        f"SELECT count(*) FROM {table_name};\n"
    )
    r = psql(proxy, "-A", "-t", "-v", "ON_ERROR_STOP=1", input=script)
    assert "COPY 5000" in r.stdout and "COPY 2" in r.stdout and "COPY 5002" in r.stdout, r.stdout
    assert r.stdout.strip().splitlines()[-1] == "5002"
    lines = dst.read_text().splitlines()
    assert len(lines) == 5002
    assert lines[0] == "1,name 1" and lines[4999] == "5000,name 5000" and lines[-1] == "10002,inline two"
    assert direct.execute(f"SELECT count(*), sum(id) FROM {table_name}").fetchone() == (5002, 5000 * 5001 // 2 + 20003)


def test_failed_copy_keeps_session_and_pool_usable(proxy_factory, direct, table_name, tmp_path):
    """A COPY that fails early while the client is still streaming data: the rest of the CopyData is
    dropped, nothing is inserted, and the same session (and the pooled backend) serve the next statements."""
    proxy = proxy_factory.start(pool={"size": 1})
    direct.execute(f"CREATE TABLE {table_name} (id int PRIMARY KEY, name text)")
    src = tmp_path / "bad.csv"
    rows = ["1,ok", "not-a-number,bad"] + [f"{i},row {i}" for i in range(2, 200_000)]
    src.write_text("\n".join(rows) + "\n")
    script = (f"\\copy {table_name} FROM '{src}' WITH (FORMAT csv)\n"
              f"SELECT 'after', count(*) FROM {table_name};\n"
              f"INSERT INTO {table_name} VALUES (1, 'x') RETURNING id;\n")
    r = psql(proxy, "-A", "-t", input=script, check=False)
    assert "invalid input syntax for type integer" in r.stderr, r.stderr
    assert "after|0" in r.stdout, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert r.stdout.strip().splitlines()[-2:] == ["1", "INSERT 0 1"], r.stdout
    # Another client on the same (size-1) pool gets correct answers.
    with proxy.connect() as c:
        for i in range(20):
            assert c.execute("SELECT %s::int * 2", (i,)).fetchone() == (i * 2,)
    assert direct.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (1,)


def test_psql_ctrl_c_cancels_pg_sleep(proxy):
    env = dict(os.environ, PAGER="", PSQL_PAGER="", PGSSLMODE="disable", PGCONNECT_TIMEOUT="5", TERM="dumb")
    child = pexpect.spawn("psql", ["-X", "-h", proxy.host, "-p", str(proxy.port), "-U", "postgres", "-d", "app"],
                          env=env, encoding="utf-8", timeout=10, dimensions=(40, 200))
    try:
        child.expect_exact("app=#")
        child.sendline("SELECT pg_sleep(10);")
        time.sleep(1.0)  # let the statement reach the backend
        start = time.monotonic()
        child.sendintr()  # Ctrl-C: psql sends a CancelRequest to the proxy
        child.expect_exact("canceling statement due to user request", timeout=5)
        elapsed = time.monotonic() - start
        assert elapsed < 4, f"cancel took {elapsed:.1f}s"
        child.expect_exact("app=#")
        child.sendline("SELECT 6 * 7 AS answer;")
        child.expect(r"answer\s*\r?\n-+\r?\n\s*42\s*\r?\n\(1 row\)")
        child.expect_exact("app=#")
        child.sendline(r"\q")
        child.expect(pexpect.EOF, timeout=5)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus)


def test_psycopg_cancel_from_another_thread(proxy):
    import threading

    with proxy.connect() as c, proxy.connect() as other:
        timer = threading.Timer(1.0, c.cancel)
        timer.start()
        start = time.monotonic()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled) as info:
                c.execute("SELECT pg_sleep(10)")
        finally:
            timer.cancel()
        assert time.monotonic() - start < 5
        assert info.value.sqlstate == "57014"
        assert "canceling statement due to user request" in str(info.value)
        # The same session goes on; another session was never affected.
        assert c.execute("SELECT 1 + 1").fetchone() == (2,)
        assert other.execute("SELECT 'other'").fetchone() == ("other",)


def test_cancel_does_not_hit_another_clients_statement(proxy_factory):
    """A cancel for client A while A is idle must not cancel client B's statement on the backend A used
    last (with a pool of 1 per event loop they share backends)."""
    import threading

    proxy = proxy_factory.start(pool={"size": 1})
    a = proxy.connect()
    bs = [proxy.connect() for _ in range(PEERS)]
    try:
        a_pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        sharing = [b for b in bs if b.execute("SELECT pg_backend_pid()").fetchone()[0] == a_pid]
        assert sharing, "no client shares client A's backend; the test would prove nothing"
        b = sharing[0]
        result: dict = {}

        def run_b():
            try:
                result["value"] = b.execute("SELECT pg_sleep(1.5), 'b done'").fetchone()[1]
            except Exception as e:  # noqa: BLE001 - reported below
                result["error"] = e

        t = threading.Thread(target=run_b)
        t.start()
        time.sleep(0.5)
        a.cancel()  # A has nothing running
        t.join(10)
        assert not t.is_alive()
        assert result == {"value": "b done"}, result
    finally:
        a.close()
        for b in bs:
            b.close()
