"""How every test of a command-line refusal reads it: one stderr line, exit 2, empty stdout."""

from __future__ import annotations

import pytest

from hookshift.cli import main


def refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one stderr line of `hookshift ARGV` refused as bad input (exit 2, nothing on
    stdout, a fix, no traceback)."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == "", err
    assert err.count("\n") == 1 and err.startswith("hookshift: error: "), err
    assert "(fix: " in err and "Traceback" not in err
    return err
