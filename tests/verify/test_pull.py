"""`verify pull` against moto's SQS server: archived before deleted, exactly once after kill -9."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hookshift.rehearsal.sqs import CREDENTIALS, REGION, MotoServer
from hookshift.verify.archive import Archive, archive_drained_at, iter_archive, repair_torn_tail
from hookshift.verify.pull import pull
from tests.verify.data import body

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def _fill(moto: MotoServer, n: int, **attributes: str) -> str:
    url = moto.create_queue(f"pull-{uuid.uuid4().hex[:10]}", **attributes)
    client = moto.client()
    for start in range(0, n, 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": body(i),
                "MessageAttributes": {
                    "nginx_request_id": {"DataType": "String", "StringValue": f"{i:032x}"}
                },
            }
            for i in range(start, min(start + 10, n))
        ]
        client.send_message_batch(QueueUrl=url, Entries=entries)
    return url


def _visible_and_hidden(moto: MotoServer, url: str) -> tuple[int, int]:
    attrs = moto.client().get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def _archived_ids(archive: Path) -> list[str]:
    return [m["MessageId"] for m in iter_archive(archive)]


def test_pull_with_delete_archives_every_message_once_and_empties_the_queue(
    moto: MotoServer, tmp_path: Path
) -> None:
    url = _fill(moto, 25)
    begun_ms = int(time.time() * 1000)
    result = pull(
        url,
        tmp_path / "a",
        endpoint_url=moto.endpoint,
        region=REGION,
        delete=True,
        workers=3,
        wait_time_s=1,
        progress=None,
    )
    ids = _archived_ids(tmp_path / "a")
    assert len(ids) == len(set(ids)) == 25 == result.archived == result.archive_total
    # SQS delivers at least once (two workers can both receive a message: seen here with moto):
    # a message received twice is archived once, and each receipt is deleted
    assert result.received == result.archived + result.already_archived == result.deleted
    assert _visible_and_hidden(moto, url) == (0, 0)
    first = next(iter_archive(tmp_path / "a"))
    assert first["MessageAttributes"]["nginx_request_id"]["DataType"] == "String"
    assert "SentTimestamp" in first["Attributes"]
    assert "ReceiptHandle" not in first  # receipt handles are per receive, not archived
    # it found the queue empty: parity counts copies older than that as missing, not in flight
    drained = archive_drained_at(tmp_path / "a")
    assert drained is not None and begun_ms <= drained <= int(time.time() * 1000)


def test_pull_without_delete_leaves_the_messages_and_says_they_are_hidden(
    moto: MotoServer, tmp_path: Path
) -> None:
    url = _fill(moto, 12, VisibilityTimeout="60")
    notices: list[str] = []
    result = pull(
        url,
        tmp_path / "a",
        endpoint_url=moto.endpoint,
        region=REGION,
        workers=1,
        wait_time_s=0,
        progress=None,
        notice=notices.append,
    )
    assert result.archived == 12 and result.deleted == 0
    assert "hidden" in notices[0] and "visibility timeout (60 s)" in notices[0]
    assert _visible_and_hidden(moto, url) == (0, 12)


def test_messages_another_reader_hides_keep_the_queue_from_being_recorded_drained(
    moto: MotoServer, tmp_path: Path
) -> None:
    """A consumer (or a parity run on the live queue) holds two messages within their
    visibility timeout: the pull finds the queue empty, but a parity run trusting that would
    call those two callbacks lost, and heal would send them again."""
    url = _fill(moto, 5, VisibilityTimeout="120")
    moto.client().receive_message(QueueUrl=url, MaxNumberOfMessages=2)
    notices: list[str] = []
    result = pull(
        url,
        tmp_path / "a",
        endpoint_url=moto.endpoint,
        region=REGION,
        delete=True,
        workers=1,
        wait_time_s=0,
        progress=None,
        notice=notices.append,
    )
    assert (result.archived, result.deleted) == (3, 3)
    assert archive_drained_at(tmp_path / "a") is None
    assert notices == [
        "2 message(s) in the queue are hidden by another reader (within their visibility "
        "timeout, e.g. a `verify parity --queue sqs:` or a consumer): the queue is not recorded "
        "as drained, so parity leaves the newest callbacks in flight; pull again once they are "
        "visible"
    ]


def test_max_stops_the_pull(moto: MotoServer, tmp_path: Path) -> None:
    url = _fill(moto, 30)
    result = pull(
        url,
        tmp_path / "a",
        endpoint_url=moto.endpoint,
        region=REGION,
        delete=True,
        max_messages=10,
        workers=1,
        wait_time_s=0,
        progress=None,
    )
    assert result.received == 10 and len(_archived_ids(tmp_path / "a")) == 10
    assert archive_drained_at(tmp_path / "a") is None  # stopped with messages left


def test_archive_cuts_a_torn_last_line_and_never_writes_a_message_twice(tmp_path: Path) -> None:
    seg = tmp_path / "a" / "seg-1.jsonl"
    seg.parent.mkdir()
    seg.write_text(json.dumps({"MessageId": "m1", "Body": "x"}) + '\n{"MessageId": "m2", "Bo')
    with Archive(tmp_path / "a") as archive:
        assert archive.repaired_bytes == len('{"MessageId": "m2", "Bo')
        assert "m1" in archive and "m2" not in archive
        assert (
            archive.append(
                [
                    {"MessageId": "m1", "Body": "x"},
                    {"MessageId": "m2", "Body": "y"},
                    {"MessageId": "m2", "Body": "y"},
                ]
            )
            == 1
        )
    with Archive(tmp_path / "a") as archive:
        assert archive.append([{"MessageId": "m2", "Body": "y"}]) == 0
    assert sorted(_archived_ids(tmp_path / "a")) == ["m1", "m2"]
    assert repair_torn_tail(seg) == 0


def _pull_argv(url: str, archive: Path, endpoint: str) -> list[str]:
    """`hookshift verify pull --delete` against the test queue, as a subprocess runs it."""
    return [
        sys.executable, "-m", "hookshift", "verify", "pull",
        "--queue-url", url, "--archive", str(archive), "--endpoint-url", endpoint,
        "--delete", "--wait-time", "1",
    ]  # fmt: skip


@contextlib.contextmanager
def _pull_process(
    url: str, archive: Path, endpoint: str, *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [*_pull_argv(url, archive, endpoint), "--workers", "2", *extra]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def _lines(archive: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in archive.glob("*.jsonl"))


def test_kill_9_mid_pull_then_rerun_leaves_every_message_exactly_once(
    moto: MotoServer, tmp_path: Path
) -> None:
    total = 150
    url = _fill(moto, total, VisibilityTimeout="2")
    archive = tmp_path / "archive"
    with _pull_process(url, archive, moto.endpoint) as proc:
        deadline = time.monotonic() + 60
        while _lines(archive) < 20 if archive.exists() else True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the pull never got going"
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    killed_at = len(set(_archived_ids(archive)))
    assert 0 < killed_at < total, "the kill must land mid-run"
    time.sleep(2.5)  # received but undeleted messages become visible again
    rerun = subprocess.run(
        [*_pull_argv(url, archive, moto.endpoint), "--format", "json"],
        capture_output=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert rerun.returncode == 0, rerun.stderr.decode()
    summary: dict[str, Any] = json.loads(rerun.stdout)
    ids = _archived_ids(archive)
    assert len(ids) == len(set(ids)) == total == summary["archive_total"]
    assert sorted(ids) == sorted(set(ids))
    assert _visible_and_hidden(moto, url) == (0, 0)


def test_parity_reads_a_live_queue_and_says_it_hid_the_messages(
    moto: MotoServer, tmp_path: Path
) -> None:
    from hookshift.verify.parity import ParityOptions, run_parity
    from tests.verify.data import T0, nginx_line, write_lines

    url = _fill(moto, 12)
    log = write_lines(
        tmp_path / "p.log", [nginx_line(f"{i:032x}", T0 + i, body(i)) for i in range(13)]
    )
    options = ParityOptions(endpoint_url=moto.endpoint, region=REGION, sqs_wait_s=0, grace_s=0)
    report = run_parity(f"nginx:{log}", f"sqs:{url}", options)
    assert report.counts["matched"] == 12
    assert report.missing_in_queue_keys == [f"{12:032x}"]
    assert "hidden from its consumers" in report.warnings[0]


def _send(moto: MotoServer, url: str, numbers: range) -> None:
    client = moto.client()
    for start in range(numbers.start, numbers.stop, 10):
        entries = [
            {"Id": str(i), "MessageBody": body(i)}
            for i in range(start, min(start + 10, numbers.stop))
        ]
        client.send_message_batch(QueueUrl=url, Entries=entries)


FOLLOW = ("--follow", "--format", "json")


def _wait_lines(archive: Path, at_least: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not archive.exists() or _lines(archive) < at_least:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, f"the follow never reached {at_least} messages"
        time.sleep(0.005)


def test_kill_9_mid_follow_then_restart_keeps_every_message_exactly_once(
    moto: MotoServer, tmp_path: Path
) -> None:
    """Messages keep arriving while the follow runs; it is killed twice mid-batch, restarted,
    and finally stopped with SIGTERM: every message is archived once and the queue is empty."""
    url = moto.create_queue(f"follow-{uuid.uuid4().hex[:10]}", VisibilityTimeout="2")
    archive = tmp_path / "archive"
    sent = 0
    for round_ in range(2):
        _send(moto, url, range(sent, sent + 100))
        sent += 100
        with _pull_process(url, archive, moto.endpoint, *FOLLOW) as proc:
            _wait_lines(archive, sent - 100 + 20, proc)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        archived = len(set(_archived_ids(archive)))
        assert archived < sent, f"round {round_}: the kill must land mid-run"
    time.sleep(2.5)  # received but undeleted messages become visible again
    with _pull_process(url, archive, moto.endpoint, *FOLLOW) as proc:
        _send(moto, url, range(sent, sent + 50))
        sent += 50
        _wait_lines(archive, sent, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    state: dict[str, Any] = json.loads(out)
    ids = _archived_ids(archive)
    assert len(ids) == len(set(ids)) == sent == state["archive_total"]
    assert state["running"] is False and state["last_success"] is not None
    assert _visible_and_hidden(moto, url) == (0, 0)


# ------------------------------------------------- a local endpoint, as `pull --help` shows it


def _fresh_machine(tmp_path: Path) -> dict[str, str]:
    """A new user's environment: credentials, and no region configured anywhere."""
    unset = ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return env | {
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
    }


def _help_example_against(moto: MotoServer, queue_name: str, archive: Path) -> list[str]:
    """`verify pull --help`'s example for a local endpoint, pointed at this moto and queue."""
    shown = subprocess.run(
        [sys.executable, "-m", "hookshift", "verify", "pull", "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    lines = shown.replace("\\\n", " ").splitlines()
    example = next(line for line in lines if "--endpoint-url http://127.0.0.1:5000" in line)
    example = example.replace("127.0.0.1:5000", f"127.0.0.1:{moto.port}")
    argv = shlex.split(example.replace("/cb ", f"/{queue_name} ").replace("./a ", f"{archive} "))
    assert argv[0] == "hookshift" and "--region" in argv
    return [sys.executable, "-m", "hookshift", *argv[1:]]


def test_the_help_example_for_a_local_endpoint_pulls_as_written(
    moto: MotoServer, tmp_path: Path
) -> None:
    name = f"cb-{uuid.uuid4().hex[:10]}"
    url = moto.create_queue(name)  # in the rehearsal's region, ap-northeast-2
    _send(moto, url, range(3))
    argv = _help_example_against(moto, name, tmp_path / "a")
    run = subprocess.run(argv, capture_output=True, text=True, env=_fresh_machine(tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("received 3, newly archived 3")


@pytest.mark.parametrize("follow", [(), ("--delete", "--follow")], ids=["once", "follow"])
def test_a_local_queue_looked_for_in_another_region_is_one_line_naming_the_region(
    moto: MotoServer, tmp_path: Path, follow: tuple[str, ...]
) -> None:
    url = moto.create_queue(f"cb-{uuid.uuid4().hex[:10]}")  # in ap-northeast-2
    archive = tmp_path / "a"
    argv = [sys.executable, "-m", "hookshift", "verify", "pull", "--queue-url", url,
            "--archive", str(archive), "--endpoint-url", moto.endpoint, *follow]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, env=_fresh_machine(tmp_path))
    assert run.returncode == 2
    assert run.stderr == (
        f"hookshift: error: {url}: no such queue at --endpoint-url {moto.endpoint} in the "
        "default region us-east-1: its URL names no region (fix: add --region with the region "
        "the queue was created in, e.g. --region ap-northeast-2)\n"
    )
    assert not archive.exists()


def test_a_queue_missing_in_the_region_given_is_one_line_with_how_to_list_them(
    moto: MotoServer, tmp_path: Path
) -> None:
    url = moto.create_queue(f"cb-{uuid.uuid4().hex[:10]}").rpartition("/")[0] + "/no-such-queue"
    argv = [sys.executable, "-m", "hookshift", "verify", "pull", "--queue-url", url,
            "--archive", str(tmp_path / "a"), "--endpoint-url", moto.endpoint,
            "--region", REGION]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, env=_fresh_machine(tmp_path))
    assert run.returncode == 2
    assert run.stderr == (
        f"hookshift: error: {url}: no such queue at --endpoint-url {moto.endpoint} in region "
        f"{REGION} (fix: check the queue URL and the region against `aws sqs list-queues "
        f"--endpoint-url {moto.endpoint} --region {REGION}`)\n"
    )


def test_an_archive_that_is_a_dangling_link_is_one_line_naming_where_it_points(
    moto: MotoServer, tmp_path: Path
) -> None:
    url = moto.create_queue(f"cb-{uuid.uuid4().hex[:10]}")
    archive = tmp_path / "a"
    archive.symlink_to(tmp_path / "gone")
    argv = [sys.executable, "-m", "hookshift", "verify", "pull", "--queue-url", url,
            "--archive", str(archive), "--endpoint-url", moto.endpoint,
            "--region", REGION]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, env=_fresh_machine(tmp_path))
    assert run.returncode == 2
    # one line: no warning about --delete before it, since nothing was pulled
    assert run.stderr == (
        f"hookshift: error: {archive}: a symbolic link to {tmp_path / 'gone'}, which does not "
        "exist (fix: create the directory it points to, or give the path of a directory)\n"
    )
    assert not (tmp_path / "gone").exists()


# ------------------------------------------------------------ messages with Binary attributes


def test_a_binary_attribute_is_archived_as_base64_with_its_batch_and_parity_reads_it(
    moto: MotoServer, tmp_path: Path
) -> None:
    """SQS lets a sender attach Binary attributes, which boto3 hands over as bytes: the message
    is archived and deleted with its batch, the value as the AWS CLI prints it (base64), and
    the String and Number attributes and the system attributes as they came."""
    from hookshift.verify.parity import ParityOptions, run_parity
    from tests.verify.data import T0, nginx_line, write_lines

    url = moto.create_queue(f"bin-{uuid.uuid4().hex[:10]}")
    client = moto.client()
    sent = {}
    for i in range(6):
        attributes: dict[str, Any] = {
            "nginx_request_id": {"DataType": "String", "StringValue": f"{i:032x}"}
        }
        if i == 3:
            attributes |= {
                "sig": {"DataType": "Binary", "BinaryValue": b"\x01\x02"},
                "blobs": {"DataType": "Binary", "BinaryListValues": [b"\xff", b"hi"]},
                "tries": {"DataType": "Number", "StringValue": "7"},
            }
        reply = client.send_message(QueueUrl=url, MessageBody=body(i), MessageAttributes=attributes)
        sent[reply["MessageId"]] = i
    archive = tmp_path / "a"
    run = subprocess.run(
        [*_pull_argv(url, archive, moto.endpoint), "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("received 6, newly archived 6, already archived 0, deleted 6")
    assert _visible_and_hidden(moto, url) == (0, 0)
    archived = {m["MessageId"]: m for m in iter_archive(archive)}
    assert sorted(archived) == sorted(sent)
    signed = next(m for mid, m in archived.items() if sent[mid] == 3)
    assert signed["Body"] == body(3)
    assert signed["MessageAttributes"] == {
        "nginx_request_id": {"StringValue": f"{3:032x}", "DataType": "String"},
        "sig": {"BinaryValue": "AQI=", "DataType": "Binary"},
        "blobs": {"BinaryListValues": ["/w==", "aGk="], "DataType": "Binary"},
        "tries": {"StringValue": "7", "DataType": "Number"},
    }
    assert signed["Attributes"]["SentTimestamp"].isdigit()
    assert signed["MD5OfBody"] == hashlib.md5(body(3).encode()).hexdigest()
    # parity reads the archive, the signed message among the others, keyed on the request id
    log = write_lines(
        tmp_path / "p.log", [nginx_line(f"{i:032x}", T0 + i, body(i)) for i in range(6)]
    )
    report = run_parity(f"nginx:{log}", f"archive:{archive}", ParityOptions(grace_s=0))
    assert report.verdict == "pass"
    assert report.counts["matched"] == 6 and report.counts["malformed"] == 0
