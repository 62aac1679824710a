"""Hostile input and faults for `hookshift verify`: one line, the right exit code, nothing
written, no traceback, no hang."""

from __future__ import annotations

import gzip
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookshift.errors import InputError, OperationError
from hookshift.procs import LOOPBACK
from hookshift.rehearsal.sqs import CREDENTIALS, REGION
from hookshift.verify.parity import ParityOptions, run_parity
from hookshift.verify.pull import NetworkLimits, pull
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages
from tests.verify.test_cli import _clean

QUICK = NetworkLimits(connect_s=0.5, read_s=0.5, attempts=2)


def hookshift(*args: str, stdout: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookshift", *args],
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind((LOOPBACK, 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def test_the_default_bound_of_an_sqs_call_is_under_a_minute() -> None:
    limits = NetworkLimits()
    assert limits.worst_s(wait_s=20) < 60 and limits.worst_s() <= 15


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("aws_env")
def test_pull_from_an_endpoint_that_never_answers_fails_and_creates_nothing(
    silent_endpoint: str, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    url = f"{silent_endpoint}/123456789012/cb"
    with pytest.raises(OperationError, match="did not answer in time"):
        pull(url, archive, endpoint_url=silent_endpoint, wait_time_s=1, limits=QUICK)
    assert not archive.exists()


@pytest.mark.e2e
@pytest.mark.timeout(60)
@pytest.mark.usefixtures("aws_env")
def test_parity_against_an_sqs_endpoint_that_never_answers_is_one_line(
    silent_endpoint: str, tmp_path: Path
) -> None:
    app, _ = _clean(tmp_path)
    url = f"{silent_endpoint}/123456789012/cb"
    with pytest.raises(OperationError, match="did not answer in time"):
        run_parity(
            f"nginx:{app}",
            f"sqs:{url}",
            ParityOptions(endpoint_url=silent_endpoint, sqs_wait_s=1, network=QUICK),
        )
    result = hookshift(
        "verify", "parity", "--app", f"nginx:{app}", "--queue", f"sqs:{url}",
        "--endpoint-url", silent_endpoint, "--region", REGION, "--network-timeout", "0.5",
    )  # fmt: skip
    assert result.returncode == 1
    assert "did not answer in time" in one_line(result)


@pytest.mark.e2e
def test_pull_with_a_queue_url_that_is_not_a_url_creates_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    result = hookshift("verify", "pull", "--queue-url", "notaurl", "--archive", str(archive))
    assert result.returncode == 2
    assert "--queue-url" in one_line(result)
    assert not archive.exists()


@pytest.mark.e2e
def test_a_temp_dir_with_a_quote_is_data_not_sql(tmp_path: Path) -> None:
    app, queue = _clean(tmp_path)
    odd = tmp_path / "it's; DROP"
    odd.mkdir()
    report = run_parity(f"nginx:{app}", f"jsonl:{queue}", ParityOptions(temp_dir=str(odd)))
    assert report.passed
    assert list(odd.iterdir()) == []  # the spill directory went away with the run
    missing = hookshift(
        "verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}",
        "--temp-dir", str(tmp_path / "no'where"),
    )  # fmt: skip
    assert missing.returncode == 2 and "--temp-dir" in one_line(missing)
    bad_limit = hookshift(
        "verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}",
        "--memory-limit", "1GB'; SELECT 1; --",
    )  # fmt: skip
    assert bad_limit.returncode == 2 and "--memory-limit" in one_line(bad_limit)


@pytest.mark.e2e
def test_a_record_larger_than_the_reader_takes_is_one_line(tmp_path: Path) -> None:
    _, queue = _clean(tmp_path)
    huge = nginx_line(rid(9), T0 + 9000, '{"x":"' + "a" * 50_000_000 + '"}')
    app = write_lines(tmp_path / "big.log", [nginx_line(rid(0), T0, body(0)), huge])
    out = tmp_path / "report.json"
    result = hookshift(
        "verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 2
    line = one_line(result)
    assert "big.log" in line and "larger than 16 MiB" in line
    assert not out.exists()


@pytest.mark.e2e
def test_a_truncated_gz_is_one_line(tmp_path: Path) -> None:
    _, queue = _clean(tmp_path)
    data = gzip.compress(
        "".join(nginx_line(rid(n), T0 + n, body(n)) + "\n" for n in range(2000)).encode()
    )
    app = tmp_path / "parity.log.1.gz"
    app.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as refused:
        run_parity(f"nginx:{app}", f"jsonl:{queue}", ParityOptions())
    assert refused.value.where == str(app)
    assert refused.value.what.startswith("the compressed file is truncated after line ")
    result = hookshift("verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}")
    assert result.returncode == 2
    assert f"{app}: the compressed file is truncated after line " in one_line(result)


@pytest.mark.e2e
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_full_stdout_is_one_line(tmp_path: Path, fmt: str) -> None:
    app, queue = _clean(tmp_path)
    with open("/dev/full", "w") as full:
        result = hookshift(
            "verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}",
            "--format", fmt, stdout=full.fileno(),
        )  # fmt: skip
    assert result.returncode in (1, 2)
    assert "standard output" in one_line(result)


def test_times_beyond_any_date_are_no_time_not_a_crash(tmp_path: Path) -> None:
    app = write_lines(
        tmp_path / "p.log",
        [
            nginx_line(rid(0), T0, body(0)).replace(f'"msec":"{T0 / 1000:.3f}"', '"msec":"1E20"'),
            nginx_line(rid(1), T0 + 1000, body(1)),
        ],
    )
    assert '"msec":"1E20"' in app.read_text()
    queue = write_messages(
        tmp_path / "q.jsonl",
        [
            message("m0", body(0), 10**20, request_id=rid(0)),
            message("m1", body(1), T0 + 1009, request_id=rid(1)),
        ],
    )
    report = run_parity(f"nginx:{app}", f"jsonl:{queue}", ParityOptions(grace_s=0))
    assert report.counts["matched"] == 2 and report.passed


@pytest.mark.e2e
@pytest.mark.parametrize(
    "report",
    [
        '{"missing_in_queue_keys": 5, "sources": {"app": "nginx:x"}, "key": "request_id"}',
        '{"missing_in_queue_keys": [], "sources": [], "key": "request_id"}',
        '{"missing_in_queue_keys": [], "sources": {"app": 3}, "key": "request_id"}',
        '{"missing_in_queue_keys": [], "sources": {"app": "nginx:x"}, "key": "request_id",'
        ' "app_fields": {"payload": "b"}}',
        "[1, 2]",
        "{",
    ],
)
def test_heal_with_an_edited_report_is_one_line(tmp_path: Path, report: str) -> None:
    path = tmp_path / "report.json"
    path.write_text(report)
    result = hookshift(
        "verify", "heal", "--report", str(path), "--to", "https://stage.example/p",
        "--i-mean-this-target",
    )  # fmt: skip
    assert result.returncode == 2
    assert str(path) in one_line(result)


@pytest.mark.e2e
def test_out_that_is_a_device_or_under_a_file_is_one_line_and_replaces_nothing(
    tmp_path: Path,
) -> None:
    app, queue = _clean(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for out in (fifo, app / "report.json"):
        result = hookshift(
            "verify", "parity", "--app", f"nginx:{app}", "--queue", f"jsonl:{queue}",
            "--out", str(out),
        )  # fmt: skip
        assert result.returncode == 2
        one_line(result)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    ledger = hookshift(
        "verify", "heal", "--report", str(app), "--to", "https://stage.example/p",
        "--ledger", str(app / "ledger"), "--apply", "--i-mean-this-target",
    )  # fmt: skip
    assert ledger.returncode == 2
    one_line(ledger)
