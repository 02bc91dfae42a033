"""Wippy's Lua modules, as the Lua host exposes them. Not built yet: see the project's issues."""

__all__: list[str] = []
