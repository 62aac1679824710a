"""Tokenize nginx configuration text with exact offsets, and parse it into positioned statements.

crossplane reports lines only; an edit that must leave every other byte alone needs the exact
offset of a block's ``{`` and ``}`` (one-line blocks such as ``location /cb { proxy_pass
http://app; }`` put several statements on one line). This lexer follows nginx's own rules
(``ngx_conf_read_token``): whitespace, ``;`` and ``{`` end a word (``}`` only stands alone at
the start of a token), ``#`` starts a comment at a word boundary, quotes group (and must be
followed by a space, ``;``, ``{`` or ``)``), a backslash escapes the next character, and the body
of a ``*_by_lua_block`` is raw Lua (braces inside strings and comments do not count).

Text is a ``str`` decoded with ``surrogateescape`` so arbitrary bytes round-trip exactly and
offsets are indices into that string.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from hookshift.errors import InputError

TokenKind = Literal["word", "open", "close", "semi", "comment", "raw"]


@dataclass(frozen=True, slots=True)
class Token:
    """One token: `text` is the unquoted, unescaped value; `start`/`end` index the source.

    Slotted, as are `Statement`s: a big file has hundreds of thousands of either."""

    kind: TokenKind
    text: str
    start: int
    end: int
    line: int


@dataclass(frozen=True, slots=True)
class Statement:
    """A directive as written: its words and where it sits in the text.

    `start` is the offset of its first word, `end` one past its ``;`` or closing ``}``;
    `open_brace`/`close_brace` are the offsets of its block's braces (-1 without a block).
    """

    name: str
    args: tuple[str, ...]
    line: int
    start: int
    end: int
    open_brace: int = -1
    close_brace: int = -1
    block: tuple[Statement, ...] | None = None


_ESCAPES = {"t": "\t", "r": "\r", "n": "\n"}
# deeper nesting is refused: no real configuration comes near it, and every reader of the tree
# (crossplane's parser among them) may recurse once per level
MAX_DEPTH = 100


def too_deep(where: str) -> InputError:
    return InputError(
        f"blocks are nested more than {MAX_DEPTH} deep",
        where=where,
        fix="flatten the configuration (nginx configs need a few levels)",
    )


_SPACE = " \t\r\n"


def unescape(raw: str) -> str:
    """nginx's escape handling when it copies a word: ``\\"`` ``\\'`` ``\\\\`` ``\\t`` ..."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            if nxt in "\"'\\":
                out.append(nxt)
                i += 2
                continue
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _skip_lua(text: str, pos: int, where: str, line: int) -> int:
    """Offset of the ``}`` that closes a Lua block whose ``{`` is at `pos`.

    Lua strings ('..', "..", [[..]], [==[..]==]) and comments (-- and --[[ ]]) are skipped so
    their braces do not count.
    """
    depth = 0
    i = pos
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "-" and text.startswith("--", i):
            i += 2
            long = _long_bracket(text, i)
            if long is not None:
                i = long
            else:
                while i < n and text[i] != "\n":
                    i += 1
            continue
        if ch in "\"'":
            i += 1
            while i < n and text[i] != ch:
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if ch == "[":
            long = _long_bracket(text, i)
            if long is not None:
                i = long
                continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InputError("unterminated Lua block", where=f"{where}:{line}", fix="close the block")


def _long_bracket(text: str, i: int) -> int | None:
    """If a Lua long bracket ``[==[`` opens at `i`, the offset just past its close."""
    if i >= len(text) or text[i] != "[":
        return None
    j = i + 1
    while j < len(text) and text[j] == "=":
        j += 1
    if j >= len(text) or text[j] != "[":
        return None
    close = "]" + "=" * (j - i - 1) + "]"
    end = text.find(close, j + 1)
    return len(text) if end < 0 else end + len(close)


# One token per match, with the whitespace before it, by ``ngx_conf_read_token``'s rules: at
# the start of a token ``{`` ``}`` ``;`` stand alone, ``#`` starts a comment and a quote a
# string. A word runs until whitespace, ``;`` or ``{`` (``}`` does not end it, ``/a}b`` is one
# word); a backslash takes the next character along, and a ``{`` right after ``$`` belongs to
# the word (``${name}``).
_SCAN = re.compile(
    r"""[ \t\r\n]*(?:
      (?P<punct>[{};])
    | (?P<comment>\#[^\n]*)
    | "(?P<dq>(?:[^"\\]|\\[\s\S])*)"
    | '(?P<sq>(?:[^'\\]|\\[\s\S])*)'
    | (?P<bad>["'])
    | (?P<word>(?:\\[\s\S]?|\$\{|[^ \t\r\n{;\\])+)
    | (?P<end>\Z)
    )""",
    re.X,
)
# nginx reads a config through a 4096-byte buffer and refuses a word, quoted string or comment
# that fills it ("too long parameter"); hookshift refuses the same, and so never spends more
# than linear time on a pathological one
MAX_TOKEN_BYTES = 4096
# where a token nginx refuses as too long may be (a character is at most 3 bytes here): a run
# of `_LONG` word characters (tried from the run's first only), a comment, or a quoted string of
# `_LONG` characters that do not close it (an escaped quote does not). A string is only looked
# for from a quote that can open one, at the start of a token: after whitespace, ``;``, ``{``,
# ``}`` or another quote; the quote that closes a string follows its text, so a big file whose
# short strings lie far apart matches nothing and is not lexed twice.
_LONG = (MAX_TOKEN_BYTES + 2) // 3
_WORD_CHAR = r"[^ \t\r\n;{}]"
_MAYBE_LONG = re.compile(
    rf"""
      (?<!{_WORD_CHAR}){_WORD_CHAR}{{{_LONG},}}
    | \#[^\n]{{{_LONG},}}
    | "(?<![^\s;{{}}"']")(?:[^"\\]|\\[\s\S]){{{_LONG},}}
    | '(?<![^\s;{{}}"']')(?:[^'\\]|\\[\s\S]){{{_LONG},}}
    """,
    re.X,
)
# what nginx accepts right after a closing quote
_AFTER_QUOTE = frozenset(" \t\r\n;{)")
_PUNCT: dict[str, TokenKind] = {"{": "open", "}": "close", ";": "semi"}

# (kind, text, start, end, line): tuples, because a big config has hundreds of thousands
RawToken = tuple[TokenKind, str, int, int, int]
_Tok = RawToken


def _scan(text: str, where: str) -> Iterator[_Tok]:
    pos = 0
    line = 1
    first = True  # the next word starts a statement
    lua_pending = False
    match = _SCAN.match
    count = text.count
    while True:
        m = match(text, pos)
        if m is None:  # cannot happen: the last alternative matches at any offset
            raise InputError("unreadable text", where=f"{where}:{line}", fix="check the file")
        group = m.lastgroup
        if group is None or group == "end":
            return
        start = m.start(group)
        if group == "dq" or group == "sq":
            start -= 1  # the token starts at its opening quote
        end = m.end()
        line += count("\n", pos, start)
        pos = end
        if end - start >= _LONG and group in ("word", "dq", "sq", "comment"):
            _check_length(text[start : end - 1 if group in ("dq", "sq") else end], where, line)
        if group == "word" or group == "dq" or group == "sq":
            if group != "word" and end < len(text) and text[end] not in _AFTER_QUOTE:
                raise InputError(
                    f"unexpected {text[end]!r} after a quoted string",
                    where=f"{where}:{line + count(chr(10), start, end)}",
                    fix="put a space after the closing quote",
                )
            raw = m.group(group)
            word = unescape(raw) if "\\" in raw else raw
            if group == "word" and first and word.endswith("_by_lua_block"):
                lua_pending = True
            first = False
            yield ("word", word, start, end, line)
            line += count("\n", start, end)
        elif group == "punct":
            ch = m.group(group)
            if ch == "{" and lua_pending:
                close = _skip_lua(text, start, where, line)
                yield ("open", "{", start, start + 1, line)
                yield ("raw", text[start + 1 : close], start + 1, close, line)
                line += count("\n", start, close)
                yield ("close", "}", close, close + 1, line)
                pos = close + 1
            else:
                yield (_PUNCT[ch], ch, start, end, line)
            lua_pending = False
            first = True
        elif group == "comment":
            yield ("comment", m.group(group)[1:].rstrip("\r"), start, end, line)
            first = True
        else:
            raise InputError("unterminated quoted string", where=f"{where}:{line}", fix="close it")


def _check_length(token: str, where: str, line: int) -> None:
    size = len(token.encode("utf-8", "surrogateescape"))
    if size >= MAX_TOKEN_BYTES:
        kind = {"#": "comment", '"': "quoted string", "'": "quoted string"}.get(token[0], "word")
        raise InputError(
            f"a {kind} of {size} bytes starts here: nginx refuses one of {MAX_TOKEN_BYTES} "
            "bytes or more (too long parameter)",
            where=f"{where}:{line}",
            fix="split a long comment over several lines" if kind == "comment" else "shorten it",
        )


def check_token_lengths(text: str, where: str) -> None:
    """`InputError` for a token nginx refuses as too long; quick when there is none."""
    if _MAYBE_LONG.search(text):
        parse(text, where)


def top_level_names(text: str, where: str = "<text>") -> Iterator[str]:
    """The names of the statements at the top of `text`, read lazily: a caller that learns
    what it needs from the first few (``events`` says "a main config") reads no further."""
    depth = 0
    first = True
    for kind, word, _, _, _ in _scan(text, where):
        if kind == "word":
            if first and depth == 0:
                yield word
            first = False
        elif kind in ("open", "close", "semi"):
            depth += {"open": 1, "close": -1}.get(kind, 0)
            first = True


def lex(text: str, where: str = "<text>") -> list[Token]:
    """Every token of `text`, in order, with offsets and 1-based lines."""
    return [Token(*tok) for tok in _scan(text, where)]


def scan(text: str, where: str = "<text>") -> Iterator[RawToken]:
    """`lex`'s tokens one at a time, as tuples ``(kind, text, start, end, line)``: for a reader
    that looks at each token once, so that a big file is never held as a list of tokens."""
    return _scan(text, where)


BOM = "\ufeff"  # what some Windows editors write before a file's first byte
BOM_ERROR = (
    "the file starts with a UTF-8 byte order mark, which nginx takes as part of the first "
    "word (unknown directive)"
)
BOM_FIX = "save the file without it (sed -i '1s/^\\xEF\\xBB\\xBF//' FILE)"


def parse(text: str, where: str = "<text>") -> tuple[Statement, ...]:
    """The statements of `text` as a tree with offsets (comments are left out).

    Raises `InputError` with file:line on unbalanced braces, a statement with no ``;`` or a
    byte order mark (nginx refuses all three).
    """
    if text.startswith(BOM):
        raise InputError(BOM_ERROR, where=f"{where}:1", fix=BOM_FIX)
    out: list[Statement] = []
    words: list[_Tok] = []
    # the enclosing blocks: (their parent's statements, their words, their '{' token)
    stack: list[tuple[list[Statement], list[_Tok], _Tok]] = []
    for tok in _scan(text, where):
        kind = tok[0]
        if kind == "word":
            words.append(tok)
        elif kind == "semi":
            if not words:
                raise InputError("unexpected ';'", where=f"{where}:{tok[4]}", fix="remove it")
            head = words[0]
            out.append(Statement(head[1], tuple(w[1] for w in words[1:]), head[4], head[2], tok[3]))
            words = []
        elif kind == "open":
            if not words:
                raise InputError("unexpected '{'", where=f"{where}:{tok[4]}", fix="fix it")
            if len(stack) >= MAX_DEPTH:
                raise too_deep(f"{where}:{tok[4]}")
            stack.append((out, words, tok))
            out, words = [], []
        elif kind == "close":
            if words:
                raise InputError(
                    "statement without ';'", where=f"{where}:{words[0][4]}", fix="add ';'"
                )
            if not stack:
                raise InputError("unexpected '}'", where=f"{where}:{tok[4]}", fix="remove it")
            parent, head_words, brace = stack.pop()
            head = head_words[0]
            parent.append(
                Statement(
                    head[1],
                    tuple(w[1] for w in head_words[1:]),
                    head[4],
                    head[2],
                    tok[3],
                    brace[2],
                    tok[2],
                    tuple(out),
                )
            )
            out, words = parent, []
    if stack:
        _, head_words, brace = stack[-1]
        opened = " ".join(w[1] for w in head_words)
        raise InputError(
            f"unexpected end of file, expecting '}}': `{opened} {{` (line {brace[4]}) is not "
            "closed",
            where=f"{where}:{text.count(chr(10)) + 1}",
            fix="add the missing '}' (the block that lacks it may be one inside that one)",
        )
    if words:
        raise InputError("statement without ';'", where=f"{where}:{words[0][4]}", fix="add ';'")
    return tuple(out)
