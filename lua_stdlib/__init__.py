"""Wippy's Lua side: the VM (lupa, Lua 5.4), the scheduler, sandboxes, and the built-in modules.

Modules provided here: funcs, ctx, registry, security, store, io (terminal hosts), time (sleep
and timers), json (encode/decode); globals: channel, errors, payload, print, process (pid only until processes land).
Every other module Wippy documents raises UNAVAILABLE when required.
"""

from . import _mod_funcs as _mod_funcs  # registers funcs, ctx
from . import _mod_io as _mod_io  # registers io
from . import _mod_json as _mod_json  # registers json
from . import _mod_registry as _mod_registry  # registers registry
from . import _mod_security as _mod_security  # registers security, store
from . import _mod_time as _mod_time  # registers time
from ._durations import parse_go_duration as parse_go_duration
from ._host import HostContext as HostContext
from ._host import LuaCodeError as LuaCodeError
from ._host import LuaHost as LuaHost
from ._host import ModuleUnavailable as ModuleUnavailable
from ._host import available_modules as available_modules
from ._host import register_module as register_module
from ._mod_io import Stdio as Stdio
from ._vm import LuaSettings as LuaSettings
from ._vm import LuaVM as LuaVM
from ._vm import Pending as Pending

__all__ = [
    "HostContext",
    "LuaCodeError",
    "LuaHost",
    "LuaSettings",
    "LuaVM",
    "ModuleUnavailable",
    "Pending",
    "Stdio",
    "available_modules",
    "parse_go_duration",
    "register_module",
]
