"""Structured logs on stderr: one JSON object per line (``logger.encoding: json``, the default) or
one human-readable line with the fields as JSON at the end (``console``)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():  # a field named like a line's own key keeps its value aside
                out[f"field.{key}" if key in _OWN_KEYS else key] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


_OWN_KEYS = frozenset({"ts", "level", "logger", "msg"})


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        line = f"{ts}  {record.levelname:<7} {record.name}  {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            line += "  " + orjson.dumps(fields, default=str).decode()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(*, verbose: bool, default_level: int = logging.WARNING, encoding: str = "json",
                  level: int | None = None) -> None:
    """Logs to stderr. ``level`` (from the config) wins over ``default_level``; ``verbose`` over both."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter() if encoding == "console" else JsonFormatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else level if level is not None else default_level)
    # nats-py reports every reconnect attempt at error level; the runtime reports what matters.
    logging.getLogger("nats").setLevel(logging.CRITICAL if not verbose else logging.DEBUG)
