"""The errors hookshift raises on purpose, all under `HookshiftError`.

The CLI catches `HookshiftError` once and prints its single line with its exit code; a caller
from Python catches the same base. Every bad input (a missing file, a malformed config, a path
that matches nothing) is raised as `InputError` with *what* went wrong, *where* (``file:line``
when there is one) and *how to fix it*. The CLI turns it into one line on stderr and exit code
2, before anything is written.
"""

from __future__ import annotations

__all__ = [
    "REHEARSE_EXTRA",
    "REHEARSE_MODULES",
    "HookshiftError",
    "InputError",
    "MissingExtra",
    "OperationError",
    "is_missing_extra",
]

_CONTROL = {c: f"\\x{c:02x}" for c in range(32) if c != 9} | {10: "\\n", 13: "\\r"}


class HookshiftError(Exception):
    """An error hookshift raises on purpose: one line for the user, and the exit code."""

    exit_code = 1

    def line(self) -> str:
        """The single line shown to the user."""
        return str(self).translate(_CONTROL)


class InputError(HookshiftError):
    """Bad input or usage: reported as one line, exit code 2, nothing written."""

    exit_code = 2

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        """The single line shown to the user: ``where: what (fix: ...)``."""
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.fix:
            text += f" (fix: {self.fix})"
        return text.translate(_CONTROL)  # a quoted value may hold a newline: still one line


class OperationError(HookshiftError):
    """A step that failed at run time (nginx -t rejected a result, a reload failed): exit 1."""

    exit_code = 1


# hookshift is installed from its repository (or a wheel built from it), not from an index
REHEARSE_EXTRA = (
    "install hookshift with its rehearse extra: pip install '/path/to/hookshift[rehearse]' "
    "(the repository), or run `make venv` in it"
)
# the top-level modules only `hookshift[rehearse]` brings (the stage emulator, SQS on moto, DNS)
REHEARSE_MODULES = frozenset(
    {"airspeed", "trustme", "dnslib", "moto", "flask", "werkzeug", "jsonschema"}
)


class MissingExtra(InputError):
    """A command needs the local test bed, which this install left out: exit 2."""

    def __init__(self, command: str) -> None:
        super().__init__(
            f"{command} needs the local test bed, which this install does not include",
            fix=REHEARSE_EXTRA,
        )


def is_missing_extra(exc: ModuleNotFoundError) -> bool:
    """Whether `exc` is a module of `hookshift[rehearse]` that is not installed."""
    return (exc.name or "").partition(".")[0] in REHEARSE_MODULES
