"""The cut-over walkthrough (docs/cutover.md) shows each command's output as a terminal does."""

from __future__ import annotations

import os
import sys

import pytest

from hookshift.rehearsal.walkthrough import _shell


@pytest.mark.e2e
def test_a_command_s_stderr_lines_appear_where_it_wrote_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What a command says it is doing (stderr) comes before what it found (stdout); a
    Python command's stdout into a pipe would otherwise wait in its buffer until the end."""
    script = "import sys; print('found'); print('doing', file=sys.stderr); print('done')"
    code = _shell(f'{sys.executable} -c "{script}"', dict(os.environ))
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[lines.index("```console") + 2 :][:3] == ["found", "doing", "done"]
