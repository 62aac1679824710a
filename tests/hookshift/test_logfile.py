"""A log hookshift makes for nginx: when it cannot, the line says why and what to do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.logfile import precreate_log

NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_log_in_a_directory_the_user_may_not_write_names_the_cause(tmp_path: Path) -> None:
    """Run as nobody, as a user without sudo would: the fix is about who may write, not about
    symlinks."""
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child drops to nobody, tries, and reports the line it got
        os.close(read)
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            precreate_log(logs / "hookshift-parity.log", user="nobody", group="nogroup")
            os.write(write, b"made")
        except InputError as err:
            os.write(write, err.line().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        said = f.read().decode()
    os.waitpid(child, 0)
    assert said == (
        f"{logs / 'hookshift-parity.log'}: cannot open the log (Permission denied) (fix: run "
        "as a user that may write it (nginx's logs are root's), or choose another log path)"
    )
