"""Jet templates: expressions, pipelines and assignments inside one action.

Precedence, loosest first, as Jet parses it: ternary ``c ? a : b``; ``&&`` / ``||`` (one level, left
to right); ``==`` / ``!=``; ``< <= > >=``; ``+ -``; ``* / %``; unary ``-`` / ``+``, and ``!`` (which
applies to a whole comparison: ``!a == b`` is ``!(a == b)``). Operands are literals, names, ``.``,
``.field`` chains, ``x.field``, ``x[i]``, ``x[a:b]``, calls ``f(a, b)`` and parenthesised expressions.
A pipeline feeds a value through functions: ``x | f | g: 2 | h(1, _)``; ``f: a, b`` is a call
without parentheses.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._jet_ast import (
    Assign,
    Binary,
    Call,
    Chain,
    Command,
    Expr,
    Field,
    Ident,
    Index,
    Lit,
    Logic,
    Not,
    Slice,
    Ternary,
    Unary,
    Underscore,
)
from ._jet_lex import JetSyntaxError, Token

_LOGIC = {"&&": "&&", "||": "||", "and": "&&", "or": "||"}
_POSTFIX_BASES = (Ident, Call, Field, Chain, Index)


class Tokens:
    """The tokens of one action, read front to back."""

    def __init__(self, tokens: Sequence[Token], template: str, line: int) -> None:
        self.tokens, self.template, self.line = tokens, template, line
        self.i = 0

    def peek(self, ahead: int = 0) -> Token | None:
        i = self.i + ahead
        return self.tokens[i] if i < len(self.tokens) else None

    def done(self) -> bool:
        return self.i >= len(self.tokens)

    def next(self, expected: str) -> Token:
        tok = self.peek()
        if tok is None:
            raise self.fail(f"unexpected end of action (expected {expected})")
        self.i += 1
        return tok

    def at(self, *values: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind in ("op", "keyword") and tok.value in values

    def accept(self, value: str) -> bool:
        if self.at(value):
            self.i += 1
            return True
        return False

    def expect(self, value: str, expected: str) -> Token:
        tok = self.next(expected)
        if tok.kind not in ("op", "keyword") or tok.value != value:
            raise self.unexpected(tok, expected)
        return tok

    def expect_end(self, context: str) -> None:
        if not self.done():
            raise self.unexpected(self.tokens[self.i], f"closing delimiter after {context}")

    def fail(self, message: str, line: int | None = None) -> JetSyntaxError:
        return JetSyntaxError(self.template, line or self.line, message)

    def unexpected(self, tok: Token, expected: str) -> JetSyntaxError:
        shown = "." + tok.value if tok.kind == "field" else tok.value
        what = "keyword" if tok.kind == "keyword" else "token"
        if tok.value in ("extends", "import") and tok.kind == "keyword":
            return self.fail(f"unexpected keyword '{shown}' ('{shown}' statements must be at the beginning of "
                             "the template)", tok.line)
        return self.fail(f"unexpected {what} '{shown}' (expected {expected})", tok.line)


def expression(ts: Tokens) -> Expr:
    cond = _logical(ts)
    if ts.at("?"):
        line = ts.next("?").line
        yes = expression(ts)
        ts.expect(":", "colon in ternary expression")
        return Ternary(cond, yes, expression(ts), line)
    return cond


def _logical(ts: Tokens) -> Expr:
    left = _binary(ts, 0)
    while ts.at(*_LOGIC):
        op = ts.next("operator")
        left = Logic(_LOGIC[op.value], left, _binary(ts, 0), op.line)
    return left


_LEVELS = (("==", "!="), ("<", "<=", ">", ">="), ("+", "-"), ("*", "/", "%"))


def _binary(ts: Tokens, level: int) -> Expr:
    if level == len(_LEVELS):
        return _unary(ts)
    left = _binary(ts, level + 1)
    while (tok := ts.peek()) is not None and tok.kind == "op" and tok.value in _LEVELS[level]:
        ts.i += 1
        left = Binary(tok.value, left, _binary(ts, level + 1), tok.line)
    return left


def _unary(ts: Tokens) -> Expr:
    tok = ts.peek()
    if tok is not None and tok.kind in ("op", "keyword") and tok.value in ("!", "not"):
        ts.i += 1
        return Not(_binary(ts, 0), tok.line)
    if tok is not None and tok.kind == "op" and tok.value in ("-", "+"):
        ts.i += 1
        return Unary(tok.value, operand(ts), tok.line)
    return operand(ts)


def operand(ts: Tokens) -> Expr:
    node = _term(ts)
    while True:
        tok = ts.peek()
        if tok is not None and tok.kind == "field" and not tok.spaced:
            names: list[str] = []
            while (f := ts.peek()) is not None and f.kind == "field":
                names.append(ts.next("field").value)
            if isinstance(node, Field):
                node = Field(node.names + tuple(names), node.line)
            elif isinstance(node, Lit):
                raise ts.fail(f"unexpected . after term {node.value!r}", tok.line)
            elif isinstance(node, Chain):
                node = Chain(node.base, node.names + tuple(names), node.line)
            else:
                node = Chain(node, tuple(names), tok.line)
            continue
        if not isinstance(node, _POSTFIX_BASES) or tok is None or tok.kind != "op":
            return node
        if tok.value == "(":
            ts.i += 1
            args = arguments(ts, closing=True)
            ts.expect(")", "closing parenthesis")
            node = Call(node, args, tok.line)
        elif tok.value == "[":
            ts.i += 1
            node = _index(ts, node, tok.line)
        else:
            return node


def _index(ts: Tokens, base: Expr, line: int) -> Expr:
    start = None if ts.at(":") else expression(ts)
    if ts.accept(":"):
        end = None if ts.at("]") else expression(ts)
        ts.expect("]", "closing bracket")
        return Slice(base, start, end, line)
    ts.expect("]", "closing bracket")
    assert start is not None
    return Index(base, start, line)


def _number(ts: Tokens, tok: Token) -> float:
    text = tok.value
    try:
        if text[:2] in ("0x", "0X"):
            return float(int(text, 16))
        if len(text) > 1 and text[0] == "0" and text.isdecimal():
            return float(int(text, 8))  # Go reads a leading 0 as octal
        return float(text)
    except ValueError:
        raise ts.fail(f"illegal number syntax: {text!r}", tok.line) from None


def _term(ts: Tokens) -> Expr:
    tok = ts.next("an operand")
    kind, value, line = tok.kind, tok.value, tok.line
    if kind == "ident":
        return Ident(value, line)
    if kind == "field":
        return Field((value,), line)
    if kind == "string":
        return Lit(value, line)
    if kind == "number":
        return Lit(_number(ts, tok), line)
    if kind == "char":
        return Lit(float(ord(value)), line)
    if kind == "bool":
        return Lit(value == "true", line)
    if kind == "underscore":
        return Underscore(line)
    if kind == "keyword" and value == "nil":
        return Lit(None, line)
    if kind == "op" and value == "(":
        inner = expression(ts)
        ts.expect(")", "closing parenthesis")
        return inner
    raise ts.unexpected(tok, "an operand")


def arguments(ts: Tokens, *, closing: bool) -> tuple[Expr, ...]:
    """Comma-separated call arguments: up to ``)`` (not consumed), or to the end of a prefix call."""
    args: list[Expr] = []
    while not (closing and ts.at(")")) and not ts.done():
        args.append(expression(ts))
        if not ts.accept(","):
            break
    if sum(isinstance(a, Underscore) for a in args) > 1:
        raise ts.fail("found two pipe slot markers ('_') for the same function call")
    return tuple(args)


def pipeline(ts: Tokens, base: Expr) -> tuple[Command, ...]:
    """``base | cmd | cmd ...`` to the end of the action."""
    cmds = [_command(ts, base)]
    while not ts.done():
        ts.expect("|", "pipe or closing delimiter")
        tok = ts.peek()
        if tok is None or tok.kind not in ("ident", "field"):
            raise ts.unexpected(tok, "field or identifier") if tok else ts.fail("expected a function after '|'")
        cmds.append(_command(ts, expression(ts)))
    return tuple(cmds)


def _command(ts: Tokens, base: Expr) -> Command:
    if isinstance(base, Call):
        return Command(base.func, base.args, base.line)
    if ts.accept(":"):
        return Command(base, arguments(ts, closing=False), base.line)
    return Command(base, None, base.line)


def assignment_or_expression(ts: Tokens, context: str) -> Assign | Expr:
    """An expression, or an assignment when a ``,``, ``=`` or ``:=`` follows it."""
    first = expression(ts)
    if not ts.at(",", "=", ":="):
        return first
    left = [first]
    while True:
        target = left[-1]
        if not isinstance(target, Ident | Field | Chain | Underscore) or (isinstance(target, Ident) and
                                                                          target.name == "."):
            raise ts.fail("unexpected node in assignment (assign to names, fields or _)", target.line)
        op = ts.next("assignment")
        if op.value == ",":
            left.append(expression(ts))
            continue
        let = op.value == ":="
        break
    if let and not all(isinstance(t, Ident | Underscore) for t in left):
        raise ts.fail("only names can be declared with ':='", op.line)
    right = [expression(ts)]
    while ts.accept(","):
        right.append(expression(ts))
    lookup = False
    if context == "range":
        if len(left) > 2 or len(right) > 1:
            raise ts.fail("range assigns at most two variables from one value", op.line)
    elif len(left) != len(right):
        if not (len(left) == 2 and len(right) == 1 and isinstance(right[0], Index)):
            raise ts.fail(f"assignment of {len(right)} values to {len(left)} variables", op.line)
        lookup = True
    return Assign(let, tuple(left), tuple(right), lookup, op.line)
