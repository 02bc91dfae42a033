"""Jet templates: statements, from lexed parts to a ``Template``.

Supported statements: ``extends`` / ``import`` (first, before anything but whitespace), ``if`` /
``else if`` / ``else``, ``range`` (with ``else``), ``try`` / ``catch``, ``block`` (with ``content``),
``yield`` (a block, or ``yield content``), ``include``, assignments and output actions. ``return``
(and the ``exec()`` that reads it) and the ``msg`` / ``trans`` statements are refused with a clear
error. Parsing is pure and cached per source text, so a template is parsed once however often it
renders.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import MappingProxyType

from ._jet_ast import (
    Action,
    Assign,
    Block,
    Command,
    Expr,
    If,
    Include,
    Node,
    Param,
    Range,
    Ref,
    Template,
    Text,
    Try,
    Yield,
    YieldContent,
)
from ._jet_expr import Tokens, assignment_or_expression, expression, pipeline
from ._jet_lex import ActionPart, JetSyntaxError, TextPart, lex

_SPACE = " \t\r\n"


@dataclass(frozen=True, slots=True)
class _End:
    """A clause keyword that closes or splits a list: end, else, content, catch."""

    word: str
    ts: Tokens


class _Parser:
    def __init__(self, parts: list[TextPart | ActionPart], name: str) -> None:
        self.parts, self.name = parts, name
        self.i = 0
        self.blocks: dict[str, Block] = {}

    def fail(self, line: int, message: str) -> JetSyntaxError:
        return JetSyntaxError(self.name, line, message)

    def template(self) -> Template:
        extends: Ref | None = None
        imports: list[Ref] = []
        while self.i < len(self.parts):
            part = self.parts[self.i]
            if isinstance(part, TextPart):
                if part.text.strip(_SPACE):
                    break
                self.i += 1  # Jet drops whitespace before (and between) extends/import
                continue
            first = part.tokens[0] if part.tokens else None
            if first is None or first.kind != "keyword" or first.value not in ("extends", "import"):
                break
            self.i += 1
            ts = Tokens(part.tokens, self.name, part.line)
            ts.next("extends")
            target = ts.next("a template name")
            if target.kind != "string":
                raise ts.unexpected(target, "string literal")
            ts.expect_end(first.value)
            if first.value == "import":
                imports.append(Ref(target.value, part.line))
            elif extends is not None:
                raise self.fail(part.line, "each template can only extend one template")
            elif imports:
                raise self.fail(part.line, "the 'extends' clause must come before all import clauses")
            else:
                extends = Ref(target.value, part.line)
        body, end = self.items((), 0)
        assert end is None
        return Template(self.name, extends, tuple(imports), body, MappingProxyType(self.blocks))

    def items(self, until: tuple[str, ...], opened: int) -> tuple[tuple[Node, ...], _End | None]:
        """Nodes up to one of the ``until`` clauses (returned), or to the end when ``until`` is empty."""
        nodes: list[Node] = []
        while self.i < len(self.parts):
            part = self.parts[self.i]
            self.i += 1
            if isinstance(part, TextPart):
                nodes.append(Text(part.text))
                continue
            found = self.action(part)
            if isinstance(found, _End):
                if found.word in until:
                    return tuple(nodes), found
                raise self.fail(part.line, f"unexpected {{{{ {found.word} }}}}")
            nodes.append(found)
        if until:
            raise self.fail(opened, f"unexpected end of template: the statement on line {opened} has no {{{{ end }}}}")
        return tuple(nodes), None

    def action(self, part: ActionPart) -> Node | _End:
        ts = Tokens(part.tokens, self.name, part.line)
        tok = ts.peek()
        if tok is None:
            raise self.fail(part.line, "empty action")
        if tok.kind == "keyword":
            word = tok.value
            if word in ("end", "content", "catch", "else"):
                ts.next(word)
                if word != "else" and not (word == "catch" and not ts.done()):
                    ts.expect_end(word)
                return _End(word, ts)
            if word in ("if", "range"):
                ts.next(word)
                return self.control(ts, word, part.line)
            if word == "include":
                ts.next(word)
                name = expression(ts)
                context = None if ts.done() else expression(ts)
                ts.expect_end("include")
                return Include(name, context, self.name, part.line)
            if word == "block":
                return self.block(ts, part.line)
            if word == "yield":
                return self.yield_(ts, part.line)
            if word == "try":
                return self.try_(ts, part.line)
            if word in ("return", "msg", "trans"):
                raise self.fail(part.line, f"'{word}' is not supported by this runtime's Jet engine")
        found = assignment_or_expression(ts, "command")
        if isinstance(found, Assign):
            pipe: tuple[Command, ...] = ()
            if ts.accept(";"):
                pipe = pipeline(ts, expression(ts))
            ts.expect_end("assignment")
            return Action(found, pipe, part.line)
        return Action(None, pipeline(ts, found), part.line)

    def control(self, ts: Tokens, word: str, line: int) -> If | Range:
        found = assignment_or_expression(ts, word)
        assign = found if isinstance(found, Assign) else None
        cond: Expr
        if assign is None:
            assert not isinstance(found, Assign)
            cond = found
        elif word == "range":
            cond = assign.right[0]
        else:
            ts.expect(";", "semicolon between assignment and expression")
            cond = expression(ts)
        ts.expect_end(word)
        body, end = self.items(("else", "end"), line)
        assert end is not None
        orelse: tuple[Node, ...] | None = None
        if end.word == "else":
            if word == "if" and end.ts.accept("if"):
                orelse = (self.control(end.ts, "if", line),)  # "else if" shares the outer {{ end }}
            else:
                end.ts.expect_end("else")
                orelse, _ = self.items(("end",), line)
        if word == "range":
            return Range(assign, cond, body, orelse, line)
        return If(assign, cond, body, orelse, line)

    def params(self, ts: Tokens, *, declaring: bool) -> tuple[Param, ...]:
        ts.expect("(", "opening parenthesis")
        out: list[Param] = []
        while not ts.at(")"):
            tok = ts.peek()
            nxt = ts.peek(1)
            if tok is not None and tok.kind == "ident" and nxt is not None and nxt.kind == "op" and nxt.value == "=":
                ts.i += 2
                out.append(Param(tok.value, expression(ts)))
            elif declaring:
                name = ts.next("a parameter name")
                if name.kind != "ident":
                    raise ts.unexpected(name, "a parameter name")
                out.append(Param(name.value, None))
            else:
                out.append(Param(None, expression(ts)))
            if not ts.accept(","):
                break
        ts.expect(")", "comma, assignment, or closing parenthesis")
        names = [p.name for p in out if p.name is not None]
        if len(names) != len(set(names)):
            raise self.fail(ts.line, "a parameter is named twice")
        return tuple(out)

    def block(self, ts: Tokens, line: int) -> Block:
        ts.next("block")
        name = ts.next("a block name")
        if name.kind != "ident" or name.value == ".":
            raise ts.unexpected(name, "a block name")
        params = self.params(ts, declaring=True)
        context = None if ts.done() else expression(ts)
        ts.expect_end("block clause")
        body, end = self.items(("content", "end"), line)
        content = None
        if end is not None and end.word == "content":
            content, _ = self.items(("end",), line)
        block = Block(name.value, params, context, body, content, self.name, line)
        self.blocks[name.value] = block
        return block

    def yield_(self, ts: Tokens, line: int) -> Yield | YieldContent:
        ts.next("yield")
        if ts.accept("content"):
            context = None if ts.done() else expression(ts)
            ts.expect_end("yield clause")
            return YieldContent(context, line)
        name = ts.next("a block name")
        if name.kind != "ident" or name.value == ".":
            raise ts.unexpected(name, "a block name")
        args = self.params(ts, declaring=False)
        yield_context: Expr | None = None
        if not ts.done() and not ts.at("content"):
            yield_context = expression(ts)
        content = None
        if ts.accept("content"):
            ts.expect_end("yield clause")
            content, _ = self.items(("end",), line)
        else:
            ts.expect_end("yield clause")
        return Yield(name.value, args, yield_context, content, line)

    def try_(self, ts: Tokens, line: int) -> Try:
        ts.next("try")
        ts.expect_end("try")
        body, end = self.items(("catch", "end"), line)
        if end is None or end.word == "end":
            return Try(body, None, None, line)
        err_var = None
        if not end.ts.done():
            tok = end.ts.next("a variable name")
            if tok.kind != "ident" or tok.value == ".":
                raise end.ts.unexpected(tok, "a variable name")
            err_var = tok.value
            end.ts.expect_end("catch")
        catch, _ = self.items(("end",), line)
        return Try(body, err_var, catch, line)


@functools.lru_cache(maxsize=512)
def parse_template(source: str, name: str, left: str = "{{", right: str = "}}") -> Template:
    """The parsed template (cached by content, name and delimiters); raises JetSyntaxError."""
    return _Parser(lex(source, name=name, left=left, right=right), name).template()
