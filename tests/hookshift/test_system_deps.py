"""`.ci/system-deps`: installing packages never stops an nginx the script did not start."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "system-deps"


def _bash(snippet: str, policy: Path) -> subprocess.CompletedProcess[str]:
    """Run `snippet` with the script's functions loaded (its main does not run when sourced)."""
    env = {**os.environ, "HOOKSHIFT_POLICY_RC_D": str(policy)}
    return subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}"; {snippet}'],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


_BLOCK_RUN_RESTORE = 'block_service_starts; "{policy}" || echo "rc=$?"; restore_service_starts'


@pytest.mark.e2e
def test_the_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


def test_the_old_blanket_stop_is_gone() -> None:
    text = SCRIPT.read_text()
    assert "nginx -s quit" not in text and "pkill" not in text and "killall" not in text


@pytest.mark.e2e
def test_service_starts_are_forbidden_during_the_install_and_allowed_after(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy-rc.d"
    proc = _bash(_BLOCK_RUN_RESTORE.format(policy=policy), policy)
    assert "rc=101" in proc.stdout, proc.stderr
    assert not policy.exists()


@pytest.mark.e2e
def test_an_existing_policy_is_put_back_byte_for_byte(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    policy.write_bytes(b"#!/bin/sh\nexit 0\n")
    policy.chmod(0o700)
    proc = _bash(_BLOCK_RUN_RESTORE.format(policy=policy), policy)
    assert "rc=101" in proc.stdout, proc.stderr
    assert policy.read_bytes() == b"#!/bin/sh\nexit 0\n"
    assert policy.stat().st_mode & 0o777 == 0o700


@pytest.mark.e2e
def test_only_masters_that_were_not_running_before_are_stopped(tmp_path: Path) -> None:
    proc = _bash('echo "[$(new_pids "10 20 " "10 20 35 ")]"', tmp_path / "policy-rc.d")
    assert proc.stdout.strip() == "[35 ]"
    proc = _bash('echo "[$(new_pids "10 20 " "10 20 ")]"', tmp_path / "policy-rc.d")
    assert proc.stdout.strip() == "[]"
    proc = _bash('echo "[$(new_pids "" "7 ")]"', tmp_path / "policy-rc.d")
    assert proc.stdout.strip() == "[7 ]"
