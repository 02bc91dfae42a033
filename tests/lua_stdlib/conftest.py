"""A Lua 5.4 runtime with the runtime type library, to run translated dialect code in tests."""

from __future__ import annotations

from typing import Any

import lupa.lua54 as lupa  # type: ignore[import-untyped]
import pytest

from wippy.lua_stdlib._dialect import TYPES_GLOBAL, translate
from wippy.lua_stdlib._types_lib import load_types

_SANDBOX = """
function(types)
    local env = {}
    for k, v in pairs(_G) do env[k] = v end
    local s, t = {}, {}
    for k, v in pairs(string) do s[k] = v end
    for k, v in pairs(table) do t[k] = v end
    env.string, env.table = s, t
    env._G = env
    types.install(env)
    return env
end
"""

_LOAD = """
function(code, chunk, env)
    local f, err = load(code, "=" .. chunk, "t", env)
    if not f then error(err, 0) end
    return f
end
"""

_COMPILE = """
function(code, chunk)
    local f, err = load(code, "=" .. chunk, "t")
    return err
end
"""


class Lua:
    """Runs Wippy dialect source the way the host will: translate, then load in a sandbox."""

    def __init__(self) -> None:
        self.rt = lupa.LuaRuntime()
        self.types = load_types(self.rt)
        self._sandbox = self.rt.eval(_SANDBOX)
        self._load = self.rt.eval(_LOAD)
        self._compile = self.rt.eval(_COMPILE)

    def env(self) -> Any:
        return self._sandbox(self.types)

    def compile_error(self, code: str, chunk: str = "t.lua") -> str | None:
        """Lua's own verdict on plain Lua code: None, or the compile error."""
        err = self._compile(code, chunk)
        return None if err is None else str(err)

    def run(self, source: str, chunk: str = "t.lua", env: Any = None) -> Any:
        """Translate ``source``, run it, and return what the chunk returns."""
        translated = translate(source, chunk)
        env = self.env() if env is None else env
        if translated.uses_types:
            assert env[TYPES_GLOBAL] is not None
        return self._load(translated.code, chunk, env)()

    def eval(self, expr: str, env: Any) -> Any:
        return self._load("return " + expr, "expr", env)()

    def table(self, value: Any) -> Any:
        """A Python value (dicts, lists, scalars; nested) as a Lua value."""
        if isinstance(value, dict):
            return self.rt.table_from({k: self.table(v) for k, v in value.items()})
        if isinstance(value, list):
            return self.rt.table_from([self.table(v) for v in value])
        return value


@pytest.fixture(scope="module")
def lua() -> Lua:
    return Lua()


@pytest.fixture
async def node(nats_url: str, namespace: str, tmp_path: Any) -> Any:
    """A real registry service (NATS + DuckDB) with stores, for Lua code that touches them."""
    from wippy.core import JetStreamEventStore, Subjects, evaluate_expr
    from wippy.projections import AuditProjection, ProjectionDB, RegistryProjection
    from wippy.services import RegistryService
    from wippy.services._stores import StoreHub

    from .helpers import Node

    store = await JetStreamEventStore.connect(nats_url, Subjects(namespace))
    await store.provision()
    db = ProjectionDB(tmp_path / "p.duckdb")
    proj = RegistryProjection(store, db)
    await proj.start()
    audit = AuditProjection(store, db)
    await audit.start()
    svc = RegistryService(proj, node="n1", audit=audit)
    try:
        yield Node(svc, StoreHub(svc), expr=evaluate_expr)
    finally:
        await audit.aclose()
        await proj.aclose()
        db.close()
        await store.aclose()
