"""Terminal output conventions shared by every command.

Data goes to stdout, diagnostics to stderr. Colour is used only when the stream is a TTY
(click strips ANSI codes otherwise), so piping ``hookshift ... | jq`` stays clean.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

_LEVEL_COLOURS = {"error": "red", "warning": "yellow", "info": "cyan", "ok": "green"}


def diag(level: str, message: str) -> None:
    """Print one diagnostic line on stderr, coloured by level on a TTY."""
    label = click.style(f"{level}:", fg=_LEVEL_COLOURS.get(level), bold=level == "error")
    click.echo(f"{label} {message}", err=True)


def emit_json(data: Any) -> None:
    """Write machine-readable output on stdout (UTF-8, stable key order as given)."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
