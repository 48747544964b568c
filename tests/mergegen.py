"""Seeded data and query generator for the cross-shard merge differential test (issue 6).

The same schema and rows go into one plain PostgreSQL database (the reference) and, through ShardGate,
into the sharded cluster; every generated read must return the same result from both (compared as a
multiset unless ORDER BY fixes the order, and then only on what ORDER BY fixes), and every query the
generator marks as refused must get SQLSTATE 0A000 from ShardGate.

Everything here is deterministic for a seed, so a failing query can be reproduced with
`python3 tests/mergegen.py --seed N --show K`.

Results are read with libpq through psycopg's low-level API (`pgconn.exec_` for the simple protocol,
`exec_params` for the extended one, text or binary result format), so values are compared as the bytes
PostgreSQL sent — a numeric's scale, a float's digits — not as Python objects.
"""

from __future__ import annotations

import argparse
import random
import struct
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

SEED = 20261206
SLOT_SEED = 8816678312871386365  # 0x7A5B22367996DCFD, DESIGN §3

SCHEMA = [
    """CREATE TABLE users (
        id bigint PRIMARY KEY, name text, email text, country text, age int, score numeric(12,3),
        balance float8, rating real, active bool, created_at timestamptz, birthday date, code char(4),
        ref uuid, nick varchar(20))""",
    """CREATE TABLE orders (
        id bigint, user_id bigint, amount numeric(12,2), qty int, status text, weight real,
        placed_at timestamp, note text, PRIMARY KEY (user_id, id))""",
    """CREATE TABLE sessions (
        token text PRIMARY KEY, user_id bigint, started_at timestamptz, duration_ms bigint, device text,
        ok bool)""",
    """CREATE TABLE countries (code text PRIMARY KEY, name text, region text, population bigint)""",
]
TABLES = ["users", "orders", "sessions", "countries"]
COLUMNS = {
    "users": ["id", "name", "email", "country", "age", "score", "balance", "rating", "active", "created_at", "birthday",
              "code", "ref", "nick"],
    "orders": ["id", "user_id", "amount", "qty", "status", "weight", "placed_at", "note"],
    "sessions": ["token", "user_id", "started_at", "duration_ms", "device", "ok"],
    "countries": ["code", "name", "region", "population"],
}
#: table → (shard key column, key type), as in the test cluster's map (countries is a reference table).
SHARD_KEYS = {"users": ("id", "bigint"), "orders": ("user_id", "bigint"), "sessions": ("token", "text")}

COUNTRY_CODES = ["de", "fr", "us", "jp", "br", "in", "ng", "se", "es", "it", "mx", "ca", "au", "kr", "za",
                 "ar", "pl", "nl", "eg", "vn", "tr", "ch"]
NAMES = ["Ada", "ada", "Åsa", "Zoë", "zoe", "Émile", "emile", "Łukasz", "李雷", "韩梅梅", "Müller", "Mueller",
         "O'Brien", "obrien", "Søren", "Ævar", "ÿ", "Zed", "", " lead space", "trail space ", "Name😀", "NAME",
         "bob", "Bob", "bobby", "Ñandú", "nandu", "ß", "ss", "İstanbul", "istanbul", "z", "A", "a"]
STATUSES = ["new", "paid", "shipped", "cancelled", "refunded", "Paid", "ÜBERFÄLLIG"]
DEVICES = ["ios", "android", "web", "Web", "desktop", "tv", "🖥️"]
REGIONS = ["europe", "americas", "asia", "africa", "oceania"]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def _maybe(rng: random.Random, value, null_rate: float = 0.06):
    return None if rng.random() < null_rate else value


def generate_data(seed: int = SEED) -> dict[str, list[tuple]]:
    """Rows per table as Python values (None is NULL): 6,000 users, 12,000 orders, 4,000 sessions and
    the countries, with NULLs, duplicates, negative numbers and unicode text."""
    rng = random.Random(seed)
    countries = [(code, f"Country {code.upper()}" if i % 5 else f"Länd {code}", REGIONS[i % len(REGIONS)],
                  rng.randrange(10 ** 5, 10 ** 9)) for i, code in enumerate(COUNTRY_CODES)]
    ids: set[int] = set(range(-20, 60))
    while len(ids) < 6000:
        ids.add(rng.choice([rng.randrange(-10 ** 12, 10 ** 12), rng.randrange(-(1 << 62), 1 << 62),
                            rng.randrange(0, 100000)]))
    user_ids = sorted(ids)
    rng.shuffle(user_ids)
    epoch = datetime(2020, 1, 1, tzinfo=timezone.utc)
    users = []
    for uid in user_ids:
        name = _maybe(rng, rng.choice(NAMES) + ("" if rng.random() < 0.7 else str(rng.randrange(10))))
        users.append((
            uid, name, _maybe(rng, f"{(name or 'x').strip().lower()}{rng.randrange(1000)}@example.org"),
            _maybe(rng, rng.choice(COUNTRY_CODES + ["xx"])), _maybe(rng, rng.randrange(0, 100)),
            _maybe(rng, f"{rng.randrange(-99999999, 99999999) / 1000:.3f}"),
            # Dyadic values: float sums are exact in any order, so both sides must agree to the bit.
            _maybe(rng, rng.randrange(-80000, 80000) / 8), _maybe(rng, rng.randrange(0, 21) / 2),
            _maybe(rng, rng.random() < 0.6),
            _maybe(rng, epoch + timedelta(microseconds=rng.randrange(0, 6 * 365 * 86400 * 10 ** 6))),
            _maybe(rng, date(1940, 1, 1) + timedelta(days=rng.randrange(0, 25000))),
            _maybe(rng, "".join(rng.choice("abAB") for _ in range(rng.randrange(1, 5)))),
            _maybe(rng, uuid.UUID(int=rng.getrandbits(128))),
            _maybe(rng, rng.choice(NAMES)[:20]),
        ))
    orders = []
    for n in range(12000):
        uid = rng.choice(user_ids) if rng.random() < 0.97 else rng.randrange(10 ** 13, 10 ** 14)
        orders.append((
            n + 1, uid, _maybe(rng, f"{rng.randrange(-50000, 500000) / 100:.2f}"), _maybe(rng, rng.randrange(-5, 50)),
            _maybe(rng, rng.choice(STATUSES)), _maybe(rng, rng.randrange(0, 201) / 2),
            _maybe(rng, datetime(2021, 1, 1) + timedelta(seconds=rng.randrange(0, 4 * 365 * 86400),
                                                        microseconds=rng.randrange(0, 10 ** 6))),
            _maybe(rng, rng.choice(["", "gift", "Gift", "fragile ⚠", "leave at door", "日本語のメモ"]), 0.4),
        ))
    sessions = []
    tokens: set[str] = set()
    while len(tokens) < 4000:
        tokens.add(rng.choice(["tok-", "T-", "sess_", "ключ-", ""]) + "%x" % rng.getrandbits(rng.choice([16, 40, 64])))
    for token in sorted(tokens):
        sessions.append((
            token, _maybe(rng, rng.choice(user_ids)),
            _maybe(rng, epoch + timedelta(seconds=rng.randrange(0, 5 * 365 * 86400))),
            _maybe(rng, rng.randrange(-10 ** 6, 10 ** 13)), _maybe(rng, rng.choice(DEVICES)),
            _maybe(rng, rng.random() < 0.8),
        ))
    return {"users": users, "orders": orders, "sessions": sessions, "countries": countries}


def insert_statements(table: str, rows: list[tuple], batch: int = 250) -> list[tuple[str, list]]:
    """Multi-row INSERT statements (with the column list routing needs) and their parameters."""
    if not rows:
        return []
    columns = COLUMNS[table]
    out = []
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        values = ", ".join("(" + ", ".join(["%s"] * len(columns)) + ")" for _ in chunk)
        out.append((f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}", [v for row in chunk for v in row]))
    return out


def slot_of_sql(key_type: str) -> str:
    """DESIGN §3's slot expression for one key (`%s` placeholder)."""
    function = "hashint8extended(%s::bigint" if key_type == "bigint" else "hashtextextended(%s::text"
    return f"((({function}, {SLOT_SEED}) & 1023) + 227) & 1023)"


def parse_slot_ranges(text: str) -> list[tuple[int, int]]:
    ranges = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            ranges.append((int(a), int(b)))
        elif part:
            ranges.append((int(part), int(part)))
    return ranges


def shard_of_slot(shard_map: dict, slot: int) -> str:
    for shard, text in shard_map["slots"].items():
        if any(a <= slot <= b for a, b in parse_slot_ranges(text)):
            return shard
    raise ValueError(f"slot {slot} is owned by no shard")


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------
@dataclass
class Query:
    sql: str
    #: "multiset": any order; "exact": ORDER BY fixes every row's place; "sorted": ORDER BY on the output
    #: columns `sort` (0-based) fixes the order of those values only; "refused": ShardGate must say 0A000.
    mode: str
    sort: list[int] = field(default_factory=list)
    #: LIMIT/OFFSET cut a run of ties: only the rows strictly inside the kept range compare as a multiset.
    limited: bool = False
    params: list | None = None
    category: str = ""

    def describe(self) -> str:
        return f"[{self.category}/{self.mode}] {self.sql}" + (f"  params={self.params}" if self.params else "")


class QueryGenerator:
    """Builds the query list from templates with seeded choices."""

    def __init__(self, seed: int = SEED):
        self.rng = random.Random(seed)

    def pick(self, items):
        return self.rng.choice(items)

    def limit_clause(self, allow_params: bool = True) -> tuple[str, list | None]:
        rng = self.rng
        form = rng.randrange(6)
        if form == 0:
            return f" LIMIT {rng.randrange(0, 40)}", None
        if form == 1:
            return f" LIMIT {rng.randrange(1, 30)} OFFSET {rng.randrange(0, 60)}", None
        if form == 2:
            return f" OFFSET {rng.randrange(1, 200)}", None
        if form == 3:
            return f" OFFSET {rng.randrange(0, 5)} ROWS FETCH FIRST {rng.randrange(1, 20)} ROWS ONLY", None
        if form == 4 and allow_params:
            return " LIMIT %s OFFSET %s", [rng.randrange(1, 25), rng.randrange(0, 40)]
        return f" LIMIT {rng.randrange(1, 50)}", None

    def user_filter(self) -> str:
        rng = self.rng
        return self.pick([
            "", " WHERE age > %d" % rng.randrange(0, 90), " WHERE active", " WHERE NOT active OR active IS NULL",
            " WHERE country IN ('de', 'fr', 'jp')", " WHERE score < %d" % rng.randrange(-50000, 50000),
            " WHERE name LIKE '%%a%%'", " WHERE created_at >= '2023-01-01'", " WHERE birthday < '1970-01-01'",
            " WHERE id IN (%s)" % ", ".join(str(v) for v in rng.sample(range(-20, 60), 8)),
            " WHERE id BETWEEN -5 AND 40", " WHERE code = 'ab'", " WHERE balance > 0 AND rating >= 5",
        ])

    def generate(self, count: int = 330) -> list[Query]:
        makers = [
            (self.plain, 30), (self.ordered_exact, 55), (self.ordered_partial, 30), (self.aggregates, 45),
            (self.grouped, 60), (self.distinct, 25), (self.joins, 35), (self.in_lists, 15), (self.parameterized, 15),
            (self.refused, 30),
        ]
        queries: list[Query] = []
        for maker, n in makers:
            for _ in range(n):
                queries.append(maker())
        while len(queries) < count:
            queries.append(self.ordered_exact())
        return queries

    # -- templates ------------------------------------------------------------------------------
    def plain(self) -> Query:
        cols = self.pick(["*", "id, name, age", "name, country, score, balance", "id, ref, code, nick",
                          "id, created_at, birthday, active", "token, user_id, duration_ms"])
        table = "sessions" if "token" in cols else "users"
        where = self.user_filter() if table == "users" else self.pick(["", " WHERE ok", " WHERE duration_ms > 0"])
        return Query(f"SELECT {cols} FROM {table}{where}", "multiset", category="plain")

    ORDER_COLUMNS = ["name", "age", "score", "balance", "rating", "active", "created_at", "birthday", "code", "ref",
                     "nick", "country", "email"]

    def order_item(self, column: str) -> str:
        rng = self.rng
        item = column
        if column in ("name", "nick", "email") and rng.random() < 0.2:
            item += ' COLLATE "C"'
        item += self.pick(["", " ASC", " DESC"])
        item += self.pick(["", "", " NULLS FIRST", " NULLS LAST"])
        return item

    def ordered_exact(self) -> Query:
        """ORDER BY some columns and then the primary key: every row's place is fixed."""
        rng = self.rng
        keys = rng.sample(self.ORDER_COLUMNS, rng.randrange(1, 4))
        shown = keys if rng.random() < 0.6 else keys[:1]  # other sort keys become hidden columns
        cols = ["id"] + [k for k in shown if k != "id"] + rng.sample(["age", "score", "nick"], 1)
        cols = list(dict.fromkeys(cols))
        order = ", ".join(self.order_item(k) for k in keys) + ", id" + self.pick(["", " DESC"])
        limit, params = self.limit_clause() if rng.random() < 0.7 else ("", None)
        sql = f"SELECT {', '.join(cols)} FROM users{self.user_filter()} ORDER BY {order}{limit}"
        return Query(sql, "exact", params=params, category="order")

    def ordered_partial(self) -> Query:
        """ORDER BY output columns only, with ties: compare the order of those values."""
        rng = self.rng
        keys = rng.sample(["country", "age", "active", "code", "rating"], rng.randrange(1, 3))
        cols = keys + ["name"]
        order = ", ".join(self.order_item(k) if rng.random() < 0.5 else str(i + 1) + self.pick(["", " DESC"])
                          for i, k in enumerate(keys))
        limit, params = self.limit_clause() if rng.random() < 0.5 else ("", None)
        sql = f"SELECT {', '.join(cols)} FROM users{self.user_filter()} ORDER BY {order}{limit}"
        return Query(sql, "sorted", sort=list(range(len(keys))), limited=bool(limit), params=params, category="order")

    AGGREGATES = [
        "count(*)", "count(age)", "count(name)", "sum(age)", "sum(score)", "avg(age)", "avg(score)", "avg(balance)",
        "avg(rating)", "sum(balance)", "sum(rating)", "min(name)", "max(name)", "min(created_at)", "max(birthday)",
        "min(score)", "max(balance)", "max(code)", "bool_and(active)", "bool_or(active)", "every(active)",
        "count(DISTINCT country)", "count(DISTINCT age)", "sum(DISTINCT age)", "avg(DISTINCT age)",
        "count(DISTINCT name)", "avg(DISTINCT score)", "sum(DISTINCT rating)", "count(*) FILTER (WHERE age > 50)",
        "sum(age) FILTER (WHERE active)", "avg(score) FILTER (WHERE country = 'de')", "max(nick)", "min(id)",
        "sum(id)", "avg(id)",
    ]

    def aggregates(self) -> Query:
        rng = self.rng
        if rng.random() < 0.25:
            aggs = rng.sample(["count(*)", "sum(duration_ms)", "avg(duration_ms)", "min(token)", "max(started_at)",
                               "count(DISTINCT device)", "bool_or(ok)", "sum(DISTINCT user_id)"], rng.randrange(1, 4))
            return Query(f"SELECT {', '.join(aggs)} FROM sessions" + self.pick(["", " WHERE ok", " WHERE device = 'web'"]),
                         "multiset", category="aggregate")
        aggs = rng.sample(self.AGGREGATES, rng.randrange(1, 5))
        having = self.pick(["", "", " HAVING count(*) > 10", " HAVING count(*) > 100000"])
        return Query(f"SELECT {', '.join(aggs)} FROM users{self.user_filter()}{having}", "multiset", category="aggregate")

    def grouped(self) -> Query:
        rng = self.rng
        key = self.pick(["country", "active", "age / 10", "code", "date_trunc('year', created_at)",
                         "extract(year FROM birthday)", "rating", "lower(name)"])
        alias = "k"
        aggs = rng.sample([a for a in self.AGGREGATES if "FILTER" not in a or rng.random() < 0.5], rng.randrange(1, 4))
        select_key = rng.random() < 0.85
        cols = ([f"{key} AS {alias}"] if select_key else []) + aggs
        group = self.pick([alias, "1"]) if select_key else key
        having = self.pick(["", "", f" HAVING count(*) > {rng.randrange(1, 400)}",
                            f" HAVING min(age) < {rng.randrange(5, 60)} AND count(*) >= 2",
                            " HAVING max(score) IS NOT NULL", " HAVING bool_or(active)",
                            f" HAVING avg(age) BETWEEN {rng.randrange(10, 40)} AND {rng.randrange(40, 90)}",
                            " HAVING count(DISTINCT name) > 3", " HAVING sum(age) > %s"])
        params = [rng.randrange(0, 20000)] if "%s" in having else None
        order = ""
        limited = False
        mode, sort = "multiset", []
        if select_key and rng.random() < 0.7:
            # The group key is unique per row: ordering by it (with ties broken nowhere) fixes the order.
            order = " ORDER BY " + self.pick([f"{alias}", "1 DESC", f"{alias} NULLS FIRST", f"{alias} DESC NULLS LAST"])
            mode, sort = "exact", []
            if rng.random() < 0.5:
                limit, lp = self.limit_clause(allow_params=params is None)
                order += limit
                params = lp if lp else params
        elif rng.random() < 0.5:
            order = " ORDER BY count(*) DESC" + self.pick(["", ", max(age)"]) + f" LIMIT {rng.randrange(1, 8)}"
            cols.append("count(*)")
            mode, sort, limited = "sorted", [len(cols) - 1], True
        sql = f"SELECT {', '.join(cols)} FROM users{self.user_filter()} GROUP BY {group}{having}{order}"
        return Query(sql, mode, sort=sort, limited=limited, params=params, category="group")

    def distinct(self) -> Query:
        rng = self.rng
        form = rng.randrange(5)
        if form == 0:
            return Query(f"SELECT DISTINCT country FROM users{self.user_filter()}", "multiset", category="distinct")
        if form == 1:
            return Query("SELECT DISTINCT country, active FROM users ORDER BY 1, 2" + self.limit_clause(False)[0],
                         "exact", category="distinct")
        if form == 2:
            return Query(f"SELECT DISTINCT status FROM orders WHERE qty > {rng.randrange(-5, 40)}", "multiset",
                         category="distinct")
        if form == 3:
            desc = self.pick(["", " DESC"])
            return Query(f"SELECT DISTINCT ON (country) country, id, age FROM users ORDER BY country, age{desc}, id",
                         "exact", category="distinct")
        return Query("SELECT DISTINCT ON (device) device, token FROM sessions ORDER BY device, started_at DESC, token"
                     + self.pick(["", " LIMIT 3"]), "exact", category="distinct")

    def joins(self) -> Query:
        rng = self.rng
        form = rng.randrange(5)
        if form == 0:
            return Query("SELECT u.country, count(*), sum(o.amount), avg(o.qty) FROM users u JOIN orders o "
                         "ON o.user_id = u.id GROUP BY u.country ORDER BY 1", "exact", category="join")
        if form == 1:
            limit = rng.randrange(1, 40)
            return Query(f"SELECT o.user_id, o.id, o.amount, u.name FROM orders o JOIN users u ON u.id = o.user_id "
                         f"WHERE o.status = '{self.pick(STATUSES)}' ORDER BY o.amount DESC NULLS LAST, o.user_id, o.id "
                         f"LIMIT {limit}", "exact", category="join")
        if form == 2:
            return Query("SELECT c.region, count(*), max(u.age) FROM users u JOIN countries c ON c.code = u.country "
                         "GROUP BY c.region ORDER BY c.region", "exact", category="join")
        if form == 3:
            return Query("SELECT u.id, count(o.id), sum(o.weight) FROM users u LEFT JOIN orders o ON o.user_id = u.id "
                         f"WHERE u.age > {rng.randrange(50, 99)} GROUP BY u.id ORDER BY u.id", "exact", category="join")
        return Query("SELECT u.country, count(DISTINCT o.status), min(o.placed_at), max(u.name) FROM users u "
                     "JOIN orders o ON o.user_id = u.id WHERE o.qty > 0 GROUP BY u.country", "multiset",
                     category="join")

    def in_lists(self) -> Query:
        rng = self.rng
        ids = rng.sample(range(-20, 60), rng.randrange(2, 12))
        cols = self.pick(["*", "id, name", "count(*), max(id)"])
        mode = "multiset"
        order = ""
        if cols == "id, name":
            order, mode = " ORDER BY id DESC", "exact"
        return Query(f"SELECT {cols} FROM users WHERE id IN ({', '.join(map(str, ids))}){order}", mode,
                     category="in-list")

    def parameterized(self) -> Query:
        rng = self.rng
        form = rng.randrange(3)
        if form == 0:
            return Query("SELECT id, age FROM users WHERE age > %s ORDER BY age DESC, id LIMIT %s OFFSET %s", "exact",
                         params=[rng.randrange(0, 90), rng.randrange(1, 30), rng.randrange(0, 30)], category="params")
        if form == 1:
            return Query("SELECT country, count(*) FROM users GROUP BY country HAVING count(*) > %s ORDER BY 1",
                         "exact", params=[rng.randrange(0, 400)], category="params")
        return Query("SELECT user_id, sum(amount) FROM orders WHERE user_id = ANY(%s) GROUP BY user_id",
                     "multiset", params=[rng.sample(range(-20, 60), 6)], category="params")

    REFUSED = [
        "SELECT id, row_number() OVER (ORDER BY id) FROM users",
        "SELECT country, rank() OVER (PARTITION BY country ORDER BY age) FROM users",
        "SELECT string_agg(name, ',') FROM users",
        "SELECT array_agg(id) FROM users",
        "SELECT count(*) + 1 FROM users",
        "SELECT round(avg(age), 2) FROM users",
        "SELECT country, sum(age) / count(*) FROM users GROUP BY country",
        "SELECT id FROM users UNION SELECT user_id FROM orders",
        "SELECT country FROM users INTERSECT SELECT code FROM countries",
        "SELECT country, count(*) FROM users GROUP BY ROLLUP(country)",
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY age) FROM users",
        "SELECT stddev(age) FROM users",
        "SELECT id FROM users ORDER BY random() LIMIT 3",
        "SELECT sum(age ORDER BY id) FROM users",
        "SELECT DISTINCT ON (country) country, count(*) FROM users GROUP BY country",
        "SELECT u.id FROM users u JOIN orders o ON o.id = u.id",
        "SELECT s.device, count(*) FROM sessions s JOIN users u ON u.id = s.user_id GROUP BY s.device",
        "SELECT country, count(*) FROM users GROUP BY country HAVING lower(country) LIKE 'd%'",
        "SELECT max(age) - min(age) FROM users",
        "SELECT country, count(*) FROM users GROUP BY GROUPING SETS ((country), ())",
        "SELECT CASE WHEN count(*) > 0 THEN 'some' END FROM users",
    ]

    def refused(self) -> Query:
        return Query(self.pick(self.REFUSED), "refused", category="refused")


def generate_queries(seed: int = SEED, count: int = 330) -> list[Query]:
    return QueryGenerator(seed).generate(count)


# ---------------------------------------------------------------------------------------------
# Running and comparing
# ---------------------------------------------------------------------------------------------
@dataclass
class Result:
    columns: list[tuple[str, int]] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    tag: str = ""
    sqlstate: str | None = None
    message: str = ""
    binary: bool = False


def run(conn, query: Query, binary: bool = False, simple: bool = False) -> Result:
    """Runs `query` on a psycopg connection with libpq directly; values stay as PostgreSQL sent them."""
    import psycopg.pq as pq

    pgconn = conn.pgconn
    if simple and not query.params and not binary:
        res = pgconn.exec_(query.sql.replace("%%", "%").encode())
    else:
        sql, values = to_dollar_params(query.sql, query.params or [])
        res = pgconn.exec_params(sql.encode(), values, result_format=1 if binary else 0)
    status = res.status
    out = Result(binary=binary)
    if status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        out.sqlstate = (res.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode() or "?????"
        out.message = (res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode()
        return out
    out.columns = [((res.fname(i) or b"").decode(), res.ftype(i)) for i in range(res.nfields)]
    out.rows = [tuple(res.get_value(r, c) for c in range(res.nfields)) for r in range(res.ntuples)]
    out.tag = (res.command_status or b"").decode()
    return out


def to_dollar_params(sql: str, params: list) -> tuple[str, list[bytes | None]]:
    """`%s` placeholders as `$n`, values as text (lists as array literals); `%%` is `%`."""
    out, n, i = [], 0, 0
    while i < len(sql):
        if sql.startswith("%%", i):
            out.append("%")
            i += 2
        elif sql.startswith("%s", i):
            n += 1
            out.append(f"${n}")
            i += 2
        else:
            out.append(sql[i])
            i += 1
    values = []
    for p in params:
        if p is None:
            values.append(None)
        elif isinstance(p, list):
            values.append(("{" + ",".join(str(x) for x in p) + "}").encode())
        else:
            values.append(str(p).encode())
    return "".join(out), values


FLOAT4, FLOAT8 = 700, 701


def _float_close(a: bytes, b: bytes, oid: int, binary: bool) -> bool:
    if binary:
        fmt = ">f" if oid == FLOAT4 else ">d"
        x, y = struct.unpack(fmt, a)[0], struct.unpack(fmt, b)[0]
    else:
        x, y = float(a), float(b)
    if x != x or y != y:
        return x != x and y != y
    if x == y:
        return True
    # Cross-shard float sums and averages add in another order than one server (as PostgreSQL's own
    # parallel aggregation does): allow the last bits to differ.
    return abs(x - y) <= 1e-12 * max(abs(x), abs(y))


def _row_key(row: tuple, columns: list[tuple[str, int]], binary: bool) -> tuple:
    """A row for multiset comparison, orderable whatever it holds: NULLs first, floats rounded so that
    last-bit differences compare equal."""
    key = []
    for value, (_, oid) in zip(row, columns):
        if value is None:
            key.append((0,))
        elif oid in (FLOAT4, FLOAT8):
            x = struct.unpack(">f" if oid == FLOAT4 else ">d", value)[0] if binary else float(value)
            key.append((2, 0.0) if x != x else (1, float(f"{x:.11e}")))
        else:
            key.append((1, value))
    return tuple(key)


def _rows_equal(a: tuple, b: tuple, columns, binary: bool) -> bool:
    for x, y, (_, oid) in zip(a, b, columns):
        if x == y:
            continue
        if x is None or y is None or oid not in (FLOAT4, FLOAT8) or not _float_close(x, y, oid, binary):
            return False
    return True


def compare(query: Query, expected: Result, actual: Result) -> list[str]:
    """What differs between the reference's result and ShardGate's (empty: they agree)."""
    problems: list[str] = []
    if query.mode == "refused":
        if actual.sqlstate != "0A000":
            problems.append(f"expected SQLSTATE 0A000, got {actual.sqlstate or 'a result'} {actual.message}")
        return problems
    if expected.sqlstate is not None:
        if actual.sqlstate != expected.sqlstate:
            problems.append(f"the reference failed with {expected.sqlstate} ({expected.message}), ShardGate "
                            f"with {actual.sqlstate} {actual.message}")
        return problems
    if actual.sqlstate is not None:
        return [f"ShardGate failed with {actual.sqlstate}: {actual.message}"]
    if expected.columns != actual.columns:
        problems.append(f"columns differ: reference {expected.columns}, ShardGate {actual.columns}")
    if expected.tag != actual.tag:
        problems.append(f"command tag differs: reference {expected.tag!r}, ShardGate {actual.tag!r}")
    cols = expected.columns
    e_rows, a_rows = expected.rows, actual.rows
    if len(e_rows) != len(a_rows):
        problems.append(f"row count differs: reference {len(e_rows)}, ShardGate {len(a_rows)}")
        return problems
    binary = expected.binary
    if query.mode == "exact":
        for i, (x, y) in enumerate(zip(e_rows, a_rows)):
            if not _rows_equal(x, y, cols, binary):
                problems.append(f"row {i} differs: reference {x}, ShardGate {y}")
                break
        return problems
    if query.mode == "sorted":
        ek = [tuple(r[i] for i in query.sort) for r in e_rows]
        ak = [tuple(r[i] for i in query.sort) for r in a_rows]
        sort_cols = [cols[i] for i in query.sort]
        for i, (x, y) in enumerate(zip(ek, ak)):
            if not _rows_equal(x, y, sort_cols, binary):
                problems.append(f"sort key {i} differs: reference {x}, ShardGate {y}")
                return problems
        if query.limited and e_rows:
            # Ties at either end of a LIMIT/OFFSET window may be any of the tied rows.
            first, last = ek[0], ek[-1]
            e_rows = [r for r, k in zip(e_rows, ek) if k != first and k != last]
            a_rows = [r for r, k in zip(a_rows, ak) if k != first and k != last]
    e_multiset = sorted(_row_key(r, cols, binary) for r in e_rows)
    a_multiset = sorted(_row_key(r, cols, binary) for r in a_rows)
    if e_multiset != a_multiset:
        missing = [r for r in e_multiset if r not in a_multiset][:3]
        extra = [r for r in a_multiset if r not in e_multiset][:3]
        problems.append(f"rows differ as multisets: missing {missing}, unexpected {extra}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description="Show the differential test's generated queries.")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--count", type=int, default=330)
    parser.add_argument("--show", type=int, default=None, help="print only query number N")
    args = parser.parse_args()
    queries = generate_queries(args.seed, args.count)
    for i, q in enumerate(queries):
        if args.show is None or args.show == i:
            print(f"{i:4d} {q.describe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
