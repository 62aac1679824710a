"""What every systemd unit hookshift writes needs: arguments quoted as systemd reads them,
absolute paths (systemd resolves no relative path in a unit), the hookshift to run, and the
unit files written whole."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from hookshift.durable import write_atomic
from hookshift.errors import InputError


def systemd_quote(arg: str) -> str:
    """One ExecStart argument as systemd reads it: `%` and `$` would be expanded (specifiers,
    environment variables) and whitespace would split it. A line break would end the line
    and start a directive of its own (`ExecStartPre=...`, `User=root`): such a value is
    refused, as is any other control character."""
    if re.search(r"[\x00-\x1f\x7f]", arg):
        raise InputError(
            f"{arg!r} holds a line break or another control character, which a unit file "
            "cannot hold in a command line",
            fix="write the value on one line",
        )
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


def running_hookshift() -> Path:
    """The hookshift a unit runs when none is named: the one on PATH (resolved), else the one
    installed beside the running Python."""
    found = shutil.which("hookshift")
    return Path(found).resolve() if found else Path(sys.executable).with_name("hookshift")


def write_units(units: Mapping[str, str], out_dir: Path) -> list[Path]:
    """Write each unit (file name -> text) into `out_dir`, atomically; the paths written."""
    written = []
    for name, text in units.items():
        write_atomic(out_dir / name, text)
        written.append(out_dir / name)
    return written
