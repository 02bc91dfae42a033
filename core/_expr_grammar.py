"""The expr-lang grammar (lark, LALR) and the parser that turns text into a lark tree.

The grammar mirrors expr-lang's precedence-climbing parser (``parser/operator``):

=========  =====================================================  =====
level      operators                                              assoc
=========  =====================================================  =====
0          ``|`` (pipe), then ``? :`` ternary                     left
10 / 15    ``|| or`` / ``&& and``                                 left
20         ``== != < > <= >= in matches contains startsWith       left
           endsWith`` and their ``not ...`` forms
25 / 30    ``..`` / ``+ -``                                       left
60         ``* / %``                                              left
100        ``** ^``                                               right
500        ``??``                                                 left
=========  =====================================================  =====

Unary ``! not`` take an operand at level 50 and unary ``- +`` at level 90, wherever they
stand; so ``!a * b`` is ``!(a * b)`` and ``x ?? -1`` works. In the grammar that greed is a
handful of shift/reduce conflicts that lark resolves as *shift* — exactly the precedence
climbing behaviour — and no other conflicts exist.

After a pipe the result is the leftmost operand of whatever follows (``xs | len() + 1``), which
is why the level-0 chain has ``*_l`` copies of each level whose leftmost operand may be a pipe.

Keywords that are operators (``in``, ``not in``, ``matches``, ...) only lex as operators where
an operator may stand; after a dot they are ordinary property names (``a.not``), as in expr.
"""

from __future__ import annotations

import functools

from lark import Lark, Token, Tree

GRAMMAR = r"""
?start: top

?top: expr_core
    | expr_core ";"
    | expr_core ";" top          -> seq
    | let_head ";" top           -> let

?stmts: expr_core
      | expr_core ";" stmts      -> seq
      | let_head ";" stmts       -> let

let_head: "let" NAME "=" expr_core

?expr: expr_core
     | let_head ";" stmts        -> let

?expr_core: pipe_expr
          | pipe_expr "?" expr_core ":" expr_core   -> cond
          | pipe_expr "?" ":" expr_core             -> elvis
          | if_expr

if_expr: "if" expr_core "{" stmts "}" "else" else_branch
?else_branch: "{" stmts "}" | if_expr

piped: pipe_expr "|" NAME "(" [args] ")"

?pipe_expr: pipe_expr OR and_ -> binop
          | and_l
?and_l: and_l AND cmp -> binop
      | cmp_l
?cmp_l: cmp_l (CMP | KWCMP) range_ -> binop
      | range_l
?range_l: range_l RANGE add -> binop
        | add_l
?add_l: add_l (PLUS | MINUS) mul -> binop
      | mul_l
?mul_l: mul_l MUL pow -> binop
      | pow_l
?pow_l: coal_l POW pow -> binop
      | coal_l
?coal_l: coal_l COAL operand -> binop
       | operand
       | piped

?and_: and_ AND cmp -> binop
     | cmp
?cmp: cmp (CMP | KWCMP) range_ -> binop
    | range_
?range_: range_ RANGE add -> binop
       | add
?add: add (PLUS | MINUS) mul -> binop
    | mul
?mul: mul MUL pow -> binop
    | pow
?pow: coal POW pow -> binop
    | coal
?coal: coal COAL operand -> binop
     | operand
?operand: postfix
        | NOT mul -> unary
        | (MINUS | PLUS) pow -> unary

?postfix: NUMBER | STRING | RAW_STRING | TRUE | FALSE | NIL | NAME | POINTER | paren
        | NAME "(" [args] ")"                         -> call
        | "." NAME                                    -> implicit_member
        | "[" [args] "]"                              -> array
        | "{" [pairs] "}"                             -> map
        | "{" stmts "}"                               -> block
        | postfix "." NAME                            -> member
        | postfix "?." NAME                           -> member_opt
        | postfix "." NAME "(" [args] ")"             -> method
        | postfix "?." NAME "(" [args] ")"            -> method_opt
        | postfix "[" expr_core "]"                   -> index
        | postfix "?." "[" expr_core "]"              -> index_opt
        | postfix "[" [expr_core] ":" [expr_core] "]" -> slice

paren: "(" stmts ")"
args: expr ("," expr)* ","?
pairs: pair ("," pair)* ","?
pair: key ":" expr
?key: NAME | STRING | RAW_STRING | NUMBER | TRUE | FALSE | NIL | paren

TRUE: "true"
FALSE: "false"
NIL: "nil"
OR.2: /\|\||or(?![\w$])/
AND.2: /&&|and(?![\w$])/
CMP: "==" | "!=" | "<=" | ">=" | "<" | ">"
KWCMP.2: /(?:not\s+)?(?:in|matches|contains|startsWith|endsWith)(?![\w$])/
NOT.2: /!(?!=)|not(?![\w$])/
RANGE: ".."
PLUS: "+"
MINUS: "-"
MUL: "*" | "/" | "%"
POW: "**" | "^"
COAL: "??"
POINTER: /#[\w$]*/
NAME: /(?:[^\W\d]|\$)[\w$]*/
NUMBER: (_RADIX_INT | _DECIMAL) /(?![\w$])/
_RADIX_INT: /0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+/
_DECIMAL: /\d[\d_]*(?:\.(?!\.)[\d_]*)?(?:[eE][+-]?[\d_]+)?|\.\d[\d_]*(?:[eE][+-]?[\d_]+)?/
STRING: /"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/
RAW_STRING: /`(?:[^`]|``)*`/

%ignore /\s+/
%ignore /\/\/[^\n]*/
%ignore /\/\*(?s:.)*?\*\//
"""

#: Words that are operators or statements in expr-lang and so can never name a variable.
RESERVED = frozenset({"in", "and", "or", "not", "matches", "contains", "startsWith", "endsWith", "let", "if", "else"})


@functools.cache
def parser() -> Lark:
    """The shared LALR parser, built on first use (building takes ~0.3 s)."""
    return Lark(GRAMMAR, parser="lalr", lexer="contextual")


@functools.cache
def _positioned_parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True)


@functools.lru_cache(maxsize=64)
def positioned_parse(source: str) -> Tree[Token]:
    """The same tree with positions on every node, for error messages only.

    Propagating positions doubles the parse time, so the fast path goes without and errors
    (rare) parse again, with this second parser built when the first one is needed.
    """
    return _positioned_parser().parse(source)
