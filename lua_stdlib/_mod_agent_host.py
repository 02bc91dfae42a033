"""`agent_host`: the bridge from the native ``wippy.agent:context`` library to agent compilation.

Only that library lists it in its ``modules:``. It reads the process's registry
(``host.ctx.registry``) and answers as Wippy's agent functions do, ``value`` or
``nil, error_string``:

    compile(agent_id_or_spec, config) -> compiled spec
        config: {context, tools, delegates, active_traits, active_tools, model, memory_contract,
                 delegate_tools = {enabled, description_suffix, default_schema}, contributions}
    run_id() -> a fresh run id

The durable runs of ``runner:run`` (services/_agent_runs.py, the node's ``ctx.agent_runs``);
without a journal (a host outside a node) runs are not recorded and these answer at once:

    begin_run(run_id, beginning, resume) -> {resumed, recorded_turns, finished}, err
    recorded_tool(run_id, turn, call_id, {name, registry_id, agent_id})
        -> {result, is_error} (from the log) | {maybe_ran} (run the tool; maybe_ran: an earlier
           attempt started it and the log has no result), err
    record_tool(run_id, body) -> true, err          (the result is in the log before it returns)
    finish_run(run_id, finished) -> true, err

The compiler itself (services/_agents.py) is pure: it only reads registry entries.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from wippy.core import WippyError

from ._host import LuaHost, register_module
from ._mod_json import JsonValueError, lua_to_json


def _list(value: Any) -> list[Any]:
    """A Lua array as a list (an empty table arrives as {})."""
    if isinstance(value, list):
        return value
    return []


def _options(config: Mapping[str, Any]) -> Any:
    from wippy.services._agents import DELEGATE_SCHEMA, CompileOptions  # services import this package

    delegate_tools = config.get("delegate_tools")
    delegate_tools = delegate_tools if isinstance(delegate_tools, dict) else {}
    contributions = config.get("contributions")
    schema = delegate_tools.get("default_schema")
    traits, tools = config.get("active_traits"), config.get("active_tools")
    memory_contract, context = config.get("memory_contract"), config.get("context")
    return CompileOptions(
        context=context if isinstance(context, dict) else {},
        tools=_list(config.get("tools")),
        delegates=_list(config.get("delegates")),
        traits_overlay=_list(traits) if traits is not None else None,
        tools_overlay=_list(tools) if tools is not None else None,
        model=str(config["model"]) if config.get("model") else None,
        memory_contract=memory_contract if isinstance(memory_contract, dict) else None,
        delegate_tools=delegate_tools.get("enabled") is not False,
        delegate_suffix=str(delegate_tools["description_suffix"]) if delegate_tools.get("description_suffix")
        else None,
        delegate_schema=schema if isinstance(schema, dict) and schema else DELEGATE_SCHEMA,
        contributions=contributions if isinstance(contributions, dict) else {},
        now=_moment(config.get("now")),
    )


def _moment(value: Any) -> datetime | None:
    """The compile time a replay asks for (unix seconds), else None (now)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    return None


def _build(host: LuaHost) -> Any:  # noqa: PLR0915 - one closure per Lua-facing function
    from wippy.services._agent_runs import ReplayStop
    from wippy.services._agents import AgentDefinitionError, AgentNotFoundError, compile_agent

    vm = host.vm
    to_python = lua_to_json(host)
    journal = host.ctx.agent_runs

    def plain(value: Any) -> Any:
        """A Lua table as JSON-ready data (what JSON cannot hold, a function say, as its text)."""
        try:
            return to_python(value)
        except JsonValueError:
            return orjson.loads(orjson.dumps(vm.from_lua(value), default=str, option=orjson.OPT_NON_STR_KEYS))

    def compile_(agent: Any = None, config: Any = None) -> Any:
        ref = vm.from_lua(agent)
        if isinstance(ref, dict) and not ref:
            ref = None
        if not isinstance(ref, str | dict) or ref == "":
            return None, "Agent spec or identifier is required"
        cfg = vm.from_lua(config) if config is not None else {}
        options = _options(cfg if isinstance(cfg, dict) else {})
        if options.now is None:  # fixed, so a replay can compile the agent as of the same moment
            options = dataclasses.replace(options, now=datetime.now(UTC))
        name = ref if isinstance(ref, str) else str(ref.get("id") or ref.get("name") or "inline-agent")
        try:
            compiled = compile_agent(host.ctx.registry, ref, options)
        except AgentNotFoundError as exc:
            return None, f"Failed to load agent '{name}': {exc}"
        except AgentDefinitionError as exc:
            where = f"{exc.field}: " if exc.field else ""
            inside = f" (in {exc.entry})" if exc.entry and exc.entry != name else ""
            return None, f"Failed to compile agent '{name}': {where}{exc.reason}{inside}"
        data = compiled.to_data()
        data["compiled_at"] = options.now.timestamp() if options.now else None
        return vm.to_lua(data), None

    def run_id() -> str:
        return uuid.uuid4().hex

    def journaled(make: Any) -> Any:
        """Run ``make()`` (a coroutine giving Lua's answer) as a Pending; errors as strings."""
        async def run() -> tuple[Any, ...]:
            try:
                answer: tuple[Any, ...] = await make()
                return answer
            except WippyError as exc:
                return None, str(getattr(exc, "message", None) or exc)
            except ReplayStop as exc:
                return None, str(exc)
        return vm.pending(run())

    def begin_run(run: Any = None, beginning: Any = None, resume: Any = False) -> Any:
        if journal is None:
            return vm.to_lua({"resumed": False, "recorded_turns": 0, "finished": False}), None
        body = plain(beginning) if beginning is not None else {}
        body = body if isinstance(body, dict) else {}
        pid = host.current_pid()
        body.update(pid=None if pid is None else str(pid),
                    registry_version=getattr(host.ctx.registry, "version", None))

        async def make() -> tuple[Any, ...]:
            info = await journal.begin(str(run), body, resume=bool(resume))
            return vm.to_lua(info), None
        return journaled(make)

    def recorded_tool(run: Any = None, turn: Any = None, call_id: Any = None, call: Any = None) -> Any:
        if journal is None:
            return vm.to_lua({"maybe_ran": False}), None
        info = plain(call) if call is not None else {}

        async def make() -> tuple[Any, ...]:
            run_id, step, cid = str(run), int(turn), str(call_id)
            found = await journal.tool_result(run_id, step, cid, info if isinstance(info, dict) else None)
            if found is None:
                return vm.to_lua({"maybe_ran": journal.may_have_run(run_id, step, cid)}), None
            return vm.to_lua({"result": str(found.get("result") or ""), "is_error": bool(found.get("is_error"))}), None
        return journaled(make)

    def record_tool(run: Any = None, body: Any = None) -> Any:
        if journal is None:
            return True, None
        data = plain(body) if body is not None else {}

        async def make() -> tuple[Any, ...]:
            await journal.record_tool(str(run), data if isinstance(data, dict) else {})
            return True, None
        return journaled(make)

    def finish_run(run: Any = None, finished: Any = None) -> Any:
        if journal is None:
            return True, None
        data = plain(finished) if finished is not None else {}

        async def make() -> tuple[Any, ...]:
            await journal.finish(str(run), data if isinstance(data, dict) else {})
            return True, None
        return journaled(make)

    return vm.rt.table_from({
        "compile": compile_, "run_id": run_id,
        "begin_run": vm.asyncify(begin_run), "recorded_tool": vm.asyncify(recorded_tool),
        "record_tool": vm.asyncify(record_tool), "finish_run": vm.asyncify(finish_run),
    })


register_module("agent_host", _build)
