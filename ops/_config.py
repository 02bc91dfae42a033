"""Configuration, read once at the edge (flags and environment) into frozen data.

Nothing below ``ops/`` reads ``os.environ``: what it needs arrives in these objects.

Environment variables (flags win):
    WIPPY_NATS_URL       use this NATS server instead of the embedded one (--nats)
    WIPPY_STATE_DIR      state dir (--state-dir); default <app>/.wippy/state
    WIPPY_NODE           node id (--node); default a stable id kept in the state dir
    WIPPY_NAMESPACE      stream namespace (--namespace); default "wippy"
    WIPPY_SYNC_INTERVAL  embedded JetStream fsync policy (--sync-interval); default "1s"
    WIPPY_SECURITY_STRICT_MODE  "true"/"false": overrides security.strict_mode

From the app's ``.wippy.yaml`` (Wippy's runtime config): ``security.strict_mode``;
``telemetry.metrics.exporter`` ("none", the default, or "console": metrics printed to stderr)
and ``telemetry.metrics.interval`` (a Go duration, default "60s").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from wippy.core import ConfigError, ServerSettings, YamlError, load_yaml
from wippy.lua_stdlib import parse_go_duration
from wippy.services import RuntimeSettings, TelemetrySettings


@dataclass(frozen=True, slots=True, kw_only=True)
class CliConfig:
    app_dir: Path
    runtime: RuntimeSettings
    json: bool
    verbose: bool
    actor: str | None


def build_config(
    *,
    app_dir: str | None,
    state_dir: str | None,
    nats: str | None,
    node: str | None,
    namespace: str | None,
    sync_interval: str | None,
    json_output: bool,
    verbose: bool,
    environ: Mapping[str, str] | None = None,
) -> CliConfig:
    env = os.environ if environ is None else environ
    app = Path(app_dir or ".").resolve()
    state = Path(state_dir or env.get("WIPPY_STATE_DIR") or app / ".wippy" / "state").resolve()
    user = env.get("USER") or env.get("LOGNAME")
    app_config = _app_config(app)
    strict = _flag(env.get("WIPPY_SECURITY_STRICT_MODE"), "WIPPY_SECURITY_STRICT_MODE")
    if strict is None:
        section = app_config.get("security")
        security: dict[str, object] = section if isinstance(section, dict) else {}
        strict = _flag(security.get("strict_mode"), ".wippy.yaml security.strict_mode") or False
    runtime = RuntimeSettings(
        state_dir=state,
        nats_url=nats or env.get("WIPPY_NATS_URL") or None,
        namespace=namespace or env.get("WIPPY_NAMESPACE") or "wippy",
        node=node or env.get("WIPPY_NODE") or None,
        server=ServerSettings(sync_interval=sync_interval or env.get("WIPPY_SYNC_INTERVAL") or "1s"),
        security_strict=strict,
        app_dir=app,
        environ=dict(env),  # env.storage.os serves this snapshot; nothing below ops/ reads os.environ
        telemetry=_telemetry(app_config.get("telemetry")),
    )
    return CliConfig(
        app_dir=app,
        runtime=runtime,
        json=json_output,
        verbose=verbose,
        actor=f"user:{user}" if user else None,
    )


def _app_config(app: Path) -> dict[str, object]:
    path = app / ".wippy.yaml"
    if not path.is_file():
        return {}
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except YamlError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the runtime config must be a mapping")
    return data


def _telemetry(section: object) -> TelemetrySettings:
    where = ".wippy.yaml telemetry.metrics"
    telemetry = section if isinstance(section, dict) else {}
    metrics = telemetry.get("metrics") or {}
    if (section is not None and not isinstance(section, dict)) or not isinstance(metrics, dict):
        raise ConfigError(f"{where}: expected a mapping like {{exporter: console, interval: 60s}}")
    exporter = metrics.get("exporter") or "none"
    console = {"none": False, "console": True}.get(exporter) if isinstance(exporter, str) else None
    if console is None:
        raise ConfigError(f"{where}.exporter must be none or console, not {exporter!r}")
    interval = metrics.get("interval") or "60s"
    try:
        ns = parse_go_duration(interval) if isinstance(interval, str) else None
    except ValueError:
        ns = None
    if ns is None or ns <= 0:
        raise ConfigError(f"{where}.interval must be a positive duration like \"30s\", not {interval!r}")
    return TelemetrySettings(metrics_exporter="console" if console else "none",
                             metrics_interval=timedelta(microseconds=ns / 1000))


def _flag(value: object, where: str) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{where} must be true or false, not {value!r}")
