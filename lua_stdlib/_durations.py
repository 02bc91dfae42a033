"""Go durations for the Lua modules (the parser lives in core, shared with entry checks)."""

from wippy.core import MAX_DURATION as MAX_DURATION
from wippy.core import MIN_DURATION as MIN_DURATION
from wippy.core import format_go_duration as format_go_duration
from wippy.core import go_quote as go_quote
from wippy.core import parse_go_duration as parse_go_duration
