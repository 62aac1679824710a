"""Running ``hookshift ARGV`` in the test's own process: its exit code, stdout and stderr.

No process is started, so a test that never reaches nginx or SQS stays in the fast tier. Two
ways to read the output, for tests with and without pytest's ``capsys``.
"""

from __future__ import annotations

import contextlib
import io

import pytest

from hookshift.cli import main


def _exit_code(exited: SystemExit) -> int:
    code = exited.code
    if code is None:
        return 0
    assert isinstance(code, int), code  # click exits with a number; a message would be a bug
    return code


def run_in_process(*argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``hookshift ARGV``, its streams redirected here."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exited:
            code = _exit_code(exited)
    return code, out.getvalue(), err.getvalue()


def run_captured(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``hookshift ARGV``, read through `capsys` (which also
    holds what the command printed through click's own streams)."""
    code = 0
    try:
        main(list(argv))
    except SystemExit as exited:
        code = _exit_code(exited)
    out, err = capsys.readouterr()
    return code, out, err
