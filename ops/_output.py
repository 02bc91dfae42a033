"""How command results are printed: JSON with ``--json``, readable text otherwise."""

from __future__ import annotations

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


def replay_report(report: dict[str, Any], out: TextIO = sys.stdout) -> None:
    """What `wippy agents replay` found: the run, how it went, each divergence."""
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
