"""Jet templates: rendering a parsed template by walking its statements, with Jet's scoping rules.

Variables live in scopes: the render data's top-level keys form the outermost one; the first
``:=`` in a list of statements opens a scope for the rest of that list; blocks with parameters,
``if x := ...``, ``range`` with ``:=`` and includes open their own. ``.`` is the context: the
render data, a ``range`` element, or what a ``yield`` / ``include`` passes.

Blocks resolve by name through the scopes: a template's own blocks, those of the template it
extends and of those it imports (``JetSet.blocks``), the extending template's definitions winning.
Rendering a template that extends another renders the top of the chain with those blocks. A
block's positional ``yield`` arguments bind its parameters in order (Jet itself binds only named
ones), and a parameter without a value or default is false.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from wippy.core.jet import (
    Action,
    Assign,
    Block,
    Chain,
    Command,
    Expr,
    Field,
    Ident,
    If,
    Include,
    Node,
    Param,
    Range,
    Template,
    Text,
    Try,
    Underscore,
    Yield,
    YieldContent,
)

from ._jet_builtins import Builtin, CaughtError, range_items
from ._jet_eval import NOPIPE, Evaluator, Scope, TemplateSource, describe
from ._jet_values import (
    Hidden,
    JetLimitError,
    JetRenderError,
    JetValueError,
    Rendered,
    html_escape,
    output_text,
    truthy,
    type_name,
)

MAX_DEPTH = 100  # nested yields and includes (a recursive block that never stops)
MAX_ITERATIONS = 10_000_000  # range iterations in one render
MAX_OUTPUT = 64 * 1024 * 1024  # characters one render may write


class Runtime(Evaluator):
    """One render: output, scopes, context and limits."""

    def __init__(self, templates: TemplateSource) -> None:
        super().__init__(templates)
        self.out: list[str] = []
        self.size = 0
        self.content: Callable[[Expr | None], None] | None = None
        self.template = ""
        self.line = 0
        self.depth = 0
        self.iterations = 0

    def render(self, template: Template, data: Any) -> str:
        self.scope = Scope(None, self.set.blocks(template), dict(data) if isinstance(data, dict) else {})
        self.context = data
        self.run_body(template)
        return "".join(self.out)

    # -- statements --------------------------------------------------------------------------
    def run(self, nodes: Iterable[Node]) -> None:
        pushed = False
        for node in nodes:
            if isinstance(node, Text):
                self.write(node.text)
                continue
            self.line = node.line
            try:
                if isinstance(node, Action):
                    if node.assign is not None:
                        if node.assign.let and not pushed:
                            self.push()
                            pushed = True
                        self.assign(node.assign)
                    if node.pipe:
                        self.action(node.pipe)
                elif isinstance(node, If):
                    self.if_(node)
                elif isinstance(node, Range):
                    self.range_(node)
                elif isinstance(node, Yield):
                    block = self.find_block(node.name)
                    if block is None:
                        raise JetValueError(f"unresolved block {node.name!r}")
                    self.call_block(block, node.args, node.context, node.content)
                elif isinstance(node, YieldContent):
                    if self.content is not None:
                        self.content(node.context)
                elif isinstance(node, Block):
                    block = self.find_block(node.name) or node
                    self.call_block(block, (), block.context, block.content)
                elif isinstance(node, Include):
                    self.include(node)
                else:
                    self.try_(node)
            except JetValueError as exc:
                raise self.fail(node.line, str(exc)) from None
        if pushed:
            self.pop()

    def fail(self, line: int, reason: str) -> JetRenderError:
        return JetRenderError(self.template, line, reason)

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT:
            raise JetLimitError(f"template {self.template!r}: output larger than {MAX_OUTPUT} characters")
        self.out.append(text)

    def push(self) -> None:
        self.scope = Scope(self.scope, self.scope.blocks, {})

    def pop(self) -> None:
        assert self.scope.parent is not None
        self.scope = self.scope.parent

    def descend(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise JetLimitError(f"template {self.template!r}, line {self.line}: yields and includes nested more "
                                f"than {MAX_DEPTH} deep (a block or template that calls itself without end?)")

    def assign(self, a: Assign) -> None:
        if a.lookup:
            value = self.eval(a.right[0])
            self.bind(a.let, a.left[0], value)
            self.bind(a.let, a.left[1], value is not None)
            return
        for target, expr in zip(a.left, a.right, strict=True):
            self.bind(a.let, target, self.eval(expr))

    def bind(self, let: bool, target: Expr, value: Any) -> None:
        if isinstance(target, Underscore):
            return
        if isinstance(target, Ident):
            if let:
                self.scope.vars[target.name] = value
                return
            scope: Scope | None = self.scope
            while scope is not None:
                if target.name in scope.vars:
                    scope.vars[target.name] = value
                    return
                scope = scope.parent
            raise JetValueError(f"could not assign {target.name!r} because variable {target.name!r} is uninitialised")
        if isinstance(target, Field):
            base, names = self.context, target.names
        elif isinstance(target, Chain):
            base, names = self.eval(target.base), target.names
        else:
            raise JetValueError(f"cannot assign to {describe(target)}")
        for name in names[:-1]:
            base = self.field(base, name)
        if not isinstance(base, dict):
            raise JetValueError(f"cannot assign to {describe(target)}: not a field of a map")
        base[names[-1]] = value

    def action(self, pipe: tuple[Command, ...]) -> None:
        value, written = self.command(pipe[0], NOPIPE)
        for cmd in pipe[1:]:
            if written:
                raise JetValueError(f"unexpected command {describe(cmd.func)} after a writer (raw, unsafe, safeHtml "
                                    "and safeJs must come last)")
            value, written = self.command(cmd, value)
        if written or value is None or isinstance(value, Hidden):
            return
        self.write(value.text if isinstance(value, Rendered) else html_escape(output_text(value)))

    def command(self, cmd: Command, piped: Any) -> tuple[Any, bool]:
        term = self.eval(cmd.func)
        if piped is NOPIPE and cmd.args is None:
            return term, False
        if not isinstance(term, Builtin):
            if piped is NOPIPE:
                raise JetValueError(f"{describe(cmd.func)} has arguments but is a {type_name(term)}, not a function")
            raise JetValueError(f"pipe command {describe(cmd.func)} must be a function, but is a {type_name(term)}")
        if term.mode == "writer":
            values = ([] if piped is NOPIPE else [piped]) + [self.eval(a) for a in cmd.args or ()]
            for v in values:
                if v is not None:
                    self.write(term.fn(output_text(v)))
            return None, True
        return self.call(term, cmd.args or (), piped), False

    def if_(self, node: If) -> None:
        pushed = node.assign is not None and node.assign.let
        if pushed:
            self.push()
        if node.assign is not None:
            self.assign(node.assign)
        if truthy(self.eval(node.cond)):
            self.run(node.body)
        elif node.orelse is not None:
            self.run(node.orelse)
        if pushed:
            self.pop()

    def range_(self, node: Range) -> None:
        a = node.assign
        items = range_items(self.eval(node.expr))
        saved = self.context
        if a is not None and a.let:
            self.push()
        value_target = a.left[1] if a is not None and len(a.left) > 1 else None
        empty = True
        for key, value in items:
            empty = False
            self.iterations += 1
            if self.iterations > MAX_ITERATIONS:
                raise JetLimitError(f"template {self.template!r}, line {node.line}: more than {MAX_ITERATIONS} "
                                    "range iterations in one render")
            if a is not None:
                self.bind(a.let, a.left[0], key)
                if value_target is not None:
                    self.bind(a.let, value_target, value)
            if value_target is None:
                self.context = value
            self.run(node.body)
        if empty and node.orelse is not None:
            self.run(node.orelse)
        self.context = saved
        if a is not None and a.let:
            self.pop()

    def try_(self, node: Try) -> None:
        saved = (self.scope, self.context, self.content, self.template, self.depth, len(self.out), self.size)
        try:
            self.run(node.body)
        except JetRenderError as exc:
            self.scope, self.context, self.content, self.template, self.depth, kept, self.size = saved
            del self.out[kept:]
            if node.catch is None:
                return
            if node.err_var is not None:
                self.push()
                self.scope.vars[node.err_var] = CaughtError(str(exc))
            self.run(node.catch)
            if node.err_var is not None:
                self.pop()

    # -- blocks and templates ------------------------------------------------------------------
    def find_block(self, name: str) -> Block | None:
        scope: Scope | None = self.scope
        while scope is not None:
            found = scope.blocks.get(name)
            if found is not None:
                return found
            scope = scope.parent
        return None

    def call_block(self, block: Block, args: tuple[Param, ...], context: Expr | None,
                   content: tuple[Node, ...] | None) -> None:
        self.descend()
        scoped = bool(block.params or args)
        if scoped:
            self.push()
            bound = self.scope.vars
            positional = iter(p.name for p in block.params)
            for arg in args:
                name = arg.name if arg.name is not None else next(positional, None)
                if name is None:
                    raise JetValueError(f"too many arguments for block {block.name!r}")
                assert arg.value is not None
                bound[name] = self.eval(arg.value)
            for p in block.params:
                if p.name is not None and p.name not in bound:
                    bound[p.name] = self.eval(p.value) if p.value is not None else False
        outer_content = self.content
        if content is not None:
            self.content = self._content_runner(content, outer_content)
        saved_context, saved_template = self.context, self.template
        if context is not None:
            self.context = self.eval(context)
        self.template = block.template
        self.run(block.body)
        self.context, self.template, self.content = saved_context, saved_template, outer_content
        if scoped:
            self.pop()
        self.depth -= 1

    def _content_runner(self, content: tuple[Node, ...], outer: Callable[[Expr | None], None] | None
                        ) -> Callable[[Expr | None], None]:
        """What ``yield content`` runs: the caller's content, in the caller's scope."""
        caller_scope, caller_template = self.scope, self.template

        def run_content(context: Expr | None) -> None:
            saved = (self.scope, self.content, self.template, self.context)
            self.scope, self.content, self.template = caller_scope, outer, caller_template
            if context is not None:
                self.context = self.eval(context)
            self.run(content)
            self.scope, self.content, self.template, self.context = saved

        return run_content

    def include(self, node: Include) -> None:
        name = self.eval(node.name)
        if not isinstance(name, str):
            raise JetValueError(f"the name of a template to include must be a string, not a {type_name(name)}")
        found = self.set.find(name, node.template)
        if found is None:
            raise JetValueError(f"template {name} could not be found")
        self.enter(found, self.eval(node.context) if node.context is not None else NOPIPE)

    def include_if_exists(self, *args: Any) -> Hidden:
        if not 1 <= len(args) <= 2 or not isinstance(args[0], str):
            raise JetValueError("includeIfExists() takes a template name and an optional context")
        found = self.set.find(args[0], "")
        if found is None:
            return Hidden(False)
        self.enter(found, args[1] if len(args) > 1 else NOPIPE)
        return Hidden(True)

    def enter(self, template: Template, context: Any) -> None:
        """Render another template here (include): its blocks, the top of its extends chain."""
        self.descend()
        self.push()
        self.scope.blocks = self.set.blocks(template)
        saved_context, saved_template, saved_line = self.context, self.template, self.line
        if context is not NOPIPE:
            self.context = context
        self.run_body(template)
        self.context, self.template, self.line = saved_context, saved_template, saved_line
        self.pop()
        self.depth -= 1

    def run_body(self, template: Template) -> None:
        root = self.set.root(template)
        self.template = root.name
        self.run(root.body)
