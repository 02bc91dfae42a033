"""Go durations for the Lua modules (the parser lives in core, shared with entry checks)."""

from wippy.core import MAX_DURATION, MIN_DURATION, format_go_duration, go_quote, parse_go_duration

__all__ = ["MAX_DURATION", "MIN_DURATION", "format_go_duration", "go_quote", "parse_go_duration"]
