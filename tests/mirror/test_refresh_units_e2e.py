"""`hookshift mirror refresh-units` against the real nginx: the units it writes for Debian's
layout are what systemd reads, with nothing it would ignore or refuse."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hookshift.mirror.refresh import SERVICE_UNIT, TIMER_UNIT
from tests.mirror.helpers import APPLIED, seen_by_a_service

pytestmark = pytest.mark.e2e  # every test here starts a process


def test_the_units_for_debian_s_nginx_pass_systemd_analyze_verify(
    tmp_path: Path, nginx_bin: str
) -> None:
    # any program systemd can find stands in for hookshift: what is checked is the units' syntax
    with seen_by_a_service(APPLIED) as config:
        done = subprocess.run(
            [sys.executable, "-m", "hookshift", "mirror", "refresh-units", "--config",
             str(config), "--nginx-bin", nginx_bin, "--state-dir", "/var/lib/hookshift",
             "--hookshift-bin", "/usr/bin/true", "--out-dir", str(tmp_path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    service = (tmp_path / SERVICE_UNIT).read_text()
    # Debian's nginx writes its logs and pid file in /var/log and /run, writable in the sandbox
    # already: only the directories of the files with hookshift's lines and the state dir are
    # opened
    paths = [line for line in service.splitlines() if line.startswith("ReadWritePaths=")]
    assert paths == [
        f"ReadWritePaths={config.parent}",
        f"ReadWritePaths={config.parent / 'sites-available'}",
        "ReadWritePaths=-/var/lib/hookshift",
    ]
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the units' syntax is not checked")
    checked = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / SERVICE_UNIT), str(tmp_path / TIMER_UNIT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    # verify exits 0 for a setting it ignores: it only says so, naming the file and line
    assert checked.returncode == 0 and checked.stdout + checked.stderr == ""
