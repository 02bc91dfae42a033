"""Components the runtime provides natively, so an app's ``ns.dependency`` on them needs no vendoring.

Wippy ships framework features (``wippy/llm``, ``wippy/agent``, ...) as hub modules of plain Lua.
This runtime provides some of them itself; each such component is registered here once, at import
time of the module that implements it, and the loader treats a dependency on its name as satisfied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

#: ``org/module`` as written in ``ns.dependency.component``. Parts start with a word character, so
#: neither can be ``.`` or ``..`` (the name becomes a path under the vendor dir).
COMPONENT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*/[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, slots=True)
class NativeComponent:
    """A hub component (``org/module``) whose public API the runtime implements itself.

    ``bundle`` is an optional directory of definition files shipped with the runtime (absolute, as
    the registering module resolved it): the entries a hub copy would add to the app beyond its
    libraries (HTTP endpoints, requirements, ...). The loader reads them like a vendored module's
    ``src/`` and links them with the dependency's parameters, while the component stays native.
    """

    name: str
    description: str
    bundle: Path | None = None


_REGISTRY: dict[str, NativeComponent] = {}


def native_components() -> Mapping[str, NativeComponent]:
    """A read-only snapshot of the registered components, by name."""
    return MappingProxyType(dict(_REGISTRY))


def register_native_component(component: NativeComponent) -> None:
    """Declare that the runtime provides ``component``.

    Registering an equal component again is a no-op (modules may be imported twice in tests);
    registering a different one under a taken name is a programming error.
    """
    if not COMPONENT_NAME.match(component.name):
        raise ValueError(f"component name {component.name!r} must be 'org/module'")
    known = _REGISTRY.get(component.name)
    if known is not None and known != component:
        raise ValueError(f"component {component.name} is already registered as {known!r}")
    _REGISTRY[component.name] = component
