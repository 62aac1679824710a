"""The console script's contract: areas load lazily; errors are one line with an exit code."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from hookshift import cli as cli_module
from hookshift.errors import InputError


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookshift", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.e2e
def test_help_lists_every_area_as_a_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    listed = result.stdout.split("Commands:", 1)[1].split()
    for name in cli_module.COMMANDS:
        assert name in listed, f"{name} is not listed: is {cli_module.COMMANDS[name]} importable?"


@pytest.mark.e2e
def test_unknown_command_is_a_usage_error_with_exit_2() -> None:
    result = run("no-such-command")
    assert result.returncode == 2
    assert "no-such-command" in result.stderr
    assert result.stdout == ""


def test_input_error_is_one_line_on_stderr_with_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    @click.command()
    def broken() -> None:
        raise InputError("bad thing", where="nginx.conf:12", fix="do the other thing")

    monkeypatch.setitem(cli_module.COMMANDS, "broken", "tests.hookshift.test_cli:BROKEN")
    monkeypatch.setattr(sys.modules[__name__], "BROKEN", broken, raising=False)
    with pytest.raises(SystemExit) as exited:
        cli_module.main(["broken"])
    assert exited.value.code == 2


def test_input_error_line_names_where_what_and_fix() -> None:
    line = InputError("path matches no location", where="a.conf:3", fix="pass --path").line()
    assert line == "a.conf:3: path matches no location (fix: pass --path)"
    assert "\n" not in line


def test_ctx_exit_code_becomes_the_process_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    @click.command()
    @click.pass_context
    def failing(ctx: click.Context) -> None:
        ctx.exit(1)

    monkeypatch.setitem(cli_module.COMMANDS, "failing", "tests.hookshift.test_cli:FAILING")
    monkeypatch.setattr(sys.modules[__name__], "FAILING", failing, raising=False)
    with pytest.raises(SystemExit) as exited:
        cli_module.main(["failing"])
    assert exited.value.code == 1
