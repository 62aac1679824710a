"""nginx regexes (PCRE) evaluated with Python's engine: one conversion for every part.

PCRE and Python agree on the syntax nginx configs use, except for named groups: PCRE's
``(?<name>...)`` and ``(?'name'...)`` are Python's ``(?P<name>...)``; lookbehinds ``(?<=``
and ``(?<!`` stay as they are; and for an option set in the middle of a pattern
(``^/hooks/(?i)callback``), which Python takes only at the very start: PCRE applies it to the
rest of its group, and to the later alternatives of the group too, and Python says the same
with a scoped group around each (``^/hooks/(?i:callback)``).

nginx runs PCRE without its UTF mode: a pattern and the URI it is matched against are bytes.
``.`` is one byte (a Korean syllable is three), ``\\w``, ``\\d``, ``\\s`` and ``\b`` and a
caseless match know ASCII only (PCRE's default tables), and a literal Korean letter in a
pattern is its UTF-8 bytes. Python matches the same when both sides are their bytes read as
Latin-1 (one character per byte) under ``re.ASCII``: `NginxRegex` does that, and gives the
groups back as text.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from hookshift.errors import InputError

# PCRE's POSIX classes (only inside a bracket expression), in the C locale nginx's PCRE uses
_POSIX_CLASSES = {
    "alpha": "A-Za-z",
    "digit": "0-9",
    "alnum": "A-Za-z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": "\\t\\n\\x0b\\x0c\\r ",
    "blank": " \\t",
    "xdigit": "0-9A-Fa-f",
    "word": "A-Za-z0-9_",
    "punct": "!-/:-@\\[-`{-~",
    "cntrl": "\\x00-\\x1f\\x7f",
    "print": " -~",
    "graph": "!-~",
    "ascii": "\\x00-\\x7f",
}
_POSIX = re.compile(r"(?<!\\)\[:(\^?)([a-z]+):\]")
# `{,n}`: a quantifier to Python, literal text to the PCRE2 nginx links (before 10.43)
_OPEN_MIN = re.compile(r"(?<!\\)\{(,\d+)\}")
# an option setting of its own, `(?i)` or `(?-i)`, as opposed to a group `(?i:...)`
_OPTIONS = re.compile(r"\(\?([a-zA-Z]*(?:-[a-zA-Z]*)?)\)")
# how a group opens: `(`, `(?:`, `(?=`, `(?!`, `(?<=`, `(?<!`, `(?>`, `(?P<name>`, `(?i:`
_OPENER = re.compile(r"\((?:\?(?:P<\w+>|<[=!]|[:=!>]|[a-zA-Z]*(?:-[a-zA-Z]*)?:))?")
# the options Python can scope to a group (`(?x)`'s comments could hide a parenthesis)
_SCOPED = frozenset("ims-")


def _posix_class(found: re.Match[str]) -> str:
    negated, name = found.groups()
    if negated or name not in _POSIX_CLASSES:
        raise re.error(f"POSIX class [:{negated}{name}:] is not one hookshift reads")
    return _POSIX_CLASSES[name]


def to_python(pattern: str) -> str:
    """The Python spelling of a PCRE pattern: named groups and back-references renamed, POSIX
    classes (``[[:digit:]]``) spelled out, and ``{,n}`` kept literal as nginx's PCRE2 reads it."""
    py = re.sub(r"\(\?<(?![=!])([A-Za-z_]\w*)>", r"(?P<\1>", pattern)
    py = re.sub(r"\(\?'([A-Za-z_]\w*)'", r"(?P<\1>", py)
    py = re.sub(r"\\k<([A-Za-z_]\w*)>", r"(?P=\1)", py)
    py = _POSIX.sub(_posix_class, py)
    return _scoped_options(_OPEN_MIN.sub(r"\\{\1\\}", py))


def _scoped_options(pattern: str) -> str:
    """`pattern` with each option setting after its start (``a(?i)b|c``) made a scoped group
    over what PCRE applies it to (``a(?i:b)|(?i:c)``); unchanged when there is none, so a
    leading ``(?x)`` stays Python's own."""
    if not any(found.start() for found in _OPTIONS.finditer(pattern)):
        return pattern
    converted, end = _alternatives(pattern, 0)
    if end != len(pattern):
        raise re.error("unbalanced parenthesis", pattern, end)
    return converted


def _alternatives(pattern: str, i: int) -> tuple[str, int]:
    """The alternatives from `i` to the ``)`` that closes their group (or the end),
    converted, and where they end. An option set in one alternative holds in the later ones."""
    branches: list[str] = []
    carried: list[str] = []
    while True:
        text, options, i = _branch(pattern, i)
        for option in reversed(carried):
            text = f"(?{option}:{text})"
        branches.append(text)
        carried += options
        if i < len(pattern) and pattern[i] == "|":
            i += 1
            continue
        return "|".join(branches), i


def _branch(pattern: str, i: int) -> tuple[str, list[str], int]:
    """One alternative from `i` to its ``|`` or ``)``, converted; the options it sets at its
    own level (in order); where it ends."""
    out: list[str] = []
    while i < len(pattern) and pattern[i] not in "|)":
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        elif char == "[":
            end = _class_end(pattern, i)
            out.append(pattern[i:end])
            i = end
        elif char != "(":
            out.append(char)
            i += 1
        elif (options := _OPTIONS.match(pattern, i)) is not None:
            option = options.group(1)
            if not set(option) <= _SCOPED or option.strip("-") == "":
                raise re.error(f"option (?{option}) in the middle of a regex", pattern, i)
            rest, more, i = _branch(pattern, options.end())
            out.append(f"(?{option}:{rest})")
            return "".join(out), [option, *more], i
        elif pattern.startswith("(?#", i):
            end = pattern.find(")", i)
            if end < 0:
                raise re.error("missing ), unterminated comment", pattern, i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            opener = _OPENER.match(pattern, i)
            assert opener is not None  # a bare `(` matches
            inner, end = _alternatives(pattern, opener.end())
            if end >= len(pattern):
                raise re.error("missing ), unterminated subpattern", pattern, i)
            out.append(f"{opener.group(0)}{inner})")
            i = end + 1
    return "".join(out), [], i


def _class_end(pattern: str, i: int) -> int:
    """Where the bracket expression that opens at `i` ends (after its ``]``); a ``]`` right
    after ``[`` or ``[^`` is a member."""
    j = i + 1
    if pattern.startswith("^", j):
        j += 1
    if pattern.startswith("]", j):
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    if j >= len(pattern):
        raise re.error("unterminated character set", pattern, i)
    return j + 1


def _as_bytes(text: str) -> str:
    """`text`'s UTF-8 bytes as one character each (what PCRE sees without UTF mode)."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _as_text(data: str) -> str:
    """The reverse of `_as_bytes`: bytes that are not UTF-8 stay as surrogate escapes."""
    return data.encode("latin-1").decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class NginxMatch:
    """A match of an `NginxRegex`: its groups as text."""

    match: re.Match[str]

    def group(self, key: int | str = 0) -> str | None:
        found = self.match.group(key)
        return None if found is None else _as_text(found)

    @property
    def groups(self) -> int:
        return self.match.re.groups

    @property
    def groupindex(self) -> Mapping[str, int]:
        return self.match.re.groupindex


@dataclass(frozen=True)
class NginxRegex:
    """An nginx regex, matching as nginx's PCRE does (see the module doc)."""

    compiled: re.Pattern[str]

    def search(self, text: str) -> NginxMatch | None:
        found = self.compiled.search(_as_bytes(text))
        return None if found is None else NginxMatch(found)


@lru_cache(maxsize=4096)
def compile_pcre(pattern: str, ignore_case: bool = False) -> NginxRegex:
    """Compile an nginx regex; raises `re.error` when Python's engine cannot read it.

    Cached: the same ``server_name`` or ``location`` regex is asked about for every request
    the matcher evaluates, and a big config repeats a few patterns thousands of times.
    """
    flags = re.ASCII | (re.IGNORECASE if ignore_case else 0)
    with warnings.catch_warnings():
        # "possible nested set" (a `[[` PCRE reads as it always did): not the user's concern
        warnings.simplefilter("ignore", FutureWarning)
        return NginxRegex(re.compile(to_python(_as_bytes(pattern)), flags))


def compile_or_refuse(
    pattern: str, ignore_case: bool, what: str, where: str, fix: str
) -> NginxRegex:
    """`compile_pcre`, or `InputError` naming `what` (``location ~ ...``) at `where`: a regex
    the route depends on must be read, or the choice would be a guess."""
    try:
        return compile_pcre(pattern, ignore_case)
    except re.error as exc:
        raise InputError(
            f"cannot evaluate the regex of {what} ({exc})",
            where=where,
            fix=f"{fix}, or simplify the regex",
        ) from None
