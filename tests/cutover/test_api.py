"""`hookshift.cutover` from Python, as a runbook reads: start the journal, look at it, ask the
gates, and see a refusal change nothing. Over the rehearsal's nginx config and the real nginx;
the queue is moto's SQS server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hookshift import cutover
from hookshift.cutover import journal, transition
from hookshift.errors import HookshiftError, InputError
from hookshift.procs import free_port
from hookshift.rehearsal.nginx_server import SampleConfig, write_sample_config
from hookshift.rehearsal.sqs import CREDENTIALS, REGION, MotoServer
from hookshift.verify.follow import FollowState, state_path, write_state

pytestmark = pytest.mark.e2e  # init asks the real nginx binary for its version

FOURTEEN_DAYS = "1209600"


@pytest.fixture
def sample(tmp_path: Path) -> SampleConfig:
    return write_sample_config(tmp_path / "nginx", app_port=free_port())


def _files(sample: SampleConfig) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in (sample.main, sample.site)}


def _start(tmp_path: Path, sample: SampleConfig, nginx_bin: str, **settings: object) -> Path:
    state = tmp_path / "cutover.jsonl"
    cutover.init(
        state,
        cutover.Settings(
            config=str(sample.main),
            path=sample.callback_path,
            nginx_bin=nginx_bin,
            **settings,  # type: ignore[arg-type]
        ),
    )
    return state


def test_init_then_status_then_a_dry_run_that_refuses_without_changing_anything(
    tmp_path: Path, sample: SampleConfig, nginx_bin: str
) -> None:
    before = _files(sample)
    state = tmp_path / "cutover.jsonl"

    started = cutover.init(
        state,
        cutover.Settings(config=str(sample.main), path=sample.callback_path, nginx_bin="nginx"),
    )
    assert started.stage == "baseline"
    assert set(started.files) == {str(sample.main), str(sample.site)}
    assert started.settings.nginx_bin == nginx_bin  # recorded as a full path, for cron

    now = cutover.status(state)
    assert (now.stage, now.next_stage, now.open_transition) == ("baseline", "mirror-stage", None)
    assert now.needs == ("doctor", "stage_probe", "retention")
    assert [e.action for e in now.journal.entries] == ["init"]
    journal_bytes = state.read_bytes()

    dry = cutover.advance(state, dry_run=True)
    assert (dry.from_stage, dry.to_stage, dry.passed, dry.advanced) == (
        "baseline",
        "mirror-stage",
        False,
        False,
    )
    gates = {g.gate: g for g in dry.gates}
    assert gates["doctor"].passed
    assert gates["stage-probe"].why == "no evidence: pass --stage-url and --queue"
    assert "queue-retention" not in gates  # no SQS queue named: nothing can expire

    refused = cutover.advance(state)  # the same refusal, for real
    assert not refused.advanced and [g.gate for g in refused.check.failed] == ["stage-probe"]  # type: ignore[union-attr]
    assert state.read_bytes() == journal_bytes
    assert _files(sample) == before


def test_init_on_a_site_file_records_the_main_config_that_includes_it(
    tmp_path: Path, sample: SampleConfig, nginx_bin: str
) -> None:
    heard: list[tuple[str, str]] = []
    started = cutover.init(
        tmp_path / "cutover.jsonl",
        cutover.Settings(config=str(sample.site), path=sample.callback_path, nginx_bin=nginx_bin),
        notice=lambda level, text: heard.append((level, text)),
    )
    # what `hookshift mirror plan` works on for the same file: every later stage changes it
    assert started.settings.config == str(sample.main)
    assert set(started.files) == {str(sample.main), str(sample.site)}
    assert (
        heard
        == list(started.notes)
        == [
            (
                "info",
                f"{sample.site} is a site file; working on the main config {sample.main} that "
                "includes it",
            )
        ]
    )
    dry = cutover.advance(started.state_path, dry_run=True)
    assert {g.gate: g.passed for g in dry.gates}["doctor"]


def test_the_stage_probe_gate_asks_only_for_the_queue_when_the_stage_url_was_given(
    tmp_path: Path, sample: SampleConfig, nginx_bin: str
) -> None:
    state = _start(
        tmp_path,
        sample,
        nginx_bin,
        stage_url="https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
    )
    gates = {g.gate: g for g in cutover.advance(state, dry_run=True).gates}
    assert gates["stage-probe"].why == "no evidence: pass --queue"


def test_the_command_prints_what_the_api_returns(
    tmp_path: Path, sample: SampleConfig, nginx_bin: str
) -> None:
    state = _start(tmp_path, sample, nginx_bin)
    result = cutover.advance(state, dry_run=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hookshift",
            "cutover",
            "advance",
            "--state",
            str(state),
            "--dry-run",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert json.loads(done.stdout) == result.to_json()
    assert done.stderr.strip() == (
        "error: not advancing baseline -> mirror-stage: gate(s) not met: stage-probe"
    )


def test_bad_input_raises_one_hookshift_error_and_writes_nothing(
    tmp_path: Path, sample: SampleConfig, nginx_bin: str
) -> None:
    with pytest.raises(InputError, match="--path is needed to know the callback location"):
        cutover.init(tmp_path / "s.jsonl", cutover.Settings(config=str(sample.main)))
    assert not (tmp_path / "s.jsonl").exists()

    state = _start(tmp_path, sample, nginx_bin)
    journal_bytes = state.read_bytes()
    with pytest.raises(InputError, match=r"unknown cut-over setting\(s\): min_windw") as bad:
        cutover.advance(state, overrides={"min_windw": 60})
    assert bad.value.exit_code == 2
    with pytest.raises(HookshiftError, match="at baseline: there is nothing to roll back"):
        cutover.rollback(state)
    sample.site.write_text(sample.site.read_text() + "# edited by hand\n", encoding="utf-8")
    with pytest.raises(InputError, match="changed outside the cut-over since entry #1"):
        cutover.advance(state, dry_run=True)
    assert state.read_bytes() == journal_bytes


def test_a_transition_killed_before_it_touched_nginx_is_settled_and_said(
    tmp_path: Path, sample: SampleConfig, nginx_bin: str
) -> None:
    state = _start(tmp_path, sample, nginx_bin)
    current = journal.read(state)
    settings = cutover.Settings.from_json(current.settings)
    # what a command killed right after writing its intent leaves behind
    transition.begin(
        current, settings, op="advance", target="mirror-stage", reload=False, after=None
    )
    heard: list[tuple[str, str]] = []
    seen = cutover.status(state, notice=lambda level, text: heard.append((level, text)))
    assert (
        heard
        == list(seen.notes)
        == [
            (
                "info",
                "the interrupted advance baseline -> mirror-stage (entry #2) had not changed "
                "nginx's files: recorded as aborted",
            )
        ]
    )
    assert seen.open_transition is None
    assert [e.action for e in seen.journal.entries] == ["init", "begin", "abort"]


@pytest.fixture
def sqs_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])


def _start_on_queue(
    tmp_path: Path,
    sample: SampleConfig,
    nginx_bin: str,
    moto: MotoServer,
    retention_s: str,
    **settings: object,
) -> tuple[Path, str]:
    """A journal whose settings name a new moto queue that keeps messages ``retention_s``."""
    queue = moto.create_queue(f"q-{tmp_path.name}", MessageRetentionPeriod=retention_s)
    state = _start(
        tmp_path,
        sample,
        nginx_bin,
        queue=f"sqs:{queue}",
        endpoint_url=moto.endpoint,
        region=REGION,
        **settings,
    )
    return state, queue


@pytest.mark.usefixtures("sqs_env")
def test_a_queue_keeping_an_hour_refuses_the_mirror_stage_and_names_the_fix(
    tmp_path: Path, sample: SampleConfig, nginx_bin: str, moto: MotoServer
) -> None:
    state, queue = _start_on_queue(tmp_path, sample, nginx_bin, moto, "3600", min_window=3600.0)
    before, journal_bytes = _files(sample), state.read_bytes()

    for dry_run in (True, False):
        result = cutover.advance(state, dry_run=dry_run)
        gate = next(g for g in result.gates if g.gate == "queue-retention")
        assert not gate.passed and not result.advanced
        assert gate.why == (
            f"{queue} keeps messages 1 h, less than the planned window of 1 h plus 1 d of "
            "margin: a pull stopped for that long turns every callback of the gap into "
            f"missing_in_queue (fix: `aws sqs set-queue-attributes --queue-url {queue} "
            f"--endpoint-url {moto.endpoint} --region {REGION} "
            "--attributes MessageRetentionPeriod=1209600`)"
        )
    assert state.read_bytes() == journal_bytes
    assert _files(sample) == before

    moto.client().set_queue_attributes(
        QueueUrl=queue, Attributes={"MessageRetentionPeriod": FOURTEEN_DAYS}
    )
    passed = cutover.advance(state, dry_run=True)
    gate = next(g for g in passed.gates if g.gate == "queue-retention")
    assert gate.passed and "14 d >= window 1 h + 1 d of margin" in gate.why


@pytest.mark.usefixtures("sqs_env")
def test_a_follow_that_stopped_pulling_refuses_the_mirror_stage(
    tmp_path: Path, sample: SampleConfig, nginx_bin: str, moto: MotoServer
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    state, queue = _start_on_queue(
        tmp_path, sample, nginx_bin, moto, FOURTEEN_DAYS, archive=str(archive)
    )
    hours_ago = time.time() - 3 * 3600
    follow = FollowState(queue, str(archive), pid=1, started_at=hours_ago - 60)
    follow.last_success = hours_ago
    write_state(state_path(archive, None), follow)

    result = cutover.advance(state, dry_run=True)
    gates = {g.gate: g for g in result.gates}
    assert gates["queue-retention"].passed
    assert not gates["pull-heartbeat"].passed
    assert gates["pull-heartbeat"].why.startswith("nothing has pulled from the queue for 3 h")


@pytest.mark.parametrize("kind", ["jsonl", "archive"])
def test_a_relative_queue_file_is_recorded_absolute_as_every_other_file_setting(
    tmp_path: Path,
    sample: SampleConfig,
    nginx_bin: str,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """Recorded as typed, ``jsonl:q.jsonl`` would name another file (or none) when the next
    advance runs from another directory, as cron does."""
    target = tmp_path / "queue"
    if kind == "jsonl":
        target.write_text("", encoding="utf-8")
    else:
        target.mkdir()
    monkeypatch.chdir(tmp_path)
    state = _start(tmp_path, sample, nginx_bin, queue=f"{kind}:queue")
    assert journal.read(state).settings["queue"] == f"{kind}:{target}"
