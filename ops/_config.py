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
and ``telemetry.metrics.interval`` (a Go duration, default "60s": how often periodic exporters
run); ``prometheus.enabled`` + ``prometheus.address`` (host:port, /metrics for scraping);
``otel.enabled`` + ``otel.metrics_enabled`` (OTLP over HTTP/protobuf to ``otel.endpoint``,
default localhost:4318; ``otel.service_name``, default wippy-runtime; ``otel.insecure`` picks
http or https for an endpoint given without a scheme). The standard variables
OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME and OTEL_SDK_DISABLED override the ``otel`` keys.
``logger.encoding`` (json, the default, or console: human-readable lines) and
``logmanager.stream_to_events`` (the node's logs also go to the event bus, system ``logs``),
``admin.http`` + ``admin.token`` (the HTTP admin API on a loopback address; off by default),
``logmanager.min_level`` (-1 debug, 0 info, 1 warn, 2 error; default: info for ``wippy run``,
warn for other commands and ``run -x``; ``-v`` always shows debug).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from wippy.core import ConfigError, ServerSettings, YamlError, load_yaml
from wippy.lua_stdlib import parse_go_duration
from wippy.services import AdminHttpSettings, RuntimeSettings, TelemetrySettings


@dataclass(frozen=True, slots=True, kw_only=True)
class CliConfig:
    app_dir: Path
    runtime: RuntimeSettings
    json: bool
    verbose: bool
    actor: str | None
    #: .wippy.yaml logger.encoding: "json" or "console"
    log_encoding: str = "json"
    #: .wippy.yaml logmanager.min_level as a logging level (None: the command's default)
    log_level: int | None = None


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
        telemetry=_telemetry(app_config, env),
        logs_to_events=_logs_to_events(app_config.get("logmanager")),
        admin_http=_admin_http(app_config.get("admin")),
    )
    return CliConfig(
        app_dir=app,
        runtime=runtime,
        json=json_output,
        verbose=verbose,
        actor=f"user:{user}" if user else None,
        log_encoding=_log_encoding(app_config.get("logger")),
        log_level=_log_level(app_config.get("logmanager")),
    )


_LEVELS = {-1: logging.DEBUG, 0: logging.INFO, 1: logging.WARNING, 2: logging.ERROR}


def _log_encoding(value: object) -> str:
    encoding = _section(value, "logger").get("encoding") or "json"
    if encoding not in ("json", "console"):
        raise ConfigError(f".wippy.yaml logger.encoding must be json or console, not {encoding!r}")
    return str(encoding)


def _log_level(value: object) -> int | None:
    level = _section(value, "logmanager").get("min_level")
    if level is None:
        return None
    if isinstance(level, bool) or level not in _LEVELS:
        raise ConfigError(f".wippy.yaml logmanager.min_level must be -1 (debug), 0 (info), 1 (warn) or 2 (error), "
                          f"not {level!r}")
    return _LEVELS[level]


def _logs_to_events(value: object) -> bool:
    flag = _section(value, "logmanager").get("stream_to_events", False)
    if not isinstance(flag, bool):
        raise ConfigError(f".wippy.yaml logmanager.stream_to_events must be true or false, not {flag!r}")
    return flag


def _admin_http(value: object) -> AdminHttpSettings:
    section = _section(value, "admin")
    addr, token = section.get("http"), section.get("token")
    if addr is not None and not isinstance(addr, str):
        raise ConfigError(f".wippy.yaml admin.http: expected an address such as 127.0.0.1:7070, not {addr!r}")
    if token is not None and not isinstance(token, str):
        raise ConfigError(".wippy.yaml admin.token: expected a string")
    settings = AdminHttpSettings(addr=addr, token=token)
    settings.check()
    return settings


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


def _telemetry(app_config: Mapping[str, object], env: Mapping[str, str]) -> TelemetrySettings:
    settings = _console_metrics(app_config.get("telemetry"))
    service, endpoint = _otel(app_config.get("otel"), env)
    return replace(settings, prometheus_address=_prometheus(app_config.get("prometheus")), service_name=service,
                   otlp_endpoint=endpoint)


def _section(value: object, where: str) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f".wippy.yaml {where}: expected a mapping, not {value!r}")
    return value


def _prometheus(value: object) -> tuple[str, int] | None:
    section = _section(value, "prometheus")
    if not _flag(section.get("enabled"), ".wippy.yaml prometheus.enabled"):
        return None
    address = section.get("address")
    if not isinstance(address, str) or not address.strip():
        raise ConfigError(".wippy.yaml prometheus.address must be set (like \"localhost:9090\") when "
                          "prometheus.enabled is true")
    return _host_port(address.strip(), ".wippy.yaml prometheus.address")


def _host_port(address: str, where: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{where} must be host:port (like \"localhost:9090\" or \":9090\"), not {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _otel(value: object, env: Mapping[str, str]) -> tuple[str, str | None]:
    """(service name, OTLP endpoint or None when metrics are not pushed)."""
    section = _section(value, "otel")
    enabled = _flag(section.get("enabled"), ".wippy.yaml otel.enabled") or False
    metrics = _flag(section.get("metrics_enabled"), ".wippy.yaml otel.metrics_enabled") or False
    if _flag(env.get("OTEL_SDK_DISABLED"), "OTEL_SDK_DISABLED"):
        enabled = False
    service = env.get("OTEL_SERVICE_NAME") or section.get("service_name") or "wippy-runtime"
    if not isinstance(service, str):
        raise ConfigError(f".wippy.yaml otel.service_name must be a string, not {service!r}")
    if not (enabled and metrics):
        return service, None
    protocol = section.get("protocol") or "http/protobuf"
    if protocol != "http/protobuf":
        raise ConfigError(f".wippy.yaml otel.protocol: only http/protobuf is supported here, not {protocol!r}")
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or section.get("endpoint") or "localhost:4318"
    if not isinstance(endpoint, str):
        raise ConfigError(f".wippy.yaml otel.endpoint must be a string, not {endpoint!r}")
    if "://" not in endpoint:
        insecure = _flag(section.get("insecure"), ".wippy.yaml otel.insecure")
        endpoint = ("https://" if insecure is False else "http://") + endpoint
    return service, endpoint


def _console_metrics(section: object) -> TelemetrySettings:
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
