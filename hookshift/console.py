"""Terminal output conventions shared by every command.

Data goes to stdout, diagnostics to stderr. Colour is used only when the stream is a TTY
(click strips ANSI codes otherwise), so piping ``hookshift ... | jq`` stays clean.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from hookshift.errors import InputError

_Command = TypeVar("_Command", bound=Callable[..., Any])

_LEVEL_COLOURS = {"error": "red", "warning": "yellow", "info": "cyan", "ok": "green"}

EXIT_SIGPIPE = 128 + 13  # what a shell reports for a process SIGPIPE ended


class NonEmptyPath(click.Path):
    """A path option that refuses an empty value: click would take ``""`` as the current
    directory, and a path that is checked only for existing would pass. `hint` says what to
    pass instead."""

    def __init__(self, hint: str, *, file_okay: bool = True) -> None:
        super().__init__(path_type=Path, readable=False, file_okay=file_okay)
        self.hint = hint

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail(f"is empty: {self.hint}", param, ctx)
        return super().convert(value, param, ctx)


class ConfigPath(NonEmptyPath):
    """A path option naming a config hookshift reads itself: an empty value is refused, and
    an unreadable file is left to hookshift's reader, which says why in the user's terms
    (click would only say "not readable")."""

    def __init__(self) -> None:
        super().__init__("pass the config's path")


def diag(level: str, message: str) -> None:
    """Print one diagnostic line on stderr, coloured by level on a TTY."""
    label = click.style(f"{level}:", fg=_LEVEL_COLOURS.get(level), bold=level == "error")
    click.echo(f"{label} {message}", err=True)


#: The `after` of every `stdout_guard` open, outermost first: the guard around one write
#: (`out`, `emit_json`) is often inside a command's own, which knows what was already done.
_AFTER: list[str] = []


@contextlib.contextmanager
def stdout_guard(after: str = "") -> Iterator[None]:
    """Output that cannot be written (a full disk, ``> /dev/full``, a closed pipe) is one
    error line with exit 2, not a traceback; `after` says what was already done (e.g. that
    the config was changed). Guards nest: the line carries the `after` of each one open.
    A pipe whose reader stopped reading (``| head``) when nothing was done ends the command
    quietly instead (exit 141): the reader chose to stop, and no line is needed.

    stdout then points at /dev/null: Python flushes stdout again at exit, and that second
    failure would print its own traceback-like noise.
    """
    _AFTER.append(after)
    try:
        yield
    except OSError as exc:
        _silence_stdout()
        done = "".join(_AFTER)
        if exc.errno != errno.EPIPE:
            raise InputError(
                f"cannot write to standard output: {exc.strerror or exc}{done}",
                fix="send the output to a file on a disk with space, or to a pipe",
            ) from None
        if not done:
            # the reader took what it wanted (`| head`) and nothing else is lost: end quietly,
            # with the status of a process ended by SIGPIPE, as other Unix tools do
            raise click.exceptions.Exit(EXIT_SIGPIPE) from None
        raise InputError(
            f"cannot write to standard output: the reader went away{done}",
            fix="keep the reader open until the output ends (`| head` closes it early), or "
            "send the output to a file",
        ) from None
    finally:
        _AFTER.pop()


def out(text: str, *, nl: bool = True) -> None:
    """Write data on stdout (see `stdout_guard` for a stdout that cannot take it)."""
    with stdout_guard():
        click.echo(text, nl=nl)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind stdout (a test's capture)
        pass


def emit_json(data: Any) -> None:
    """Write machine-readable output on stdout (UTF-8, stable key order as given)."""
    out(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def apply_options(command: _Command, options: Iterable[Callable[[_Command], _Command]]) -> _Command:
    """`command` with click's option decorators applied so that `--help` lists them in the
    order given (decorators apply bottom-up, so the list is applied from its end)."""
    for option in reversed(list(options)):
        command = option(command)
    return command
