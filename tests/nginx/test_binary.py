"""Asking the nginx binary: a --nginx-bin that is not nginx is named in one line, and one that
never answers is stopped, with whatever it started, instead of hanging hookshift."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.nginx.binary import _run, nginx_version
from hookshift.procs import wait_until

pytestmark = pytest.mark.e2e  # runs the binaries


def test_a_binary_that_is_not_nginx_is_named_with_the_fix() -> None:
    with pytest.raises(InputError) as err:
        nginx_version("/bin/true")
    line = err.value.line()
    assert "this is not nginx" in line and "--nginx-bin" in line


def test_a_binary_that_never_answers_is_stopped_with_its_children(tmp_path: Path) -> None:
    script = tmp_path / "nginx"
    child_pid = tmp_path / "child.pid"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {child_pid}\nwait\n")
    script.chmod(0o755)
    with pytest.raises(InputError) as err:
        _run([str(script), "-V"], timeout=1)
    assert "did not finish within 1 s" in err.value.line()
    # the script's own child is gone too: SIGKILL cannot be ignored, but on a busy machine
    # the kernel may finish it a moment after the script itself has been reaped
    child = int(child_pid.read_text())
    wait_until(lambda: not _running(child), "the script's child to be stopped", timeout=5)


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a killed orphan may stay a zombie until init reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
