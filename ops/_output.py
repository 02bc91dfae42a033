"""How command results are printed: JSON with ``--json``, readable text otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

import orjson
import yaml


def emit_json(value: Any, out: TextIO = sys.stdout) -> None:
    out.write(orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO = sys.stdout, *,
          max_width: int = 60) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in cells]
    widths = [len(c) for c in columns]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def records_table(records: Sequence[dict[str, Any]], out: TextIO = sys.stdout) -> None:
    if not records:
        out.write("(no rows)\n")
        return
    columns = list(records[0].keys())
    table(columns, [[r.get(c) for c in columns] for r in records], out)


def entry_yaml(entry: dict[str, Any], out: TextIO = sys.stdout) -> None:
    out.write(yaml.safe_dump(entry, sort_keys=False, allow_unicode=True, width=100))


def apply_summary(result: dict[str, Any], out: TextIO = sys.stdout) -> None:
    if result.get("changed") is False:
        out.write(f"unchanged at version {result['version']}\n")
        return
    counts = ", ".join(f"{result.get(k, 0)} {k}d" for k in ("create", "update", "delete"))
    out.write(f"version {result['version']}: {counts}\n")


def warnings(items: Sequence[str], err: TextIO = sys.stderr) -> None:
    for w in items:
        err.write(f"warning: {w}\n")


def replay_report(report: dict[str, Any], out: TextIO | None = None) -> None:
    """What `wippy agents replay` found: the run, how it went, each divergence."""
    out = out or sys.stdout
    version = report.get("registry_version")
    recorded = report.get("recorded_version")
    against = f"registry version {version}" + ("" if version == recorded else f" (the run started at {recorded})")
    print(f"run {report['run_id']} of agent {report.get('agent')}, replayed against {against}", file=out)
    print(f"{report.get('steps_from_log', 0)} steps taken from the log in {report.get('elapsed_ms', 0):.1f} ms; "
          "no model was called and no tool was run", file=out)
    if report.get("error"):
        print(f"the replay ended with an error: {report['error']}", file=out)
    divergences = report.get("divergences") or []
    if not divergences and report.get("identical"):
        print("identical to the recorded run", file=out)
        return
    for d in divergences:
        where = f"step {d['turn']}" if d.get("turn") is not None else "end"
        print(f"DIVERGED at {where} ({d['what']}): {d['detail']}", file=out)


def _head(value: Any, size: int = 160) -> str:
    """A value as one short line (a capped field shows its size)."""
    if isinstance(value, dict) and "$truncated" in value:
        return f"<{value['$truncated']} bytes, capped in the log>"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= size else text[:size - 1] + "…"


def run_timeline(records: Sequence[dict[str, Any]], out: TextIO | None = None) -> None:
    """What `wippy agents show` prints: one line (or two) per record of the run."""
    out = out or sys.stdout
    for r in records:
        b = r["body"]
        kind = r["type"]
        step = f"step {b['turn']}" if b.get("turn") is not None else ""
        if kind == "agent.run.started":
            how = "resumed from step {}".format(b.get("from_turn")) if b.get("resumed") else "started"
            why = f" ({b['diverged']['reason']})" if isinstance(b.get("diverged"), dict) else ""
            line = f"{how}{why}: agent {b.get('agent')} (model {b.get('model')}), registry version " \
                   f"{b.get('registry_version')}, pid {b.get('pid')}"
        elif kind == "llm.call":
            response, error = b.get("response") or {}, b.get("error")
            tokens = (response.get("tokens") or {}).get("total_tokens")
            if error:
                line = f"{step} model {b.get('model')} failed: {_head(error.get('message'))}"
            else:
                calls = ", ".join(f"{c.get('name')}({_head(c.get('arguments'), 60)})"
                                  for c in response.get("tool_calls") or () if isinstance(c, dict))
                line = f"{step} model {b.get('model')}: {response.get('finish_reason')}, {tokens} tokens, " \
                       f"{b.get('latency_ms')} ms" + (f"; asks for {calls}" if calls else "") + \
                       (f"\n    {_head(response.get('result'))}" if response.get("result") else "")
        elif kind == "agent.tool.started":
            line = f"{step} tool {b.get('name')} ({b.get('call_id')}) starts"
        elif kind == "agent.tool.result":
            line = f"{step} tool {b.get('name')} ({b.get('call_id')}) " + \
                   ("failed" if b.get("is_error") else "answered") + \
                   f" in {b.get('latency_ms')} ms: {_head(b.get('result'))}"
        elif kind == "agent.run.finished":
            line = f"{b.get('status')} after {b.get('turns')} steps" + \
                   (f": {_head(b.get('result'))}" if b.get("result") else "") + \
                   (f"; error: {_head(b.get('error'))}" if b.get("error") and b.get("error") != "nil" else "")
        else:
            line = kind
        print(f"{r['seq']:>8}  {line.strip()}", file=out)
