"""`wippy replay --to VERSION|ISO_TIME [--out FILE]`: the projections as of a point, in a file.

Reads the log directly (the app's embedded server or ``--nats``), so it works beside a running
node without touching its projections. Prints the new DuckDB file's path (JSON with ``--json``).
"""

from __future__ import annotations

from pathlib import Path

from wippy.core import ConfigError
from wippy.projections import replay_to

from . import _output as output
from ._config import CliConfig
from ._tail import open_log, parse_from


async def replay(cfg: CliConfig, *, to: str, out: str | None) -> int:
    target = parse_from(to)
    if target is None or (target == 1 and to == "start"):
        raise ConfigError("--to: give a registry version (a number) or an ISO time")
    async with open_log(cfg, "wippy-replay") as store:
        if isinstance(target, int):
            path = Path(out) if out else cfg.runtime.state_dir / f"replay-v{target}.duckdb"
            result = await replay_to(store, path, version=target)
        else:
            path = Path(out) if out else cfg.runtime.state_dir / f"replay-{target:%Y%m%dT%H%M%S}.duckdb"
            result = await replay_to(store, path, at=target)
    if cfg.json:
        output.emit_json(result.to_json())
    else:
        print(result.path)
    return 0
