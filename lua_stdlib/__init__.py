"""Wippy's Lua side: the VM (lupa, Lua 5.4), the scheduler, sandboxes, and the built-in modules.

Every ``_mod_<name>.py`` here is a module Lua code can ``require`` (each registers itself when imported):
funcs, ctx, registry, security, store, contract, io (terminal hosts), json, yaml, base64, hash, crypto,
uuid, time, logger, env, expr, text, metrics, system, treesitter, fs, exec, queue. Globals: channel, errors,
payload, print, process (lua/process.lua; the node's process runtime lives in services). Framework libraries the
runtime provides natively (wippy.actor:actor) come from _native_libs.py. Every other module Wippy
documents raises UNAVAILABLE when required.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from ._dialect import DialectError as DialectError
from ._dialect import translate as translate
from ._durations import parse_go_duration as parse_go_duration
from ._fs_volume import Volume as Volume
from ._fs_volume import volume_spec as volume_spec
from ._host import CODE_KINDS as CODE_KINDS
from ._host import WIPPY_MODULES as WIPPY_MODULES
from ._host import HostContext as HostContext
from ._host import LuaCodeError as LuaCodeError
from ._host import LuaHost as LuaHost
from ._host import ModuleUnavailable as ModuleUnavailable
from ._host import available_modules as available_modules
from ._host import register_module as register_module
from ._mod_io import Stdio as Stdio
from ._native_libs import native_contract as native_contract
from ._native_libs import native_library as native_library
from ._process import ProcessBridge as ProcessBridge
from ._process import decode_binary as decode_binary
from ._source_shape import SourceShape as SourceShape
from ._source_shape import required_names as required_names
from ._source_shape import returned_shape as returned_shape
from ._vm import LuaMemoryError as LuaMemoryError
from ._vm import LuaSettings as LuaSettings
from ._vm import LuaVM as LuaVM
from ._vm import Pending as Pending

# Every `_mod_<name>.py` here registers its modules with `register_module` when imported.
for _info in _pkgutil.iter_modules(__path__):
    if _info.name.startswith("_mod_"):
        _importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "CODE_KINDS",
    "WIPPY_MODULES",
    "DialectError",
    "HostContext",
    "LuaCodeError",
    "LuaHost",
    "LuaMemoryError",
    "LuaSettings",
    "LuaVM",
    "ModuleUnavailable",
    "Pending",
    "ProcessBridge",
    "SourceShape",
    "Stdio",
    "Volume",
    "available_modules",
    "decode_binary",
    "native_contract",
    "native_library",
    "parse_go_duration",
    "register_module",
    "required_names",
    "returned_shape",
    "translate",
    "volume_spec",
]
