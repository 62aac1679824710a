"""Insert whole marked lines into a config's text, and take them out again, byte for byte.

Every inserted line ends with ``# hookshift``; nothing else in the file changes. When a block
opens on a line that goes on (``location /cb { proxy_pass http://app; }``) the line is split
right after the ``{`` with `` # hookshift:split`` and the line ending, so removal is two textual
steps that need no parser: delete every line ending in the marker, then delete every
`` # hookshift:split<EOL>``. The line ending (LF or CRLF) of the surrounding line is reused and
the indentation follows the neighbours (tabs stay tabs).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hookshift.errors import InputError
from hookshift.nginx import lexer

MARK = "# hookshift"
SPLIT = " # hookshift:split"
TEMPLATE_INDENT = "    "  # inserted lines are written with 4 spaces per level, then re-indented


@dataclass(frozen=True)
class Insertion:
    """Lines to put just inside the block whose ``{`` is at offset `brace`, or, with `after`
    (one past a ``;`` in that block), right after that statement instead.

    `lines` are indented with 4 spaces per level relative to the block's body.
    """

    brace: int
    lines: tuple[str, ...]
    after: int = -1

    @property
    def at(self) -> int:
        """The offset the lines follow."""
        return self.after if self.after >= 0 else self.brace


def _lines(text: str) -> list[str]:
    """Split on LF only (keeping it): ``str.splitlines`` also splits on \\x0b, \\x1c, ..."""
    return re.split(r"(?<=\n)", text) if text else []


def has_marks(text: str) -> bool:
    if MARK not in text:  # the common case, decided without splitting lines
        return False
    return SPLIT in text or any(line.rstrip("\r\n").endswith(MARK) for line in _lines(text))


def marked_lines(text: str) -> list[str]:
    """The lines of `text` that end in hookshift's mark (without their line ending)."""
    return [line.rstrip("\r\n") for line in _lines(text) if line.rstrip("\r\n").endswith(MARK)]


def remove(text: str) -> str:
    """`text` without hookshift's lines: the exact inverse of `insert`."""
    kept = "".join(line for line in _lines(text) if not line.rstrip("\r\n").endswith(MARK))
    return kept.replace(SPLIT + "\r\n", "").replace(SPLIT + "\n", "")


def added_marks(old: str, new: str) -> tuple[tuple[str, ...], int]:
    """The marked lines (without line ending) `new` adds to `old`, and how many lines it split.

    What apply records, so that remove can later take out exactly these lines and leave a
    user's own ``... # hookshift`` lines alone.
    """
    a, b = _lines(old), _lines(new)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    added = [
        line.rstrip("\r\n")
        for tag, _, _, j1, j2 in matcher.get_opcodes()
        if tag in ("insert", "replace")
        for line in b[j1:j2]
        if line.rstrip("\r\n").endswith(MARK)
    ]
    return tuple(added), new.count(SPLIT) - old.count(SPLIT)


@dataclass(frozen=True)
class Removal:
    """The text without the recorded lines, and what did not go as recorded.

    `foreign` are 1-based numbers (in the text given) of marked lines hookshift did not write
    (kept); `missing` are recorded lines no longer in the text as written (edited or
    deleted); `unmarked` are numbers of lines that read like a missing line without its marker.
    """

    text: str
    foreign: tuple[int, ...]
    missing: tuple[str, ...]
    unmarked: tuple[int, ...]
    removed: frozenset[int] = frozenset()  # 1-based numbers of the lines taken out


def stranded(text: str, removed: frozenset[int]) -> int | None:
    """The first line that stays (a statement of it) while a block around it goes: taking out
    `removed` would leave it one level up (an edited ``return`` of hookshift's location then
    answers every request of the server). None when every kept line keeps its blocks."""
    if not removed:
        return None
    opened: list[int] = []  # the lines of the enclosing blocks' `{`
    for token in lexer.lex(text):
        if token.kind == "open":
            opened.append(token.line)
        elif token.kind == "close":
            if opened:
                opened.pop()
        elif (
            token.kind != "comment"
            and token.line not in removed
            and any(line in removed for line in opened)
        ):
            return token.line
    return None


def remove_recorded(text: str, recorded: Sequence[str], splits: int) -> Removal:
    """`text` without exactly the `recorded` marked lines (and `splits` split markers)."""
    pending = Counter(recorded)
    kept: list[tuple[int, str]] = []
    foreign: list[int] = []
    for number, line in enumerate(_lines(text), start=1):
        key = line.rstrip("\r\n")
        if pending[key] > 0:
            pending[key] -= 1
            continue
        if key.endswith(MARK):
            foreign.append(number)
        kept.append((number, line))
    out = "".join(line for _, line in kept)
    for _ in range(max(splits, 0)):
        out = re.sub(re.escape(SPLIT) + r"\r?\n", "", out, count=1)
    missing = tuple(line for line, count in pending.items() for _ in range(count))
    bare = {line[: -len(MARK)].strip() for line in missing}
    unmarked = tuple(n for n, line in kept if line.strip() and line.strip() in bare)
    numbers = {n for n, _ in kept}
    removed = frozenset(n for n in range(1, len(_lines(text)) + 1) if n not in numbers)
    return Removal(out, tuple(foreign), missing, unmarked, removed)


BLOCK_RANK = {"http": 0, "server": 1}


def definition_rank(text: str, where: str = "<text>") -> int:
    """0 when hookshift's lines in `text` sit in an ``http`` block, 1 in a ``server``, else 2.

    http-level lines define what the others use (``log_format``, ``map``, ``upstream``), so
    a multi-file write puts lower ranks first and a removal takes them out last: every state
    in between is a config nginx accepts. A text the lexer cannot read ranks in the middle.
    """
    lines = _lines(text)

    def marked(st: lexer.Statement) -> bool:
        return 0 < st.line <= len(lines) and lines[st.line - 1].rstrip("\r\n").endswith(MARK)

    def ranks(parent: str | None, statements: Iterable[lexer.Statement]) -> Iterable[int]:
        for st in statements:
            if marked(st) and parent is not None:
                yield BLOCK_RANK.get(parent, 2)
            if st.block is not None:
                yield from ranks(st.name, st.block)

    try:
        found = list(ranks(None, lexer.parse(text, where)))
    except InputError:
        return 1
    return min(found, default=1)


def indent_unit(text: str) -> str:
    """The file's indentation step: a tab if lines are tab-indented, else the smallest spaces."""
    widths: list[int] = []
    for line in _lines(text):
        if line.startswith("\t"):
            return "\t"
        stripped = line.lstrip(" ")
        if stripped.strip() and len(line) != len(stripped):
            widths.append(len(line) - len(stripped))
    return " " * min(widths) if widths else TEMPLATE_INDENT


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _leading(text: str, line_start: int) -> str:
    match = re.match(r"[ \t]*", text[line_start:])
    return match.group(0) if match else ""


def _eol_for(text: str, pos: int) -> str:
    nl = text.find("\n", pos)
    if nl > 0 and text[nl - 1] == "\r":
        return "\r\n"
    if nl >= 0:
        return "\n"
    return "\r\n" if "\r\n" in text else "\n"


def _reindent(line: str, base: str, unit: str) -> str:
    depth = 0
    while line.startswith(TEMPLATE_INDENT):
        line = line[len(TEMPLATE_INDENT) :]
        depth += 1
    return base + unit * depth + line


def _render(lines: Iterable[str], base: str, unit: str, eol: str) -> str:
    return "".join(f"{_reindent(line, base, unit)}  {MARK}{eol}" for line in lines)


def insert(text: str, insertions: Iterable[Insertion]) -> str:
    """`text` with each insertion's lines placed right after its ``{`` or its statement
    (marked, re-indented)."""
    unit = indent_unit(text)
    out = text
    for ins in sorted(insertions, key=lambda i: i.at, reverse=True):
        if ins.after >= 0:
            out = _insert_after(out, ins, unit)
            continue
        if out[ins.brace] != "{":
            raise ValueError(f"offset {ins.brace} is not a '{{'")
        eol = _eol_for(out, ins.brace)
        nl = out.find("\n", ins.brace)
        line_end = len(out) if nl < 0 else nl
        rest = out[ins.brace + 1 : line_end].rstrip("\r")
        block_indent = _leading(out, _line_start(out, ins.brace))
        whole_line = nl >= 0 and (not rest.strip() or rest.lstrip().startswith("#"))
        if whole_line:
            body_indent = _body_indent(out, nl + 1, block_indent, unit)
            added = _render(ins.lines, body_indent, unit, eol)
            out = out[: nl + 1] + added + out[nl + 1 :]
        else:
            added = SPLIT + eol + _render(ins.lines, block_indent + unit, unit, eol)
            out = out[: ins.brace + 1] + added + out[ins.brace + 1 :]
    return out


def _insert_after(text: str, ins: Insertion, unit: str) -> str:
    """The lines after the statement that ends at `ins.after`, at that statement's line's
    indentation; on a line of its own when other statements follow it on that line (split
    there with a marker, which removal takes out again)."""
    if text[ins.after - 1] != ";":
        raise ValueError(f"offset {ins.after} does not follow a ';'")
    eol = _eol_for(text, ins.after)
    nl = text.find("\n", ins.after)
    rest = text[ins.after : len(text) if nl < 0 else nl].rstrip("\r")
    indent = _leading(text, _line_start(text, ins.after - 1))
    if nl >= 0 and (not rest.strip() or rest.lstrip().startswith("#")):
        return text[: nl + 1] + _render(ins.lines, indent, unit, eol) + text[nl + 1 :]
    added = SPLIT + eol + _render(ins.lines, indent, unit, eol)
    return text[: ins.after] + added + text[ins.after :]


def _body_indent(text: str, pos: int, block_indent: str, unit: str) -> str:
    """The indentation of the first statement line after `pos`, if deeper than the block's."""
    for line in _lines(text[pos:]):
        content = line.strip()
        if not content:
            continue
        lead = _leading(line, 0)
        if content.startswith("}") or len(lead) <= len(block_indent):
            break
        return lead
    return block_indent + unit
