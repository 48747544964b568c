"""The admin port's dashboard (`GET /`) rendered by a real headless browser (Debian's chromium): the
page's own JavaScript fetches /status and /lag and fills the tables and the slot strip.

Needs `chromium` (`apt-get install -y chromium`); without it the test fails and says so.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse
import urllib.request
from html.parser import HTMLParser

import pytest

from sgtest import wait_until


class DashboardDOM(HTMLParser):
    """Collects the text of every table cell by table id, and the slot strip's cells."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.strip_titles: list[str] = []
        self._table: str | None = None
        self._in_body = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_strip = 0
        self.header: dict[str, str] = {}
        self._stat: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id")
            self.tables.setdefault(self._table, [])
        elif tag == "tbody" and self._table:
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "div" and a.get("id") == "strip":
            self._in_strip = 1
        elif tag == "div" and self._in_strip:
            self._in_strip += 1
            self.strip_titles.append(a.get("title", ""))
        elif tag == "b" and a.get("id"):
            self._stat = a["id"]
            self.header[self._stat] = ""

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None
        elif tag == "div" and self._in_strip:
            self._in_strip -= 1
        elif tag == "b":
            self._stat = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._stat:
            self.header[self._stat] += data


@pytest.fixture
def proxy(proxy_factory):
    """The admin tests watch replicas too: a proxy with the test cluster's replicas in its map."""
    return proxy_factory.start(replicas=True)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not installed (apt-get install -y chromium); the dashboard test needs a real browser",
                pytrace=False)


def render(url: str, profile) -> DashboardDOM:
    result = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = DashboardDOM()
    dom.feed(result.stdout)
    return dom


def test_the_dashboard_shows_shards_replicas_slots_and_traffic_in_a_real_browser(proxy, tmp_path):
    def sampled():
        with urllib.request.urlopen(proxy.admin_url.rstrip("/") + "/lag", timeout=5) as r:
            import json
            lag = json.loads(r.read())
        return lag["sampled_at"] and all(x["healthy"] for x in lag["replicas"])
    wait_until(sampled, 15, interval=0.1, message="the lag monitor's first samples")
    with proxy.connect() as c:
        c.execute("SELECT 1").fetchall()

    dom = render(proxy.admin_url.rstrip("/") + "/", tmp_path / "chromium-profile")

    shard_rows = dom.tables.get("shards", [])
    assert [row[0] for row in shard_rows] == [s["name"] for s in proxy.map["shards"]], dom.tables
    for row, shard in zip(shard_rows, proxy.map["shards"]):
        host_port = "{0.hostname}:{0.port}".format(urllib.parse.urlparse(shard["primary"]))
        assert host_port in row[1]
        assert row[2] == "yes", "the primary is healthy"

    replica_rows = dom.tables.get("replicas", [])
    expected = [(s["name"], r) for s in proxy.map["shards"] for r in s["replicas"]]
    assert len(replica_rows) == len(expected), dom.tables
    for row, (shard, url) in zip(replica_rows, expected):
        assert row[0] == shard
        assert "{0.hostname}:{0.port}".format(urllib.parse.urlparse(url)) in row[1]
        assert row[2] == "yes" and row[3] == "yes", f"replica {url} healthy and in rotation: {row}"

    slot_count = proxy.map.get("slot_count", 1024)
    assert len(dom.strip_titles) == slot_count
    first_owner = next(name for name, ranges in proxy.map["slots"].items()
                       if any(part.split("-")[0] == "0" for part in ranges.split(",")))
    assert dom.strip_titles[0] == f"slot 0: {first_owner}"
    assert dom.header.get("map-version") == str(proxy.map["version"])
    assert [row[0] for row in dom.tables.get("routes", [])] == ["all", "any", "local", "multi", "single"]
