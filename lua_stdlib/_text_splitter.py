"""Text splitters for ``text.splitter``: recursive character splitting and markdown-aware splitting.

Wippy uses langchaingo's splitters; these follow the same algorithms (lengths count characters):

``RecursiveSplitter`` tries each separator in turn (default ``"\\n\\n"``, ``"\\n"``, ``" "``, ``""``):
it splits the text on the first separator that occurs in it (``""`` splits into characters),
keeps pieces shorter than ``chunk_size`` and merges neighbours back into chunks of at most
``chunk_size`` (joined by the separator, whitespace trimmed), carrying up to ``chunk_overlap``
characters of trailing pieces into the next chunk; a piece that is too long is split again with
the remaining separators. With ``keep_separator`` each piece keeps the separator in front of it.

``MarkdownSplitter`` walks the markdown structure (markdown-it tokens, the same token model as
the Go parser Wippy uses): every heading starts a new section, and each chunk of a section starts
with its heading (with ``heading_hierarchy``, with the headings above it too). Paragraphs, list
items (rendered ``- item`` / ``1. item``), block quotes (``> ``), rules and tables (one chunk per
row with the header repeated, or rows joined up to ``chunk_size`` with ``join_table_rows``) are
joined into chunks of up to ``chunk_size``; a chunk longer than ``chunk_size + chunk_overlap`` is
split again with the recursive splitter. ``reference_links`` renders inline markup from the
parsed inline tokens (reference links become inline ``[text](url)``); otherwise a paragraph is
its source text. Code blocks: langchaingo drops them unless ``code_blocks`` is set; here they are
always kept, as text that may be split like a paragraph, and with ``code_blocks`` a code block is
never split (a block longer than ``chunk_size`` becomes one chunk of its own).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from markdown_it import MarkdownIt

DEFAULT_SEPARATORS = ("\n\n", "\n", " ", "")
_MARKDOWN_SEPARATORS = ("\n\n", "\n", " ")


def merge_splits(splits: Sequence[str], separator: str, chunk_size: int, chunk_overlap: int) -> list[str]:
    """Merge pieces (each shorter than ``chunk_size``) into chunks, overlapping by up to ``chunk_overlap``."""
    sep_len = len(separator)
    chunks: list[str] = []
    current: list[str] = []
    total = 0
    for piece in splits:
        n = len(piece)
        if current and total + n + sep_len > chunk_size:
            chunk = separator.join(current).strip()
            if chunk:
                chunks.append(chunk)
            # drop pieces from the front until what is left is an overlap that leaves room for this
            # piece and its separator (langchaingo forgets the separator when one piece is left,
            # which lets a chunk grow past chunk_size; LangChain counts it, as here)
            while current and (total > chunk_overlap or (total > 0 and total + n + sep_len > chunk_size)):
                total -= len(current[0]) + (sep_len if len(current) > 1 else 0)
                current.pop(0)
        current.append(piece)
        total += n + (sep_len if len(current) > 1 else 0)
    chunk = separator.join(current).strip()
    if chunk:
        chunks.append(chunk)
    return chunks


class RecursiveSplitter:
    """Split text on a hierarchy of separators into chunks of at most ``chunk_size`` characters."""

    def __init__(self, *, chunk_size: int = 512, chunk_overlap: int = 100,
                 separators: Sequence[str] = DEFAULT_SEPARATORS, keep_separator: bool = False) -> None:
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.separators = tuple(separators) or DEFAULT_SEPARATORS
        self.keep_separator = keep_separator

    def split_text(self, text: str) -> list[str]:
        return self._split(text, self.separators)

    def _split(self, text: str, separators: tuple[str, ...]) -> list[str]:
        separator = separators[-1]
        rest: tuple[str, ...] = ()
        for i, sep in enumerate(separators):
            if sep == "" or sep in text:
                separator, rest = sep, separators[i + 1 :]
                break
        pieces = list(text) if separator == "" else text.split(separator)
        if self.keep_separator:
            pieces = pieces[:1] + [separator + p for p in pieces[1:]]
            separator = ""
        chunks: list[str] = []
        small: list[str] = []
        for piece in pieces:
            if len(piece) < self.chunk_size:
                small.append(piece)
                continue
            if small:
                chunks.extend(merge_splits(small, separator, self.chunk_size, self.chunk_overlap))
                small = []
            chunks.extend(self._split(piece, rest) if rest else [piece])
        if small:
            chunks.extend(merge_splits(small, separator, self.chunk_size, self.chunk_overlap))
        return chunks


@functools.cache
def _markdown() -> MarkdownIt:
    # raw HTML stays text (as with the Go parser's defaults); tables and ~~strikethrough~~ on
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def _close(tokens: Sequence[Any], i: int) -> int:
    """Index of the token closing the block opened at ``i`` (``i`` itself for a leaf token)."""
    tok = tokens[i]
    if tok.nesting != 1:
        return i
    for j in range(i + 1, len(tokens)):
        if tokens[j].nesting == -1 and tokens[j].level == tok.level:
            return j
    return len(tokens) - 1


def _indent(text: str, mark: str) -> str:
    return "\n".join(mark + line for line in text.split("\n"))


def _row(cells: Sequence[str]) -> str:
    return "".join(f"| {c} " for c in cells) + ("|" if cells else "")


class MarkdownSplitter:
    """Split markdown by its structure, keeping each chunk under its heading."""

    def __init__(self, *, chunk_size: int = 512, chunk_overlap: int = 100, code_blocks: bool = False,
                 reference_links: bool = False, heading_hierarchy: bool = False, join_table_rows: bool = False,
                 separators: Sequence[str] = _MARKDOWN_SEPARATORS) -> None:
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.code_blocks = code_blocks
        self.reference_links = reference_links
        self.heading_hierarchy = heading_hierarchy
        self.join_table_rows = join_table_rows
        self.second = RecursiveSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                                        separators=tuple(separators) or _MARKDOWN_SEPARATORS)

    def split_text(self, text: str) -> list[str]:
        tokens = _markdown().parse(text)
        section = _Section(self)
        section.walk(tokens, 0, len(tokens))
        section.flush()
        return section.chunks


class _Section:
    """The walk's state: the current heading, the snippet being filled, the chunks made."""

    def __init__(self, sp: MarkdownSplitter) -> None:
        self.sp = sp
        self.title = ""
        self.titles: list[str] = []
        self.title_used = False
        self.snippet = ""
        self.chunks: list[str] = []

    # -- chunks ----------------------------------------------------------------------------------

    def join(self, snippet: str) -> None:
        if not self.snippet:
            self.snippet = snippet
        elif len(self.snippet) + len(snippet) >= self.sp.chunk_size:
            self.flush()
            self.snippet = snippet
        else:
            self.snippet = f"{self.snippet}\n{snippet}"

    def flush(self, *, whole: bool = False) -> None:
        snippet, self.snippet = self.snippet, ""
        pieces: list[str] = []
        if snippet:
            fits = whole or len(snippet) <= self.sp.chunk_size + self.sp.chunk_overlap
            pieces = [snippet] if fits else self.sp.second.split_text(snippet)
        if not pieces:
            if self.title and not self.title_used:  # a heading with nothing under it
                self.chunks.append(self.title)
                self.title_used = True
            return
        for piece in pieces:
            if not piece:
                continue
            self.title_used = True
            self.chunks.append(f"{self.title}\n{piece}" if self.title and self.title not in snippet else piece)

    # -- blocks ----------------------------------------------------------------------------------

    def walk(self, tokens: Sequence[Any], start: int, end: int) -> None:
        i = start
        while i < end:
            tok = tokens[i]
            close = _close(tokens, i)
            kind = tok.type
            if kind == "heading_open":
                self.heading(int(tok.tag[1:]), tokens[i + 1].content)
            elif kind == "paragraph_open":
                self.join(self.inline(tokens[i + 1]))
            elif kind == "blockquote_open":
                self.quote(tokens, i + 1, close)
            elif kind in ("bullet_list_open", "ordered_list_open"):
                for line in self.list_lines(tokens, i, close, 0):
                    self.join(line)
            elif kind == "table_open":
                self.table(tokens, i, close)
            elif kind in ("fence", "code_block"):
                self.code(tok)
            elif kind == "hr":
                self.join("---")
            i = close + 1

    def heading(self, level: int, text: str) -> None:
        self.flush()
        title = "#" * level + " " + text
        if self.sp.heading_hierarchy:
            self.titles = [*self.titles[: level - 1], *[""] * (level - 1 - len(self.titles)), title]
            title = "\n".join(t for t in self.titles if t)
        self.title = title
        self.title_used = False

    def sub_chunks(self, tokens: Sequence[Any], start: int, end: int) -> list[str]:
        sub = _Section(self.sp)
        sub.walk(tokens, start, end)
        sub.flush()
        return sub.chunks

    def quote(self, tokens: Sequence[Any], start: int, end: int) -> None:
        for chunk in self.sub_chunks(tokens, start, end):
            self.join(_indent(chunk, "> "))
        self.flush()

    def list_lines(self, tokens: Sequence[Any], start: int, end: int, depth: int) -> Iterator[str]:
        ordered = tokens[start].type == "ordered_list_open"
        number = int(tokens[start].attrs.get("start", 1)) if ordered else 0
        pad = "  " * depth
        i = start + 1
        while i < end:
            close = _close(tokens, i)
            if tokens[i].type == "list_item_open":
                marker = f"{number}. " if ordered else "- "
                number += 1
                j = i + 1
                while j < close:
                    inner_close = _close(tokens, j)
                    kind = tokens[j].type
                    if kind == "paragraph_open":
                        yield pad + marker + self.inline(tokens[j + 1])
                        marker = " " * len(marker)
                    elif kind in ("bullet_list_open", "ordered_list_open"):
                        yield from self.list_lines(tokens, j, inner_close, depth + 1)
                    else:
                        for chunk in self.sub_chunks(tokens, j, inner_close + 1):
                            yield _indent(chunk, pad + "  ")
                    j = inner_close + 1
            i = close + 1

    def table(self, tokens: Sequence[Any], start: int, end: int) -> None:
        header: list[str] = []
        rows: list[list[str]] = []
        row: list[str] | None = None
        in_head = False
        for tok in tokens[start:end]:
            if tok.type == "thead_open":
                in_head = True
            elif tok.type == "thead_close":
                in_head = False
            elif tok.type == "tr_open":
                row = []
            elif tok.type == "tr_close" and row is not None:
                if in_head:
                    header = row
                else:
                    rows.append(row)
                row = None
            elif tok.type == "inline" and row is not None:
                row.append(tok.content)
        if not any(header) and rows:
            header, rows = rows[0], rows[1:]
        head = _row(header) + "\n" + _row(["---"] * len(header))
        if not rows:
            self.join(head)
            self.flush()
            return
        if not self.sp.join_table_rows:
            self.flush()
        for n, cells in enumerate(rows):
            line = _row(cells)
            # the header goes with the table's first row and at the start of every chunk
            if n == 0 or not self.snippet or len(self.snippet) + len(line) >= self.sp.chunk_size:
                line = f"{head}\n{line}"
            self.join(line)
            if not self.sp.join_table_rows:
                self.flush()

    def code(self, tok: Any) -> None:
        body = tok.content[:-1] if tok.content.endswith("\n") else tok.content
        block = f"```{tok.info}\n{body}\n```" if tok.type == "fence" else _indent(body, "    ")
        if self.sp.code_blocks and len(block) > self.sp.chunk_size:
            self.flush()
            self.snippet = block
            self.flush(whole=True)
            return
        self.join(block)

    # -- inline ----------------------------------------------------------------------------------

    def inline(self, tok: Any) -> str:
        if not self.sp.reference_links or not tok.children:
            return str(tok.content)
        out: list[str] = []
        link: Any = None
        marks = {"strong_open": "**", "strong_close": "**", "em_open": "*", "em_close": "*",
                 "s_open": "~~", "s_close": "~~", "softbreak": "\n", "hardbreak": "\\\n"}
        for child in tok.children:
            kind = child.type
            if kind in marks:
                out.append(marks[kind])
            elif kind in ("text", "html_inline"):
                out.append(child.content)
            elif kind == "code_inline":
                out.append(f"`{child.content}`")
            elif kind == "link_open":
                out.append("[")
                link = child
            elif kind == "link_close":
                out.append(_link_end(link))
            elif kind == "image":
                label = "".join(c.content for c in child.children or [] if c.type == "text")
                out.append(f"![{label}]" + _target(str(child.attrs.get("src", "")), child.attrs.get("title")))
        return "".join(out)


def _link_end(link: Any) -> str:
    href = str(link.attrs.get("href", "")) if link is not None else ""
    return "]" + _target(href, link.attrs.get("title") if link is not None else None)


def _target(href: str, title: Any) -> str:
    if not href:
        return "()"
    return f'({href} "{title}")' if title else f"({href})"
