"""Tokenize nginx configuration text with exact offsets, and parse it into positioned statements.

crossplane reports lines only; an edit that must leave every other byte alone needs the exact
offset of a block's ``{`` and ``}`` (one-line blocks such as ``location /cb { proxy_pass
http://app; }`` put several statements on one line). This lexer follows nginx's own rules
(``ngx_conf_read_token``): whitespace separates words, ``;`` ``{`` ``}`` end them, ``#`` starts a
comment at a word boundary, quotes group, a backslash escapes the next character, and the body
of a ``*_by_lua_block`` is raw Lua (braces inside strings and comments do not count).

Text is a ``str`` decoded with ``surrogateescape`` so arbitrary bytes round-trip exactly and
offsets are indices into that string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hookshift.errors import InputError

TokenKind = Literal["word", "open", "close", "semi", "comment", "raw"]


@dataclass(frozen=True)
class Token:
    """One token: `text` is the unquoted, unescaped value; `start`/`end` index the source."""

    kind: TokenKind
    text: str
    start: int
    end: int
    line: int


@dataclass(frozen=True)
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
_SPACE = " \t\r\n"


def _unescape(raw: str) -> str:
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


def lex(text: str, where: str = "<text>") -> list[Token]:
    """Every token of `text`, in order, with offsets and 1-based lines."""
    tokens: list[Token] = []
    i = 0
    n = len(text)
    line = 1
    lua_pending = False
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
            continue
        if ch in _SPACE:
            i += 1
            continue
        if ch == "#":
            end = text.find("\n", i)
            end = n if end < 0 else end
            tokens.append(Token("comment", text[i + 1 : end].rstrip("\r"), i, end, line))
            i = end
            continue
        if ch == "{" and lua_pending:
            close = _skip_lua(text, i, where, line)
            tokens.append(Token("open", "{", i, i + 1, line))
            body_line = line
            line += text.count("\n", i, close)
            tokens.append(Token("raw", text[i + 1 : close], i + 1, close, body_line))
            tokens.append(Token("close", "}", close, close + 1, line))
            i = close + 1
            lua_pending = False
            continue
        if ch in "{};":
            kind: TokenKind = "open" if ch == "{" else "close" if ch == "}" else "semi"
            tokens.append(Token(kind, ch, i, i + 1, line))
            lua_pending = False
            i += 1
            continue
        start = i
        start_line = line
        if ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch:
                if text[j] == "\\":
                    j += 1
                elif text[j] == "\n":
                    line += 1
                j += 1
            if j >= n:
                raise InputError(
                    "unterminated quoted string", where=f"{where}:{start_line}", fix="close it"
                )
            word = _unescape(text[i + 1 : j])
            i = j + 1
        else:
            j = i
            while j < n:
                c = text[j]
                if c == "\\" and j + 1 < n:
                    j += 2
                    continue
                if c in _SPACE or c in "{};":
                    break
                if c == "$" and j + 1 < n and text[j + 1] == "{":
                    close = text.find("}", j)
                    j = n if close < 0 else close + 1
                    continue
                j += 1
            word = _unescape(text[i:j])
            i = j
        is_first = not tokens or tokens[-1].kind in ("open", "close", "semi", "comment")
        if is_first and word.endswith("_by_lua_block"):
            lua_pending = True
        tokens.append(Token("word", word, start, i, start_line))
    return tokens


def parse(text: str, where: str = "<text>") -> tuple[Statement, ...]:
    """The statements of `text` as a tree with offsets (comments are left out).

    Raises `InputError` with file:line on unbalanced braces or a statement with no ``;``.
    """
    tokens = lex(text, where)
    pos = 0

    def block(depth: int) -> tuple[tuple[Statement, ...], int]:
        nonlocal pos
        out: list[Statement] = []
        words: list[Token] = []
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if tok.kind == "comment":
                continue
            if tok.kind in ("word", "raw"):
                if tok.kind == "word":
                    words.append(tok)
                continue
            if tok.kind == "semi":
                if not words:
                    raise InputError("unexpected ';'", where=f"{where}:{tok.line}", fix="remove it")
                out.append(
                    Statement(
                        words[0].text,
                        tuple(w.text for w in words[1:]),
                        words[0].line,
                        words[0].start,
                        tok.end,
                    )
                )
                words = []
                continue
            if tok.kind == "open":
                if not words:
                    raise InputError("unexpected '{'", where=f"{where}:{tok.line}", fix="fix it")
                children, close = block(depth + 1)
                out.append(
                    Statement(
                        words[0].text,
                        tuple(w.text for w in words[1:]),
                        words[0].line,
                        words[0].start,
                        close + 1,
                        tok.start,
                        close,
                        children,
                    )
                )
                words = []
                continue
            # close
            if words:
                raise InputError(
                    "statement without ';'", where=f"{where}:{words[0].line}", fix="add ';'"
                )
            if depth == 0:
                raise InputError("unexpected '}'", where=f"{where}:{tok.line}", fix="remove it")
            return tuple(out), tok.start
        if depth != 0:
            raise InputError("unexpected end of file, expecting '}'", where=where, fix="close it")
        if words:
            raise InputError(
                "statement without ';'", where=f"{where}:{words[0].line}", fix="add ';'"
            )
        return tuple(out), len(text)

    statements, _ = block(0)
    return statements
