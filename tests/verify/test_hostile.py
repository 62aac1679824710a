"""Hostile input to the verify commands: each refusal is one line on stderr, exit 2, nothing
written, no traceback; files that name callbacks are never written through a planted link."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from hookshift.cli import main
from hookshift.errors import InputError
from hookshift.verify.heal import heal
from hookshift.verify.metrics import MetricsServer
from hookshift.verify.pull import sqs_client
from hookshift.verify.retention import parse_duration
from tests.verify.data import rid
from tests.verify.test_cli import _clean
from tests.verify.test_heal import _stage_report, stage  # noqa: F401 - the stub stage fixture

Stage = tuple[str, list[tuple[dict[str, str], bytes]]]


def refusal(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run hookshift with `args`; it must refuse with exit 2 and one line on stderr."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    assert exited.value.code == 2, err
    assert out == ""
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("hookshift: error: "), err
    return err


@pytest.fixture
def sources(tmp_path: Path) -> tuple[str, str]:
    app, queue = _clean(tmp_path)
    return f"nginx:{app}", f"jsonl:{queue}"


def test_a_usage_error_is_one_line_naming_the_help(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sources: tuple[str, str]
) -> None:
    err = refusal(capsys, "verify", "parity", "--app", sources[0])
    assert "Missing option '--queue'" in err and "hookshift verify parity --help" in err
    err = refusal(capsys, "verify", "parity", "--app", sources[0], "--queue", sources[1],
                  "--out", str(tmp_path))  # fmt: skip
    assert "is a directory" in err


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--grace", "nan", "not a number of seconds"),
        ("--grace", "inf", "not a number of seconds"),
        ("--threads", "100000", "at most 256"),
        ("--since", "99999999999999999999", "outside 1970..9999"),
        ("--until", "-5", "outside 1970..9999"),
        ("--stage-url", "https://stage.example:99999/prod", "not a URL"),
        ("--stage-url", "stage.example/prod", "not a URL"),
        ("--key", "json:a..b", "needs a field name"),
        ("--key", "json:MSGID.", "needs a field name"),
    ],
)
def test_parity_refuses_option_values_no_run_can_use(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    sources: tuple[str, str],
    option: str,
    value: str,
    says: str,
) -> None:
    out = tmp_path / "r.json"
    args = ["verify", "parity", "--app", sources[0], "--queue", sources[1], "--out", str(out)]
    err = refusal(capsys, *args, f"{option}={value}")
    assert option in err and says in err
    assert not out.exists()


def test_a_queue_url_with_an_impossible_port_or_region_is_refused_before_any_call(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sources: tuple[str, str]
) -> None:
    err = refusal(capsys, "verify", "parity", "--app", sources[0],
                  "--queue", "sqs:https://sqs.ap-northeast-2.amazonaws.com:99999/1/q")  # fmt: skip
    assert "--queue: not a URL" in err
    with pytest.raises(InputError, match="--region: not an AWS region"):
        sqs_client("https://sqs.ap-northeast-2.amazonaws.com/1/q", None, "no such region!")
    archive = tmp_path / "archive"
    err = refusal(capsys, "verify", "pull", "--queue-url", "https://sqs.example/1/q",
                  "--archive", str(archive), "--region", "x y")  # fmt: skip
    assert "not an AWS region" in err
    assert not archive.exists()


@pytest.mark.parametrize("text", ["99999999999999d", "3651d"])
def test_a_duration_beyond_ten_years_is_refused(text: str) -> None:
    with pytest.raises(InputError, match="longer than 3650 d"):
        parse_duration(text, "--interval")
    assert parse_duration("3650d", "--interval") == 3650 * 86_400


@pytest.mark.parametrize("listen", ["0.0.0.0:9464", "[::]:9464", "192.0.2.7:9464"])
def test_watch_listens_for_metrics_on_loopback_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sources: tuple[str, str], listen: str
) -> None:
    state = tmp_path / "state"
    err = refusal(capsys, "verify", "watch", "--app", sources[0], "--queue", sources[1],
                  "--state", str(state), "--once", "--metrics-listen", listen)  # fmt: skip
    assert "not a loopback address" in err
    assert not state.exists()


def test_metrics_serve_on_ipv6_loopback_and_a_taken_port_is_one_line() -> None:
    server = MetricsServer("::1", 0, list).start()
    try:
        url = f"http://[::1]:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.status == 200
        with pytest.raises(InputError, match="cannot listen on ::1:"):
            MetricsServer("::1", server.port, list)
    finally:
        server.stop()


def test_heal_refuses_a_target_with_an_impossible_port(tmp_path: Path) -> None:
    path = _stage_report(tmp_path, ["https://stage.example:99999/prod", "https://stage.example"])
    with pytest.raises(InputError, match="not a stage URL"):
        heal(path, "https://stage.example:99999/prod")
    # a recorded target that is no URL matches nothing, the others still do
    assert heal(path, "https://stage.example/prod").applied is False


def test_heal_never_appends_through_a_link_planted_at_the_ledger(
    tmp_path: Path,
    stage: Stage,  # noqa: F811 - the fixture imported above
) -> None:
    url, received = stage
    path = _stage_report(tmp_path, [url])
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    victim.chmod(0o644)
    (tmp_path / "hookshift-heal-ledger.jsonl").symlink_to(victim)
    with pytest.raises(InputError, match="not a regular file"):
        heal(path, url, apply=True, plain_http_loopback=True)
    assert received == []
    assert victim.read_text() == "keep\n" and victim.stat().st_mode & 0o777 == 0o644
    lock = tmp_path / "hookshift-heal-ledger.jsonl.lock"
    assert not lock.exists()  # refused before the stage is looked for, the lock taken
    lock.symlink_to(tmp_path / "made-by-the-lock")
    (tmp_path / "hookshift-heal-ledger.jsonl").unlink()
    with pytest.raises(InputError, match="a link, not a lock file"):
        heal(path, url, apply=True, plain_http_loopback=True)
    assert not (tmp_path / "made-by-the-lock").exists() and received == []


def test_heal_after_a_crash_mid_line_records_its_next_send_and_never_repeats_it(
    tmp_path: Path,
    stage: Stage,  # noqa: F811 - the fixture imported above
) -> None:
    url, received = stage
    path = _stage_report(tmp_path, [url])
    ledger = tmp_path / "hookshift-heal-ledger.jsonl"
    entry = {"key": rid(0), "replay_id": rid(0), "to": url, "sent_at": "2026-11-28T08:00:00"}
    # the crash left one whole line and half of the next, and a byte that is not UTF-8
    ledger.write_bytes(json.dumps(entry).encode() + b'\n{"key": "\xff')
    assert heal(path, url, apply=True, plain_http_loopback=True).sent == 2
    assert heal(path, url, apply=True, plain_http_loopback=True).sent == 0
    assert sorted(h["X-Hookshift-Replay"] for h, _ in received) == [rid(1), rid(2)]
    assert ledger.stat().st_mode & 0o777 == 0o600


def test_a_taken_port_for_metrics_in_the_command_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sources: tuple[str, str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = refusal(capsys, "verify", "watch", "--app", sources[0], "--queue", sources[1],
                      "--state", str(tmp_path / "s"), "--once",
                      "--metrics-listen", f"127.0.0.1:{port}")  # fmt: skip
    assert "cannot listen on 127.0.0.1:" in err
    assert not (tmp_path / "s").exists()
    assert sorted(os.listdir(tmp_path)) == ["p.log", "q.jsonl"]


def test_sigterm_during_a_query_unwinds_as_an_interrupt_not_a_traceback() -> None:
    import duckdb

    from hookshift.verify.cli import _sigterm_as_interrupt
    from hookshift.verify.sources import unreadable_as_input_error

    con = duckdb.connect()
    con.execute("SET threads = 1")  # a few seconds of work at most, even when it is not stopped
    # the signal comes while the query runs (on a busy machine, maybe just before or after
    # it: then Python's handler raises the interrupt itself)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        with (
            pytest.raises(KeyboardInterrupt),
            _sigterm_as_interrupt(),
            unreadable_as_input_error(),
        ):
            timer.start()
            con.execute("SELECT sum(hash(range)) FROM range(2000000000)")
            timer.join()  # the query ended first: the handler raises at the next bytecode
            time.sleep(1)
    finally:
        timer.cancel()
        con.close()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
