"""Wippy type expressions: a recursive-descent parser over lexer tokens.

The grammar is Luau's type grammar plus Wippy's field validators::

    type     := ['|'] inter {'|' inter}
    inter    := ['&'] postfix {'&' postfix}
    postfix  := primary {'?' | '@' name ['(' literal {',' literal} ')']}
    primary  := name {'.' name} ['<' types '>'] | 'nil' | 'true' | 'false' | string | 'function'
              | 'typeof' '(' ... ')' | '{' table '}' | '(' params ')' ['->' type]
              | '<' generics '>' '(' params ')' '->' type | '...' [type]

Annotations only need their extent (they are erased); ``type`` declarations keep the tree, which
``_dialect_ast.emit`` turns into Lua.
"""

from __future__ import annotations

from ._dialect_ast import (
    Array,
    Checked,
    Field,
    Func,
    Inter,
    Lit,
    Map,
    Opt,
    Prim,
    Record,
    Ref,
    Tuple,
    TypeNode,
    Union,
    Variadic,
)
from ._dialect_lex import EOF, KEYWORD, NAME, NUMBER, OP, STRING, DialectSyntax, Token

#: names that are primitive types (``nil`` and ``function`` are keywords, handled apart)
BUILTINS = frozenset(
    ["string", "number", "integer", "boolean", "any", "unknown", "never", "table", "thread", "userdata", "buffer"]
)
#: validator name -> the shape of its arguments
VALIDATORS = {
    "min": "number",
    "max": "number",
    "min_len": "count",
    "max_len": "count",
    "len": "count",
    "pattern": "string",
    "one_of": "literals",
}


def near(tok: Token) -> str:
    """How an error message names a token."""
    return "end of file" if tok.kind == EOF else repr(tok.text[:30])


class Cursor:
    """A position in the token list, shared by the statement scanner and the type parser."""

    __slots__ = ("i", "toks", "undo")

    def __init__(self, toks: list[Token]) -> None:
        self.toks = toks
        self.i = 0
        # tokens split in place by close_angle (``>=`` -> ``=``), restored on backtracking
        self.undo: list[tuple[int, Token]] = []

    def peek(self, k: int = 0) -> Token:
        j = self.i + k
        toks = self.toks
        return toks[j] if j < len(toks) else toks[-1]

    def at(self, text: str) -> bool:
        return self.toks[self.i].text == text and self.toks[self.i].kind != STRING

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> Token:
        tok = self.toks[self.i]
        if tok.text != text or tok.kind == STRING:
            raise DialectSyntax(tok.start, f"'{text}' expected near {near(tok)}")
        self.i += 1
        return tok

    def close_angle(self) -> None:
        """Consume a ``>``, splitting ``>=`` so ``Box<T>= x`` reads as ``Box<T> = x``."""
        tok = self.toks[self.i]
        if tok.text == ">":
            self.i += 1
        elif tok.text == ">=":
            self.undo.append((self.i, tok))
            self.toks[self.i] = Token(OP, "=", tok.start + 1, tok.end)
        else:
            raise DialectSyntax(tok.start, f"'>' expected near {near(tok)}")

    def rewind(self, i: int, undo_len: int) -> None:
        while len(self.undo) > undo_len:
            j, tok = self.undo.pop()
            self.toks[j] = tok
        self.i = i


def starts_type(tok: Token) -> bool:
    if tok.kind in (NAME, STRING):
        return True
    return tok.kind != EOF and tok.text in ("{", "(", "<", "nil", "true", "false", "function", "...")


def _is_field_name(tok: Token) -> bool:
    return tok.kind in (NAME, KEYWORD)


class TypeParser:
    """Parses one type expression at the cursor; leaves the cursor just past it."""

    __slots__ = ("cur",)

    def __init__(self, cur: Cursor) -> None:
        self.cur = cur

    # -- entry points -------------------------------------------------------------------------
    def type(self) -> TypeNode:
        cur = self.cur
        cur.accept("|")
        parts = [self._inter()]
        while cur.accept("|"):
            parts.append(self._inter())
        return parts[0] if len(parts) == 1 else Union(tuple(parts))

    def return_list(self) -> None:
        """``T``, ``(T, U)`` or Wippy's bare ``T, U`` after a function's parameter list."""
        self.type()
        while self.cur.accept(","):
            self.type()

    def generic_params(self) -> list[str]:
        """``<T, U...>`` with optional ``: constraint`` and ``= default``; returns the names."""
        cur = self.cur
        cur.expect("<")
        names: list[str] = []
        while True:
            tok = cur.peek()
            if tok.kind != NAME:
                raise DialectSyntax(tok.start, f"type parameter name expected near {near(tok)}")
            cur.i += 1
            names.append(tok.text)
            cur.accept("...")
            if cur.accept(":"):
                self.type()
            if cur.accept("="):
                self.type()
            if not cur.accept(","):
                break
        cur.close_angle()
        return names

    # -- grammar ------------------------------------------------------------------------------
    def _inter(self) -> TypeNode:
        cur = self.cur
        cur.accept("&")
        parts = [self._postfix()]
        while cur.accept("&"):
            parts.append(self._postfix())
        return parts[0] if len(parts) == 1 else Inter(tuple(parts))

    def _postfix(self) -> TypeNode:
        cur = self.cur
        t = self._primary()
        while True:
            if cur.accept("?"):
                t = Opt(t)
            elif cur.at("@"):
                t = Checked(t, self._validators())
            else:
                return t

    def _primary(self) -> TypeNode:
        cur = self.cur
        tok = cur.peek()
        text = tok.text
        if tok.kind == STRING:
            cur.i += 1
            return Lit(text)
        if tok.kind == NAME:
            return self._named()
        if tok.kind == KEYWORD:
            if text in ("nil", "function"):
                cur.i += 1
                return Prim(text)
            if text in ("true", "false"):
                cur.i += 1
                return Lit(text)
        elif tok.kind == OP:
            if text == "{":
                return self._table()
            if text == "(":
                return self._paren()
            if text == "<":
                self.generic_params()
                if not cur.at("("):
                    raise DialectSyntax(cur.peek().start, f"'(' expected near {near(cur.peek())}")
                fn = self._paren()
                if not isinstance(fn, Func):
                    raise DialectSyntax(tok.start, "a generic parameter list must start a function type")
                return fn
            if text == "...":
                cur.i += 1
                inner = self._postfix() if starts_type(cur.peek()) else Prim("any")
                return Variadic(inner, tok.start)
        raise DialectSyntax(tok.start, f"type expected near {near(tok)}")

    def _named(self) -> TypeNode:
        cur = self.cur
        tok = cur.peek()
        cur.i += 1
        if tok.text == "typeof" and cur.at("("):
            self._skip_balanced()
            return Prim("any")
        name = tok.text
        while cur.at(".") and cur.peek(1).kind == NAME:
            name += "." + cur.peek(1).text
            cur.i += 2
        if cur.at("<") and name not in BUILTINS:
            self._try_type_args()
        return Prim(name) if name in BUILTINS else Ref(name)

    def _try_type_args(self) -> None:
        """``Name<A, B>``; on failure the ``<`` is left alone (``x :: T < y`` is a comparison)."""
        cur = self.cur
        save, undo_len = cur.i, len(cur.undo)
        try:
            cur.expect("<")
            while True:
                self.type()
                if not cur.accept(","):
                    break
            cur.close_angle()
        except DialectSyntax:
            cur.rewind(save, undo_len)

    def _skip_balanced(self) -> None:
        cur = self.cur
        opening = cur.peek()
        depth = 0
        while True:
            tok = cur.peek()
            if tok.kind == EOF:
                raise DialectSyntax(opening.start, f"unclosed {opening.text!r}")
            cur.i += 1
            if tok.kind == OP:
                if tok.text in ("(", "[", "{"):
                    depth += 1
                elif tok.text in (")", "]", "}"):
                    depth -= 1
                    if depth == 0:
                        return

    def _table(self) -> TypeNode:
        cur = self.cur
        cur.expect("{")
        if cur.accept("}"):
            return Record((), None)
        tok, nxt = cur.peek(), cur.peek(1)
        is_field = _is_field_name(tok) and (nxt.text == ":" or (nxt.text == "?" and cur.peek(2).text == ":"))
        is_modified = tok.text in ("read", "write") and _is_field_name(nxt) and cur.peek(2).text in (":", "?")
        if tok.text == "[" or is_field or is_modified:
            return self._record()
        elem = self.type()
        if cur.accept(",") or cur.accept(";"):
            pass
        cur.expect("}")
        return Array(elem)

    def _record(self) -> TypeNode:
        cur = self.cur
        fields: list[Field] = []
        indexer: tuple[TypeNode, TypeNode] | None = None
        while not cur.at("}"):
            if cur.accept("["):
                tok = cur.peek()
                if tok.kind == STRING and cur.peek(1).text == "]":
                    cur.i += 2
                    optional = cur.accept("?")
                    cur.expect(":")
                    fields.append(Field(tok.text, self.type(), optional))
                else:
                    key = self.type()
                    cur.expect("]")
                    cur.expect(":")
                    indexer = (key, self.type())
            else:
                if cur.peek().text in ("read", "write") and _is_field_name(cur.peek(1)):
                    cur.i += 1
                tok = cur.peek()
                if not _is_field_name(tok):
                    raise DialectSyntax(tok.start, f"field name expected near {near(tok)}")
                cur.i += 1
                optional = cur.accept("?")
                cur.expect(":")
                fields.append(Field(f'"{tok.text}"', self.type(), optional))
            if not (cur.accept(",") or cur.accept(";")):
                break
        cur.expect("}")
        if not fields and indexer is not None:
            return Map(*indexer)
        return Record(tuple(fields), indexer)

    def _paren(self) -> TypeNode:
        cur = self.cur
        opening = cur.expect("(")
        items: list[TypeNode] = []
        plain_group = True
        while not cur.at(")"):
            if cur.peek().kind == NAME and cur.peek(1).text == ":":
                cur.i += 2
                plain_group = False
            if cur.at("..."):
                dots = cur.peek()
                cur.i += 1
                if cur.accept(":") or starts_type(cur.peek()):
                    items.append(Variadic(self.type(), dots.start))
                else:
                    items.append(Variadic(Prim("any"), dots.start))
                plain_group = False
            else:
                items.append(self.type())
            if not cur.accept(","):
                break
        cur.expect(")")
        if cur.accept("->"):
            self.type()
            return Func()
        if plain_group and len(items) == 1:
            return items[0]
        return Tuple(tuple(items), opening.start)

    def _validators(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        cur = self.cur
        rules: list[tuple[str, tuple[str, ...]]] = []
        while cur.at("@"):
            at = cur.peek()
            cur.i += 1
            tok = cur.peek()
            if not _is_field_name(tok):
                raise DialectSyntax(tok.start, f"validator name expected after '@' near {near(tok)}")
            cur.i += 1
            args: list[Token] = []
            if cur.accept("("):
                while not cur.at(")"):
                    args.append(self._literal_arg())
                    if not cur.accept(","):
                        break
                cur.expect(")")
            rules.append((tok.text, _check_validator(at.start, tok.text, args)))
        return tuple(rules)

    def _literal_arg(self) -> Token:
        cur = self.cur
        tok = cur.peek()
        if tok.text == "-" and tok.kind == OP and cur.peek(1).kind == NUMBER:
            num = cur.peek(1)
            cur.i += 2
            return Token(NUMBER, "-" + num.text, tok.start, num.end)
        if tok.kind in (NUMBER, STRING) or tok.text in ("true", "false", "nil"):
            cur.i += 1
            return tok
        raise DialectSyntax(tok.start, f"validator arguments must be literals, not {near(tok)}")


def _check_validator(pos: int, name: str, args: list[Token]) -> tuple[str, ...]:
    shape = VALIDATORS.get(name)
    if shape is None:
        known = ", ".join(f"@{v}" for v in VALIDATORS)
        raise DialectSyntax(pos, f"unknown validator @{name} (known: {known})")
    kinds = [a.kind for a in args]
    ok = {
        "number": kinds == [NUMBER],
        "count": kinds == [NUMBER] and not args[0].text.startswith("-"),
        "string": kinds == [STRING],
        "literals": len(args) >= 1,
    }[shape]
    if not ok:
        wants = {
            "number": "one number",
            "count": "one non-negative number",
            "string": "one string (a Lua pattern)",
            "literals": "at least one literal",
        }[shape]
        raise DialectSyntax(pos, f"@{name} takes {wants}")
    return tuple(a.text for a in args)
