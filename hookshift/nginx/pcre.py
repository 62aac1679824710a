"""nginx regexes (PCRE) evaluated with Python's engine: one conversion for every part.

PCRE and Python agree on the syntax nginx configs use, except for named groups: PCRE's
``(?<name>...)`` and ``(?'name'...)`` are Python's ``(?P<name>...)``; lookbehinds ``(?<=``
and ``(?<!`` stay as they are.
"""

from __future__ import annotations

import re
from functools import lru_cache

from hookshift.errors import InputError


def to_python(pattern: str) -> str:
    """The Python spelling of a PCRE pattern (named groups and back-references renamed)."""
    py = re.sub(r"\(\?<(?![=!])([A-Za-z_]\w*)>", r"(?P<\1>", pattern)
    py = re.sub(r"\(\?'([A-Za-z_]\w*)'", r"(?P<\1>", py)
    return re.sub(r"\\k<([A-Za-z_]\w*)>", r"(?P=\1)", py)


@lru_cache(maxsize=4096)
def compile_pcre(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile an nginx regex; raises `re.error` when Python's engine cannot read it.

    Cached: the same ``server_name`` or ``location`` regex is asked about for every request
    the matcher evaluates, and a big config repeats a few patterns thousands of times.
    """
    return re.compile(to_python(pattern), re.IGNORECASE if ignore_case else 0)


def compile_or_refuse(
    pattern: str, ignore_case: bool, what: str, where: str, fix: str
) -> re.Pattern[str]:
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
