"""Client authentication at the proxy (SCRAM-SHA-256, md5) and the proxy's own login to backends."""

from __future__ import annotations

import asyncio

import asyncpg
import psycopg
import psycopg2
import pytest

import pgraw

APP_PW = "s3cret pässword 'with' quotes"
SCRAM_AUTH = {"method": "scram-sha-256", "users": [{"name": "app", "password": "${APP_PW}"}]}
MD5_AUTH = {"method": "md5", "users": [{"name": "app", "password": "${APP_PW}"}]}
PW_FAILED = 'password authentication failed for user'


@pytest.fixture(params=["scram-sha-256", "md5"])
def auth_proxy(request, proxy_factory):
    auth = SCRAM_AUTH if request.param == "scram-sha-256" else MD5_AUTH
    p = proxy_factory.start(auth=auth, env={"APP_PW": APP_PW}, user="app", password=APP_PW)
    p.auth_method = request.param
    return p


def _assert_refused_fatal(fields: dict[str, str], user: str):
    assert fields.get("S") == "FATAL" and fields.get("V") == "FATAL", fields
    assert fields.get("C") == "28P01", fields
    assert fields.get("M") == f'{PW_FAILED} "{user}"', fields


def test_psycopg3_connects_and_is_refused(auth_proxy):
    with psycopg.connect(auth_proxy.conninfo(user="app", password=APP_PW), autocommit=True) as c:
        assert c.execute("SELECT 'hello'").fetchone() == ("hello",)
        # The backend runs as the map's backend user; the client authenticated as app at the proxy.
        assert c.execute("SELECT current_user").fetchone() == ("postgres",)
    for user, password in (("app", "wrong"), ("nobody", APP_PW), ("app", APP_PW + "x")):
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(auth_proxy.conninfo(user=user, password=password))
        msg = str(info.value)
        assert "FATAL" in msg and f'{PW_FAILED} "{user}"' in msg, msg


def test_psycopg2_connects_and_is_refused(auth_proxy):
    c = psycopg2.connect(auth_proxy.conninfo(user="app", password=APP_PW))
    try:
        cur = c.cursor()
        cur.execute("SELECT %s::int + 1", (41,))
        assert cur.fetchone() == (42,)
        c.commit()
    finally:
        c.close()
    for user, password in (("app", "wrong"), ("nobody", "whatever")):
        with pytest.raises(psycopg2.OperationalError) as info:
            psycopg2.connect(auth_proxy.conninfo(user=user, password=password))
        msg = str(info.value)
        assert "FATAL" in msg and f'{PW_FAILED} "{user}"' in msg, msg


def test_asyncpg_connects_and_sees_sqlstate_28P01(auth_proxy):
    async def run():
        c = await asyncpg.connect(host=auth_proxy.host, port=auth_proxy.port, user="app", password=APP_PW,
                                  database="app", ssl=False, statement_cache_size=0, timeout=5)
        try:
            assert await c.fetchval("SELECT $1::int * 2", 21) == 42
        finally:
            await c.close()
        for user, password in (("app", "wrong"), ("nobody", APP_PW)):
            with pytest.raises(asyncpg.InvalidPasswordError) as info:
                await asyncpg.connect(host=auth_proxy.host, port=auth_proxy.port, user=user, password=password,
                                      database="app", ssl=False, timeout=5)
            assert info.value.sqlstate == "28P01"
            assert info.value.severity == "FATAL"
            assert f'{PW_FAILED} "{user}"' in info.value.message

    asyncio.run(asyncio.wait_for(run(), 30))


def test_raw_protocol_wrong_password_and_unknown_user(auth_proxy):
    """The exact ErrorResponse: S/V=FATAL, C=28P01, the PostgreSQL wording; then the connection closes.
    An unknown user goes through the same exchange and gets the same answer (no user probing)."""
    ok = auth_proxy.raw()
    ok.login(user="app", password=APP_PW)
    assert pgraw.data_rows(ok.query("SELECT 7")) == [["7"]]
    ok.close()
    for user, password in (("app", "wrong"), ("nobody", APP_PW), ("nobody", "x")):
        c = auth_proxy.raw()
        try:
            with pytest.raises(pgraw.LoginRefused) as info:
                c.login(user=user, password=password)
            _assert_refused_fatal(info.value.fields, user)
            # The unknown user was challenged the same way as a known one.
            expected_request = 10 if auth_proxy.auth_method == "scram-sha-256" else 5
            first = info.value.messages[0]
            assert first.type == b"R" and int.from_bytes(first.payload[:4], "big") == expected_request
            assert c.read_until_closed(timeout=5) == []
        finally:
            c.close()


def test_unoffered_sasl_mechanism_is_refused(proxy_factory):
    p = proxy_factory.start(auth=SCRAM_AUTH, env={"APP_PW": APP_PW}, user="app", password=APP_PW)
    c = p.raw()
    try:
        c.send(pgraw.startup_packet({"user": "app", "database": "app"}))
        first = c.read_message()
        assert first.type == b"R"
        # A SASLInitialResponse naming a mechanism that was not offered.
        c.send(pgraw.frame(b"p", b"SCRAM-SHA-1\x00" + (4).to_bytes(4, "big") + b"n,,x"))
        msgs = c.read_until_closed(timeout=5)
        errs = pgraw.errors(msgs)
        assert len(errs) == 1 and errs[0]["S"] == "FATAL" and errs[0]["C"] in ("28000", "28P01", "08P01"), errs
    finally:
        c.close()


def test_trust_map_accepts_any_user_on_loopback(proxy):
    with proxy.connect(user="whoever") as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_unknown_database_is_refused(proxy):
    with pytest.raises(psycopg.OperationalError) as info:
        proxy.connect(dbname="not_app")
    assert 'database "not_app" does not exist' in str(info.value)


@pytest.mark.parametrize("role,password", [("sg_scram", "sg_scram_pw"), ("sg_md5", "sg_md5_pw")])
def test_proxy_authenticates_to_backend_with_password(proxy_factory, role, password):
    """The map's backend URL carries a role whose pg_hba method is scram-sha-256 / md5; the password comes
    from an environment variable expanded in the map."""

    def use_role(m):
        for shard in m["shards"]:
            shard["primary"] = shard["primary"].replace("postgres@", f"{role}:${{BACKEND_PW}}@")

    p = proxy_factory.start(mutate=use_role, env={"BACKEND_PW": password})
    with p.connect() as c:
        assert c.execute("SELECT current_user").fetchone() == (role,)


def test_proxy_reads_the_backend_password_from_pgpassfile(proxy_factory, tmp_path):
    """No password in the shard URL: the proxy looks it up in PGPASSFILE, with libpq's rules."""

    def use_role(m):
        for shard in m["shards"]:
            shard["primary"] = shard["primary"].replace("postgres@", "sg_scram@")

    passfile = tmp_path / "pgpass"
    passfile.write_text("# host:port:database:user:password\n"
                        "127.0.0.1:*:app:someone_else:nope\n"
                        "127.0.0.1:*:app:sg_scram:sg_scram_pw\n")
    passfile.chmod(0o600)  # libpq ignores a pass file others can read; so does ShardGate
    p = proxy_factory.start(mutate=use_role, env={"PGPASSFILE": str(passfile)})
    with p.connect() as c:
        assert c.execute("SELECT current_user").fetchone() == ("sg_scram",)


def test_wrong_backend_password_gives_clear_error_to_client(proxy_factory):
    def use_role(m):
        for shard in m["shards"]:
            shard["primary"] = shard["primary"].replace("postgres@", "sg_scram:wrong@")

    p = proxy_factory.start(mutate=use_role, wait="listen")
    with pytest.raises(psycopg.OperationalError) as info:
        p.connect()
    msg = str(info.value)
    assert "FATAL" in msg and "sg_scram" in msg and "password authentication failed" in msg, msg
    assert p.alive()
