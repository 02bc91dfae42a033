"""SQL figures: SQLite from Lua against Python's sqlite3 on the same kind of file, measured in one run.

    pytest -m bench -s tests/bench/test_bench_sql.py
    WIPPY_BENCH_SQL_ROWS=500 pytest -m bench -s tests/bench/test_bench_sql.py   # a quick check

The issue's figure: 10,000 INSERTs in one transaction from Lua cost at most twice what the same
statements cost through sqlite3 directly. Both sides use a WAL file, one transaction, one
statement per row with two parameters; the best of several interleaved rounds is reported.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from wippy.core import Entry
from wippy.lua_stdlib import HostContext, LuaHost
from wippy.services._sql import SqlHub

from .conftest import report, run

pytestmark = pytest.mark.bench

ROWS = int(os.environ.get("WIPPY_BENCH_SQL_ROWS", "10000"))
ROUNDS = 5
INSERT = "INSERT INTO items (name, price) VALUES (?, ?)"

_LUA = """
local sql = require("sql")
return { call = function(n, now)
    local db = sql.get("app:db")
    local t0 = now()
    local tx = db:begin()
    for i = 1, n do
        local _, err = tx:execute("INSERT INTO items (name, price) VALUES (?, ?)", {"item" .. i, i * 1.5})
        if err then return nil, err end
    end
    local _, err = tx:commit()
    if err then return nil, err end
    local t1 = now()
    local rows = db:query("SELECT id, name, price FROM items ORDER BY id DESC LIMIT ?", {n})
    local t2 = now()
    db:release()
    return t1 - t0, t2 - t1, #rows
end }
"""


class _Entries:
    def __init__(self, *entries: Entry) -> None:
        self.entries = {e.id: e for e in entries}

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)


def _raw_round(conn: sqlite3.Connection, n: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    for i in range(1, n + 1):
        conn.execute(INSERT, (f"item{i}", i * 1.5))
    conn.execute("COMMIT")
    t1 = time.perf_counter()
    rows = conn.execute("SELECT id, name, price FROM items ORDER BY id DESC LIMIT ?", (n,)).fetchall()
    t2 = time.perf_counter()
    assert len(rows) == n
    return t1 - t0, t2 - t1


async def _bench(tmp: Path) -> dict[str, Any]:
    schema = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL)"
    raw = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute(schema)
    code = Entry("app:bench", "function.lua", {}, {"source": _LUA, "method": "call", "modules": ["sql"]})
    reg = _Entries(code, Entry("app:db", "db.sql.sqlite", {}, {"file": str(tmp / "lua.db")}))
    hub = SqlHub(reg)
    lease = hub.acquire("app:db")
    await lease.db.execute(None, schema)
    lease.release()
    host = LuaHost(HostContext(registry=reg, node="b", pid="{b|1}", databases=hub))
    lua_insert, lua_read, raw_insert, raw_read = [], [], [], []
    try:
        fn = host.callable(code)
        for _ in range(ROUNDS):
            ok, res = await host.vm.run(fn, ROWS, time.perf_counter)
            assert ok, res
            assert res[2] == ROWS
            lua_insert.append(res[0])
            lua_read.append(res[1])
            ins, read = _raw_round(raw, ROWS)
            raw_insert.append(ins)
            raw_read.append(read)
    finally:
        await host.aclose()
        await hub.aclose()
        raw.close()
    return {"lua_insert": min(lua_insert), "raw_insert": min(raw_insert), "lua_read": min(lua_read),
            "raw_read": min(raw_read)}


def test_sqlite_inserts_in_one_transaction_from_lua_against_sqlite3(tmp_path: Path) -> None:
    f = run(_bench(tmp_path))
    report("sql.sqlite.insert_tx", rows=ROWS, rounds=ROUNDS,
           lua_ms=round(f["lua_insert"] * 1000, 2), raw_sqlite3_ms=round(f["raw_insert"] * 1000, 2),
           lua_rows_per_s=int(ROWS / f["lua_insert"]), raw_rows_per_s=int(ROWS / f["raw_insert"]),
           ratio=round(f["lua_insert"] / f["raw_insert"], 2), target="<= 2.0")
    report("sql.sqlite.query_rows", rows=ROWS, lua_ms=round(f["lua_read"] * 1000, 2),
           raw_sqlite3_ms=round(f["raw_read"] * 1000, 2), ratio=round(f["lua_read"] / f["raw_read"], 2))
