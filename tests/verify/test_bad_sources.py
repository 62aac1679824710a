"""Sources that cannot be read as they are (damaged .gz files, a directory for a file, lines that
are no records, a record too large) are one line in the user's words naming the file and the
line, exit 2; what can be read is read, and what the report says about it is true."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from hookshift.cli import main
from hookshift.errors import InputError
from hookshift.verify.heal import heal
from hookshift.verify.parity import ParityOptions, run_parity
from hookshift.verify.sources import JSON_RECORD_MAX
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages
from tests.verify.test_hostile import refusal
from tests.verify.test_outputs import STAGE, _heal_report

# what a message about a .gz must not show: the library's words, not the user's
LIBRARY_WORDS = ("GZIP", "zlib", "Error -3", "Not a gzipped", "IO Error", "EOFError")


def _log_lines(numbers: range) -> str:
    return "".join(nginx_line(rid(n), T0 + n * 1000, body(n)) + "\n" for n in numbers)


def _archive(root: Path, numbers: range = range(5), ids: bool = True) -> Path:
    messages = [
        message(f"m{n}", body(n), T0 + n * 1000 + 9, request_id=rid(n) if ids else None)
        for n in numbers
    ]
    write_messages(root / "archive" / "seg-000001.jsonl", messages)
    return root / "archive"


def _damaged(kind: str) -> bytes:
    whole = gzip.compress(_log_lines(range(5)).encode())
    return {
        "truncated": whole[: len(whole) - 12],
        "junk after it": whole + b"JUNK",
        "damaged": whole[:12] + b"\xff" * 24 + whole[36:],
        "not gzip": _log_lines(range(5)).encode(),
    }[kind]


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("truncated", "the compressed file is truncated after line "),
        ("junk after it", "bytes that are not gzip follow its compressed data (after line 5)"),
        ("damaged", "its compressed data is damaged before its first line ends"),
        ("not gzip", "not a gzip file, though its name ends in .gz"),
    ],
)
def test_a_damaged_gz_is_named_in_the_users_words(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str, says: str
) -> None:
    write_lines(tmp_path / "logs" / "parity.log", [])
    damaged = tmp_path / "logs" / "parity.log.1.gz"
    damaged.write_bytes(_damaged(kind))
    err = refusal(capsys, "verify", "parity", "--app", f"nginx:{tmp_path}/logs/parity.log*",
                  "--queue", f"archive:{_archive(tmp_path)}")  # fmt: skip
    assert err.startswith(f"hookshift: error: {damaged}: {says}"), err
    assert not any(word in err for word in LIBRARY_WORDS), err


def test_heal_names_a_damaged_gz_of_the_reports_app_source_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = write_lines(tmp_path / "parity.log", _log_lines(range(5)).splitlines())
    archive = _archive(tmp_path, range(0, 5, 2))
    report = _heal_report(tmp_path, log, archive)
    data = json.loads(report.read_text(encoding="utf-8"))
    data["sources"]["app"] = f"nginx:{tmp_path}/parity.log*"
    report.write_text(json.dumps(data), encoding="utf-8")
    damaged = tmp_path / "parity.log.2.gz"
    damaged.write_bytes(gzip.compress(log.read_bytes())[:40])  # logrotate, then a full disk
    for extra in ([], ["--format", "json"]):
        err = refusal(capsys, "verify", "heal", "--report", str(report),
                      "--to", f"{STAGE}/callback", *extra)  # fmt: skip
        assert f"{damaged}: the compressed file is truncated" in err
        assert "(a file of the report's app source)" in err
        assert not any(word in err for word in LIBRARY_WORDS), err


def test_right_after_logrotate_the_key_is_still_the_request_id(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_lines(logs / "parity.log", [])  # the live log, just created, sorts first
    (logs / "parity.log.1.gz").write_bytes(gzip.compress(_log_lines(range(5)).encode()))
    report = run_parity(f"nginx:{logs}/parity.log*", f"archive:{_archive(tmp_path)}",
                        ParityOptions(grace_s=0))  # fmt: skip
    assert report.key == "request_id"
    assert report.counts["matched"] == 5
    assert not any("request id" in w for w in report.warnings), report.warnings


def test_the_sha256_note_names_the_side_whose_records_carry_no_request_id(
    tmp_path: Path,
) -> None:
    log = write_lines(tmp_path / "parity.log", _log_lines(range(3)).splitlines())
    archive = _archive(tmp_path, range(3), ids=False)
    report = run_parity(f"nginx:{log}", f"archive:{archive}", ParityOptions(grace_s=0))
    assert report.key == "sha256"
    notes = [w for w in report.warnings if "request id" in w]
    assert notes == [
        f"the first records of archive:{archive} carry no request id: matched on sha256 of the "
        "body, so a changed body shows as missing on both sides, not as mismatched"
    ]


@pytest.mark.parametrize(
    ("side", "content", "says"),
    [
        ("queue", '[{"MessageId": "1", "Body": "x"}]\n', "a JSON array, not one JSON object"),
        ("queue", "1\n2\n", "not a JSON object"),
        ("queue", '\n{"Id": "1"}\n', "no string MessageId"),
        ("app", "[1, 2, 3]\n[4]\n", "a JSON array, not one JSON object"),
        ("app", "\xff not text\n", "not JSON"),  # read as the queue would get its body
    ],
)
def test_a_source_of_malformed_lines_only_is_bad_input_not_a_lost_callback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, side: str, content: str, says: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content.encode("utf-8") if "\xff" not in content else b"\xff not text\n")
    line = 2 if content.startswith("\n") else 1
    log = write_lines(tmp_path / "parity.log", _log_lines(range(5)).splitlines())
    app = f"nginx:{bad}" if side == "app" else f"nginx:{log}"
    queue = f"jsonl:{bad}" if side == "queue" else f"archive:{_archive(tmp_path)}"
    err = refusal(capsys, "verify", "parity", "--app", app, "--queue", queue)
    label = app if side == "app" else queue
    assert err.startswith(f"hookshift: error: {bad}:{line}: no record of {label} could be read")
    assert says in err and f"(fix: give --{side} a source of " in err


def test_a_source_with_one_record_among_malformed_lines_still_gives_a_verdict(
    tmp_path: Path,
) -> None:
    queue = tmp_path / "q.jsonl"
    good = json.dumps(message("m0", body(0), T0 + 9, request_id=rid(0)))
    queue.write_text("[1]\n" + good + "\nnot json\n", encoding="utf-8")
    log = write_lines(tmp_path / "parity.log", _log_lines(range(1)).splitlines())
    report = run_parity(f"nginx:{log}", f"jsonl:{queue}", ParityOptions(grace_s=0))
    assert report.passed and report.counts["malformed"] == 2
    assert f"{queue}:3: not JSON (unreadable at character 1)" in report.malformed_examples


def test_a_directory_given_as_a_log_file_is_named_with_the_glob_to_use(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_lines(tmp_path / "logs" / "parity.log", _log_lines(range(2)).splitlines())
    err = refusal(capsys, "verify", "parity", "--app", f"nginx:{tmp_path}/logs",
                  "--queue", f"archive:{_archive(tmp_path)}")  # fmt: skip
    assert f"nginx:{tmp_path}/logs: is a directory" in err
    assert f"nginx:{tmp_path}/logs/parity.log*" in err


def test_a_file_given_as_the_archive_is_named_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = write_lines(tmp_path / "parity.log", _log_lines(range(2)).splitlines())
    segment = _archive(tmp_path) / "seg-000001.jsonl"
    err = refusal(capsys, "verify", "parity", "--app", f"nginx:{log}",
                  "--queue", f"archive:{segment}")  # fmt: skip
    assert f"archive:{segment}: is a file, not the archive directory" in err
    assert "not found" not in err


def test_a_record_larger_than_the_reader_takes_is_named_by_file_and_line(tmp_path: Path) -> None:
    # DuckDB's reader takes up to about twice the limit it is given: beyond that for certain
    huge = nginx_line(rid(3), T0 + 3000, '{"x":"' + "a" * (2 * JSON_RECORD_MAX + 1024) + '"}')
    log = write_lines(
        tmp_path / "big.log", [*_log_lines(range(3)).splitlines(), huge, nginx_line(rid(4), T0, "")]
    )
    with pytest.raises(InputError) as refused:
        run_parity(f"nginx:{log}", f"archive:{_archive(tmp_path)}", ParityOptions())
    assert refused.value.where == f"{log}:4"
    assert refused.value.what.startswith("a record is larger than 16 MiB")


def test_a_half_written_last_line_is_a_warning_on_stderr_and_a_note_in_the_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "parity.log"
    log.write_text(_log_lines(range(3)) + '{"v":1,"request_id":"ab', encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["verify", "parity", "--app", f"nginx:{log}",
              "--queue", f"archive:{_archive(tmp_path, range(3))}", "--grace", "0"])  # fmt: skip
    out, err = capsys.readouterr()
    assert exited.value.code == 0, err
    notice = f"{log}:4: the last line has no end yet (nginx is still writing it)"
    assert f"warning: {notice}" in err
    assert notice in out and "malformed: 0" in out


@pytest.mark.parametrize(
    "target",
    [
        f"https://user:s3cret@{STAGE.removeprefix('https://')}/callback",
        "sqs:https://user:s3cret@sqs.ap-northeast-2.amazonaws.com/123456789012/cb",
    ],
)
def test_heal_refuses_a_target_with_a_password_and_never_shows_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, target: str
) -> None:
    log = write_lines(tmp_path / "parity.log", _log_lines(range(3)).splitlines())
    report = _heal_report(tmp_path, log, _archive(tmp_path, range(3)))
    err = refusal(capsys, "verify", "heal", "--report", str(report), "--to", target)
    assert "user name or password is refused" in err and "***@" in err
    assert "s3cret" not in err
    with pytest.raises(InputError, match="user name or password"):
        heal(report, target, other_target=True)


@pytest.mark.parametrize(
    ("content", "where", "says"),
    [
        (b"\xff{}", ":1", "is not a hookshift parity report: not UTF-8 text at byte 1"),
        (b'{\n  "key": x}', ":2", "is not a hookshift parity report (JSON expected;"),
        (b"", ":1", "is not a hookshift parity report (JSON expected;"),
        (
            b'{"missing_in_queue_keys": [], "sources": [], "key": "sha256"}',
            "",
            "is not a hookshift parity report: its 'sources' does not hold",
        ),
    ],
)
def test_heal_says_what_is_wrong_with_a_report_in_the_users_words(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, where: str, says: str
) -> None:
    report = tmp_path / "report.json"
    report.write_bytes(content)
    err = refusal(capsys, "verify", "heal", "--report", str(report), "--to", f"{STAGE}/callback")
    assert err.startswith(f"hookshift: error: {report}{where}: {says}"), err
    for python in ("dict", "Expecting", "codec", "char ", "position"):
        assert python not in err, err
