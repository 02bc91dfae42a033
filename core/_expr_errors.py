"""The errors of the expr-lang evaluator, and where in the source they point.

::

    DefinitionError
    └── ExprError        the expression text is not valid expr-lang (found when compiling)
    WippyError
    └── ExprEvalError    evaluating a valid expression failed (bad types, nil access, ...)
"""

from __future__ import annotations

from dataclasses import dataclass

from lark import Token, Tree

from ._errors import DefinitionError, WippyError
from ._expr_grammar import positioned_parse

#: Longest sub-expression quoted in a runtime error message.
_SNIPPET_MAX = 60


class ExprError(DefinitionError):
    """The expression does not parse or compile: the message says what and where.

    ``line`` and ``column`` are 1-based and point at the offending token.
    """

    kind = "INVALID"

    def __init__(self, reason: str, *, line: int, column: int) -> None:
        super().__init__(reason, where=f"line {line}, column {column}")
        self.line = line
        self.column = column


class ExprEvalError(WippyError):
    """Evaluating an expression failed; the message quotes the failing sub-expression.

    ``snippet`` is that sub-expression's source text, ``line``/``column`` where it starts.
    """

    kind = "INVALID"

    def __init__(self, reason: str, *, snippet: str, line: int, column: int) -> None:
        super().__init__(f"{reason} in `{snippet}` (line {line}, column {column})")
        self.reason = reason
        self.snippet = snippet
        self.line = line
        self.column = column


class OpError(Exception):
    """Raised by value helpers that do not know where they were called from.

    The compiled node that called the helper turns it into an ExprEvalError naming itself.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Where:
    """A node of the parsed tree, kept by compiled closures that can fail.

    The fast parse carries no positions; on an error the source is parsed again with
    positions and the node found at the same path, so only failures pay for locating.
    """

    source: str
    root: Tree[Token]
    node: Tree[Token] | Token

    def locate(self) -> tuple[str, int, int]:
        """The node's source text (shortened), line and column."""
        node = self.node
        if isinstance(node, Token):
            start, end, line, column = node.start_pos, node.end_pos, node.line, node.column
        else:
            path = _path(self.root, node) or []
            found: Tree[Token] | Token = positioned_parse(self.source)
            for i in path:
                assert isinstance(found, Tree)
                found = found.children[i]
            if isinstance(found, Token):  # pragma: no cover - paths lead to trees
                start, end, line, column = found.start_pos, found.end_pos, found.line, found.column
            else:
                m = found.meta
                start, end, line, column = m.start_pos, m.end_pos, m.line, m.column
        text = " ".join(self.source[start or 0 : end or 0].split())
        if len(text) > _SNIPPET_MAX:
            text = text[: _SNIPPET_MAX - 3] + "..."
        return text, line or 1, column or 1

    def fail(self, reason: str) -> ExprEvalError:
        snippet, line, column = self.locate()
        return ExprEvalError(reason, snippet=snippet, line=line, column=column)

    def syntax(self, reason: str) -> ExprError:
        _, line, column = self.locate()
        return ExprError(reason, line=line, column=column)


def _path(tree: Tree[Token], target: Tree[Token]) -> list[int] | None:
    if tree is target:
        return []
    for i, child in enumerate(tree.children):
        if isinstance(child, Tree):
            sub = _path(child, target)
            if sub is not None:
                return [i, *sub]
    return None
