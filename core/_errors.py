"""The exception tree of the runtime core.

::

    WippyError                      every error the runtime raises on purpose
    ├── ConfigError                 the operator's settings are wrong (flags, state dir)
    ├── LogError                    the JetStream log
    │   ├── LogUnavailableError     the server cannot be reached or started (retryable)
    │   ├── ConflictError           another writer appended first (retryable after reload)
    │   └── PayloadTooLargeError    one record cannot fit the server's max payload
    ├── DefinitionError             app files or entries are invalid (names file/entry/field)
    │   └── DefinitionErrors        several DefinitionErrors found in one pass
    ├── NotFoundError               an entry or version that does not exist
    ├── NotImplementedFeatureError  a command or module that is not built yet
    └── RecordError                 a log record that cannot be decoded

Retryability is an attribute (``retryable``), so callers decide without isinstance ladders.
"""

from __future__ import annotations

from collections.abc import Sequence


class WippyError(Exception):
    """Base of every error the runtime raises on purpose."""

    retryable: bool = False
    #: Wippy error kind (``errors.*`` in Lua) this maps to.
    kind: str = "INTERNAL"


class ConfigError(WippyError):
    """The runtime's own configuration (flags, environment, state dir) is unusable."""

    kind = "INVALID"


class LogError(WippyError):
    """Something went wrong talking to the JetStream log."""

    kind = "UNAVAILABLE"


class LogUnavailableError(LogError):
    """The NATS server cannot be reached or started."""

    retryable = True


class ConflictError(LogError):
    """Another writer appended to the stream since the position this writer expected."""

    retryable = True
    kind = "CONFLICT"

    def __init__(self, message: str, *, expected: int | None = None, actual: int | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class PayloadTooLargeError(LogError):
    """A single record is larger than the server accepts, even after chunking."""

    kind = "INVALID"


class RecordError(WippyError):
    """A log record could not be decoded (bad JSON, unknown schema version)."""

    kind = "INTERNAL"


class NotFoundError(WippyError):
    """An entry, version or other named thing does not exist."""

    kind = "NOT_FOUND"


class NotImplementedFeatureError(WippyError):
    """A command or module that the runtime does not provide yet."""

    kind = "UNAVAILABLE"


class DefinitionError(WippyError):
    """An app definition (YAML file, entry, changeset) is invalid.

    ``where`` names the file (and line when known), ``entry`` the entry id and ``field`` the
    offending field, so the message tells the user exactly what to fix.
    """

    kind = "INVALID"

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        entry: str | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = message
        self.where = where
        self.entry = entry
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.where:
            parts.append(self.where)
        if self.entry:
            parts.append(f"entry {self.entry}")
        if self.field:
            parts.append(f"field {self.field}")
        prefix = ": ".join(parts)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class DefinitionErrors(DefinitionError):
    """Several definition errors found in one pass; all are reported, none applied."""

    def __init__(self, errors: Sequence[DefinitionError]) -> None:
        self.errors = list(errors)
        lines = [str(e) for e in self.errors]
        head = f"{len(lines)} problems in the app definition" if len(lines) > 1 else "invalid definition"
        Exception.__init__(self, head + ":\n  " + "\n  ".join(lines))
        self.reason = head
        self.where = None
        self.entry = None
        self.field = None


def _subclasses(cls: type[WippyError]) -> dict[str, type[WippyError]]:
    out = {cls.__name__: cls}
    for sub in cls.__subclasses__():
        out.update(_subclasses(sub))
    return out


def error_to_json(exc: WippyError) -> dict[str, object]:
    """A WippyError as data, to cross a process boundary (admin requests)."""
    return {"type": type(exc).__name__, "kind": exc.kind, "message": str(exc), "retryable": exc.retryable}


def error_from_json(raw: dict[str, object]) -> WippyError:
    """The inverse of error_to_json: the same class and message (details stay on the far side)."""
    cls = _subclasses(WippyError).get(str(raw.get("type")), WippyError)
    exc = cls.__new__(cls)
    Exception.__init__(exc, str(raw.get("message", "")))
    return exc
