"""`verify pull --follow` and what it rests on: the archive's on-disk id index, segment
rotation, the state file, the retention check."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.rehearsal.sqs import CREDENTIALS, REGION, MotoServer
from hookshift.verify.archive import INDEX_NAME, Archive, iter_archive
from hookshift.verify.follow import read_state
from hookshift.verify.retention import (
    SQS_MAX_RETENTION_S,
    check_heartbeat,
    check_retention,
    parse_duration,
)


def _messages(start: int, n: int) -> list[dict[str, str]]:
    return [{"MessageId": f"m-{i:08d}", "Body": f"b{i}"} for i in range(start, start + n)]


def test_the_archive_keeps_its_ids_on_disk_not_in_memory(tmp_path: Path) -> None:
    with Archive(tmp_path / "a") as archive:
        archive.append(_messages(0, 100))
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for start in range(100, 30_100, 10):
            archive.append(_messages(start, 10))
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert len(archive) == 30_100
        # a set of 30,000 ids would hold about 2.5 MB of Python objects
        assert grown < 500_000, grown
        assert archive.append(_messages(0, 10)) == 0


def test_reopening_indexes_what_a_kill_left_beyond_the_index(tmp_path: Path) -> None:
    root = tmp_path / "a"
    with Archive(root) as archive:
        archive.append(_messages(0, 5))
    seg = next(root.glob("*.jsonl"))
    # the segment was fsynced but the index never committed these (a kill between the two),
    # and the last line is torn
    with seg.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"MessageId": "m-00000005", "Body": "b5"}) + "\n")
        fh.write('{"MessageId": "m-00000006", "Bo')
    with Archive(root) as archive:
        assert len(archive) == 6
        assert archive.append(_messages(4, 4)) == 2  # 6 and 7 are new; 4 and 5 are known
    ids = [m["MessageId"] for m in iter_archive(root)]
    assert sorted(ids) == [f"m-{i:08d}" for i in range(8)]


def test_an_index_that_disagrees_with_the_segments_is_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "a"
    with Archive(root, segment_seconds=0) as archive:
        archive.append(_messages(0, 3))
        archive.append(_messages(3, 3))
    segments = sorted(root.glob("*.jsonl"))
    assert len(segments) == 2  # rotated by age
    segments[1].unlink()  # an operator moved a segment away: its ids must not stay "known"
    with Archive(root) as archive:
        assert len(archive) == 3
        assert archive.append(_messages(3, 3)) == 3
    (root / INDEX_NAME).write_bytes(b"not a database")
    with Archive(root) as archive:
        assert len(archive) == 6


def test_segments_rotate_by_size(tmp_path: Path) -> None:
    with Archive(tmp_path / "a", segment_bytes=200) as archive:
        for start in range(0, 30, 3):
            archive.append(_messages(start, 3))
    segments = sorted((tmp_path / "a").glob("*.jsonl"))
    assert len(segments) >= 3
    assert all(s.stat().st_size < 200 + 3 * 60 for s in segments)
    assert len(list(iter_archive(tmp_path / "a"))) == 30


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    from hookshift.errors import OperationError

    with Archive(tmp_path / "a"), pytest.raises(OperationError, match="another"):
        Archive(tmp_path / "a").open()


def test_retention_shorter_than_the_window_is_a_finding() -> None:
    finding = check_retention(345_600, parse_duration("7d", "--window"), 86_400, queue="q")
    assert finding is not None and finding.blocking
    assert "keeps messages 4 d, less than the planned window of 7 d plus 1 d" in finding.line()
    assert str(SQS_MAX_RETENTION_S) in finding.fix
    assert check_retention(SQS_MAX_RETENTION_S, 7 * 86_400, 86_400) is None
    too_long = check_retention(SQS_MAX_RETENTION_S, 14 * 86_400, 86_400)
    assert too_long is not None and "at most 13 d" in too_long.fix
    assert check_retention(None) is not None and not check_retention(None).blocking  # type: ignore[union-attr]


def test_a_quiet_pull_is_a_finding() -> None:
    assert check_heartbeat(1000.0, 1000.0 + 899, 900) is None
    finding = check_heartbeat(1000.0, 1000.0 + 7200, 900)
    assert finding is not None and "for 2 h (more than 15 min)" in finding.what
    assert check_heartbeat(None, 5.0) is not None
    # a pull that started 1 min ago and has not succeeded yet is not late; after 20 min it is
    assert check_heartbeat(None, 1060.0, 900, started_at=1000.0) is None
    late = check_heartbeat(None, 2200.0, 900, started_at=1000.0)
    assert late is not None and late.what == "no pull has succeeded for 20 min (more than 15 min)"


@pytest.mark.parametrize("text", ["", "7x", "-1d", "0s", "d"])
def test_bad_durations_are_one_line(text: str) -> None:
    with pytest.raises(InputError, match="--window"):
        parse_duration(text, "--window")


@pytest.fixture
def aws_env() -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
        "PYTHONUNBUFFERED": "1",
    }


def _hookshift(*args: str) -> list[str]:
    return [sys.executable, "-m", "hookshift", "verify", "pull", *args]


@pytest.mark.e2e
def test_follow_needs_delete(moto: MotoServer, tmp_path: Path, aws_env: dict[str, str]) -> None:
    url = moto.create_queue(f"f-{uuid.uuid4().hex[:8]}")
    argv = ["--queue-url", url, "--archive", str(tmp_path / "a"), "--endpoint-url", moto.endpoint]
    run = subprocess.run(_hookshift(*argv, "--follow"), capture_output=True, env=aws_env)
    assert run.returncode == 2
    assert run.stderr.decode().strip().splitlines() == [
        "hookshift: error: --follow needs --delete (fix: add --delete: a follow without it"
        " would receive the same messages forever)"
    ]
    assert not (tmp_path / "a").exists()


@pytest.mark.e2e
def test_sigterm_stops_the_follow_cleanly_with_state_and_metrics(
    moto: MotoServer, tmp_path: Path, aws_env: dict[str, str]
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    short = moto.create_queue(f"f-{uuid.uuid4().hex[:8]}")  # moto's default: 4 days
    client = moto.client()
    for i in range(0, 30, 10):
        entries = [{"Id": str(j), "MessageBody": f"body {i + j}"} for j in range(10)]
        client.send_message_batch(QueueUrl=short, Entries=entries)
    archive, metrics = tmp_path / "a", tmp_path / "m" / "hookshift_pull.prom"
    metrics.parent.mkdir()  # an output's directory must exist: a typo grows no tree
    argv = [
        "--queue-url", short, "--archive", str(archive), "--endpoint-url", moto.endpoint,
        "--delete", "--follow", "--wait-time", "1", "--metrics-file", str(metrics),
    ]  # fmt: skip
    proc = subprocess.Popen(
        _hookshift(*argv), env=aws_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(iter_archive(archive))) < 30 if archive.exists() else True:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "stopped: received 30, newly archived 30, deleted 30" in out.decode()
    stderr = err.decode()
    assert "keeps messages 4 d, less than the planned window of 7 d plus 1 d" in stderr
    assert "SIGTERM: finishing the batches in hand" in stderr
    state = read_state(archive / "follow-state.json")
    assert state is not None and not state.running and state.archive_total == 30
    assert state.retention_s == 345_600 and state.last_success is not None
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    last = families["hookshift_pull_last_success_timestamp_seconds"].samples[0].value
    assert last == pytest.approx(state.last_success)
    pulled = {s.labels["outcome"]: s.value for s in families["hookshift_pull_messages"].samples}
    assert pulled["archived"] == 30 and pulled["deleted"] == 30
    assert "hookshift_queue_lag_seconds" in families
    assert oct(metrics.stat().st_mode & 0o777) == "0o644"


@pytest.mark.e2e
def test_one_shot_pull_with_window_warns_only_when_retention_is_short(
    moto: MotoServer, tmp_path: Path, aws_env: dict[str, str]
) -> None:
    url = moto.create_queue(f"f-{uuid.uuid4().hex[:8]}", MessageRetentionPeriod="1209600")
    argv = ["--queue-url", url, "--archive", str(tmp_path / "a"), "--endpoint-url", moto.endpoint]
    run = subprocess.run(
        _hookshift(*argv, "--window", "7d", "--wait-time", "0"), capture_output=True, env=aws_env
    )
    assert run.returncode == 0, run.stderr.decode()
    assert "less than the planned window" not in run.stderr.decode()
    short = moto.create_queue(f"f-{uuid.uuid4().hex[:8]}")
    argv[1], argv[3] = short, str(tmp_path / "b")  # an archive holds one queue
    run = subprocess.run(
        _hookshift(*argv, "--window", "2d", "--retention-margin", "3d", "--wait-time", "0"),
        capture_output=True,
        env=aws_env,
    )
    assert run.returncode == 0, run.stderr.decode()
    assert "keeps messages 4 d, less than the planned window of 2 d plus 3 d" in run.stderr.decode()


def test_apigw_artifacts_say_to_keep_messages_14_days() -> None:
    import hcl2

    from hookshift.apigw.artifacts import ApiSpec, cloudformation, terraform

    spec = ApiSpec(queue_name="kakao-at-result", account_id="111122223333", region="ap-northeast-2")
    output = cloudformation(spec)["Outputs"]["QueueRetention"]
    assert "1209600 s (14 days, the maximum)" in output["Description"]
    assert "4 days by default" in output["Description"]
    command = output["Value"]["Fn::Sub"]
    assert "--queue-name kakao-at-result" in command
    assert "--attributes MessageRetentionPeriod=1209600" in command
    text = terraform(spec)
    assert "# Set the queue's MessageRetentionPeriod to 1209600 s" in text
    assert "--region ap-northeast-2" in text and "MessageRetentionPeriod=1209600" in text
    hcl2.loads(text)  # still valid HCL
