"""``wippy init``: write a minimal runnable app.

The app has a terminal host and a ``hello`` process (``wippy run -x NS:hello [NAME]``, or the
command ``wippy run hello [NAME]``), and an HTTP server on 127.0.0.1:8080 with ``GET /hello``
served by a ``function.lua``. It also gets a ``.wippy.yaml`` (runtime settings, read by
``ops/_config``) and a README. It passes ``wippy lint``.

Where it writes: into DIR (created if missing). A directory that already holds an app (a
``src/`` folder, ``wippy.lock`` or ``.wippy.yaml``) or any file init would write is refused, and
nothing is written; other files (a LICENSE, a ``.git``) are left alone. Nothing is ever
overwritten.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from wippy.core import DefinitionError, parse_id

EXIT_REFUSED = 1
EXIT_USAGE = 2

#: what marks a directory as already holding a Wippy app
_APP_MARKERS = ("src", "wippy.lock", ".wippy.yaml")


def init_command(directory: str, *, name: str | None) -> int:
    """``wippy init``: scaffold the app and say what to run next; 1 when refused, 2 on a bad name."""
    target = Path(directory)
    namespace = name if name is not None else default_namespace(target)
    try:
        parse_id(f"{namespace}:hello")
    except DefinitionError:
        print(f"error: wippy init: --name {namespace!r} is not a namespace: use dot-separated words of letters, "
              "digits, '_' or '-' (such as myapp or acme.shop)", file=sys.stderr)
        return EXIT_USAGE
    if target.exists() and not target.is_dir():
        print(f"error: wippy init: {target} exists and is not a directory", file=sys.stderr)
        return EXIT_REFUSED
    taken = [m for m in _APP_MARKERS if (target / m).exists()] or [
        m for m in scaffold(namespace) if (target / m).exists()]
    if taken:
        print(f"error: wippy init: {target} already holds {', '.join(taken)}; "
              "choose an empty or new directory (init never overwrites)", file=sys.stderr)
        return EXIT_REFUSED
    written = write_scaffold(target, namespace)
    shown = str(target)
    print(f"wrote {len(written)} files into {shown} (namespace {namespace}):")
    for path in written:
        print(f"  {path.relative_to(target).as_posix()}")
    print("next:")
    if shown != ".":
        print(f"  cd {shlex.quote(shown)}")
    print(f"  wippy lint\n  wippy run -x {namespace}:hello\n  wippy run    # then GET http://127.0.0.1:8080/hello")
    return 0


def default_namespace(target: Path) -> str:
    """A namespace from the directory's name: lower case, other characters as '_' (``app`` if none)."""
    base = target.resolve().name.lower()
    cleaned = re.sub(r"[^a-z0-9_-]+", "_", base).strip("_-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"app_{cleaned}" if cleaned else "app"
    return cleaned


def write_scaffold(target: Path, namespace: str) -> list[Path]:
    """Write the scaffold's files below ``target`` (exclusive creation: fails on an existing file)."""
    written = []
    for rel, text in scaffold(namespace).items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as f:
            f.write(text)
        written.append(path)
    return written


def scaffold(namespace: str) -> dict[str, str]:
    """The files of a new app: app-relative path -> text."""
    return {
        "src/_index.yaml": _INDEX.replace("{ns}", namespace),
        "src/hello.lua": _HELLO,
        "src/hello_http.lua": _HELLO_HTTP,
        ".wippy.yaml": _SETTINGS,
        "README.md": _README.replace("{ns}", namespace),
    }


_INDEX = """\
# The app's registry entries. `wippy run` applies this file as one registry version;
# every later change to it becomes a new version you can list, diff and roll back.
version: "1.0"
namespace: {ns}

entries:
  # Runs process.lua entries with the real stdin/stdout (`wippy run -x ...`).
  - name: terminal
    kind: terminal.host
    lifecycle:
      auto_start: true

  # `wippy run -x {ns}:hello [NAME]` or `wippy run hello [NAME]`
  - name: hello
    kind: process.lua
    meta:
      title: Say hello
      command:
        name: hello
        short: Print a greeting
    source: file://hello.lua
    method: main
    modules:
      - io

  # An HTTP server and a router mounted on it.
  - name: server
    kind: http.service
    addr: "127.0.0.1:8080"
    lifecycle:
      auto_start: true

  - name: api
    kind: http.router
    meta:
      server: server
    prefix: /

  # GET /hello?name=NAME answers {"greeting": "Hello, NAME!"}
  - name: hello_http
    kind: function.lua
    source: file://hello_http.lua
    method: handle
    modules:
      - http

  - name: hello.get
    kind: http.endpoint
    meta:
      router: api
    method: GET
    path: /hello
    func: hello_http
"""

_HELLO = """\
-- A process: prints a greeting and exits with status 0.
local io = require("io")

local function main(name: string?): integer
    io.print("Hello, " .. (name or "world") .. "!")
    return 0
end

return { main = main }
"""

_HELLO_HTTP = """\
-- An HTTP handler: GET /hello?name=NAME
local http = require("http")

local function handle()
    local req = http.request()
    local res = http.response()
    local name = req:query("name")
    if name == nil or name == "" then
        name = "world"
    end
    res:set_status(http.STATUS.OK)
    res:write_json({ greeting = "Hello, " .. name .. "!" })
end

return { handle = handle }
"""

_SETTINGS = """\
# Runtime settings for this app; every key is optional.
logger:
  encoding: console   # readable log lines; json (the default) for log collectors
security:
  strict_mode: false  # true: code without an actor and a scope is denied everything
"""

_README = """\
# {ns}

A Wippy app: registry entries in `src/_index.yaml`, Lua code beside them.

```sh
wippy lint                  # check the files without running anything
wippy run -x {ns}:hello Ada # run the hello process on the terminal host
wippy run                   # serve until Ctrl-C
curl 'http://127.0.0.1:8080/hello?name=Ada'
```

Every `wippy run` applies the files as a registry version, kept in the app's log
(`.wippy/state`): `wippy registry versions`, `wippy registry diff 1 2` and
`wippy registry rollback 1` work on it.
"""
