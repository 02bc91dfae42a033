"""`wippy bench --quick`: every figure measured beside its raw baseline (no time is asserted)."""

from __future__ import annotations

import io
import json

from wippy.ops._bench import bench_command, run_bench


async def test_the_figures_and_their_baselines() -> None:
    figures = await run_bench(quick=True)
    assert [f.name for f in figures] == ["apply", "funcs", "query"]
    for f in figures:
        assert f.ours > 0 and f.raw > 0 and f.ratio > 0 and f.unit and f.what
    out = io.StringIO()
    assert await bench_command(json_output=True, quick=True, out=out) == 0
    rows = json.loads(out.getvalue())
    assert [r["name"] for r in rows] == ["apply", "funcs", "query"]
    assert set(rows[0]) == {"name", "what", "ours", "raw", "unit", "ratio"}


async def test_the_table() -> None:
    out = io.StringIO()
    assert await bench_command(json_output=False, quick=True, out=out) == 0
    text = out.getvalue()
    assert text.splitlines()[0].split()[:4] == ["FIGURE", "OURS", "RAW", "RATIO"]
    assert all(name in text for name in ("apply", "funcs", "query"))
