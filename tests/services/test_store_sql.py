"""store.sql (services._store_sql.SqlStore) on real SQLite and DuckDB files and a real Postgres:
the same behaviour as store.memory's, awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.lua_stdlib.helpers import Entries
from tests.sql_fixtures import PgServer, postgres  # noqa: F401 - fixture
from wippy.core import ConflictError, DefinitionError, Entry, NotFoundError
from wippy.services._sql import SqlHub
from wippy.services._store_sql import SqlStore, version_of
from wippy.services._stores import AlreadyExistsError

DDL = {
    "sqlite": "CREATE TABLE {t} ({k} VARCHAR(255) PRIMARY KEY, {v} BYTEA NOT NULL, {x} BIGINT)",
    "duckdb": "CREATE TABLE {t} ({k} VARCHAR PRIMARY KEY, {v} BLOB NOT NULL, {x} BIGINT)",
    "postgres": "CREATE TABLE {t} ({k} VARCHAR(255) PRIMARY KEY, {v} BYTEA NOT NULL, {x} BIGINT)",
}


class Bench:
    """A database of one kind with a store entry on a table of it."""

    def __init__(self, kind: str, db_entry: Entry, hub: SqlHub, reg: Entries) -> None:
        self.kind = kind
        self.db_entry = db_entry
        self.hub = hub
        self.reg = reg

    def placeholders(self, statement: str) -> str:
        """``?`` as this database writes it (Postgres: $1, $2, ...)."""
        if self.kind != "postgres":
            return statement
        parts = statement.split("?")
        return parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))

    async def sql(self, statement: str, params: tuple[Any, ...] = ()) -> Any:
        lease = self.hub.acquire(self.db_entry.id)
        try:
            if statement.lstrip().upper().startswith("SELECT"):
                return (await lease.db.query(None, statement, params))[1]
            return await lease.db.execute(None, statement, params)
        finally:
            lease.release()

    async def store(self, table: str = "kv_store", *, ddl: str | None = None, **fields: Any) -> SqlStore:
        cols = {"k": fields.get("id_column_name", "key"), "v": fields.get("payload_column_name", "value"),
                "x": fields.get("expire_column_name", "expires_at")}
        await self.sql((ddl or DDL[self.kind]).format(t=table, **cols))
        entry = Entry("app:kv_" + table, "store.sql", {}, {"database": self.db_entry.id, "table_name": table,
                                                          **fields})
        self.reg.entries[entry.id] = entry
        return SqlStore(entry, self.hub)


@pytest.fixture(params=["sqlite", "duckdb", "postgres"])
async def bench(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bench]:
    kind = request.param
    if kind == "sqlite":
        entry = Entry("app:db", "db.sql.sqlite", {}, {"file": str(tmp_path / "kv.db")})
    elif kind == "duckdb":
        entry = Entry("app:db", "db.sql.duckdb", {}, {"file": str(tmp_path / "kv.duckdb")})
    else:
        server: PgServer = request.getfixturevalue("postgres")
        name = "kv_" + tmp_path.name[-20:].replace("-", "_").lower() + str(time.monotonic_ns())[-6:]
        server.database(name)
        entry = Entry("app:db", "db.sql.postgres", {}, {"host": server.host, "port": server.port, "database": name,
                                                        "username": server.user})
    reg = Entries(entry)
    hub = SqlHub(reg)
    try:
        yield Bench(kind, entry, hub, reg)
    finally:
        await hub.aclose()


async def test_get_set_has_delete_and_entries(bench: Bench) -> None:
    s = await bench.store()
    with pytest.raises(NotFoundError, match="'a' not found in store app:kv_kv_store"):
        await s.get("a")
    await s.set("a", {"n": 1, "list": [1, 2], "s": "x"})
    assert await s.get("a") == {"n": 1, "list": [1, 2], "s": "x"}
    assert await s.has("a") and not await s.has("b")
    e = await s.entry("a")
    assert e == {"key": "a", "value": {"n": 1, "list": [1, 2], "s": "x"}, "version": version_of(e["value"])}
    await s.set("a", "replaced")
    assert await s.get("a") == "replaced"
    assert await s.delete("a") is True and await s.delete("a") is False
    assert not await s.has("a")


async def test_conditional_puts(bench: Bench) -> None:
    s = await bench.store()
    first = await s.put("k", "one", only_if_absent=True)
    with pytest.raises(AlreadyExistsError) as exists:
        await s.put("k", "two", only_if_absent=True)
    assert exists.value.kind == "ALREADY_EXISTS"
    second = await s.put("k", "two", if_version=first["version"])
    assert second["version"] != first["version"] and await s.get("k") == "two"
    with pytest.raises(ConflictError, match="is at version") as stale:
        await s.put("k", "three", if_version=first["version"])
    assert stale.value.kind == "CONFLICT"
    with pytest.raises(ConflictError, match="version none"):
        await s.put("missing", 1, if_version=second["version"])
    assert (await s.entry("k"))["version"] == second["version"]


async def test_expired_keys_are_never_returned_and_are_swept(bench: Bench) -> None:
    s = await bench.store(cleanup_interval="0s")
    now = int(time.time())
    await s.set("long", 1, ttl=3600)
    await bench.sql(bench.placeholders("INSERT INTO kv_store (key, value, expires_at) VALUES (?, ?, ?)"),
                    ("old", b'"stale"', now - 10))
    expires = (await bench.sql("SELECT expires_at FROM kv_store WHERE key = 'long'"))[0][0]
    assert now + 3599 <= expires <= now + 3602
    assert not await s.has("old")
    with pytest.raises(NotFoundError):
        await s.get("old")
    assert (await s.list())["items"] == [{"key": "long", "value": 1, "version": version_of(1)}]
    assert (await s.put("old", "fresh", only_if_absent=True))["value"] == "fresh"  # an expired key is absent
    assert (await s.info())["size"] == 2
    assert await s.delete("nothing") is False


async def test_sweeps_delete_expired_rows(bench: Bench) -> None:
    s = await bench.store(cleanup_interval=0.001)
    await bench.sql(bench.placeholders("INSERT INTO kv_store (key, value, expires_at) VALUES (?, ?, ?)"),
                    ("old", b"1", int(time.time()) - 10))
    await asyncio.sleep(0.002)
    assert not await s.has("x")
    assert await bench.sql("SELECT key FROM kv_store") == []


async def test_listing_pages_by_key(bench: Bench) -> None:
    s = await bench.store()
    for k in ("user:3", "user:1", "user:2", "team:1", "User:9"):
        await s.set(k, k.upper())
    page = await s.list(prefix="user:", limit=2)
    assert [i["key"] for i in page["items"]] == ["user:1", "user:2"]
    assert page["cursor"] == "user:2" and page["has_more"] is True
    rest = await s.list(prefix="user:", after=page["cursor"], limit=2)
    assert [i["key"] for i in rest["items"]] == ["user:3"] and rest["has_more"] is False
    assert rest["items"][0]["value"] == "USER:3"
    assert (await s.list(prefix="nobody"))["items"] == []
    info = await s.info()
    assert info == {"id": "app:kv_kv_store", "kind": "store.sql", "size": 5, "database": "app:db",
                    "table": "kv_store"}


async def test_custom_column_names(bench: Bench) -> None:
    s = await bench.store("sessions", id_column_name="sid", payload_column_name="body",
                          expire_column_name="until")
    await s.set("a", [1, 2, 3], ttl=60)
    assert await s.get("a") == [1, 2, 3]
    assert (await bench.sql("SELECT sid FROM sessions")) == [("a",)]


async def test_a_missing_table_names_the_store_and_the_table(bench: Bench) -> None:
    entry = Entry("app:lost", "store.sql", {}, {"database": "app:db", "table_name": "nowhere"})
    bench.reg.entries[entry.id] = entry
    s = SqlStore(entry, bench.hub)
    with pytest.raises(DefinitionError) as info:
        await s.get("a")
    text = str(info.value)
    assert "store app:lost" in text and "table nowhere" in text and "app:db" in text and info.value.kind == "INVALID"
    await bench.sql(DDL[bench.kind].format(t="nowhere", k="key", v="value", x="expires_at"))
    await s.set("a", 1)  # created later: found on the next use
    assert await s.get("a") == 1


async def test_text_and_json_payload_columns(bench: Bench) -> None:
    kinds = {"sqlite": "TEXT", "duckdb": "VARCHAR", "postgres": "JSONB"}
    s = await bench.store("docs", ddl="CREATE TABLE {t} ({k} VARCHAR(255) PRIMARY KEY, {v} " + kinds[bench.kind]
                          + " NOT NULL, {x} BIGINT)")
    first = await s.put("d", {"b": 1, "a": [True, None, 2.5]})
    assert await s.get("d") == {"b": 1, "a": [True, None, 2.5]}
    assert (await s.entry("d"))["version"] == first["version"]  # jsonb reorders keys: the version does not change
    await s.put("d", {"c": 1}, if_version=first["version"])


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_JSON, key=st.text(min_size=1, max_size=30))
@example(value=None, key="\x00")  # found by hypothesis: SQLite's substr() stopped at the NUL
async def test_values_come_back_as_stored(tmp_path: Path, value: Any, key: str) -> None:
    reg = Entries(Entry("app:db", "db.sql.sqlite", {}, {"file": str(tmp_path / "hyp.db")}),
                  Entry("app:kv", "store.sql", {}, {"database": "app:db", "table_name": "kv"}))
    hub = SqlHub(reg)
    try:
        lease = hub.acquire("app:db")
        await lease.db.execute(None, "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB, expires_at INT)")
        lease.release()
        s = SqlStore(reg.entries["app:kv"], hub)
        put = await s.put(key, value)
        assert await s.get(key) == value
        assert (await s.entry(key))["version"] == put["version"]
        assert [i["key"] for i in (await s.list(prefix=key))["items"]][:1] == [key]
    finally:
        await hub.aclose()

