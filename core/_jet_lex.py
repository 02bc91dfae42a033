"""Jet templates, step one: source text into text parts and action tokens.

Jet (github.com/CloudyKit/jet, the engine Wippy's ``template.jet`` entries are written for) copies
text verbatim and evaluates actions between delimiters (``{{ }}`` unless the set configures others).
``{* ... *}`` comments vanish. ``{{- `` (dash, then a space) drops the whitespace before the action,
`` -}}`` the whitespace after it (spaces, tabs, carriage returns, newlines).

Inside an action the lexer follows Jet's rules: an identifier or field must be followed by a
terminator (a space, an operator, a bracket, the right delimiter); strings use Go's quoting
(``"..."`` with escapes, ``` `raw` ```), ``'c'`` is a character constant (a number), and numbers
are Go literals (decimal, ``0x`` hex, floats with exponents).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import WippyError

KEYWORDS = frozenset({
    "extends", "import", "include", "block", "end", "yield", "content", "if", "else", "range", "try",
    "catch", "return", "and", "or", "not", "nil", "msg", "trans",
})
#: operators, longest first so that ``:=`` wins over ``:``
_OPERATORS = ("==", "!=", "<=", ">=", ":=", "&&", "||", "=", "<", ">", "!", ":", "|", ",", ";", "*", "/", "%",
              "-", "+", "?", "(", ")", "[", "]")
_TERMINATORS = frozenset(".,|:)=(;?[]+-/%*&!<>")
_SPACE = " \t\r\n"
_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
COMMENT_LEFT, COMMENT_RIGHT = "{*", "*}"


class JetSyntaxError(WippyError):
    """A template cannot be parsed; names the template and the line."""

    kind = "INVALID"

    def __init__(self, template: str, line: int, message: str) -> None:
        super().__init__(f"template {template!r}, line {line}: {message}")
        self.template = template
        self.line = line
        self.reason = message


@dataclass(frozen=True, slots=True)
class Token:
    """One token of an action. ``kind``: ident, field, string, number, char, bool, keyword, op, underscore."""

    kind: str
    value: str  # strings: the decoded text; fields: the name without its dot
    line: int
    spaced: bool  # whitespace precedes it (``a .b`` is not the chain ``a.b``)


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    line: int


@dataclass(frozen=True, slots=True)
class ActionPart:
    tokens: tuple[Token, ...]
    line: int


def _is_word_char(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdecimal()


class _Lexer:
    def __init__(self, source: str, name: str, left: str, right: str) -> None:
        self.src, self.name, self.left, self.right = source, name, left, right
        self.pos = 0
        self.parts: list[TextPart | ActionPart] = []
        self.trim_next = False  # the previous action ended with " -}}"

    def line_at(self, pos: int) -> int:
        return self.src.count("\n", 0, pos) + 1

    def fail(self, pos: int, message: str) -> JetSyntaxError:
        return JetSyntaxError(self.name, self.line_at(pos), message)

    def text(self, end: int) -> None:
        chunk = self.src[self.pos:end]
        if self.trim_next:
            chunk = chunk.lstrip(_SPACE)
            self.trim_next = False
        if chunk:
            self.parts.append(TextPart(chunk, self.line_at(end - len(chunk))))
        self.pos = end

    def run(self) -> list[TextPart | ActionPart]:
        src = self.src
        while self.pos < len(src):
            action = src.find(self.left, self.pos)
            comment = src.find(COMMENT_LEFT, self.pos)
            if comment != -1 and (action == -1 or comment < action):
                self.text(comment)
                close = src.find(COMMENT_RIGHT, comment + len(COMMENT_LEFT))
                if close == -1:
                    raise self.fail(comment, "unclosed comment")
                self.pos = close + len(COMMENT_RIGHT)
                continue
            if action == -1:
                self.text(len(src))
                break
            start = action + len(self.left)
            if src.startswith("- ", start):  # "{{- ": drop the whitespace before
                before = src[self.pos:action]
                self.text(self.pos + len(before.rstrip(_SPACE)))
                start += 2
            else:
                self.text(action)
            self.action(action, start)
        return self.parts

    def action(self, opened: int, pos: int) -> None:
        src, right = self.src, self.right
        tokens: list[Token] = []
        depth = 0
        spaced = True
        while True:
            trim = src.startswith(" -" + right, pos)
            if trim or src.startswith(right, pos):
                if depth > 0:
                    raise self.fail(pos, "unclosed left parenthesis")
                self.parts.append(ActionPart(tuple(tokens), self.line_at(opened)))
                self.pos = pos + len(right) + (2 if trim else 0)
                self.trim_next = trim
                return
            if pos >= len(src):
                raise self.fail(opened, "unclosed action")
            ch = src[pos]
            if ch in _SPACE:
                pos += 1
                spaced = True
                continue
            line = self.line_at(pos)
            kind, value, end = self.token(pos, ch)
            if value == "(":
                depth += 1
            elif value == ")" and kind == "op":
                depth -= 1
                if depth < 0:
                    raise self.fail(pos, "unexpected right parenthesis")
            tokens.append(Token(kind, value, line, spaced))
            spaced = False
            pos = end

    def token(self, pos: int, ch: str) -> tuple[str, str, int]:
        src = self.src
        nxt = src[pos + 1:pos + 2]
        if ch == '"':
            return self.quoted(pos)
        if ch == "`":
            end = src.find("`", pos + 1)
            if end == -1:
                raise self.fail(pos, "unterminated raw quoted string")
            return "string", src[pos + 1:end].replace("\r", ""), end + 1
        if ch == "'":
            return self.char(pos)
        if ch.isdecimal() or (ch == "." and nxt.isdecimal()):
            return self.number(pos)
        if ch == ".":
            end = pos + 1
            while end < len(src) and _is_word_char(src[end]):
                end += 1
            self.expect_terminator(end)
            return ("field", src[pos + 1:end], end) if end > pos + 1 else ("ident", ".", end)
        if ch == "_" and not _is_word_char(nxt):
            return "underscore", "_", pos + 1
        if _is_word_char(ch):
            end = pos
            while end < len(src) and _is_word_char(src[end]):
                end += 1
            self.expect_terminator(end)
            word = src[pos:end]
            if word in KEYWORDS:
                return "keyword", word, end
            return ("bool" if word in ("true", "false") else "ident"), word, end
        for op in _OPERATORS:
            if src.startswith(op, pos):
                return "op", op, pos + len(op)
        raise self.fail(pos, f"unexpected character {ch!r} in action")

    def expect_terminator(self, pos: int) -> None:
        if pos >= len(self.src):
            return
        ch = self.src[pos]
        if ch in _SPACE or ch in _TERMINATORS or self.src.startswith(self.right[0], pos):
            return
        raise self.fail(pos, f"bad character {ch!r} after a name")

    def number(self, pos: int) -> tuple[str, str, int]:
        src, end = self.src, pos
        digits = "0123456789"
        if src.startswith(("0x", "0X"), pos):
            digits += "abcdefABCDEF"
            end += 2
        while end < len(src) and src[end] in digits:
            end += 1
        if src[end:end + 1] == ".":
            end += 1
            while end < len(src) and src[end] in digits:
                end += 1
        if src[end:end + 1] in ("e", "E") and "a" not in digits:
            end += 1
            if src[end:end + 1] in ("+", "-"):
                end += 1
            while end < len(src) and src[end].isdecimal():
                end += 1
        if end < len(src) and _is_word_char(src[end]):
            raise self.fail(pos, f"bad number syntax: {src[pos:end + 1]!r}")
        return "number", src[pos:end], end

    def quoted(self, pos: int) -> tuple[str, str, int]:
        out: list[str] = []
        i = pos + 1
        src = self.src
        while True:
            if i >= len(src) or src[i] == "\n":
                raise self.fail(pos, "unterminated quoted string")
            ch = src[i]
            if ch == '"':
                return "string", "".join(out), i + 1
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            text, i = self.escape(pos, i + 1, '"')
            out.append(text)

    def char(self, pos: int) -> tuple[str, str, int]:
        src = self.src
        if src[pos + 1:pos + 2] == "\\":
            text, end = self.escape(pos, pos + 2, "'")
        else:
            text, end = src[pos + 1:pos + 2], pos + 2
        if len(text) != 1 or src[end:end + 1] != "'":
            raise self.fail(pos, "malformed character constant")
        return "char", text, end + 1

    def escape(self, pos: int, i: int, quote: str) -> tuple[str, int]:
        """Go's escape sequences (strconv.Unquote): the text and where it ends."""
        esc = self.src[i:i + 1]
        if esc in _GO_ESCAPES:
            return _GO_ESCAPES[esc], i + 1
        if esc == quote:
            return quote, i + 1
        width = {"x": 2, "u": 4, "U": 8}.get(esc)
        try:
            if width is not None:
                digits = self.src[i + 1:i + 1 + width]
                if len(digits) == width:
                    return chr(int(digits, 16)), i + 1 + width
            elif esc in "01234567" and esc:
                digits = self.src[i:i + 3]
                if len(digits) == 3:
                    return chr(int(digits, 8)), i + 3
        except ValueError:
            pass
        raise self.fail(pos, f"invalid escape sequence \\{esc} in string")


def lex(source: str, *, name: str, left: str = "{{", right: str = "}}") -> list[TextPart | ActionPart]:
    """Split a template into text and action tokens; raises JetSyntaxError."""
    if not left or not right:
        raise JetSyntaxError(name, 1, "delimiters must not be empty")
    return _Lexer(source, name, left, right).run()
