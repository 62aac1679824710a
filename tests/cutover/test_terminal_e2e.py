"""The cut-over at an operator's terminal, on a real nginx config: Ctrl-C and SIGTERM in the
middle of a transition, a stdout that cannot take the output, ``--format json`` on every
command, and a rollback whose files differ from the stage's bytes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hookshift.cutover import journal, nginx_ops
from hookshift.cutover.settings import Settings
from hookshift.mirror.apply import PAUSE_ENV
from tests.cutover.helpers import Cutover, force, make, nginx_t, run

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _interruptible() -> None:
    """SIGINT as a terminal's process gets it: a suite run in the background of a script (CI)
    inherits SIGINT ignored, Python then keeps it ignored, and Ctrl-C could not be tested."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stopped_at(cut: Cutover, label: str, signum: int) -> subprocess.CompletedProcess[str]:
    """``cutover rollback`` paused at ``label``, then sent ``signum`` (the process alone, as
    ``kill`` or ``timeout`` sends it; a terminal's Ctrl-C reaches the same Python process)."""
    env = {**os.environ, PAUSE_ENV: label, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hookshift", "cutover", "rollback", "--state", str(cut.state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True, preexec_fn=_interruptible,
    )  # fmt: skip
    assert proc.stderr is not None and proc.stdout is not None
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if f"paused at {label}" in line:
                break
        assert any(f"paused at {label}" in line for line in seen), "".join(seen)
        os.kill(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(seen) + err)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_rollback_stopped_mid_write_says_the_transition_is_open_and_a_rerun_finishes_it(
    tmp_path: Path, nginx_bin: str, signum: int
) -> None:
    cut = make(tmp_path, nginx_bin)
    force(cut, "mirror-stage")
    in_mirror_stage = cut.files()
    force(cut, "mirror-domain")

    stopped = _stopped_at(cut, "apply:written:callbacks.conf", signum)

    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert stopped.stdout == ""
    assert (
        "hookshift: interrupted: the transition mirror-domain -> mirror-stage (entry #4) is "
        "open and nginx's files may be part-way: the next `hookshift cutover advance` or "
        "`rollback` settles it first"
    ) in stopped.stderr
    assert nginx_t(cut).returncode == 0  # the engine put its own write back as it unwound
    status = run("cutover", "status", "--state", str(cut.state), "--format", "json")
    assert json.loads(status.stdout)["open_transition"] == {
        "seq": 4,
        "from": "mirror-domain",
        "to": "mirror-stage",
    }
    again = run("cutover", "rollback", "--state", str(cut.state))
    assert again.returncode == 0, again.stderr
    assert "nginx files are byte-identical to mirror-stage" in again.stdout
    assert cut.files() == in_mirror_stage


def test_where_an_interrupted_command_left_a_journal_it_had_not_written(
    tmp_path: Path, nginx_bin: str
) -> None:
    from hookshift.cutover.cli import _entries, _where_left

    cut = make(tmp_path, nginx_bin)
    assert _where_left(cut.state, _entries(cut.state)) == (
        "nothing was recorded: the cut-over is still at baseline, nginx's files are as they were"
    )
    assert _where_left(tmp_path / "never.jsonl", None) == "no journal was written"


def test_status_and_rollback_to_a_full_stdout_are_one_line_saying_what_was_done(
    tmp_path: Path, nginx_bin: str
) -> None:
    cut = make(tmp_path, nginx_bin)
    in_baseline = cut.files()
    force(cut, "mirror-stage")
    with open(os.devnull if not Path("/dev/full").exists() else "/dev/full", "w") as full:
        for args in (("status",), ("rollback",)):
            done = subprocess.run(
                [sys.executable, "-m", "hookshift", "cutover", *args, "--state", str(cut.state)],
                stdout=full, stderr=subprocess.PIPE, text=True, check=False,
            )  # fmt: skip
            assert done.returncode == 2, done.stderr
            assert done.stderr.count("\n") == 1, done.stderr
            assert "cannot write to standard output: No space left on device" in done.stderr
    assert "(the cut-over moved mirror-stage -> baseline: `hookshift cutover status` shows it)" in (
        done.stderr
    )
    assert journal.read(cut.state).stage == "baseline"
    assert cut.files() == in_baseline


def test_init_gives_json_like_every_other_cutover_command(tmp_path: Path, nginx_bin: str) -> None:
    cut = make(tmp_path, nginx_bin)
    state = tmp_path / "second.jsonl"
    done = run("cutover", "init", "--state", str(state), "--config", str(cut.main),
               "--path", cut.settings().path or "", "--nginx-bin", nginx_bin,
               "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["stage"] == "baseline" and data["state"] == str(state)
    assert sorted(data["files"]) == sorted(str(p) for p in (cut.main, cut.site))
    assert data["settings"]["config"] == str(cut.main)


@pytest.mark.parametrize("output_format", ["json", "text"])
def test_a_rollback_whose_files_differ_from_the_stage_still_reports_what_it_did(
    tmp_path: Path, nginx_bin: str, output_format: str
) -> None:
    """The rollback went back and the journal records it, but a file is not as it was in that
    stage (here: a file the stage's change had made, which no rollback deletes): exit 1, and
    the result (``byte_identical`` false, the file) is on stdout, as a gate's verdict is."""
    cut = make(tmp_path, nginx_bin)
    extra = cut.site.with_name("extra.conf")
    extra.write_text("# made by the stage's change\n", encoding="utf-8")
    current = journal.read(cut.state)
    settings = Settings.from_json(current.settings)
    files = nginx_ops.realize(cut.state, settings, "baseline", "mirror-stage", reload=False)
    digest = journal.store_snapshot(cut.state, extra.read_bytes())
    made = journal.FileChange(str(extra), None, digest)
    entry = journal.next_entry(
        current, action="advance", to_stage="mirror-stage", files=[*files, made]
    )
    journal.append(current, entry)

    done = run("cutover", "rollback", "--state", str(cut.state), "--format", output_format)

    assert done.returncode == 1, done.stderr
    assert f"rolled back to baseline, but 1 file(s) differ from that stage: {extra}" in (
        done.stderr
    )
    if output_format == "json":
        data = json.loads(done.stdout)
        assert data["byte_identical"] is False and data["differ"] == [str(extra)]
        assert (data["from"], data["to"]) == ("mirror-stage", "baseline")
    else:
        assert done.stdout.startswith("rolled back: mirror-stage -> baseline")
    assert journal.read(cut.state).stage == "baseline"
    assert hashlib.sha256(extra.read_bytes()).hexdigest() == digest


def test_status_names_the_next_gates_as_advance_reports_them(
    tmp_path: Path, nginx_bin: str
) -> None:
    cut = make(tmp_path, nginx_bin)
    done = run("cutover", "status", "--state", str(cut.state))
    assert "next:  mirror-stage, gates: doctor, stage-probe\n" in done.stdout
    data = json.loads(
        run("cutover", "status", "--state", str(cut.state), "--format", "json").stdout
    )
    assert data["gates"] == ["doctor", "stage-probe"]


def test_the_history_names_the_transition_an_abort_voided(tmp_path: Path, nginx_bin: str) -> None:
    """An intent whose command died before nginx changed is settled as an abort; the history
    shows the transition that was not made, not "mirror-stage -> mirror-stage"."""
    from hookshift.cutover import transition

    cut = make(tmp_path, nginx_bin)
    force(cut, "mirror-stage")
    current = journal.read(cut.state)
    transition.begin(current, cut.settings(), op="advance", target="mirror-domain", reload=False,
                     after=None)  # fmt: skip
    done = run("cutover", "status", "--state", str(cut.state))
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if " abort " in line]
    assert line.endswith(
        "  abort    mirror-stage -> mirror-domain  # interrupted before nginx's files changed"
    )


def test_a_change_without_reload_says_nginx_keeps_its_old_config(
    tmp_path: Path, nginx_bin: str
) -> None:
    cut = make(tmp_path, nginx_bin)
    force(cut, "mirror-stage")
    done = run("cutover", "rollback", "--state", str(cut.state))
    assert done.returncode == 0, done.stderr
    assert (
        "warning: nginx was not reloaded: it keeps serving the config it last loaded until it "
        "is (nginx -s reload, or --reload next time)"
    ) in done.stderr


def test_an_edit_outside_the_cut_over_is_refused_with_the_command_that_shows_it(
    tmp_path: Path, nginx_bin: str
) -> None:
    cut = make(tmp_path, nginx_bin)
    cut.site.write_text(cut.site.read_text() + "# edited by hand\n", encoding="utf-8")
    done = run("cutover", "advance", "--state", str(cut.state), "--dry-run")
    assert done.returncode == 2
    shown = done.stderr.split("(fix: `", 1)[1].split("`", 1)[0]
    assert shown.startswith("diff ") and shown.endswith(str(cut.site))
    diff = subprocess.run(shown.split(), capture_output=True, text=True, check=False)
    assert diff.stdout.splitlines()[-1] == "> # edited by hand"


def test_status_into_a_pipe_its_reader_closed_ends_quietly(tmp_path: Path, nginx_bin: str) -> None:
    """`hookshift cutover status | head -1`: the reader took what it wanted."""
    cut = make(tmp_path, nginx_bin)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "hookshift", "cutover", "status", "--state", str(cut.state)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_the_recorded_config_by_another_name_is_not_an_edit_outside_the_cut_over(
    tmp_path: Path, nginx_bin: str
) -> None:
    """`--config` through a symlinked directory (/etc/nginx -> /opt/nginx/etc) names the files
    the journal recorded: the rollback runs and is byte-identical."""
    cut = make(tmp_path, nginx_bin)
    in_baseline = cut.files()
    force(cut, "mirror-stage")
    link = tmp_path / "etc-nginx"
    link.symlink_to(cut.main.parent, target_is_directory=True)
    done = run("cutover", "rollback", "--state", str(cut.state), "--config",
               str(link / cut.main.name))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "nginx files are byte-identical to baseline (2 checked)" in done.stdout
    assert cut.files() == in_baseline
