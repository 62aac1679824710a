"""`hookshift rehearse` as a user runs it: real stack, deploy, summary, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.rehearsal.helpers import processes_mentioning

pytestmark = pytest.mark.e2e


def rehearse(workdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hookshift", "rehearse", "--workdir", str(workdir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_dir_of(workdir: Path) -> Path:
    [run_dir] = [p for p in workdir.iterdir() if p.is_dir()]
    return run_dir


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def assert_nothing_left(run_dir: Path) -> None:
    pids = json.loads((run_dir / "pids.json").read_text())
    assert {"moto", "apigw", "app", "nginx"} <= set(pids)
    assert [name for name, pid in pids.items() if alive(pid)] == []
    assert processes_mentioning(str(run_dir)) == []


def test_rehearse_shows_the_callbacks_lost_in_the_deploy_safe_in_the_queue(tmp_path: Path) -> None:
    process = rehearse(
        tmp_path, "-n", "40", "--rate", "40", "--downtime", "0.5", "--format", "json"
    )
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    report = json.loads(stdout)
    rec = report["reconciliation"]
    assert rec["sent"] == 40
    assert rec["lost_at_app"] > 0
    assert rec["lost_at_app_in_queue"] == rec["lost_at_app"]
    assert rec["unaccounted"] == 0
    assert any("safe in the queue" in line for line in report["summary"])
    if report.get("parity") is not None:
        assert report["parity"]["counts"]["app_rejected"] == rec["lost_at_app"]
    run_dir = run_dir_of(tmp_path)
    assert str(run_dir) in stderr  # it says where its files are
    for name in ("sent.jsonl", "app-ledger.jsonl", "nginx/logs/hookshift-parity.log"):
        assert (run_dir / name).exists(), name
    # the HTML report shows callbacks: readable by its owner only
    assert (run_dir / "parity.html").stat().st_mode & 0o777 == 0o600
    assert_nothing_left(run_dir)


def test_every_file_of_a_run_that_holds_callbacks_is_its_owner_s_only(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "hookshift", "rehearse", "--workdir", str(tmp_path),
         "-n", "20", "--rate", "40", "--downtime", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, umask=0o022,
    )  # fmt: skip
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    run_dir = run_dir_of(tmp_path)
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for name in ("app-ledger.jsonl", "sent.jsonl", "apigw/apigw-executions.jsonl"):
        assert "01000" in (run_dir / name).read_text(encoding="utf-8"), name  # phone numbers
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name


def test_a_run_whose_parity_check_fails_exits_1(tmp_path: Path) -> None:
    # one callback, due while the app is down: the app accepts nothing, so parity compares none
    process = rehearse(tmp_path, "-n", "1", "--downtime", "3", "--format", "json")
    stdout, stderr = process.communicate(timeout=120)
    report = json.loads(stdout)
    assert report["reconciliation"]["unaccounted"] == 0  # the callback itself is in the queue
    assert report["parity"]["verdict"] == "fail", report["parity"]["reason"]
    assert process.returncode == 1, stderr
    assert_nothing_left(run_dir_of(tmp_path))


def test_sigterm_mid_run_stops_every_process_of_the_stack(tmp_path: Path) -> None:
    process = rehearse(tmp_path, "-n", "2000", "--rate", "20")
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("*/pids.json")):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the stack did not start"
            time.sleep(0.1)
        time.sleep(0.5)  # mid-send
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)  # not the 100 s the sends would take
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert "aborted" in stderr
    assert_nothing_left(run_dir_of(tmp_path))


@pytest.mark.parametrize(
    ("option", "value"),
    [("--count", "0"), ("--rate", "nan"), ("--rate", "inf"), ("--downtime", "nan"),
     ("--downtime", "inf"), ("--downtime", "3601")],
)  # fmt: skip
def test_bad_numbers_are_one_line_and_exit_2(tmp_path: Path, option: str, value: str) -> None:
    process = rehearse(tmp_path, option, value)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1
    assert option in stderr
    assert not list(tmp_path.glob("*"))  # nothing half-made
