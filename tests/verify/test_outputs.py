"""What the verify commands write never lands on what they read, nor in a directory that is
not there: each such path is refused with one line, exit 2, before any work, and the inputs keep
their bytes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hookshift.cli import main
from hookshift.verify.parity import ParityOptions, run_parity
from hookshift.verify.report import render
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages
from tests.verify.test_hostile import refusal

STAGE = "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod"


def _inputs(root: Path) -> tuple[Path, Path]:
    """A live parity log, a rotated one, and an archive of the same callbacks."""
    write_lines(root / "parity.log.1", [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in (0, 1)])
    log = write_lines(root / "parity.log", [nginx_line(rid(2), T0 + 2000, body(2))])
    archive = root / "archive"
    write_messages(
        archive / "seg-000001.jsonl",
        [message(f"m{n}", body(n), T0 + n * 1000 + 9, request_id=rid(n)) for n in range(3)],
    )
    return log, archive


def _bytes_of(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.mark.parametrize(
    ("out", "queue", "says"),
    [
        ("archive/seg-000001.jsonl", "archive", "is one of the inputs (archive:"),
        ("parity.log", "archive", "is one of the inputs (nginx:"),
        ("parity.log.1", "archive", "is one of the inputs (nginx:"),
        ("parity.log.report", "archive", "is a name the input nginx:"),
        ("archive/report.jsonl", "archive", "is a name the input archive:"),
        ("archive/../archive/seg-000001.jsonl", "jsonl", "is one of the inputs (jsonl:"),
    ],
)
def test_parity_refuses_to_write_its_report_where_an_input_is_read(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    out: str,
    queue: str,
    says: str,
) -> None:
    _inputs(tmp_path)
    monkeypatch.chdir(tmp_path)  # relative paths resolve as the user's shell would
    queue_source = "archive:archive" if queue == "archive" else "jsonl:archive/seg-000001.jsonl"
    before = _bytes_of(tmp_path)
    err = refusal(capsys, "verify", "parity", "--app", f"nginx:{tmp_path}/parity.log*",
                  "--queue", queue_source, "--out", out, "--format", "json")  # fmt: skip
    assert f"--out {out}: {says}" in err
    assert _bytes_of(tmp_path) == before


def test_parity_refuses_a_report_over_the_file_a_linked_source_reads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log, archive = _inputs(tmp_path)
    link = tmp_path / "elsewhere.log"
    link.symlink_to(log)
    before = _bytes_of(tmp_path)
    err = refusal(capsys, "verify", "parity", "--app", f"nginx:{link}",
                  "--queue", f"archive:{archive}", "--out", str(log))  # fmt: skip
    assert f"is one of the inputs (nginx:{link})" in err
    assert _bytes_of(tmp_path) == before


def test_parity_refuses_a_report_in_a_directory_that_does_not_exist(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log, archive = _inputs(tmp_path)
    out = tmp_path / "a" / "b" / "c" / "out.txt"
    err = refusal(capsys, "verify", "parity", "--app", f"nginx:{log}",
                  "--queue", f"archive:{archive}", "--out", str(out))  # fmt: skip
    assert f"directory {out.parent} does not exist" in err
    assert not (tmp_path / "a").exists()


def _heal_report(root: Path, log: Path, archive: Path, name: str = "report.json") -> Path:
    """A parity report of the inputs that lists callback 1 as lost (heal has one to send)."""
    report = run_parity(f"nginx:{log}", f"archive:{archive}", ParityOptions(stage_urls=(STAGE,)))
    data = json.loads(render(report, "json"))
    data["missing_in_queue_keys"] = [rid(1)]
    path = root / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("ledger", ["report", "parity.log", "archive/ledger.jsonl"])
def test_heal_refuses_a_ledger_that_is_the_report_or_one_of_its_inputs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ledger: str
) -> None:
    log, archive = _inputs(tmp_path)
    report = _heal_report(tmp_path, log, archive)
    path = report if ledger == "report" else tmp_path / ledger
    before = _bytes_of(tmp_path)
    err = refusal(capsys, "verify", "heal", "--report", str(report), "--to", f"{STAGE}/callback",
                  "--ledger", str(path), "--apply")  # fmt: skip
    assert err.startswith(f"hookshift: error: --ledger {path}: ")
    assert ("--report" in err) if ledger == "report" else ("input" in err)
    assert _bytes_of(tmp_path) == before


def test_heal_refuses_the_default_ledger_when_the_report_sits_in_the_archive(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log, archive = _inputs(tmp_path)
    report = _heal_report(archive, log, archive, name="report.json")
    err = refusal(capsys, "verify", "heal", "--report", str(report), "--to", f"{STAGE}/callback")
    assert f"{archive / 'hookshift-heal-ledger.jsonl'}: is a name the input archive:" in err
    assert "give --ledger a path" in err


def test_heal_refuses_a_ledger_in_a_directory_that_does_not_exist(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log, archive = _inputs(tmp_path)
    report = _heal_report(tmp_path, log, archive)
    ledger = tmp_path / "no" / "such" / "ledger.jsonl"
    err = refusal(capsys, "verify", "heal", "--report", str(report), "--to", f"{STAGE}/callback",
                  "--ledger", str(ledger))  # fmt: skip
    assert f"directory {ledger.parent} does not exist" in err
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    ("option", "path", "says"),
    [
        ("--html", "archive/seg-000001.jsonl", "is one of the inputs (archive:"),
        ("--metrics-file", "parity.log", "is one of the inputs (nginx:"),
        ("--metrics-file", "parity.log.prom", "is a name the input nginx:"),
        ("--metrics-file", "missing/watch.prom", "does not exist"),
    ],
)
def test_watch_refuses_a_page_or_metrics_file_where_an_input_is_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, path: str, says: str
) -> None:
    _, archive = _inputs(tmp_path)
    before = _bytes_of(tmp_path)
    err = refusal(capsys, "verify", "watch", "--app", f"nginx:{tmp_path}/parity.log*",
                  "--queue", f"archive:{archive}", "--state", str(tmp_path / "state"), "--once",
                  option, str(tmp_path / path))  # fmt: skip
    assert f"{option} {tmp_path / path}" in err and says in err
    assert _bytes_of(tmp_path) == before
    assert not (tmp_path / "state").exists() and not (tmp_path / "missing").exists()


def test_watch_refuses_a_state_directory_its_app_glob_reads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, archive = _inputs(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "parity.log").rename(logs / "parity.log")
    before = _bytes_of(tmp_path)
    err = refusal(capsys, "verify", "watch", "--app", f"nginx:{logs}/*",
                  "--queue", f"archive:{archive}", "--state", str(logs), "--once")  # fmt: skip
    assert "--state" in err and f"is a name the input nginx:{logs}/*" in err
    assert _bytes_of(tmp_path) == before


@pytest.mark.parametrize(
    ("state", "archive", "says"),
    [
        ("archive", "archive", "--state {state}: is the archive (--queue archive:{archive})"),
        ("archive/w", "archive", "--state {state}: is inside the archive (--queue archive:"),
        ("w", "w/archive", "--queue archive:{archive}: is inside the watch's state directory"),
    ],
    ids=["same", "state-inside", "archive-inside"],
)
def test_watch_refuses_a_state_directory_that_is_in_or_holds_the_archive(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, state: str, archive: str, says: str
) -> None:
    """The archive is pull's alone, as `verify units` refuses it: the watch writes its own."""
    log, _ = _inputs(tmp_path / "in")
    write_messages(tmp_path / archive / "seg-000001.jsonl", [message("m0", body(0), T0)])
    before = _bytes_of(tmp_path)
    err = refusal(capsys, "verify", "watch", "--app", f"nginx:{log}",
                  "--queue", f"archive:{tmp_path / archive}", "--state", str(tmp_path / state),
                  "--once")  # fmt: skip
    assert says.format(state=tmp_path / state, archive=tmp_path / archive) in err
    assert _bytes_of(tmp_path) == before
    assert sorted(p.name for p in (tmp_path / archive).iterdir()) == ["seg-000001.jsonl"]


@pytest.mark.parametrize("option", ["--state-file", "--metrics-file"])
def test_pull_follow_refuses_a_heartbeat_or_metrics_file_over_an_archive_segment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str
) -> None:
    _, archive = _inputs(tmp_path)
    before = _bytes_of(tmp_path)
    segment = archive / "seg-000001.jsonl"
    err = refusal(capsys, "verify", "pull", "--queue-url",
                  "https://sqs.ap-northeast-2.amazonaws.com/123456789012/cb",
                  "--archive", str(archive), "--delete", "--follow",
                  option, str(segment))  # fmt: skip
    assert f"{option} {segment}: is one of the inputs (archive:" in err
    assert _bytes_of(tmp_path) == before


def test_pull_follow_refuses_metrics_in_a_directory_that_does_not_exist(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    metrics = tmp_path / "m" / "pull.prom"
    err = refusal(capsys, "verify", "pull", "--queue-url",
                  "https://sqs.ap-northeast-2.amazonaws.com/123456789012/cb",
                  "--archive", str(tmp_path / "archive"), "--delete", "--follow",
                  "--metrics-file", str(metrics))  # fmt: skip
    assert f"directory {metrics.parent} does not exist" in err
    assert os.listdir(tmp_path) == []


def test_units_refuses_an_out_dir_that_does_not_exist(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "systemd" / "system"
    err = refusal(capsys, "verify", "units", "--user", "hookshift", "--queue-url",
                  "https://sqs.ap-northeast-2.amazonaws.com/123456789012/cb",
                  "--archive", "/var/lib/hookshift/archive", "--state", "/var/lib/hookshift/w",
                  "--app", "nginx:/var/log/nginx/p.log*", "--hookshift-bin", "/usr/bin/hookshift",
                  "--out-dir", str(out_dir))  # fmt: skip
    assert f"--out-dir {out_dir}: no such directory" in err
    assert not (tmp_path / "systemd").exists()


def test_a_report_beside_the_inputs_but_outside_them_is_written(tmp_path: Path) -> None:
    _, archive = _inputs(tmp_path)
    out = tmp_path / "report.json"
    with pytest.raises(SystemExit) as exited:
        main(["verify", "parity", "--app", f"nginx:{tmp_path}/parity.log*",
              "--queue", f"archive:{archive}", "--out", str(out), "--format", "json"])  # fmt: skip
    assert exited.value.code == 0
    assert json.loads(out.read_text(encoding="utf-8"))["verdict"] == "pass"
