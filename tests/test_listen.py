"""LISTEN pins the client's backend, so notifications reach it even between its transactions."""

from __future__ import annotations

import psycopg

from sgtest import PEERS


def test_listen_notify_through_the_proxy(proxy_factory):
    proxy = proxy_factory.start(pool={"size": 4})
    listener = proxy.connect()
    others = [proxy.connect() for _ in range(PEERS)]
    try:
        listener.execute("LISTEN sg_jobs")
        # Other clients keep the pool busy in between; the listener's backend is not theirs to take.
        for i, other in enumerate(others):
            other.execute("SELECT pg_notify('sg_jobs', %s)", (f"job-{i}",))
        received = []
        for notify in listener.notifies(timeout=5, stop_after=len(others)):
            received.append(notify.payload)
        assert sorted(received) == sorted(f"job-{i}" for i in range(len(others)))
        listener.execute("UNLISTEN sg_jobs")
    finally:
        listener.close()
        for other in others:
            other.close()
