"""Compiling member chains (``a.b?.c[0]``), function calls, pipes and predicates.

A chain compiles to one closure that walks its steps; ``?.`` ends the whole chain with nil
when the value before it is nil, as expr-lang's ChainNode does. A call names a builtin, a
predicate builtin (whose closure argument runs once per element with ``#`` bound), or a
function found in a ``let`` variable or the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lark import Token, Tree

from . import _expr_values as val
from ._expr_builtins import FUNCTIONS
from ._expr_errors import ExprEvalError, OpError, Where
from ._expr_predicates import PREDICATES, Call

Env = Mapping[str, Any]
Loc = list[Any]
Fn = Callable[[Env, Loc], Any]
Node = Tree[Token]
Step = Callable[[Any, Env, Loc], Any]

_CHAIN = frozenset({"member", "member_opt", "method", "method_opt", "index", "index_opt", "slice"})


@dataclass(frozen=True, slots=True)
class Scope:
    """What names mean at one point of the tree: let variables and the predicate's pointers."""

    lets: Mapping[str, int] = field(default_factory=dict)
    item: int | None = None
    index: int | None = None
    acc: int | None = None


class CallCompiler:
    """The chain and call half of the Compiler (mixed into it)."""

    consts: dict[Fn, Any]

    def compile(self, node: Node | Token, scope: Scope) -> Fn:
        raise NotImplementedError

    def where(self, node: Node | Token) -> Where:
        raise NotImplementedError

    def slot(self) -> int:
        raise NotImplementedError

    def variable(self, name: str, scope: Scope) -> Fn:
        raise NotImplementedError

    # -- chains -------------------------------------------------------------------------------

    def chain(self, node: Node, scope: Scope) -> Fn:
        links: list[Node] = []
        cur: Node | Token = node
        while isinstance(cur, Tree) and cur.data in _CHAIN:
            links.append(cur)
            cur = cur.children[0]
        base = self.compile(cur, scope)
        links.reverse()
        if all(link.data in ("member", "member_opt") for link in links):
            keys = [(str(link.children[1]), link.data == "member_opt", self.where(link)) for link in links]
            return _member_chain(base, keys)
        steps = [(self.step(link, scope), link.data.endswith("_opt")) for link in links]

        def fn(env: Env, loc: Loc) -> Any:
            v = base(env, loc)
            for step, optional in steps:
                if v is None and optional:
                    return None
                v = step(v, env, loc)
            return v

        return fn

    def step(self, link: Node, scope: Scope) -> Step:
        where, kind = self.where(link), str(link.data)
        if kind in ("member", "member_opt"):
            key = str(link.children[1])
            return lambda v, env, loc: _fetch(v, key, where)
        if kind in ("index", "index_opt"):
            index = self.compile(link.children[-1], scope)
            return lambda v, env, loc: _fetch(v, index(env, loc), where)
        if kind == "slice":
            start, stop = (
                self.compile(c, scope) if c is not None else (lambda env, loc: None) for c in link.children[1:]
            )
            return lambda v, env, loc: _guard(where, val.slice_of, v, start(env, loc), stop(env, loc))
        name, args_node = str(link.children[1]), link.children[2]
        args = [self.compile(c, scope) for c in args_node.children] if isinstance(args_node, Tree) else []

        def method(v: Any, env: Env, loc: Loc) -> Any:
            fn = v.get(name) if isinstance(v, Mapping) else None
            if not callable(fn):
                raise where.fail(f"{name} is not a method of {val.kind(v)}")
            return _call_user(fn, name, [a(env, loc) for a in args], where)

        return method

    _n_member = _n_member_opt = _n_method = _n_method_opt = chain
    _n_index = _n_index_opt = _n_slice = chain

    # -- calls --------------------------------------------------------------------------------

    def _n_call(self, node: Node, scope: Scope) -> Fn:
        name, args_node = node.children
        assert isinstance(name, Token)
        args = list(args_node.children) if isinstance(args_node, Tree) else []
        return self.call(name, args, scope, node, piped=False)

    def _n_piped(self, node: Node, scope: Scope) -> Fn:
        first, name, args_node = node.children
        assert isinstance(name, Token)
        if isinstance(first, Tree) and first.data == "binop" and str(first.children[1]) == "??":
            raise self.where(name).syntax(
                "operator (|) and coalesce expressions (??) cannot be mixed; wrap either in parentheses"
            )
        args = list(args_node.children) if isinstance(args_node, Tree) else []
        return self.call(name, [first, *args], scope, node, piped=True)

    def call(self, name_token: Token, args: list[Node | Token], scope: Scope, node: Node, *, piped: bool) -> Fn:
        name, where = str(name_token), self.where(node)
        if name in PREDICATES:
            return self.predicate_call(name, args, scope, where)
        if name in FUNCTIONS:
            impl, low, high = FUNCTIONS[name]
            _check_arity(name, len(args), low, high, where)
            fns = [self.compile(a, scope) for a in args]
            if len(fns) == 1:
                (only,) = fns
                return lambda env, loc: _guard(where, impl, [only(env, loc)])
            return lambda env, loc: _guard(where, impl, [f(env, loc) for f in fns])
        fns = [self.compile(a, scope) for a in args]
        target = self.variable(name, scope)

        def user(env: Env, loc: Loc) -> Any:
            fn = target(env, loc)
            if not callable(fn):
                raise where.fail(f"unknown function {name}" if fn is None else f"{name} is not a function")
            return _call_user(fn, name, [f(env, loc) for f in fns], where)

        return user

    def predicate_call(self, name: str, args: list[Node | Token], scope: Scope, where: Where) -> Fn:
        impl, low, high = PREDICATES[name]
        _check_arity(name, len(args), low, high, where)
        items = self.compile(args[0], scope)
        inner = Scope(scope.lets, self.slot(), self.slot(), self.slot() if name == "reduce" else None)
        body = self.predicate_body(args[1], inner) if len(args) > 1 else None
        rest = [self.compile(a, scope) for a in args[2:]]
        item, index, acc = inner.item, inner.index, inner.acc
        assert item is not None and index is not None

        def fn(env: Env, loc: Loc) -> Any:
            xs = items(env, loc)
            if not isinstance(xs, list | tuple):
                raise where.fail(f"{name} needs an array, got {val.kind(xs)}")
            call = None if body is None else _binder(body, env, loc, item=item, index=index, acc=acc)
            return _guard(where, impl, xs, call, [r(env, loc) for r in rest])

        return fn

    def predicate_body(self, node: Node | Token, scope: Scope) -> Fn:
        if isinstance(node, Tree) and node.data == "block":
            return self.compile(node.children[0], scope)
        return self.compile(node, scope)


def _binder(body: Fn, env: Env, loc: Loc, *, item: int, index: int, acc: int | None) -> Call:
    """``call(x, i, acc)`` for one run: bind ``#``, ``#index`` (and ``#acc``), then run the body."""

    def call(x: Any, i: int, a: Any) -> Any:
        loc[item] = x
        loc[index] = i
        if acc is not None:
            loc[acc] = a
        return body(env, loc)

    return call


def _check_arity(name: str, got: int, low: int, high: int | None, where: Where) -> None:
    if got < low or (high is not None and got > high):
        want = str(low) if low == high else f"{low} or more" if high is None else f"{low} to {high}"
        raise where.syntax(f"invalid number of arguments for {name} (expected {want}, got {got})")


def _guard(where: Where, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except OpError as exc:
        raise where.fail(exc.reason) from None


def _fetch(v: Any, key: Any, where: Where) -> Any:
    if type(v) is dict:
        try:
            return v.get(key)
        except TypeError:
            pass
    try:
        return val.fetch(v, key)
    except OpError as exc:
        raise where.fail(exc.reason) from None


def _member_chain(base: Fn, keys: list[tuple[str, bool, Where]]) -> Fn:
    if len(keys) == 1 and not keys[0][1]:
        key, _, where = keys[0]

        def one(env: Env, loc: Loc) -> Any:
            v = base(env, loc)
            if type(v) is dict:
                return v.get(key)
            return _fetch(v, key, where)

        return one

    def fn(env: Env, loc: Loc) -> Any:
        v = base(env, loc)
        for key, optional, where in keys:
            if type(v) is dict:
                v = v.get(key)
            elif v is None and optional:
                return None
            else:
                v = _fetch(v, key, where)
        return v

    return fn


def _call_user(fn: Callable[..., Any], name: str, args: list[Any], where: Where) -> Any:
    try:
        return fn(*args)
    except ExprEvalError:
        raise
    except Exception as exc:  # a host function's failure, reported as this call's
        raise where.fail(f"{name} failed: {type(exc).__name__}: {exc}") from exc
