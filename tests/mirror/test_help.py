"""`hookshift mirror COMMAND --help`: every option says what it is for, and every command shows
examples to start from."""

from __future__ import annotations

import click
import pytest

from hookshift.mirror.cli import mirror
from tests.in_process import run_in_process

COMMANDS = sorted(mirror.commands)


def test_every_mirror_command_is_covered() -> None:
    assert COMMANDS == ["apply", "plan", "refresh", "refresh-units", "remove"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_text(name: str) -> None:
    command = mirror.commands[name]
    silent = [
        "/".join(p.opts)
        for p in command.params
        if isinstance(p, click.Option) and not (p.help or "").strip()
    ]
    assert silent == [], f"mirror {name}: options without help"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_s_help_shows_an_example_of_itself(name: str) -> None:
    code, stdout, stderr = run_in_process("mirror", name, "--help")
    assert code == 0, stderr
    assert "Example" in stdout
    assert f"  hookshift mirror {name} " in stdout, f"no example runs `mirror {name}`"
