"""The statement-level pass: finds every dialect construct in the token stream.

Lua leaves little doubt about where an annotation can stand: after a name in ``local`` and
``for``, after a parameter, after a function's parameter list, after ``::`` / ``as`` in an
expression, and in ``type`` declarations. The scanner walks the tokens once, hands each of those
spots to the type parser, and records edits by source offset:

- ``erase``: dialect-only text, blanked in the output (columns stay where they were);
- ``mask``: same-length rewrites applied only to the copy given to tree-sitter-luau, for plain
  Lua 5.4 that Luau does not parse (``goto``, labels, bitwise operators, ``export`` as a name);
- ``decls``: ``type`` declarations, emitted later as runtime type values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._dialect_ast import TypeNode
from ._dialect_lex import EOF, KEYWORD, NAME, NUMBER, OP, STRING, DialectSyntax, Token
from ._dialect_types import Cursor, TypeParser, near, starts_type

# Luau treats these names as (contextual) keywords; tree-sitter sees a same-length stand-in.
_RENAMES = {"continue": "_ontinue", "export": "_xport", "type": "_ype"}
_EXPR_END_WORDS = frozenset({")", "]", "}", "nil", "true", "false", "...", "end"})
_STATEMENT_AFTER = _EXPR_END_WORDS | {"do", "then", "else", "repeat", ";", "break", "::"}
# tokens after which an expression, not a statement, must follow
_EXPR_BEFORE = frozenset(
    {"=", "(", "[", "{", ",", "return", "and", "or", "not", "in", "+", "-", "*", "/", "//", "%", "^", ".."}
    | {"==", "~=", "<", "<=", ">", ">=", "&", "|", "~", "#"}
)
# keywords that cannot start an expression, and tokens that must be followed by one; tree-sitter
# recovers from `x = 1 + local y` and `local local` without an ERROR node, so the scanner checks
# (`if` is left to the if-expression check, which says more)
_NOT_EXPR = frozenset(
    {"and", "break", "do", "else", "elseif", "end", "for", "goto", "in", "local", "or", "repeat", "return", "then"}
    | {"until", "while"}
)
_WANTS_EXPR = frozenset(
    {"=", ",", "(", "[", "+", "-", "*", "/", "//", "%", "^", "..", "==", "~=", "<", "<=", ">", ">=", "&", "|", "~", "#"}
)
_COMPOUND = frozenset({"+", "-", "*", "/", "%", "^", "..", "//"})


def _ends_expr(tok: Token | None) -> bool:
    if tok is None:
        return False
    return tok.kind in (NAME, NUMBER, STRING) or (tok.text in _EXPR_END_WORDS and tok.kind != EOF)


@dataclass(frozen=True, slots=True)
class Decl:
    start: int
    end: int
    name: str
    params: frozenset[str]
    type: TypeNode
    top_level: bool  # outside every block and function: hoisted to the chunk's first line


@dataclass(slots=True)
class Scan:
    erase: list[tuple[int, int]] = field(default_factory=list)
    mask: list[tuple[int, int, str]] = field(default_factory=list)
    decls: list[Decl] = field(default_factory=list)


class Scanner:
    __slots__ = ("after_annotation", "cur", "depth", "out", "pending_do", "prev_end", "toks", "types")

    def __init__(self, toks: list[Token]) -> None:
        self.toks = toks
        self.cur = Cursor(toks)
        self.types = TypeParser(self.cur)
        self.out = Scan()
        # whether the code just before the cursor ends an expression (a value, ``)``, a cast...)
        self.prev_end = False
        # token index just past the last erased annotation (a statement may start there)
        self.after_annotation = -1
        # block nesting, to tell top-level declarations; while/for blocks own their next 'do'
        self.depth = 0
        self.pending_do = 0

    def run(self) -> Scan:
        cur = self.cur
        toks = self.toks
        while toks[cur.i].kind != EOF:
            tok = toks[cur.i]
            handler = _HANDLERS.get(tok.text) if tok.kind != STRING else None
            if handler is None or not handler(self, tok):
                if tok.kind == NAME and tok.text in _RENAMES:
                    self._rename(tok)
                elif tok.kind == KEYWORD:
                    self._block(tok.text)
                elif tok.kind == OP and tok.text in _WANTS_EXPR:
                    self._operand(cur.i + 1)
                cur.i += 1
                self.prev_end = _ends_expr(tok)
        return self.out

    # -- helpers -----------------------------------------------------------------------------
    def _operand(self, i: int) -> None:
        tok = self.toks[i]
        if tok.kind == KEYWORD and tok.text in _NOT_EXPR:
            raise DialectSyntax(tok.start, f"unexpected {tok.text!r}")

    def _block(self, word: str) -> None:
        if word in ("if", "repeat"):
            self.depth += 1
        elif word == "while":
            self.depth += 1
            self.pending_do += 1
        elif word == "do":
            if self.pending_do:
                self.pending_do -= 1
            else:
                self.depth += 1
        elif word in ("end", "until"):
            self.depth -= 1

    def _rename(self, tok: Token) -> None:
        self.out.mask.append((tok.start, tok.end, _RENAMES[tok.text]))

    def _name(self) -> bool:
        """Consume a code name (a local, parameter, loop variable or function name part)."""
        tok = self.cur.peek()
        if tok.kind != NAME:
            return False
        if tok.text in _RENAMES:
            self._rename(tok)
        self.cur.i += 1
        self.prev_end = True
        return True

    def _annotation(self, *, returns: bool = False) -> None:
        """At ``:`` (or ``::`` / ``as``): parse the type after it and erase both."""
        cur = self.cur
        start = cur.peek().start
        cur.i += 1
        if returns:
            self.types.return_list()
        else:
            self.types.type()
        self.out.erase.append((start, self.toks[cur.i - 1].end))
        self.prev_end = True
        self.after_annotation = cur.i

    def _optional_annotation(self) -> None:
        if self.cur.at(":"):
            self._annotation()

    def _attrib(self) -> None:
        """Lua 5.4 ``<const>`` / ``<close>``: kept in the output, hidden from tree-sitter."""
        cur = self.cur
        if cur.at("<") and cur.peek(1).kind == NAME and cur.peek(2).text == ">":
            self.out.mask.append((cur.peek().start, cur.peek(2).end, " " * (cur.peek(2).end - cur.peek().start)))
            cur.i += 3

    # -- handlers: return False to let the main loop treat the token as plain code -------------
    def _local(self, _tok: Token) -> bool:
        cur = self.cur
        cur.i += 1
        self.prev_end = False
        if cur.at("function"):
            return True
        if cur.peek().kind != NAME:
            raise DialectSyntax(cur.peek().start, f"name expected after 'local' near {near(cur.peek())}")
        while self._name():
            self._attrib()
            self._optional_annotation()
            self._attrib()
            if not cur.accept(","):
                break
            self.prev_end = False
        return True

    def _for(self, _tok: Token) -> bool:
        cur = self.cur
        cur.i += 1
        self._block("while")
        while self._name():
            self._optional_annotation()
            if not cur.accept(","):
                break
        self.prev_end = False
        return True

    def _function(self, _tok: Token) -> bool:
        cur = self.cur
        cur.i += 1
        self.depth += 1
        if self._name():
            while cur.peek().text in (".", ":") and cur.peek().kind == OP and cur.peek(1).kind == NAME:
                cur.i += 1
                self._name()
        if cur.at("<"):
            start = cur.peek().start
            self.types.generic_params()
            self.out.erase.append((start, self.toks[cur.i - 1].end))
        self.prev_end = False
        if not cur.accept("("):
            return True
        while self._name() or cur.accept("..."):
            self._optional_annotation()
            if not cur.accept(","):
                break
        if not cur.accept(")"):
            return True
        if cur.at(":"):
            self._annotation(returns=True)
        self.prev_end = False
        return True

    def _double_colon(self, tok: Token) -> bool:
        cur = self.cur
        name, close = cur.peek(1), cur.peek(2)
        if name.kind == NAME and close.text == "::":  # a label
            self.out.mask.append((tok.start, close.end, " " * (close.end - tok.start)))
            cur.i += 3
            self.prev_end = False
            return True
        self._annotation()
        return True

    def _as(self, _tok: Token) -> bool:
        if not (self.prev_end and starts_type(self.cur.peek(1)) and self.cur.peek(1).text != "..."):
            return False
        self._annotation()
        return True

    def _type(self, tok: Token) -> bool:
        cur = self.cur
        prev = self.toks[cur.i - 1] if cur.i > 0 else None
        if prev is not None and not (
            self.prev_end or prev.text in _STATEMENT_AFTER or cur.i == self.after_annotation
        ):
            return False
        j = 1
        if tok.text == "export":
            if cur.peek(1).text != "type" or cur.peek(1).kind != NAME:
                return False
            j = 2
        name = cur.peek(j)
        if name.kind != NAME or cur.peek(j + 1).text not in ("=", "<"):
            return False
        cur.i += j + 1
        params = frozenset(self.types.generic_params()) if cur.at("<") else frozenset()
        cur.expect("=")
        node = self.types.type()
        end = self.toks[cur.i - 1].end
        self.out.decls.append(Decl(tok.start, end, name.text, params, node, self.depth == 0))
        self.prev_end = True
        return True

    def _goto(self, tok: Token) -> bool:
        label = self.cur.peek(1)
        if label.kind != NAME:
            return False
        self.out.mask.append((tok.start, label.end, " " * (label.end - tok.start)))
        self.cur.i += 2
        self.prev_end = False
        return True

    def _bang(self, tok: Token) -> bool:
        nxt = self.cur.peek(1)
        if nxt.text == "=" and nxt.start == tok.end:
            raise DialectSyntax(tok.start, "'!=' is not Lua; use '~='")
        if not self.prev_end:
            raise DialectSyntax(tok.start, "unexpected '!' (a non-nil assertion follows an expression)")
        self.out.erase.append((tok.start, tok.end))
        self.cur.i += 1
        return True

    def _stray(self, tok: Token) -> bool:
        raise DialectSyntax(tok.start, f"unexpected {tok.text!r} outside a type annotation")

    def _bitwise(self, tok: Token) -> bool:
        """Lua 5.3 bitwise operators, which Luau lacks: tree-sitter sees arithmetic instead."""
        cur = self.cur
        nxt = cur.peek(1)
        if tok.text in ("<", ">"):
            if nxt.text != tok.text or nxt.start != tok.end:
                return False
            self.out.mask.append((tok.start, nxt.end, "* "))
            self._operand(cur.i + 2)
            cur.i += 2
        else:
            unary = tok.text == "~" and not self.prev_end
            self.out.mask.append((tok.start, tok.end, "#" if unary else "+"))
            self._operand(cur.i + 1)
            cur.i += 1
        self.prev_end = False
        return True

    def _if(self, tok: Token) -> bool:
        prev = self.toks[self.cur.i - 1] if self.cur.i > 0 else None
        if prev is not None and prev.kind in (OP, KEYWORD) and prev.text in _EXPR_BEFORE:
            raise DialectSyntax(tok.start, "if-expressions are Luau, not Lua (use 'a and b or c')")
        return False

    def _arith(self, tok: Token) -> bool:
        nxt = self.cur.peek(1)
        if nxt.text == "=" and nxt.kind == OP and nxt.start == tok.end:
            raise DialectSyntax(tok.start, f"compound assignment '{tok.text}=' is Luau, not Lua")
        return False


_HANDLERS = {
    "local": Scanner._local,
    "for": Scanner._for,
    "function": Scanner._function,
    "::": Scanner._double_colon,
    "as": Scanner._as,
    "type": Scanner._type,
    "export": Scanner._type,
    "goto": Scanner._goto,
    "!": Scanner._bang,
    "?": Scanner._stray,
    "@": Scanner._stray,
    "->": Scanner._stray,
    "if": Scanner._if,
    "&": Scanner._bitwise,
    "|": Scanner._bitwise,
    "~": Scanner._bitwise,
    "<": Scanner._bitwise,
    ">": Scanner._bitwise,
    **dict.fromkeys(_COMPOUND, Scanner._arith),
}


def scan(toks: list[Token]) -> Scan:
    """Find the dialect constructs in ``toks`` (which may be split in place, see Cursor)."""
    return Scanner(toks).run()
