"""Inputs the verify commands meet in the field and the other tests do not make: large
callbacks, exports with a byte-order mark, forms in EUC-KR, logrotate caught half-way, a parity
log nginx has only just created, clocks a little apart, an archive asked to take a second queue.
Each asserts the verdict and counts a person would expect, or one line and exit 2."""

from __future__ import annotations

import csv
import gzip
import io
import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from hookshift.cli import main
from hookshift.errors import InputError
from hookshift.rehearsal.sqs import CREDENTIALS, REGION, MotoServer
from hookshift.verify.archive import Archive, archive_queue_url
from hookshift.verify.follow import FollowOptions, follow
from hookshift.verify.parity import ParityOptions, run_parity
from hookshift.verify.pull import pull
from hookshift.verify.watch import Watcher
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

BOM = b"\xef\xbb\xbf"


def _log_and_queue(
    root: Path, n: int, *, lost: frozenset[int] = frozenset(), **body_kw: str
) -> tuple[Path, list[dict[str, object]]]:
    """A parity log of callbacks 1..n and the messages of those not `lost`."""
    log = write_lines(
        root / "parity.log",
        [nginx_line(rid(i), T0 + i * 1000, body(i, **body_kw)) for i in range(1, n + 1)],
    )
    messages = [
        message(f"m{i}", body(i, **body_kw), T0 + i * 1000 + 40, request_id=rid(i))
        for i in range(1, n + 1)
        if i not in lost
    ]
    return log, messages


def _counts(report_counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in report_counts.items() if v}


# --------------------------------------------------------------------------- large callbacks


def test_a_file_of_messages_whose_first_line_is_longer_than_4_kib_is_one_message_per_line(
    tmp_path: Path,
) -> None:
    """A callback of a few KiB makes a Message line longer than any fixed head: the file is
    still JSONL, not the pretty-printed document of `aws sqs receive-message`."""
    log, messages = _log_and_queue(tmp_path, 3, lost=frozenset({2}), userdata="가" * 5000)
    queue = write_messages(tmp_path / "messages.jsonl", messages)
    report = run_parity(f"nginx:{log}", f"jsonl:{queue}", ParityOptions(grace_s=0))
    assert _counts(report.counts) == {
        "app": 3, "queue": 2, "compared": 2, "matched": 2, "missing_in_queue": 1,
    }  # fmt: skip


def test_a_whole_last_record_longer_than_64_kib_without_its_newline_is_read_not_left_out(
    tmp_path: Path,
) -> None:
    """An export that does not end in a newline: its last record is whole, however long, so
    it is neither left out as a line still being written nor taken off the malformed count."""
    log, messages = _log_and_queue(tmp_path, 3, userdata="x" * 100_000)
    archive = write_messages(tmp_path / "archive" / "seg-1.jsonl", messages).parent
    log.write_bytes(b"not a record\n" + log.read_bytes().rstrip(b"\n"))
    report = run_parity(f"nginx:{log}", f"archive:{archive}", ParityOptions(grace_s=0))
    assert report.counts["matched"] == 3
    assert (report.counts["malformed"], report.counts["malformed_app"]) == (1, 1)
    assert report.malformed_examples == [f"{log}:1: not JSON (unreadable at character 1)"]
    assert not any("no end yet" in w for w in report.warnings)


# --------------------------------------------------------------------------- byte-order marks


def _csv(path: Path, rows: list[list[str]]) -> Path:
    """An export as Excel's "CSV UTF-8" writes it: a byte-order mark, CRLF line ends, and
    quoted fields that hold newlines."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path.write_bytes(BOM + buffer.getvalue().encode())
    return path


def test_a_csv_export_with_a_byte_order_mark_has_its_first_column_by_name(tmp_path: Path) -> None:
    bodies = {i: body(i, userdata=f'line one\nline "two", {i}') for i in range(1, 4)}
    export = _csv(
        tmp_path / "export.csv",
        [["body", "request_id", "time"]]
        + [[b, rid(i), str((T0 + i * 1000) / 1000)] for i, b in bodies.items()],
    )
    queue = write_messages(
        tmp_path / "messages.jsonl",
        [message(f"m{i}", b, T0 + i * 1000 + 40, request_id=rid(i)) for i, b in bodies.items()],
    )
    report = run_parity(f"csv:{export}", f"jsonl:{queue}", ParityOptions(grace_s=0))
    assert report.verdict == "pass"
    assert _counts(report.counts) == {"app": 3, "queue": 3, "compared": 3, "matched": 3}


@pytest.mark.parametrize("indent", [None, 4])
def test_a_document_of_the_aws_cli_saved_with_a_byte_order_mark_is_read(
    tmp_path: Path, indent: int | None
) -> None:
    """PowerShell's `Out-File -Encoding utf8` puts a byte-order mark before the document."""
    log, messages = _log_and_queue(tmp_path, 3)
    document = tmp_path / "received.json"
    document.write_bytes(BOM + json.dumps({"Messages": messages}, indent=indent).encode())
    report = run_parity(f"nginx:{log}", f"jsonl:{document}", ParityOptions(grace_s=0))
    assert report.verdict == "pass" and report.counts["matched"] == 3


# --------------------------------------------------------------------------- keys


def test_a_form_key_whose_value_is_escaped_euc_kr_is_a_key_not_a_failed_run(
    tmp_path: Path,
) -> None:
    """`%B9%E8` is EUC-KR, not UTF-8: it cannot be decoded, but it is the same on both sides
    (API Gateway passes the body as it came), so it keys its callback as written."""
    forms = {
        1: "MSGID=%B9%E8%BC%DB&RESULT=7000",
        2: "MSGID=%B9%E8%BC%DC&RESULT=7000",
        3: "MSGID=%ED%95%9C+1&RESULT=7000",
    }
    log = write_lines(
        tmp_path / "parity.log",
        [
            nginx_line(rid(i), T0 + i * 1000, f, content_type="application/x-www-form-urlencoded")
            for i, f in forms.items()
        ],
    )
    queue = write_messages(
        tmp_path / "messages.jsonl",
        [message(f"m{i}", f, T0 + i * 1000 + 40) for i, f in forms.items() if i != 2],
    )
    options = ParityOptions(key="form:MSGID+form:RESULT", grace_s=0, redact=False)
    report = run_parity(f"nginx:{log}", f"jsonl:{queue}", options)
    assert _counts(report.counts) == {
        "app": 3, "queue": 2, "compared": 2, "matched": 2, "missing_in_queue": 1,
    }  # fmt: skip
    assert report.missing_in_queue_keys == ["%B9%E8%BC%DC\x1f7000"]
    assert [s["key"] for s in report.samples["matched"]] == [
        "MSGID=%B9%E8%BC%DB, RESULT=7000",
        "MSGID=한 1, RESULT=7000",
    ]


@pytest.mark.parametrize("output", ["json", "html"])
def test_a_body_with_half_an_emoji_escape_is_shown_redacted_in_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str
) -> None:
    """A vendor that cuts USERDATA at a length limit can cut ``\\ud83d\\ude00`` in half: the
    redacted sample keeps the escape instead of stopping the output on a lone surrogate."""
    payloads = {
        1: '{"MSGID":"m1","PHONE":"01012345678","USERDATA":"\\ud83d"}',
        2: '{"MSGID":"m2","PHONE":"01012345679","USERDATA":"\\udc00 \\ud83d\\ude00"}',
    }
    log = write_lines(
        tmp_path / "parity.log", [nginx_line(rid(i), T0 + i * 1000, b) for i, b in payloads.items()]
    )
    queue = write_messages(
        tmp_path / "messages.jsonl", [message("m1", payloads[1], T0 + 1040, request_id=rid(1))]
    )
    with pytest.raises(SystemExit) as exited:
        main(["verify", "parity", "--app", f"nginx:{log}", "--queue", f"jsonl:{queue}",
              "--grace", "0", "--format", output])  # fmt: skip
    stdout, stderr = capsys.readouterr()
    assert exited.value.code == 1, stderr
    stdout.encode("utf-8")  # what the terminal or the file gets
    if output == "json":
        missing = json.loads(stdout)["samples"]["missing_in_queue"]
        assert json.loads(missing[0]["app_body"]) == {
            "MSGID": "m2", "PHONE": "*******5679", "USERDATA": "\udc00 \U0001f600",
        }  # fmt: skip
    else:
        assert "*******5679" in stdout and "01012345679" not in stdout


# --------------------------------------------------------------------------- logrotate


def test_a_log_that_copytruncate_is_copying_counts_each_callback_once(tmp_path: Path) -> None:
    """logrotate's copytruncate copies the log to p.log.1 before it truncates it: caught
    half-way, the copy begins as the log does and holds no line the log lacks."""
    log, messages = _log_and_queue(tmp_path, 30)
    data = log.read_bytes()
    (tmp_path / "parity.log.1").write_bytes(data[: len(data) // 2])  # ends in a torn line
    queue = write_messages(tmp_path / "messages.jsonl", messages)
    report = run_parity(f"nginx:{tmp_path / 'parity.log*'}", f"jsonl:{queue}", ParityOptions())
    assert _counts(report.counts) == {"app": 30, "queue": 30, "compared": 30, "matched": 30}
    assert report.warnings == [
        f"{tmp_path / 'parity.log.1'} begins with the same line as {log}: a copy of it"
        " (logrotate's copytruncate copying it), left out"
    ]


@pytest.mark.parametrize("written", [20, 0.5, 1.0])
def test_a_log_that_logrotate_is_compressing_counts_each_callback_once(
    tmp_path: Path, written: float
) -> None:
    """gzip writes p.log.2.gz beside p.log.2 and removes p.log.2 when done: a .gz that holds
    its header only, half of the data or all of it is read once, from p.log.2."""
    _, messages = _log_and_queue(tmp_path, 30)
    lines = (tmp_path / "parity.log").read_text().splitlines()
    write_lines(tmp_path / "parity.log", lines[20:])
    old = write_lines(tmp_path / "parity.log.2", lines[:20])
    packed = gzip.compress(old.read_bytes())
    cut = int(written) if written > 1 else int(len(packed) * written)
    (tmp_path / "parity.log.2.gz").write_bytes(packed[:cut])
    queue = write_messages(tmp_path / "messages.jsonl", messages)
    report = run_parity(f"nginx:{tmp_path / 'parity.log*'}", f"jsonl:{queue}", ParityOptions())
    assert _counts(report.counts) == {"app": 30, "queue": 30, "compared": 30, "matched": 30}
    assert report.warnings == [
        f"{tmp_path / 'parity.log.2.gz'} is {old} being compressed: left out, {old} is read"
    ]


def test_archive_segments_compressed_after_they_closed_are_still_read(tmp_path: Path) -> None:
    """`pull --follow` closes segments by size and age so that they can be compressed: a
    compressed one still holds its messages (else its callbacks would show as missing, and
    heal would send them again), and one gzip is still writing is read from its segment."""
    log, messages = _log_and_queue(tmp_path, 30)
    archive = tmp_path / "archive"
    write_messages(archive / "seg-1.jsonl.gz", messages[:10])
    write_messages(archive / "seg-2.jsonl", messages[10:20])
    closing = write_messages(archive / "seg-3.jsonl", messages[20:])
    packed = gzip.compress(closing.read_bytes())
    (archive / "seg-3.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    report = run_parity(f"nginx:{log}", f"archive:{archive}", ParityOptions())
    assert _counts(report.counts) == {"app": 30, "queue": 30, "compared": 30, "matched": 30}
    with Watcher(f"nginx:{log}", f"archive:{archive}", tmp_path / "state") as watcher:
        state = watcher.update()
    assert {k: state.counts[k] for k in report.counts} == report.counts


# --------------------------------------------------------------------------- an empty side


def test_an_empty_parity_log_is_said_to_hold_no_record_not_to_lack_request_ids(
    tmp_path: Path,
) -> None:
    _, messages = _log_and_queue(tmp_path, 3)
    empty = tmp_path / "parity.log"
    empty.write_bytes(b"")
    queue = write_messages(tmp_path / "messages.jsonl", messages)
    report = run_parity(f"nginx:{empty}", f"jsonl:{queue}", ParityOptions())
    assert report.key == "request_id"
    assert report.warnings == [f"nginx:{empty} holds no record"]
    assert report.verdict == "fail" and report.counts["missing_in_app"] == 3


def test_a_watch_started_before_nginx_logged_a_callback_keys_on_the_request_id(
    tmp_path: Path,
) -> None:
    """nginx creates the parity log when it reloads with the mirror, before any callback: the
    key chosen then is kept for good, so it waits for a record. On sha256 a callback whose
    copy has another body would show as missing on both sides instead of as mismatched."""
    log, messages = _log_and_queue(tmp_path, 3)
    lines = log.read_text()
    log.write_bytes(b"")
    archive = tmp_path / "archive"
    messages[1]["Body"] = str(messages[1]["Body"]).replace("7000", "7001")
    write_messages(archive / "seg-1.jsonl", messages)
    with Watcher(f"nginx:{log}", f"archive:{archive}", tmp_path / "state") as watcher:
        assert watcher.update().key == ""
        log.write_text(lines)
        state = watcher.update()
    assert state.key == "request_id"
    assert _counts(state.counts) == {
        "app": 3, "queue": 3, "compared": 3, "matched": 2, "mismatched": 1,
    }  # fmt: skip


# --------------------------------------------------------------------------- the wrong file


def test_an_access_log_given_as_the_parity_log_is_named_for_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    access = tmp_path / "access.log"
    access.write_text(
        '203.0.113.9 - - [07/Dec/2026:10:00:00 +0900] "POST /callback HTTP/1.1" 200 2 "-"'
        ' "Bizppurio"\n' * 3
    )
    _, messages = _log_and_queue(tmp_path, 3)
    queue = write_messages(tmp_path / "messages.jsonl", messages)
    out = tmp_path / "report.json"
    with pytest.raises(SystemExit) as exited:
        main(["verify", "parity", "--app", f"nginx:{access}", "--queue", f"jsonl:{queue}",
              "--format", "json", "--out", str(out)])  # fmt: skip
    stdout, stderr = capsys.readouterr()
    assert exited.value.code == 2 and stdout == "" and not out.exists()
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith(
        f"hookshift: error: {access}:1: no record of nginx:{access} could be read; the first"
        " line: a line of an access log (nginx's combined format), not JSON (fix: give --app"
        " a source of hookshift's parity log"
    )


def test_a_refusal_is_the_only_line_even_when_the_run_had_something_to_say(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An archive segment `verify pull` is still writing is worth a warning in a run that
    gives a verdict; in a run that refuses its app source, the refusal is the one line."""
    log = tmp_path / "access.json.log"
    log.write_text(json.dumps({"remote_addr": "203.0.113.9", "request": "POST /cb"}) + "\n")
    _, messages = _log_and_queue(tmp_path, 3)
    segment = write_messages(tmp_path / "archive" / "seg-1.jsonl", messages)
    with segment.open("a") as fh:
        fh.write('{"MessageId": "m4", "Bo')
    with pytest.raises(SystemExit) as exited:
        main(["verify", "parity", "--app", f"nginx:{log}", "--queue",
              f"archive:{segment.parent}"])  # fmt: skip
    stdout, stderr = capsys.readouterr()
    assert exited.value.code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "no string body" in stderr, stderr


# --------------------------------------------------------------------------- clocks


def test_clocks_apart_by_more_than_the_grace_are_named_when_a_window_cuts_the_run(
    tmp_path: Path,
) -> None:
    """nginx's clock 45 s ahead of SQS's (under the minute that `clock_warning` waits for):
    the copies of the callbacks in the window's last 15 s were sent after its end plus the
    grace, and show as missing. The warning says so and names the grace that takes them in."""
    n, skew = 120, 45_000
    log = write_lines(
        tmp_path / "parity.log",
        [nginx_line(rid(i), T0 + i * 1000 + skew, body(i)) for i in range(n)],
    )
    queue = write_messages(
        tmp_path / "messages.jsonl",
        [message(f"m{i}", body(i), T0 + i * 1000 + 40, request_id=rid(i)) for i in range(n)],
    )
    since, until = T0 + skew + 20_000, T0 + skew + 80_000
    options = ParityOptions(since_ms=since, until_ms=until)
    report = run_parity(f"nginx:{log}", f"jsonl:{queue}", options)
    assert report.counts["missing_in_queue"] == 15 and report.verdict == "fail"
    assert report.warnings == [
        "the median lag is -44,960 ms, more than the grace (30 s): the nginx host's clock and"
        " the queue's (SentTimestamp) disagree, so the copies of callbacks near the"
        " --since/--until edges were sent outside the window and those callbacks show as"
        " missing; run again with --grace 75, and sync the clocks (NTP)"
    ]
    wider = ParityOptions(since_ms=since, until_ms=until, grace_s=75)
    again = run_parity(f"nginx:{log}", f"jsonl:{queue}", wider)
    assert again.verdict == "pass" and again.counts["matched"] == 60


def test_without_a_window_the_same_clocks_give_no_window_warning(tmp_path: Path) -> None:
    log = write_lines(
        tmp_path / "parity.log",
        [nginx_line(rid(i), T0 + i * 1000 + 45_000, body(i)) for i in range(20)],
    )
    queue = write_messages(
        tmp_path / "messages.jsonl",
        [message(f"m{i}", body(i), T0 + i * 1000 + 40, request_id=rid(i)) for i in range(20)],
    )
    report = run_parity(f"nginx:{log}", f"jsonl:{queue}", ParityOptions())
    assert report.verdict == "pass" and report.warnings == []


# --------------------------------------------------------------------------- one queue an archive


def test_an_archive_refuses_a_second_queue_and_takes_its_own_under_another_host(
    tmp_path: Path,
) -> None:
    root = tmp_path / "archive"
    first = "https://sqs.ap-northeast-2.amazonaws.com/123456789012/kakao-at-result"
    with Archive(root, first) as archive:
        archive.append([{"MessageId": "m1", "Body": body(1)}])
    other = "https://sqs.ap-northeast-2.amazonaws.com/123456789012/kakao-at-result-dlq"
    with pytest.raises(InputError) as refused:
        Archive(root, other).open()
    assert str(refused.value) == (
        f"{root}: the archive holds the messages of another queue, {first} (fix: pull"
        f" {other} into another directory: a parity check over one archive compares the app"
        " with every message in it, and heal sends to the queue it records)"
    )
    legacy = "https://ap-northeast-2.queue.amazonaws.com/123456789012/kakao-at-result"
    with Archive(root, legacy) as archive:
        assert len(archive) == 1
    assert archive_queue_url(root) == first


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.mark.e2e
def test_pull_into_the_archive_of_another_queue_is_refused_and_receives_nothing(
    moto: MotoServer, tmp_path: Path, aws_env: None
) -> None:
    first, second = (moto.create_queue(f"q-{uuid.uuid4().hex[:10]}") for _ in range(2))
    moto.client().send_message(QueueUrl=second, MessageBody=body(2))
    archive = tmp_path / "archive"
    pull(first, archive, endpoint_url=moto.endpoint, wait_time_s=0)
    with pytest.raises(InputError, match="holds the messages of another queue"):
        pull(second, archive, endpoint_url=moto.endpoint, wait_time_s=0, delete=True)
    assert archive_queue_url(archive) == first
    assert not list(archive.glob("*.jsonl"))
    attrs = moto.client().get_queue_attributes(
        QueueUrl=second, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "1"


@pytest.mark.e2e
def test_a_followed_archive_records_its_queue_for_heal(
    moto: MotoServer, tmp_path: Path, aws_env: None
) -> None:
    """`verify pull --follow` fills the archive a watch and a parity read: the report names
    the queue from it as where heal may send."""
    url = moto.create_queue(f"q-{uuid.uuid4().hex[:10]}")
    moto.client().send_message(QueueUrl=url, MessageBody=body(1))
    archive = tmp_path / "archive"
    stop = threading.Event()
    options = FollowOptions(endpoint_url=moto.endpoint, wait_time_s=1, workers=1)
    worker = threading.Thread(target=follow, args=(url, archive, stop, options))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not list(archive.glob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert archive_queue_url(archive) == url
    write_lines(tmp_path / "parity.log", [nginx_line(rid(1), T0 + 1000, body(1))])
    report = run_parity(f"nginx:{tmp_path / 'parity.log'}", f"archive:{archive}", ParityOptions())
    assert report.heal_targets == [f"sqs:{url}"]
