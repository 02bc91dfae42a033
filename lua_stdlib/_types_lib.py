"""The runtime type library (``lua/types.lua``) as the Lua host loads it.

The host executes the source once per Lua runtime, puts the returned module in each chunk's
environment under ``TYPES_GLOBAL`` (see ``_dialect``) and calls ``install(env)`` on each sandbox
environment to add the primitive casts, ``typeof``, ``table.create`` and ``table.freeze``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

#: the chunk name Lua errors raised inside the library carry
TYPES_CHUNK = "=wippy/types.lua"


@cache
def types_source() -> str:
    """The text of ``types.lua`` (package data)."""
    return resources.files(__package__).joinpath("lua", "types.lua").read_text(encoding="utf-8")


def load_types(runtime: Any) -> Any:
    """Execute ``types.lua`` in a ``lupa`` runtime and return its module table."""
    return runtime.execute(types_source(), name=TYPES_CHUNK)
