"""Apply-time checks of `fs.directory` volumes and `exec.native` executors.

A mistake in these entries would otherwise surface only when Lua code first uses them; here it
is refused when the entry is applied, with an error naming the entry and the field. A value that
is an env placeholder (``${env:DATA_DIR}``) or comes from a ``<field>_env`` directive is resolved
later, so only its shape is checked.
"""

from __future__ import annotations

from typing import Any

from ._entry import Entry
from ._errors import DefinitionError
from ._validate import register_kind_check

_BASES = ("project", "module")


def _placeholder(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _octal_mode(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):  # YAML reads an unquoted 0755 as a number
        return 0 <= value <= 0o7777
    if not isinstance(value, str):
        return False
    text = value.strip().lower().removeprefix("0o")
    return bool(text) and all(c in "01234567" for c in text) and int(text, 8) <= 0o7777


def fs_directory_errors(entry: Entry) -> list[DefinitionError]:
    """An fs.directory needs a ``directory``; ``mode`` is octal, ``auto_init`` a boolean, ``base``
    project or module."""
    d = entry.data
    errors: list[DefinitionError] = []

    def bad(field: str, reason: str) -> None:
        errors.append(DefinitionError(reason, entry=entry.id, field=field))

    directory = d.get("directory")
    if directory is None:
        if "directory_env" not in d:
            bad("directory", "is required: the directory the volume serves (absolute, or relative to the app)")
    elif not isinstance(directory, str) or not directory.strip():
        bad("directory", "must be a directory path")
    elif "\0" in directory:
        bad("directory", "must not contain a NUL byte")
    mode = d.get("mode")
    if mode is not None and not _placeholder(mode) and not _octal_mode(mode):
        bad("mode", f"must be an octal permission mode such as \"0755\", not {mode!r}")
    auto_init = d.get("auto_init")
    if auto_init is not None and not isinstance(auto_init, bool) and not _placeholder(auto_init):
        bad("auto_init", "must be true or false")
    base = d.get("base")
    if base is not None and base not in _BASES and not _placeholder(base):
        bad("base", f"must be project or module, not {base!r}")
    return errors


def exec_native_errors(entry: Entry) -> list[DefinitionError]:
    """An exec.native's ``command_whitelist`` is a list of command strings, ``default_env`` maps
    names to strings, ``default_work_dir`` is a path."""
    d = entry.data
    errors: list[DefinitionError] = []

    def bad(field: str, reason: str) -> None:
        errors.append(DefinitionError(reason, entry=entry.id, field=field))

    listed = d.get("command_whitelist")
    if listed is not None:
        if not isinstance(listed, list):
            bad("command_whitelist", "must be a list of exact command strings")
        else:
            for i, cmd in enumerate(listed):
                if not isinstance(cmd, str) or not cmd.strip():
                    bad(f"command_whitelist[{i}]", f"must be a command string, not {cmd!r}")
    env = d.get("default_env")
    if env is not None:
        if not isinstance(env, dict):
            bad("default_env", "must be a mapping of variable names to strings")
        else:
            for name, value in env.items():
                if not isinstance(name, str) or not name or "=" in name or "\0" in name:
                    bad("default_env", f"{name!r} is not a valid environment variable name")
                elif not isinstance(value, str):
                    bad(f"default_env.{name}", f"must be a string (quote it in YAML), not {value!r}")
                elif "\0" in value:
                    bad(f"default_env.{name}", "must not contain a NUL byte")
    work = d.get("default_work_dir")
    if work is not None and (not isinstance(work, str) or not work.strip() or "\0" in work):
        bad("default_work_dir", "must be a directory path")
    return errors


register_kind_check(["fs.directory"], fs_directory_errors)
register_kind_check(["exec.native"], exec_native_errors)
