"""The errors of the expr-lang evaluator, and where in the source they point.

::

    DefinitionError
    └── ExprError        the expression text is not valid expr-lang (found when compiling)
    WippyError
    └── ExprEvalError    evaluating a valid expression failed (bad types, nil access, ...)
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import DefinitionError, WippyError

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
    """A node's place in the source, kept by compiled closures that can fail."""

    snippet: str
    line: int
    column: int

    @staticmethod
    def of(source: str, start: int, end: int, line: int, column: int) -> Where:
        text = " ".join(source[start:end].split())
        if len(text) > _SNIPPET_MAX:
            text = text[: _SNIPPET_MAX - 3] + "..."
        return Where(text, line, column)

    def fail(self, reason: str) -> ExprEvalError:
        return ExprEvalError(reason, snippet=self.snippet, line=self.line, column=self.column)

    def syntax(self, reason: str) -> ExprError:
        return ExprError(reason, line=self.line, column=self.column)
