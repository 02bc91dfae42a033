"""An evaluator of the expr-lang expression language (github.com/expr-lang/expr).

Wippy evaluates ``expr.eval``/``expr.compile`` and ``security.policy.expr`` conditions with
expr-lang; this is the same language over plain Python data (None, bool, int, float, str,
lists and mappings). The text is parsed by a lark LALR grammar (``_expr_grammar``) and the tree
compiled once into Python closures (``_expr_compile``), so running a compiled Program is a few
function calls. ``compile_expr`` caches Programs by source text.

Semantics, following expr-lang run without a typed environment:

* An identifier that is not in ``env`` is nil (expr-lang's behaviour for an untyped env /
  ``AllowUndefinedVariables``), and so is a missing map key: a policy over ``actor.meta.role``
  sees nil, not an error, when the actor has no role. Reading a field *of* nil is an error
  (``cannot fetch x from nil``) unless written ``a?.x``; ``a ?? b`` supplies defaults.
* Operators type-check at run time exactly where expr-lang would panic: ``&& || ! ?:`` need
  bools (nil is not false), ``< > <= >=`` numbers or strings, ``%`` integers; ``/`` and
  ``**`` always give floats (division by zero: ±Inf/NaN); ``bool`` is never a number.
  ``in`` tests array elements and map keys (a substring test is ``contains``);
  ``contains startsWith endsWith matches`` are false when either side is nil.
* ``matches`` uses Python ``re`` after translating RE2 spellings (``\\z``, ``$`` = end of text,
  POSIX ``[[:alpha:]]``, ``(?<name>``) and with ``re.ASCII`` (RE2's ``\\d \\w \\s \\b`` are ASCII).
  Differences left: ``re`` also accepts backreferences and lookarounds (RE2 rejects them),
  backtracks (RE2 is linear-time), rejects ``\\p{..}`` classes, and ``(?i)`` folds ASCII only.
* Deliberate differences: integers are unbounded (Go wraps at 64 bits); indexing a string
  gives a one-character string and ``indexOf`` counts characters (Go: bytes); ``keys`` and
  ``values`` keep insertion order (Go: random); ``fromJSON`` numbers are floats as in Go.
* Not supported: bytes literals ``b"..."``, date/time builtins (``now``, ``date``,
  ``duration``, ``timezone``), ``::`` builtin calls and method calls on values other than
  functions stored in maps.

Every failure is an ExprError (the text is not valid; raised by compile) or an ExprEvalError
(raised by run, quoting the failing sub-expression); no Python exception leaks out.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ._expr_calls import Fn, Scope
from ._expr_compile import Compiler
from ._expr_errors import ExprError, ExprEvalError
from ._expr_grammar import parser

__all__ = ["ExprError", "ExprEvalError", "Program", "compile_expr", "evaluate"]

_CACHE_SIZE = 1024
_EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Program:
    """A compiled expression: run it against any number of environments."""

    source: str
    _fn: Fn = field(repr=False, compare=False)
    _slots: int = field(default=0, repr=False, compare=False)

    def run(self, env: Mapping[str, Any]) -> Any:
        """Evaluate against ``env`` (variable name -> value); raises ExprEvalError on failure."""
        given: Any = env  # callers outside the type checker may pass anything
        if type(given) is not dict and not isinstance(given, Mapping):
            if given is not None:
                raise ExprEvalError(
                    f"environment must be a map, got {type(given).__name__}", snippet=self.source, line=1, column=1
                )
            env = _EMPTY
        try:
            return self._fn(env, [None] * self._slots)
        except ExprEvalError:
            raise
        except RecursionError:
            raise self._failure("expression is nested too deeply") from None
        except Exception as exc:  # a bug here, not the user's: still reported as an eval error
            raise self._failure(f"internal error: {type(exc).__name__}: {exc}") from exc

    def _failure(self, reason: str) -> ExprEvalError:
        return ExprEvalError(reason, snippet=self.source[:60], line=1, column=1)


def compile_expr(source: str) -> Program:
    """Parse and compile ``source``; raises ExprError naming the line and column at fault."""
    if not isinstance(source, str):
        raise ExprError(f"expression must be a string, got {type(source).__name__}", line=1, column=1)
    return _compile_cached(source)


def evaluate(source: str, env: Mapping[str, Any]) -> Any:
    """Compile (cached) and run ``source`` against ``env`` in one step."""
    return compile_expr(source).run(env)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compile_cached(source: str) -> Program:
    if not source.strip():
        raise ExprError("empty expression", line=1, column=1)
    try:
        tree = parser().parse(source)
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None
    compiler = Compiler(source, tree)
    try:
        fn = compiler.compile(tree, Scope())
    except RecursionError:
        raise ExprError("expression is nested too deeply", line=1, column=1) from None
    return Program(source, fn, compiler.nslots)


def _syntax_error(source: str, exc: UnexpectedInput) -> ExprError:
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        char = source[pos] if pos < len(source) else ""
        reason = "string literal not terminated" if char in ("'", '"', "`") else f"unexpected character {char!r}"
        return ExprError(reason, line=exc.line, column=exc.column)
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        token = exc.token
        reason = f"unexpected {token.value!r}" + _expected({str(n) for n in exc.expected})
        return ExprError(reason, line=token.line or 1, column=token.column or 1)
    if isinstance(exc, UnexpectedToken | UnexpectedEOF):
        line = source.count("\n") + 1
        column = len(source) - (source.rfind("\n") + 1) + 1
        expected = {str(n) for n in exc.expected}
        return ExprError("unexpected end of expression" + _expected(expected), line=line, column=column)
    return ExprError(str(exc), line=exc.line, column=exc.column)  # pragma: no cover - lark has no other kinds


def _expected(names: set[str] | list[str]) -> str:
    """``; expected ')'`` when the parser wanted a few punctuation tokens, or one closing bracket."""
    values: list[str | None] = []
    for name in sorted(names):
        pattern = parser().get_terminal(name).pattern if name != "$END" else None
        values.append(pattern.value if pattern is not None and pattern.type == "str" else None)
    closers = [v for v in values if v in (")", "]", "}")]
    if None in values or len(values) > 3:
        values = list(closers) if len(closers) == 1 else []
    return "; expected " + " or ".join(repr(v) for v in values) if values else ""
