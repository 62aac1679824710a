"""nginx regexes (PCRE) evaluated with Python's engine: one conversion for every part.

PCRE and Python agree on the syntax nginx configs use, except for named groups: PCRE's
``(?<name>...)`` and ``(?'name'...)`` are Python's ``(?P<name>...)``; lookbehinds ``(?<=``
and ``(?<!`` stay as they are.

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
    return _OPEN_MIN.sub(r"\\{\1\\}", py)


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
