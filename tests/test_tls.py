"""TLS between clients and ShardGate (the map's "tls" section)."""

from __future__ import annotations

import asyncio
import os
import ssl
import struct
import subprocess

import asyncpg
import psycopg
import pytest

import pgraw


@pytest.fixture
def cert(tmp_path):
    crt, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "2",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True, timeout=30)
    return crt, key


@pytest.fixture
def tls_proxy(proxy_factory, cert):
    crt, key = cert
    return proxy_factory.start(tls={"cert": str(crt), "key": str(key)})


def test_sslmode_require_uses_tls(tls_proxy, cert):
    with tls_proxy.connect(sslmode="require") as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("SELECT 'over tls', %s::int", (5,)).fetchone() == ("over tls", 5)
        # a big result through TLS
        assert c.execute("SELECT sum(length(repeat('x', i))) FROM generate_series(1, 3000) i").fetchone() == \
            (3000 * 3001 // 2,)
        assert len(c.execute("SELECT repeat('y', 3 << 20)").fetchone()[0]) == 3 << 20
    # verify-full: the certificate is checked against the host name (CN=localhost).
    with tls_proxy.connect(sslmode="verify-full", sslrootcert=str(cert[0]), host="localhost",
                           hostaddr="127.0.0.1") as c:
        assert c.pgconn.ssl_in_use
    # TLS is offered, not forced: a plain-text client is still served.
    with tls_proxy.connect(sslmode="disable") as c:
        assert not c.pgconn.ssl_in_use
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_tls_with_scram_auth(proxy_factory, cert):
    crt, key = cert
    p = proxy_factory.start(tls={"cert": str(crt), "key": str(key)},
                            auth={"method": "scram-sha-256", "users": [{"name": "app", "password": "${APP_PW}"}]},
                            env={"APP_PW": "tls-secret"}, user="app", password="tls-secret")
    with p.connect(sslmode="require", user="app", password="tls-secret") as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("SELECT 2").fetchone() == (2,)
    with pytest.raises(psycopg.OperationalError) as info:
        p.connect(sslmode="require", user="app", password="nope")
    assert 'password authentication failed for user "app"' in str(info.value)


def test_psql_and_asyncpg_over_tls(tls_proxy):
    env = dict(os.environ, PGSSLMODE="require", PGCONNECT_TIMEOUT="5")
    r = subprocess.run(["psql", "-X", "-h", tls_proxy.host, "-p", str(tls_proxy.port), "-U", "postgres", "-d", "app",
                        "-c", r"\conninfo", "-c", "SELECT 'psql-tls'"], capture_output=True, text=True, timeout=30,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert "SSL connection (protocol: TLSv1." in r.stdout and "psql-tls" in r.stdout, r.stdout

    async def run():
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = await asyncpg.connect(host=tls_proxy.host, port=tls_proxy.port, user="postgres", database="app",
                                  ssl=ctx, statement_cache_size=0, timeout=5)
        try:
            assert await c.fetchval("SELECT $1::text || '!'", "asyncpg-tls") == "asyncpg-tls!"
            assert c.get_server_pid() != 0
            assert c._transport.get_extra_info("sslcontext") is not None
        finally:
            await c.close()

    asyncio.run(asyncio.wait_for(run(), 30))


def test_without_tls_require_fails_and_prefer_is_plain(proxy):
    with pytest.raises(psycopg.OperationalError) as info:
        proxy.connect(sslmode="require")
    assert "SSL" in str(info.value), str(info.value)
    with proxy.connect(sslmode="prefer") as c:
        assert not c.pgconn.ssl_in_use
        assert c.execute("SELECT 'plain'").fetchone() == ("plain",)


def test_plaintext_pipelined_after_ssl_request_is_refused(tls_proxy):
    """Bytes sent together with SSLRequest, before the 'S', must not be taken as if they came through
    TLS (CVE-2021-23214): the proxy closes the connection (a FATAL is fine)."""
    c = tls_proxy.raw()
    try:
        c.send(struct.pack("!ii", 8, pgraw.SSL_REQUEST_CODE) + pgraw.startup_packet({"user": "postgres",
                                                                                       "database": "app"}))
        data = b""
        c.sock.settimeout(5)
        while True:
            chunk = c.sock.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        c.close()
    # Nothing but (maybe) the one-byte answer and a FATAL; certainly no AuthenticationOk / ReadyForQuery.
    assert b"Z\x00\x00\x00\x05" not in data, data
    assert b"R\x00\x00\x00\x08\x00\x00\x00\x00" not in data, data


def test_garbage_instead_of_tls_handshake(tls_proxy):
    c = tls_proxy.raw()
    try:
        c.send(struct.pack("!ii", 8, pgraw.SSL_REQUEST_CODE))
        c.sock.settimeout(5)
        assert c.sock.recv(1) == b"S"
        c.send(b"\x16\x03\x01\x00\x05hello-not-tls" * 10)
        data = b""
        while True:
            chunk = c.sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        c.close()
    with tls_proxy.connect(sslmode="require") as ok:
        assert ok.execute("SELECT 1").fetchone() == (1,)


def test_cancel_over_tls(tls_proxy):
    """libpq 17's cancel API (used by psycopg) sends the CancelRequest through TLS when sslmode says so."""
    import threading
    import time

    with tls_proxy.connect(sslmode="require") as c:
        timer = threading.Timer(0.8, c.cancel_safe if hasattr(c, "cancel_safe") else c.cancel)
        timer.start()
        start = time.monotonic()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                c.execute("SELECT pg_sleep(10)")
        finally:
            timer.cancel()
        assert time.monotonic() - start < 6
        assert c.execute("SELECT 'after cancel'").fetchone() == ("after cancel",)
