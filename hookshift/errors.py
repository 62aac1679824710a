"""The one error type that reaches the user as a single line.

Every bad input (a missing file, a malformed config, a path that matches nothing) is raised as
`InputError` with *what* went wrong, *where* (``file:line`` when there is one) and *how to fix it*.
The CLI turns it into one line on stderr and exit code 2, before anything is written.
"""

from __future__ import annotations

_CONTROL = {c: f"\\x{c:02x}" for c in range(32) if c != 9} | {10: "\\n", 13: "\\r"}


class InputError(Exception):
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


class OperationError(Exception):
    """A step that failed at run time (nginx -t rejected a result, a reload failed): exit 1."""

    exit_code = 1
