"""Security figures: policy checks from Lua, and what the check costs funcs.call without an actor.

    pytest -m bench -s tests/bench/test_bench_security.py
"""

from __future__ import annotations

from typing import Any

import pytest

from wippy.core import Entry
from wippy.lua_stdlib import HostContext, LuaHost

from .conftest import report, run

pytestmark = pytest.mark.bench


class _Entries:
    def __init__(self, *entries: Entry) -> None:
        self.entries = {e.id: e for e in entries}

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)

    def current(self) -> dict[str, Entry]:
        return self.entries


def _policies(n: int) -> list[Entry]:
    out = []
    for i in range(n):
        body: dict[str, Any] = {"actions": [f"svc{i}.*", f"*.op{i}"], "resources": [f"res{i}:*", "shared:*"],
                                "effect": "deny" if i % 7 == 6 else "allow"}
        out.append(Entry(f"app.bench:p{i}", "security.policy", {}, {"policy": body, "groups": ["app.bench:g"]}))
    return out


async def _measure(source: str, *entries: Entry, args: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    fn = Entry("app:bench", "function.lua", {}, {"source": source, "method": "call",
                                                  "modules": ["security", "funcs", "wippy.bench.funcs"]})
    host = LuaHost(HostContext(registry=_Entries(fn, *entries), node="b", pid="{b|1}"))
    try:
        ok, res = await host.vm.run(host.callable(fn), *args)
        assert ok, res
        return tuple(res)
    finally:
        await host.aclose()


def test_security_can_with_a_20_policy_scope() -> None:
    n = 200_000
    source = """
        local security = require("security")
        local funcs = require("funcs")
        return { call = function(n)
            local exec = funcs.new():with_actor(security.new_actor("u1", {role = "user"}))
                                    :with_scope(security.named_scope("app.bench:g"))
            return exec:call("app:inner", n)
        end }"""
    inner = Entry("app:inner", "function.lua", {}, {"source": """
        local security = require("security")
        return { call = function(n)
            local can = security.can
            local actions = {"svc3.read", "x.op5", "svc19.write", "nothing"}
            local resources = {"res3:1", "shared:9", "res19:x", "none"}
            -- distinct requests, so the scope's decision cache sees misses too
            local t0 = os.clock()
            for i = 1, n do can(actions[i % 4 + 1], resources[(i // 4) % 4 + 1] .. (i % 50)) end
            local t1 = os.clock()
            local scope = security.scope()
            local actor = security.actor()
            local t2 = os.clock()
            for i = 1, n do scope:evaluate(actor, actions[i % 4 + 1], "uncached" .. i) end
            local t3 = os.clock()
            local f = function(a, b) return a == b end
            for i = 1, n do f(i, i) end
            return {t1 - t0, t3 - t2, os.clock() - t3}
        end }""", "method": "call", "modules": ["security"]})
    times = run(_measure(source, inner, *_policies(20), args=(n,)))[0]
    cached, uncached, raw = (times[i] for i in (1, 2, 3))
    report("security.can with a 20-policy scope, from Lua", checks_per_s=f"{n / cached:,.0f}",
           uncached_checks_per_s=f"{n / uncached:,.0f}", raw_lua_call_per_s=f"{n / raw:,.0f}")


def test_check_cost_on_funcs_call_without_an_actor() -> None:
    n = 300_000
    callee = Entry("app:noop", "function.lua", {}, {"source": "return { call = function(x) return x end }",
                                                     "method": "call"})
    source = """
        local funcs = require("funcs")
        local unchecked = require("wippy.bench.funcs")
        return { call = function(n)
            local best_with, best_without = math.huge, math.huge
            for _ = 1, 3 do
                local t0 = os.clock()
                for i = 1, n do funcs.call("app:noop", i) end
                best_with = math.min(best_with, os.clock() - t0)
                -- the same calls with the permission check bypassed (what funcs.call costs without it)
                t0 = os.clock()
                for i = 1, n do unchecked.call("app:noop", i) end
                best_without = math.min(best_without, os.clock() - t0)
            end
            return best_with, best_without
        end }"""
    with_check, without = run(_measure(source, callee, args=(n,)))
    report("permission check on funcs.call, no actor/scope", calls_per_s=f"{n / with_check:,.0f}",
           unchecked_calls_per_s=f"{n / without:,.0f}", overhead=f"{with_check / without - 1:+.1%}")


def test_expr_policy_expression() -> None:
    """An expression policy's condition, compiled once and run per check; baseline: CPython's
    own `eval` of the same condition compiled to a code object."""
    import time

    from wippy.core import compile_expr

    source = 'actor.meta.role == "admin" || (action startsWith "doc." && resource in allowed)'
    env = {"actor": {"id": "u1", "meta": {"role": "user"}}, "action": "doc.read", "resource": "doc:7",
           "allowed": ["doc:1", "doc:7", "doc:9"]}
    compile_expr("1 == 1")  # builds the parser tables once per process
    started = time.perf_counter()
    for i in range(200):
        compile_expr(source + " " * i)  # a new source each time, so the compile cache cannot answer
    compile_ms = (time.perf_counter() - started) / 200 * 1000
    program = compile_expr(source)
    assert program.run(env) is True
    n = 100_000
    started = time.perf_counter()
    for _ in range(n):
        program.run(env)
    evals = n / (time.perf_counter() - started)
    py_env = {"actor": {"id": "u1", "meta": {"role": "user"}}, "action": "doc.read", "resource": "doc:7",
              "allowed": ["doc:1", "doc:7", "doc:9"]}
    code = compile('actor["meta"]["role"] == "admin" or (action.startswith("doc.") and resource in allowed)',
                   "<bench>", "eval")
    started = time.perf_counter()
    for _ in range(n):
        eval(code, {}, py_env)  # the baseline is Python's own evaluator
    raw = n / (time.perf_counter() - started)
    report("expr policy expression", evals_per_s=f"{evals:,.0f}", compile_ms=f"{compile_ms:.2f}",
           raw_python_eval_per_s=f"{raw:,.0f}", ratio=f"{evals / raw:.2f}")
