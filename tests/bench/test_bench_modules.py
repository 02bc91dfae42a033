"""Pure modules from Lua: json encode+decode and hash.sha256, each beside a raw lupa baseline.

    pytest -m bench -s tests/bench/test_bench_modules.py

The baselines are a plain lupa runtime calling Python functions from a Lua loop: orjson
dumps/loads on the converted table for json (what any lupa + orjson binding costs), hashlib for
hash. Goals: json at least 50 % of its baseline; hash.sha256 of 1 KB at least 200,000 calls/s.
"""

from __future__ import annotations

import hashlib
from typing import Any

import lupa.lua54 as lua  # type: ignore[import-untyped]
import orjson
import pytest

from wippy.core import Entry
from wippy.lua_stdlib import HostContext, LuaHost

from .conftest import report, run

pytestmark = pytest.mark.bench

# ~300 bytes of JSON: an order with a nested customer, two line items and tags
ORDER = """{ id = "ord-12345", status = "pending", total = 99.5, count = 3, paid = false,
  note = "leave at the door, ring twice",
  customer = { name = "Alice Example", email = "alice@example.com", tier = "gold" },
  items = { { sku = "ABC-1", qty = 2, price = 10.25 }, { sku = "XYZ-9", qty = 1, price = 78.99 } },
  tags = { "a", "bb", "ccc" } }"""


class _Entries:
    def __init__(self, *entries: Entry) -> None:
        self.entries = {e.id: e for e in entries}

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)


async def _in_host(source: str, modules: list[str], *args: Any) -> tuple[Any, ...]:
    entry = Entry("app:bench", "function.lua", {}, {"source": source, "method": "call", "modules": modules})
    host = LuaHost(HostContext(registry=_Entries(entry), node="b", pid="{b|1}"))
    try:
        ok, res = await host.vm.run(host.callable(entry), *args)
        assert ok, res
        return tuple(res)
    finally:
        await host.aclose()


def _baseline_json(n: int) -> tuple[float, int]:
    rt = lua.LuaRuntime(unpack_returned_tuples=True)

    def plain(v: Any) -> Any:
        if lua.lua_type(v) == "table":
            items = list(v.items())
            if items and all(isinstance(k, int) for k, _ in items):
                return [plain(x) for _, x in sorted(items)]
            return {k: plain(x) for k, x in items}
        return v

    def dumps(t: Any) -> str:
        return orjson.dumps(plain(t)).decode()

    def loads(s: str) -> Any:
        return rt.table_from(orjson.loads(s), recursive=True)

    loop = rt.eval("function(dumps, loads, n) local t = " + ORDER + """
        local size = #dumps(t)
        local c = os.clock()
        for i = 1, n do local v = loads(dumps(t)) end
        return n / (os.clock() - c), size
    end""")
    rate, size = loop(dumps, loads, n)
    return float(rate), int(size)


def test_json_encode_decode_round_trip() -> None:
    n = 20_000
    base_rate, size = _baseline_json(n)
    source = "local json = require('json')\nreturn { call = function(n) local t = " + ORDER + """
        local c = os.clock()
        for i = 1, n do local v = json.decode(json.encode(t)) end
        return n / (os.clock() - c), #json.encode(t)
    end }"""
    rate, our_size = run(_in_host(source, ["json"], n))
    assert our_size == size
    report("json encode+decode round trip from Lua", bytes=size, wippy_per_s=round(rate),
           raw_lupa_orjson_per_s=round(base_rate), ratio=f"{rate / base_rate:.2f}", goal="0.50")


def test_hash_sha256_of_1kb() -> None:
    n = 200_000
    rt = lua.LuaRuntime(unpack_returned_tuples=True)
    loop = rt.eval("""function(sha, n)
        local data = string.rep("abcdefgh", 128)
        local c = os.clock()
        for i = 1, n do sha(data) end
        return n / (os.clock() - c)
    end""")
    base_rate = float(loop(lambda s: hashlib.sha256(s.encode()).hexdigest(), n))
    source = """local hash = require('hash')
    return { call = function(n)
        local data = string.rep("abcdefgh", 128)
        local sha256 = hash.sha256
        local c = os.clock()
        for i = 1, n do sha256(data) end
        return n / (os.clock() - c)
    end }"""
    (rate,) = run(_in_host(source, ["hash"], n))
    report("hash.sha256 of 1 KB from Lua", wippy_per_s=round(rate), raw_lupa_hashlib_per_s=round(base_rate),
           ratio=f"{rate / base_rate:.2f}", goal_per_s=200_000)
