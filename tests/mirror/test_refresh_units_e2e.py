"""`hookshift mirror refresh-units` against the real nginx: the units it writes for Debian's
layout are what systemd reads, with nothing it would ignore or refuse."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hookshift.mirror.refresh import SERVICE_UNIT, TIMER_UNIT
from tests.mirror.helpers import CORPUS

pytestmark = pytest.mark.e2e  # every test here starts a process

DEBIAN = CORPUS / "debian_stock" / "nginx.conf"


def test_the_units_for_debian_s_nginx_pass_systemd_analyze_verify(
    tmp_path: Path, nginx_bin: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hookshift", "mirror", "refresh-units", "--config", str(DEBIAN),
         "--nginx-bin", nginx_bin, "--state-dir", "/var/lib/hookshift", "--out-dir",
         str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    service = (tmp_path / SERVICE_UNIT).read_text()
    # Debian's nginx writes its logs and pid file in /var/log and /run, writable in the sandbox
    # already: only the config's directory and the state dir are opened
    paths = [line for line in service.splitlines() if line.startswith("ReadWritePaths=")]
    assert paths == [f"ReadWritePaths={DEBIAN.parent}", "ReadWritePaths=-/var/lib/hookshift"]
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the units' syntax is not checked")
    checked = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / SERVICE_UNIT), str(tmp_path / TIMER_UNIT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    # verify exits 0 for a setting it ignores: it only says so, naming the file and line
    assert checked.returncode == 0 and checked.stdout + checked.stderr == ""
