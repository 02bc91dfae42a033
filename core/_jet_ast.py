"""Jet templates, the parsed form: immutable nodes, shared by every render of the same source.

Expressions evaluate to values; statements write output. Every node keeps its source line so a
render error can name it. ``Template.blocks`` holds every ``block`` the template defines, wherever
it stands (Jet makes them all yieldable by name), the last definition of a name winning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# -- expressions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal: string, number (Jet makes every number literal a float), bool or nil."""

    value: str | float | bool | None
    line: int


@dataclass(frozen=True, slots=True)
class Ident:
    """A variable, global or built-in function by name; ``.`` is the current context."""

    name: str
    line: int


@dataclass(frozen=True, slots=True)
class Underscore:
    """``_``: the piped value's slot in a call, or a discarded assignment target."""

    line: int


@dataclass(frozen=True, slots=True)
class Field:
    """``.a.b``: fields of the current context."""

    names: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Chain:
    """``x.a.b``: fields of a value."""

    base: Expr
    names: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Index:
    base: Expr
    index: Expr
    line: int


@dataclass(frozen=True, slots=True)
class Slice:
    base: Expr
    start: Expr | None
    end: Expr | None
    line: int


@dataclass(frozen=True, slots=True)
class Call:
    func: Expr
    args: tuple[Expr, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Unary:
    """``-x`` or ``+x``."""

    op: str
    operand: Expr
    line: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    line: int


@dataclass(frozen=True, slots=True)
class Binary:
    """Arithmetic (``+ - * / %``) and comparison (``== != < <= > >=``)."""

    op: str
    left: Expr
    right: Expr
    line: int


@dataclass(frozen=True, slots=True)
class Logic:
    """``&&`` / ``||`` (also ``and`` / ``or``): equal precedence, left to right, as in Jet."""

    op: str
    left: Expr
    right: Expr
    line: int


@dataclass(frozen=True, slots=True)
class Ternary:
    cond: Expr
    yes: Expr
    no: Expr
    line: int


Expr = Lit | Ident | Underscore | Field | Chain | Index | Slice | Call | Unary | Not | Binary | Logic | Ternary


@dataclass(frozen=True, slots=True)
class Command:
    """One stage of a pipeline: a function and its arguments (None: a plain value, not a call)."""

    func: Expr
    args: tuple[Expr, ...] | None
    line: int


# -- statements --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Assign:
    """``a, b := x, y`` (``let``: new variables) or ``a.b = x`` (existing ones). ``lookup``:
    ``v, ok := m["k"]``."""

    let: bool
    left: tuple[Expr, ...]
    right: tuple[Expr, ...]
    lookup: bool
    line: int


@dataclass(frozen=True, slots=True)
class Action:
    """``{{ expr | f: a }}``, ``{{ x := 1 }}`` or both, ``{{ x := 1; x }}``."""

    assign: Assign | None
    pipe: tuple[Command, ...]
    line: int


@dataclass(frozen=True, slots=True)
class If:
    assign: Assign | None
    cond: Expr
    body: tuple[Node, ...]
    orelse: tuple[Node, ...] | None
    line: int


@dataclass(frozen=True, slots=True)
class Range:
    """``range expr``, ``range i := expr``, ``range i, v := expr``; ``orelse`` runs when empty."""

    assign: Assign | None
    expr: Expr
    body: tuple[Node, ...]
    orelse: tuple[Node, ...] | None
    line: int


@dataclass(frozen=True, slots=True)
class Try:
    body: tuple[Node, ...]
    err_var: str | None
    catch: tuple[Node, ...] | None
    line: int


@dataclass(frozen=True, slots=True)
class Param:
    """A block parameter (``name`` with an optional default) or a yield argument (``name=value``,
    or a positional ``value`` with no name)."""

    name: str | None
    value: Expr | None


@dataclass(frozen=True, slots=True)
class Block:
    name: str
    params: tuple[Param, ...]
    context: Expr | None
    body: tuple[Node, ...]
    content: tuple[Node, ...] | None
    template: str
    line: int


@dataclass(frozen=True, slots=True)
class Yield:
    name: str
    args: tuple[Param, ...]
    context: Expr | None
    content: tuple[Node, ...] | None
    line: int


@dataclass(frozen=True, slots=True)
class YieldContent:
    """``yield content``: the content the block's caller passed."""

    context: Expr | None
    line: int


@dataclass(frozen=True, slots=True)
class Include:
    name: Expr
    context: Expr | None
    template: str  # the including template: relative names resolve beside it
    line: int


Node = Text | Action | If | Range | Try | Block | Yield | YieldContent | Include


@dataclass(frozen=True, slots=True)
class Ref:
    """A template named by ``extends`` or ``import``."""

    name: str
    line: int


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    extends: Ref | None
    imports: tuple[Ref, ...]
    body: tuple[Node, ...]
    blocks: Mapping[str, Block]
