"""kill -9 at every point of a transition: nginx -t passes, status is right, a rerun finishes.

The transition is the richest one: a rollback from mirror-domain to mirror-stage takes the
mirror engine's lines out (remove), applies them again toward the stage URL (apply), and
writes back the recorded bytes if the engine's output differs (restore). The process is stopped
at each named point (``HOOKSHIFT_PAUSE_AT``), killed with SIGKILL together with the engine it
runs, and then: the real ``nginx -t`` accepts the files, ``cutover status`` tells the stage the
files are really in (or that the transition is open), and running the rollback again ends at
mirror-stage with the files byte-identical to that stage and a journal that reads back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hookshift.cutover import journal
from hookshift.mirror.apply import PAUSE_ENV
from tests.cutover.helpers import Cutover, force, make, nginx_t, run

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]

# (pause point, the stage `status` must report right after the kill)
POINTS = [
    ("cutover:intent-written", "mirror-domain"),
    ("remove:backed-up", "mirror-domain"),
    ("remove:temp-written:callbacks.conf", "mirror-domain"),
    ("remove:written:callbacks.conf", "mirror-domain"),
    ("remove:written:nginx.conf", "mirror-domain"),
    ("cutover:removed", "mirror-domain"),
    ("apply:backed-up", "mirror-domain"),
    ("apply:written:nginx.conf", "mirror-domain"),
    ("apply:written:callbacks.conf", "mirror-stage"),
    ("cutover:nginx-changed", "mirror-stage"),
    ("cutover:restored", "mirror-stage"),
]


def _kill_at(cut: Cutover, label: str) -> None:
    env = {**os.environ, PAUSE_ENV: label, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hookshift", "cutover", "rollback", "--state", str(cut.state)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,  # the engine it runs is in its group: killed with it
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # ends (EOF) if the process exits without pausing
            seen.append(line)
            if f"paused at {label}" in line:
                break
        assert any(f"paused at {label}" in line for line in seen), "".join(seen)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize(("label", "status_stage"), POINTS, ids=[p[0] for p in POINTS])
def test_kill_9_at_each_point_of_a_rollback(
    tmp_path: Path, nginx_bin: str, label: str, status_stage: str
) -> None:
    cut = make(tmp_path, nginx_bin)
    force(cut, "mirror-stage")
    in_mirror_stage = cut.files()
    force(cut, "mirror-domain")
    in_mirror_domain = cut.files()

    _kill_at(cut, label)

    checked = nginx_t(cut)
    assert cut.files() in (in_mirror_domain, in_mirror_stage) or label.startswith(
        ("remove:written", "cutover:removed", "apply:")
    )
    status = run("cutover", "status", "--state", str(cut.state), "--format", "json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["stage"] == status_stage, (label, status.stderr)
    part_way = cut.files() not in (in_mirror_domain, in_mirror_stage)
    assert (data["open_transition"] is not None) == part_way, (label, data["open_transition"])
    if part_way:
        assert "stopped part-way" in status.stderr

    if status_stage == "mirror-domain":  # not done: run it again
        again = run("cutover", "rollback", "--state", str(cut.state))
        assert again.returncode == 0, again.stderr
        assert "changed outside the cut-over" not in again.stderr
    assert cut.files() == in_mirror_stage
    done = journal.read(cut.state)
    assert done.stage == "mirror-stage" and done.pending is None
    assert nginx_t(cut).returncode == 0
    assert checked.returncode == 0, f"{label}: nginx -t fails after the kill: {checked.stderr}"


@pytest.mark.parametrize(
    ("label", "said", "tail"),
    [
        (
            "cutover:removed",
            "had stopped part-way: nginx's files are back as before it",
            ["advance", "begin", "abort", "begin", "rollback"],
        ),
        (
            "cutover:nginx-changed",
            "had changed nginx's files: recorded as done",
            ["advance", "advance", "begin", "rollback"],
        ),
    ],
)
def test_running_the_killed_rollback_again_finishes_it_once(
    tmp_path: Path, nginx_bin: str, label: str, said: str, tail: list[str]
) -> None:
    cut = make(tmp_path, nginx_bin)
    force(cut, "mirror-stage")
    in_mirror_stage = cut.files()
    force(cut, "mirror-domain")
    _kill_at(cut, label)
    again = run("cutover", "rollback", "--state", str(cut.state))
    assert again.returncode == 0, again.stderr
    assert said in again.stderr
    assert "changed outside the cut-over" not in again.stderr
    assert cut.files() == in_mirror_stage
    done = journal.read(cut.state)
    assert done.stage == "mirror-stage"  # once: not a second stage back
    assert [e.action for e in done.entries][-len(tail) :] == tail
