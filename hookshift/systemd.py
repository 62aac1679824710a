"""What every systemd unit hookshift writes needs: arguments quoted as systemd reads them, and
absolute paths (systemd resolves no relative path in a unit)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from hookshift.errors import InputError


def systemd_quote(arg: str) -> str:
    """One ExecStart argument as systemd reads it: `%` and `$` would be expanded (specifiers,
    environment variables) and whitespace would split it."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if text and not re.search(r"[\s\"'\\;]", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command_line(argv: Iterable[str]) -> str:
    """An ExecStart (or ReadWritePaths) value: each argument quoted, separated by spaces."""
    return " ".join(systemd_quote(a) for a in argv)


def require_absolute(paths: Mapping[str, Path]) -> None:
    """Refuse, naming its option, the first of `paths` (option -> path) that is relative."""
    for option, path in paths.items():
        if not path.is_absolute():
            raise InputError(
                f"{path} is not an absolute path",
                where=option,
                fix="systemd needs absolute paths: write it from /",
            )
