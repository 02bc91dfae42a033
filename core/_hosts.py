"""Settings of `process.host` / `terminal.host` entries, checked when they are applied.

``host.max_memory`` (our extension) bounds the Lua memory of all the processes of one host:
bytes, or a size such as ``512MB`` / ``1GiB``. ``host.mailbox_limit`` (ours too) is how many
unread messages one mailbox queue may hold before further ones become dead letters (10,000).
Wippy's ``host.workers``, ``queue_size`` and ``local_queue_size`` are accepted and checked; a
host here runs its processes on one event loop, so they do not change scheduling.
"""

from __future__ import annotations

import re
from typing import Any

from ._entry import Entry
from ._errors import DefinitionError
from ._validate import register_kind_check

#: the Lua memory all processes of one process.host share, unless the entry says otherwise
PROCESS_HOST_MEMORY = 1024 * 1024 * 1024
MIN_MEMORY = 1024 * 1024
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*$", re.IGNORECASE)
_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}


def parse_size(value: Any) -> int:
    """Bytes from an integer or a size string (``64MB``, ``1.5GiB``, ``512k``); ValueError if neither."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string such as 512MB")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(float(m.group(1)) * 1024 ** _UNITS[m.group(2).upper()])
    raise ValueError(f"{value!r} is not a size (a number of bytes, or a string such as 512MB)")


def host_memory(entry: Entry, default: int) -> int:
    """The Lua memory limit of a host entry (checked when applied; ``default`` if not set)."""
    host = entry.data.get("host")
    if isinstance(host, dict) and host.get("max_memory") is not None:
        return parse_size(host["max_memory"])
    return default


def host_mailbox_limit(entry: Entry, default: int) -> int:
    """Unread messages one mailbox queue of this host's processes may hold (0: no limit)."""
    host = entry.data.get("host")
    if isinstance(host, dict) and isinstance(host.get("mailbox_limit"), int):
        return int(host["mailbox_limit"])
    return default


def host_errors(entry: Entry) -> list[DefinitionError]:
    host = entry.data.get("host")
    if host is None:
        return []
    if not isinstance(host, dict):
        return [DefinitionError("must be a mapping (workers, queue_size, max_memory, ...)", entry=entry.id,
                                field="host")]
    errors: list[DefinitionError] = []
    for key in ("workers", "queue_size", "local_queue_size"):
        value = host.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            errors.append(DefinitionError("must be a positive integer", entry=entry.id, field=f"host.{key}"))
    limit = host.get("mailbox_limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        errors.append(DefinitionError("must be a whole number of messages (0: no limit)", entry=entry.id,
                                      field="host.mailbox_limit"))
    if host.get("max_memory") is not None:
        try:
            size = parse_size(host["max_memory"])
        except ValueError as exc:
            errors.append(DefinitionError(str(exc), entry=entry.id, field="host.max_memory"))
        else:
            if size < MIN_MEMORY:
                errors.append(DefinitionError(f"must be at least 1MB, not {size} bytes", entry=entry.id,
                                              field="host.max_memory"))
    return errors


register_kind_check(["process.host", "terminal.host"], host_errors)
