"""What every systemd unit hookshift writes needs: arguments quoted as systemd reads them,
absolute paths (systemd resolves no relative path in a unit), paths the unit's sandbox does not
hide, the hookshift to run, and the unit files written whole."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from hookshift.durable import write_atomic
from hookshift.errors import InputError

# Where a unit's hookshift belongs, and how it gets there: a venv of the system's Python outside
# the directories the sandbox hides, installed from hookshift's repository or a wheel built
# from it (hookshift is not installed from a package index)
SYSTEM_HOOKSHIFT = Path("/opt/hookshift/bin/hookshift")
INSTALL_HOOKSHIFT = (
    "/usr/bin/python3 -m venv /opt/hookshift && /opt/hookshift/bin/pip install /path/to/hookshift"
)


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
    """An ExecStart value: each argument quoted, separated by spaces."""
    return " ".join(systemd_quote(a) for a in argv)


def _one_line(value: str) -> None:
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise InputError(
            f"{value!r} holds a line break or another control character, which a unit file "
            "cannot hold",
            fix="use a path without one",
        )


def unit_path(path: str) -> str:
    """A directive that takes one path, the rest of its line (``EnvironmentFile=``): systemd
    expands `%` specifiers there but neither unquotes nor expands `$`, so quotes or a doubled
    `$` would become part of the name (a quoted path is "not absolute", and systemd ignores
    the directive with only a log line)."""
    _one_line(path)
    return path.replace("%", "%%")


def path_list(paths: Iterable[str]) -> str:
    """A directive that takes paths separated by spaces (``ReadWritePaths=``): each quoted when
    it holds a space or a quote, `%` doubled; `$` is not expanded there, so it stays single."""
    words = []
    for path in paths:
        _one_line(path)
        text = path.replace("%", "%%")
        if re.search(r"[\s\"'\\]", text):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(text)
    return " ".join(words)


def require_absolute(paths: Mapping[str, Path]) -> None:
    """Refuse, naming its option, the first of `paths` (option -> path) that is relative."""
    for option, path in paths.items():
        if not path.is_absolute():
            raise InputError(
                f"{path} is not an absolute path",
                where=option,
                fix="systemd needs absolute paths: write it from /",
            )


# What the sandbox of hookshift's services (templates/systemd/_hardening.j2) hides from them:
# ProtectHome=yes leaves these empty and inaccessible; PrivateTmp=yes gives each service a /tmp
# and /var/tmp of its own, emptied when it stops.
SANDBOX_HIDES: dict[Path, str] = {
    Path("/home"): "ProtectHome=yes",
    Path("/root"): "ProtectHome=yes",
    Path("/run/user"): "ProtectHome=yes",
    Path("/tmp"): "PrivateTmp=yes",
    Path("/var/tmp"): "PrivateTmp=yes",
}


@dataclass(frozen=True)
class Hidden:
    """A path a sandboxed service cannot reach: ``path`` (``given``, or where its links lead)
    is under ``top``, which ``directive`` hides; ``via`` says how the path came up when it is
    not the one the user gave (``its #! line names ...``)."""

    given: Path
    path: Path
    top: Path
    directive: str
    via: str = ""

    def reason(self, them: str = "the services") -> str:
        """Why `them` cannot reach it, in the user's words."""
        parts = [self.via] if self.via else []
        if self.path != self.given:
            parts.append(f"{'a link' if self.via else 'it is a link'} to {self.path}")
        if self.directive == "PrivateTmp=yes":
            rule = f"{self.directive} gives {them} a private {self.top}, emptied at every stop"
        else:
            rule = f"{self.directive} hides {self.top} from {them}"
        return ", ".join([*parts, f"and {rule}"]) if parts else rule


def hidden(path: Path, via: str = "", hides: Mapping[Path, str] = SANDBOX_HIDES) -> Hidden | None:
    """Where the sandbox (`hides`: directory -> the directive that hides it) hides `path`, as
    written or with its links resolved; None when the service sees it."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a loop of links: the path as written is all there is
        real = path
    for seen in dict.fromkeys((path, real)):
        for top, directive in hides.items():
            if seen.is_relative_to(top):
                return Hidden(path, seen, top, directive, via)
    return None


def _program_paths(program: Path) -> Iterator[tuple[Path, str]]:
    """What running `program` reads: the file, the interpreter on its #! line, and the Python a
    virtualenv's interpreter was made from (its pyvenv.cfg ``home``), which holds the standard
    library even when the venv copied the interpreter itself."""
    yield program, ""
    if not program.is_file():  # not there yet (or a FIFO, whose read would block)
        return
    try:
        with program.open("rb") as handle:
            first = handle.readline(4096)
    except OSError:  # not readable here: only the path itself is known
        return
    if not first.startswith(b"#!"):
        return
    words = first[2:].decode("utf-8", "replace").split()
    if not words or not words[0].startswith("/") or Path(words[0]).name == "env":
        return  # `#!/usr/bin/env python3`: found on the service's PATH, not known here
    interpreter = Path(words[0])
    yield interpreter, f"its #! line names {interpreter}"
    config = interpreter.parent.parent / "pyvenv.cfg"  # a venv: VENV/bin/python
    try:
        lines = config.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return
    for line in lines:
        name, _, value = line.partition("=")
        if name.strip() == "home" and value.strip().startswith("/"):
            home = Path(value.strip())
            yield home, f"its #! line names a virtualenv made from the Python in {home}"


def hidden_program(program: Path, hides: Mapping[Path, str] = SANDBOX_HIDES) -> Hidden | None:
    """Where the sandbox hides what running `program` needs (see `_program_paths`), if it
    hides any of it."""
    for path, via in _program_paths(program):
        found = hidden(path, via, hides)
        if found is not None:
            return found
    return None


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
