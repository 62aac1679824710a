"""What an operator at a terminal sees when a command line is incomplete, or stdout cannot take
the output: click's own words, made one line with a fix that points at the right command, and
no traceback. In-process (`cli.main`): no process is started."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from hookshift import cli as cli_module
from hookshift.console import stdout_guard
from hookshift.errors import InputError


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        cli_module.main(list(args))
    captured = capsys.readouterr()
    code = exited.value.code
    assert isinstance(code, int)
    return code, captured.out, captured.err


@pytest.mark.parametrize("words", [(), ("cutover",)])
def test_a_group_run_without_its_command_shows_its_help_not_an_error_around_it(
    capsys: pytest.CaptureFixture[str], words: tuple[str, ...]
) -> None:
    code, out, err = _main(capsys, *words)
    assert code == 2
    assert err.startswith(f"Usage: {' '.join(('hookshift', *words))} [OPTIONS] COMMAND")
    assert "error:" not in err and "(fix: see" not in err
    assert out == ""


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("cutover", "status", "--format"), "hookshift cutover status"),
        (("cutover", "advance", "--state"), "hookshift cutover advance"),
        (("rehearse", "--workdir"), "hookshift rehearse"),
    ],
)
def test_an_option_without_its_value_points_at_its_own_command_s_help(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], command: str
) -> None:
    code, _, err = _main(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1
    assert f"requires an argument. (fix: see `{command} --help`)" in err


def _write(failure: OSError) -> None:
    """A write guarded as `out` and `emit_json` guard theirs, which fails with `failure`."""
    with stdout_guard():
        raise failure


def _write_inside(after: str, failure: OSError) -> None:
    """`_write` inside a command's own guard, which says what the command had done."""
    with stdout_guard(after):
        _write(failure)


def test_a_failed_write_inside_a_command_s_guard_says_what_the_command_had_done(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`emit_json` and `out` guard their own write; the command around them knows that the
    config was changed, and a full stdout must not hide it."""
    with pytest.raises(InputError) as raised:
        _write_inside(" (the config was changed)", OSError(errno.ENOSPC, "No space left on device"))
    assert raised.value.what == (
        "cannot write to standard output: No space left on device (the config was changed)"
    )


@pytest.mark.parametrize(
    ("workdir", "says"),
    [
        ("a-file/run", "cannot make the run directory: a file stands where a directory must be"),
        ("", "is empty: pass a directory, e.g. --workdir rehearsal-run"),
    ],
)
def test_a_rehearsal_directory_that_cannot_be_made_is_one_line_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workdir: str,
    says: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    code, out, err = _main(capsys, "rehearse", "--workdir", workdir)
    assert code == 2, err
    assert err.count("\n") == 1 and says in err
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_reader_that_stopped_reading_ends_a_command_quietly_unless_something_was_done() -> None:
    import click

    with pytest.raises(click.exceptions.Exit) as ended, stdout_guard():
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")
    assert ended.value.exit_code == 141
    with pytest.raises(InputError) as raised:
        _write_inside(" (the config was changed)", BrokenPipeError(errno.EPIPE, "Broken pipe"))
    assert raised.value.line() == (
        "cannot write to standard output: the reader went away (the config was changed) "
        "(fix: keep the reader open until the output ends (`| head` closes it early), or send "
        "the output to a file)"
    )
