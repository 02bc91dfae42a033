"""Compile a parsed expr-lang tree into nested Python closures.

Every node becomes ``fn(env, loc) -> value``: ``env`` is the caller's mapping, ``loc`` a list of
slots for ``let`` variables and predicate pointers (``#``, ``#index``, ``#acc``), numbered at
compile time so a lookup is one list index. Nodes that can fail keep their Where and turn a
helper's OpError into an ExprEvalError that quotes them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lark import Token, Tree

from . import _expr_literals as lit
from . import _expr_values as val
from ._expr_calls import CallCompiler, Env, Fn, Loc, Node, Scope
from ._expr_errors import OpError, Where
from ._expr_grammar import RESERVED

_RELATIONAL = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": val.add, "-": val.sub, "*": val.mul, "/": val.div, "%": val.mod,
    "**": val.power, "^": val.power, "..": val.make_range,
}  # fmt: skip
_FAST_INT: dict[str, Callable[[Any, Any], Any]] = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_LITERALS: dict[str, Callable[[str], Any]] = {
    "NUMBER": lit.number, "STRING": lit.string, "RAW_STRING": lit.raw_string,
    "TRUE": lambda _: True, "FALSE": lambda _: False, "NIL": lambda _: None,
}  # fmt: skip


class Compiler(CallCompiler):
    """One compilation: the source (for error snippets) and the slot counter."""

    def __init__(self, source: str, root: Node) -> None:
        self.source = source
        self.root = root
        self.nslots = 0
        self.consts: dict[Fn, Any] = {}
        self.arrays: dict[Fn, list[Any]] = {}

    # -- helpers -------------------------------------------------------------------------------

    def slot(self) -> int:
        self.nslots += 1
        return self.nslots - 1

    def where(self, node: Node | Token) -> Where:
        return Where(self.source, self.root, node)

    def const(self, value: Any) -> Fn:
        def fn(env: Env, loc: Loc) -> Any:
            return value

        self.consts[fn] = value
        return fn

    def compile(self, node: Node | Token, scope: Scope) -> Fn:
        if isinstance(node, Token):
            return self.token(node, scope)
        handler: Callable[[Node, Scope], Fn] = getattr(self, "_n_" + str(node.data))
        return handler(node, scope)

    def token(self, token: Token, scope: Scope) -> Fn:
        """A leaf: a literal, a variable or a predicate pointer."""
        kind = token.type
        if kind == "NAME":
            return self.variable(self.name(token), scope)
        if kind == "POINTER":
            return self.pointer(token, scope)
        if kind in _LITERALS:
            return self.const(self.literal(token, _LITERALS[kind]))
        raise self.where(token).syntax(f"unexpected {token.value!r}")  # pragma: no cover - grammar

    def literal(self, token: Token, decode: Callable[[str], Any]) -> Any:
        try:
            return decode(str(token))
        except OpError as exc:
            raise self.where(token).syntax(exc.reason) from None

    # -- names --------------------------------------------------------------------------------

    def name(self, token: Node | Token) -> str:
        assert isinstance(token, Token)
        if token in RESERVED:
            raise self.where(token).syntax(f"unexpected {token.value!r}")
        return str(token)

    def variable(self, name: str, scope: Scope) -> Fn:
        slot = scope.lets.get(name)
        if slot is not None:
            return lambda env, loc: loc[slot]
        if name == "$env":
            return lambda env, loc: env
        return lambda env, loc: env.get(name)

    def pointer(self, token: Token, scope: Scope) -> Fn:
        name = token[1:]
        slots = {"": scope.item, "index": scope.index, "acc": scope.acc}
        if scope.item is None:
            raise self.where(token).syntax(f"{token} can only be used inside a predicate (all, filter, map, ...)")
        slot = slots.get(name)
        if slot is None:
            raise self.where(token).syntax(f"unknown pointer {token}")
        return lambda env, loc: loc[slot]

    def _n_implicit_member(self, node: Node, scope: Scope) -> Fn:
        if scope.item is None:
            raise self.where(node).syntax("a leading '.' can only be used inside a predicate (all, filter, ...)")
        item, key, where = scope.item, str(node.children[0]), self.where(node)

        def fn(env: Env, loc: Loc) -> Any:
            v = loc[item]
            if type(v) is dict:
                return v.get(key)
            try:
                return val.fetch(v, key)
            except OpError as exc:
                raise where.fail(exc.reason) from None

        return fn

    # -- structure ----------------------------------------------------------------------------

    def _n_paren(self, node: Node, scope: Scope) -> Fn:
        return self.compile(node.children[0], scope)

    def _n_block(self, node: Node, scope: Scope) -> Fn:
        raise self.where(node).syntax(
            "a { ... } block is only allowed as a predicate argument (all, filter, map, ...); "
            "a map needs key: value pairs"
        )

    def _n_seq(self, node: Node, scope: Scope) -> Fn:
        first, rest = (self.compile(c, scope) for c in node.children)

        def fn(env: Env, loc: Loc) -> Any:
            first(env, loc)
            return rest(env, loc)

        return fn

    def _n_let(self, node: Node, scope: Scope) -> Fn:
        head, body_node = node.children
        assert isinstance(head, Tree)
        name = self.name(head.children[0])
        value = self.compile(head.children[1], scope)
        slot = self.slot()
        body = self.compile(body_node, replace(scope, lets={**scope.lets, name: slot}))

        def fn(env: Env, loc: Loc) -> Any:
            loc[slot] = value(env, loc)
            return body(env, loc)

        return fn

    def _n_cond(self, node: Node, scope: Scope) -> Fn:
        test, yes, no = (self.compile(c, scope) for c in node.children)
        where = self.where(node.children[0])

        def fn(env: Env, loc: Loc) -> Any:
            t = test(env, loc)
            if t is True:
                return yes(env, loc)
            if t is False:
                return no(env, loc)
            raise where.fail(f"condition must be bool, got {val.kind(t)}")

        return fn

    _n_if_expr = _n_cond

    def _n_elvis(self, node: Node, scope: Scope) -> Fn:
        test, no = (self.compile(c, scope) for c in node.children)
        where = self.where(node.children[0])

        def fn(env: Env, loc: Loc) -> Any:
            t = test(env, loc)
            if t is True:
                return True
            if t is False:
                return no(env, loc)
            raise where.fail(f"condition must be bool, got {val.kind(t)}")

        return fn

    def _n_array(self, node: Node, scope: Scope) -> Fn:
        args = node.children[0]
        items = [self.compile(c, scope) for c in args.children] if isinstance(args, Tree) else []
        fn: Fn = lambda env, loc: [f(env, loc) for f in items]  # noqa: E731
        if all(f in self.consts for f in items):
            self.arrays[fn] = [self.consts[f] for f in items]
        return fn

    def _n_map(self, node: Node, scope: Scope) -> Fn:
        pairs = node.children[0]
        compiled: list[tuple[Fn, Fn]] = []
        for pair in pairs.children if isinstance(pairs, Tree) else []:
            assert isinstance(pair, Tree)
            key, value = pair.children
            if isinstance(key, Tree):
                key_fn = self.compile(key, scope)
            elif key.type == "STRING":
                key_fn = self.const(self.literal(key, lit.string))
            elif key.type == "RAW_STRING":
                key_fn = self.const(self.literal(key, lit.raw_string))
            else:
                key_fn = self.const(str(key))
            compiled.append((key_fn, self.compile(value, scope)))
        where = self.where(node)

        def fn(env: Env, loc: Loc) -> Any:
            try:
                return {k(env, loc): v(env, loc) for k, v in compiled}
            except TypeError:
                raise where.fail("map keys must be strings, numbers, bools or nil") from None

        return fn

    # -- operators ----------------------------------------------------------------------------

    def _n_unary(self, node: Node, scope: Scope) -> Fn:
        op_token, operand = node.children
        arg, op, where = self.compile(operand, scope), str(op_token), self.where(node)
        if op == "-" and val.is_number(self.consts.get(arg)):
            return self.const(-self.consts[arg])
        if op in ("!", "not"):

            def fn(env: Env, loc: Loc) -> Any:
                v = arg(env, loc)
                if v is True or v is False:
                    return not v
                raise where.fail(f"invalid operation: {op} {val.kind(v)} (needs a bool)")

            return fn
        helper = val.negate if op == "-" else val.plus

        def num(env: Env, loc: Loc) -> Any:
            try:
                return helper(arg(env, loc))
            except OpError as exc:
                raise where.fail(exc.reason) from None

        return num

    def _n_binop(self, node: Node, scope: Scope) -> Fn:
        left_node, op_token, right_node = node.children
        assert isinstance(op_token, Token)
        op = " ".join(op_token.split())
        if op != "??" and _is_coalesce(left_node):
            raise self.where(op_token).syntax(
                f"operator ({op}) and coalesce expressions (??) cannot be mixed; wrap either in parentheses"
            )
        if op in _RELATIONAL:
            return self.relational(node, scope)
        left, right, where = self.compile(left_node, scope), self.compile(right_node, scope), self.where(node)
        if op in ("||", "or", "&&", "and"):
            return _logic(left, right, op in ("||", "or"), where)
        if op == "??":
            return lambda env, loc: right(env, loc) if (v := left(env, loc)) is None else v
        if op in ("==", "!="):
            return self.equality(left, right, negate=op == "!=")
        negate = op.startswith("not ")
        word = op.removeprefix("not ")
        if word == "in":
            test = self.membership(left, right, where)
        elif word in ("matches", "contains", "startsWith", "endsWith"):
            test = self.string_test(word, left, right, right_node, where)
        else:
            return _arith(op, left, right, where)
        return (lambda env, loc: not test(env, loc)) if negate else test

    def relational(self, node: Node, scope: Scope) -> Fn:
        """``a < b``, and chains ``a < b <= c`` meaning ``a < b && b <= c`` as in expr."""
        operands: list[Node | Token] = []
        ops: list[str] = []
        cur: Node | Token = node
        while isinstance(cur, Tree) and cur.data == "binop" and str(cur.children[1]) in _RELATIONAL:
            operands.append(cur.children[2])
            ops.append(str(cur.children[1]))
            cur = cur.children[0]
        if _is_coalesce(cur):
            raise self.where(node).syntax(
                f"operator ({ops[-1]}) and coalesce expressions (??) cannot be mixed; wrap either in parentheses"
            )
        operands.append(cur)
        fns = [self.compile(n, scope) for n in reversed(operands)]
        steps = [(_RELATIONAL[o], o) for o in reversed(ops)]
        where = self.where(node)

        def fn(env: Env, loc: Loc) -> Any:
            a = fns[0](env, loc)
            for (cmp, op), nxt in zip(steps, fns[1:], strict=True):
                b = nxt(env, loc)
                ta, tb = type(a), type(b)
                if ((ta is int or ta is float) and (tb is int or tb is float)) or (ta is str and tb is str):
                    ok = cmp(a, b)
                else:
                    try:
                        ok = val.compare(op, a, b)
                    except OpError as exc:
                        raise where.fail(exc.reason) from None
                if not ok:
                    return False
                a = b
            return True

        return fn

    def equality(self, left: Fn, right: Fn, *, negate: bool) -> Fn:
        const_side = right if right in self.consts else left if left in self.consts else None
        if const_side is not None:
            other = left if const_side is right else right
            c = self.consts[const_side]
            if isinstance(c, str) and negate:
                return lambda env, loc: other(env, loc) != c
            if isinstance(c, str):
                return lambda env, loc: other(env, loc) == c
            if (c is None or isinstance(c, bool)) and negate:
                return lambda env, loc: other(env, loc) is not c
            if c is None or isinstance(c, bool):
                return lambda env, loc: other(env, loc) is c
        if negate:
            return lambda env, loc: not val.equal(left(env, loc), right(env, loc))
        return lambda env, loc: val.equal(left(env, loc), right(env, loc))

    def membership(self, left: Fn, right: Fn, where: Where) -> Fn:
        consts = self.arrays.get(right)
        if consts is not None and consts and all(type(c) is str for c in consts):
            strings = frozenset(consts)

            def fast(env: Env, loc: Loc) -> Any:
                v = left(env, loc)
                return v in strings if type(v) is str else val.member_in(v, consts)

            return fast

        def fn(env: Env, loc: Loc) -> Any:
            try:
                return val.member_in(left(env, loc), right(env, loc))
            except OpError as exc:
                raise where.fail(exc.reason) from None

        return fn

    def string_test(self, word: str, left: Fn, right: Fn, right_node: Node | Token, where: Where) -> Fn:
        c = self.consts.get(right)
        if isinstance(c, str):
            if word == "matches":
                try:
                    search = val.regex(c).search
                except OpError as exc:
                    raise self.where(right_node).syntax(exc.reason) from None
                method: Callable[[str], Any] = lambda s: search(s) is not None  # noqa: E731
            else:
                method = {"contains": lambda s: c in s, "startsWith": lambda s: s.startswith(c)}.get(
                    word, lambda s: s.endswith(c)
                )

            def fast(env: Env, loc: Loc) -> Any:
                v = left(env, loc)
                if type(v) is str:
                    return method(v)
                try:
                    return val.string_test(word, v, c)
                except OpError as exc:
                    raise where.fail(exc.reason) from None

            return fast

        def fn(env: Env, loc: Loc) -> Any:
            try:
                return val.string_test(word, left(env, loc), right(env, loc))
            except OpError as exc:
                raise where.fail(exc.reason) from None

        return fn


def _is_coalesce(node: Node | Token) -> bool:
    return isinstance(node, Tree) and node.data == "binop" and str(node.children[1]) == "??"


def _logic(left: Fn, right: Fn, is_or: bool, where: Where) -> Fn:
    """``||``/``&&``: both sides must be bool; the right one is skipped when the left decides."""
    op = "||" if is_or else "&&"

    def fn(env: Env, loc: Loc) -> Any:
        a = left(env, loc)
        if a is not True and a is not False:
            raise where.fail(f"invalid operation: {val.kind(a)} {op} ... (operands must be bool)")
        if a is is_or:
            return a
        b = right(env, loc)
        if b is True or b is False:
            return b
        raise where.fail(f"invalid operation: ... {op} {val.kind(b)} (operands must be bool)")

    return fn


def _arith(op: str, left: Fn, right: Fn, where: Where) -> Fn:
    helper = _ARITH[op]
    fast = _FAST_INT.get(op)

    def fn(env: Env, loc: Loc) -> Any:
        a, b = left(env, loc), right(env, loc)
        if fast is not None and type(a) is int and type(b) is int:
            return fast(a, b)
        try:
            return helper(a, b)
        except OpError as exc:
            raise where.fail(exc.reason) from None

    return fn
