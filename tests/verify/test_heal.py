"""`verify heal`: replays what the mirror lost, marked, exactly once; the next report sees them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from subprocess import PIPE
from typing import Any, ClassVar

import pytest

from hookshift.cli import main
from hookshift.errors import InputError
from hookshift.procs import LOOPBACK, free_port
from hookshift.rehearsal.sqs import CREDENTIALS, REGION, MotoServer
from hookshift.verify.heal import REPLAY_HEADER, heal, read_ledger
from hookshift.verify.parity import ParityOptions, run_parity
from hookshift.verify.pull import pull
from hookshift.verify.report import render
from tests.in_process import run_captured
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

pytestmark = pytest.mark.e2e
LOST = (2, 4)


def _heal(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`hookshift verify heal ARGV`: its exit code, stdout and stderr."""
    return run_captured(capsys, "verify", "heal", *argv)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def _parity_log(tmp_path: Path) -> Path:
    form = "application/x-www-form-urlencoded"
    lines = [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(5)]
    lines[4] = nginx_line(
        rid(4), T0 + 4000, "text=%EB%B0%B0%EC%86%A1+a%3Db%26c%2B100%25", content_type=form
    )
    return write_lines(tmp_path / "parity.log", lines)


def _report(tmp_path: Path, archive: Path) -> tuple[dict[str, Any], Path]:
    report = run_parity(
        f"nginx:{tmp_path / 'parity.log'}", f"archive:{archive}", ParityOptions(grace_s=0)
    )
    path = tmp_path / f"report-{uuid.uuid4().hex[:6]}.json"
    path.write_text(render(report, "json"), encoding="utf-8")
    return report.to_dict(), path


def _queue_with_losses(moto: MotoServer) -> str:
    url = moto.create_queue(f"heal-{uuid.uuid4().hex[:10]}")
    client = moto.client()
    for n in range(4):
        if n not in LOST:
            client.send_message(
                QueueUrl=url,
                MessageBody=body(n),
                MessageAttributes={
                    "nginx_request_id": {"DataType": "String", "StringValue": rid(n)}
                },
            )
    return url


def test_heal_to_sqs_replays_the_losses_once_and_the_next_report_passes(
    moto: MotoServer, tmp_path: Path
) -> None:
    _parity_log(tmp_path)
    url = _queue_with_losses(moto)
    archive = tmp_path / "archive"

    def drain() -> None:
        pull(
            url,
            archive,
            endpoint_url=moto.endpoint,
            region=REGION,
            delete=True,
            workers=1,
            wait_time_s=0,
            progress=None,
        )

    drain()
    before, report_path = _report(tmp_path, archive)
    assert before["verdict"] == "fail"
    assert before["heal_targets"] == [f"sqs:{url}"]  # recorded in the archive by the pull
    assert before["missing_in_queue_keys"] == [rid(n) for n in LOST]

    target = f"sqs:{url}"
    dry = heal(report_path, target, endpoint_url=moto.endpoint, plain_http_loopback=True)
    assert [i.replay_id for i in dry.to_send] == [rid(n) for n in LOST] and dry.sent == 0
    drain()
    assert _report(tmp_path, archive)[0]["counts"]["replayed"] == 0  # a dry run sends nothing

    with pytest.raises(InputError, match="--allow-plain-http-loopback"):
        heal(report_path, target, apply=True, endpoint_url=moto.endpoint)
    with pytest.raises(InputError, match="plain http is refused"):
        heal(report_path, target, apply=True, endpoint_url="http://sqs.example.test")
    # moto is plain http on loopback
    first = heal(
        report_path, target, apply=True, endpoint_url=moto.endpoint, plain_http_loopback=True
    )
    second = heal(
        report_path, target, apply=True, endpoint_url=moto.endpoint, plain_http_loopback=True
    )
    assert (first.sent, second.sent, second.already_sent) == (2, 0, 2)

    drain()
    after, _ = _report(tmp_path, archive)
    assert after["verdict"] == "pass"
    assert after["counts"]["replayed"] == 2 and after["counts"]["missing_in_queue"] == 0
    assert after["counts"]["duplicates_queue"] == 0  # the second heal sent nothing
    replayed = {s["key"]: s for s in after["samples"]["replayed"]}
    assert replayed[rid(2)]["replay_of"] == rid(2)


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), data))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stage() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    port = free_port()

    class Recorder(_Recorder):
        received: ClassVar[list[tuple[dict[str, str], bytes]]] = []  # this server's own

    server = ThreadingHTTPServer((LOOPBACK, port), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{port}/prod/callback", Recorder.received
    finally:
        server.shutdown()
        server.server_close()


def test_heal_to_a_stage_url_sends_the_original_bytes_with_the_replay_header(
    tmp_path: Path, stage: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = stage
    log = _parity_log(tmp_path)
    report = {
        "verdict": "fail",
        "key": "request_id",
        "sources": {"app": f"nginx:{log}"},
        "missing_in_queue_keys": [rid(n) for n in LOST],
        "heal_targets": [url],
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    result = heal(path, url, apply=True, plain_http_loopback=True)
    assert result.sent == 2 and not result.failed
    by_id = {h[REPLAY_HEADER]: (h, data) for h, data in received}
    assert set(by_id) == {rid(2), rid(4)}
    assert by_id[rid(2)][1].decode() == body(2)
    headers, data = by_id[rid(4)]
    assert data == b"text=%EB%B0%B0%EC%86%A1+a%3Db%26c%2B100%25"
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert heal(path, url, apply=True, plain_http_loopback=True).sent == 0
    assert len(received) == 2


def test_heal_re_sends_a_callback_the_app_rejected_whose_copy_was_lost(
    tmp_path: Path, stage: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    """The app answered 502 while it deployed and the mirror's copy was lost: parity lists the
    callback as missing_in_queue, and heal sends the rejected record's body."""
    url, received = stage
    lines = [nginx_line(rid(n), T0 + n * 1000, body(n), upstream_status="502") for n in (1, 2)]
    write_lines(tmp_path / "parity.log", [nginx_line(rid(0), T0, body(0)), *lines])
    queue = write_messages(
        tmp_path / "queue.jsonl",
        [message(f"m{n}", body(n), T0 + n * 1000 + 40, request_id=rid(n)) for n in (0, 1)],
    )
    report = run_parity(
        f"nginx:{tmp_path / 'parity.log'}",
        f"jsonl:{queue}",
        ParityOptions(grace_s=0, stage_urls=(url,)),
    )
    assert report.missing_in_queue_keys == [rid(2)]
    assert report.counts["missing_in_queue_rejected"] == 1
    path = tmp_path / "report.json"
    path.write_text(render(report, "json"), encoding="utf-8")
    result = heal(path, url, apply=True, plain_http_loopback=True)
    assert (result.sent, result.not_found, result.failed) == (1, (), ())
    [(headers, data)] = received
    assert (headers[REPLAY_HEADER], data.decode()) == (rid(2), body(2))


def test_heal_rejects_what_is_not_a_parity_report(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"verdict": "pass"}')
    with pytest.raises(InputError, match="no 'missing_in_queue_keys'"):
        heal(path, "sqs:https://example.invalid/q")
    with pytest.raises(InputError, match="report not found"):
        heal(tmp_path / "none.json", "sqs:https://example.invalid/q")


def _stage_report(tmp_path: Path, targets: list[str]) -> Path:
    log = _parity_log(tmp_path)
    report = {
        "verdict": "fail",
        "key": "request_id",
        "sources": {"app": f"nginx:{log}"},
        "missing_in_queue_keys": [rid(n) for n in range(3)],
        "heal_targets": targets,
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return path


@pytest.mark.parametrize(
    ("to", "plain_http_loopback", "refusal"),
    [
        ("http://192.0.2.7/prod/callback", False, "plain http is refused"),
        ("http://192.0.2.7/prod/callback", True, "plain http is"),
        ("http://127.0.0.1:9/prod/callback", False, "--allow-plain-http-loopback"),
        ("https://evil.example/prod/callback", False, "not a target of the report's run"),
        ("https://stage.example/other", False, "not a target of the report's run"),
        ("https://stage.example:8443/prod", False, "not a target of the report's run"),
        ("ftp://stage.example/prod", False, "not a stage URL"),
    ],
)
def test_heal_refuses_targets_that_would_leak_the_callbacks(
    tmp_path: Path, to: str, plain_http_loopback: bool, refusal: str
) -> None:
    path = _stage_report(tmp_path, ["https://stage.example/prod"])
    with pytest.raises(InputError, match=refusal):
        heal(path, to, apply=True, plain_http_loopback=plain_http_loopback)
    assert not (tmp_path / "hookshift-heal-ledger.jsonl").exists()


def test_heal_sends_to_another_target_only_when_told(
    tmp_path: Path, stage: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = stage
    path = _stage_report(tmp_path, ["https://stage.example/prod"])
    with pytest.raises(InputError, match="--i-mean-this-target"):
        heal(path, url, apply=True, plain_http_loopback=True)
    assert received == []
    result = heal(path, url, apply=True, plain_http_loopback=True, other_target=True)
    assert result.sent == 3 and len(received) == 3


class _SlowCounter(_Recorder):
    def do_POST(self) -> None:
        time.sleep(0.3)  # the three runs overlap while each one is sending
        super().do_POST()


def test_three_concurrent_heals_send_each_callback_exactly_once(tmp_path: Path) -> None:
    port = free_port()

    class SlowCounter(_SlowCounter):
        received: ClassVar[list[tuple[dict[str, str], bytes]]] = []  # this server's own

    server = ThreadingHTTPServer((LOOPBACK, port), SlowCounter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://{LOOPBACK}:{port}/prod/callback"
    path = _stage_report(tmp_path, [url])
    args = [sys.executable, "-m", "hookshift", "verify", "heal", "--report", str(path)]
    args += ["--to", url, "--apply", "--allow-plain-http-loopback"]
    try:
        runs = [subprocess.Popen(args, stdout=PIPE, stderr=PIPE, text=True) for _ in range(3)]
        results = [(run.wait(timeout=120), run.stderr.read() if run.stderr else "") for run in runs]
    finally:
        server.shutdown()
        server.server_close()
    replays = sorted(h[REPLAY_HEADER] for h, _ in SlowCounter.received)
    assert replays == [rid(n) for n in range(3)], results
    for code, stderr in results:
        assert "Traceback" not in stderr
        assert code == 0 or (code == 1 and "another `hookshift verify heal --apply`" in stderr)
    ledger = tmp_path / "hookshift-heal-ledger.jsonl"
    assert sorted(read_ledger(ledger).sent) == [rid(n) for n in range(3)]
    assert ledger.stat().st_mode & 0o777 == 0o600


def test_a_queue_endpoint_that_refuses_stops_the_run_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"http://{LOOPBACK}:{free_port()}"  # nothing listens there
    target = f"sqs:{endpoint}/123456789012/results"
    path = _stage_report(tmp_path, [target])
    with pytest.raises(SystemExit) as exited:
        main(["verify", "heal", "--report", str(path), "--to", target, "--endpoint-url",
              endpoint, "--allow-plain-http-loopback", "--apply"])  # fmt: skip
    out, err = capsys.readouterr()
    assert (exited.value.code, out) == (1, "")
    assert err == (
        f"hookshift: error: {target} stopped answering after 0 of 3 replay(s): Could not "
        f'connect to the endpoint URL: "{endpoint}/"; nothing was sent (fix: rerun when it '
        "answers)\n"
    )
    ledger = read_ledger(tmp_path / "hookshift-heal-ledger.jsonl")
    assert (ledger.sent, ledger.sending) == ({}, {})  # not sent, and known not to be


def _answering(statuses: dict[str, int]) -> type[_Recorder]:
    """A stage that answers the status `statuses` names for a replay id (200 for the others),
    with API Gateway's JSON message."""

    class Answering(_Recorder):
        received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers["Content-Length"]))
            self.received.append((dict(self.headers), data))
            status = statuses.get(self.headers[REPLAY_HEADER], 200)
            said = b"{}" if status == 200 else b'{"message":"Invalid request\\nbody"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(said)))
            self.end_headers()
            self.wfile.write(said)

    return Answering


@pytest.fixture
def serve_stage() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def serve(handler: type[_Recorder]) -> str:
        server = ThreadingHTTPServer((LOOPBACK, free_port()), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://{LOOPBACK}:{server.server_address[1]}/prod"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_replay_the_stage_refuses_is_listed_as_not_sent_and_not_as_a_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], serve_stage: Any
) -> None:
    url = serve_stage(_answering({rid(1): 400}))
    path = _stage_report(tmp_path, [url])
    code, out, err = _heal(
        capsys,
        "--report",
        str(path),
        "--to",
        url,
        "--allow-plain-http-loopback",
        "--apply",
    )
    assert code == 1
    assert out == (
        f"sent 2 replay(s) to {url}/callback; 0 already sent earlier (ledger), 0 not found in "
        f"the app source\n  {rid(0)}  replay of {rid(0)}\n  {rid(2)}  replay of {rid(2)}\n"
    )
    assert err == f"error: not sent: {rid(1)}: {url}/callback answered 400 Invalid request body\n"


def test_replays_refused_the_same_way_three_in_a_row_stop_the_run_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], serve_stage: Any
) -> None:
    handler = _answering({rid(n): 503 for n in range(1, 5)} | {rid(1): 500})
    url = serve_stage(handler)
    log = _parity_log(tmp_path)
    report = {
        "verdict": "fail",
        "key": "request_id",
        "sources": {"app": f"nginx:{log}"},
        "missing_in_queue_keys": [rid(n) for n in range(5)],
        "heal_targets": [url],
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    code, out, err = _heal(
        capsys,
        "--report",
        str(path),
        "--to",
        url,
        "--allow-plain-http-loopback",
        "--apply",
    )
    assert (code, out) == (1, "")
    assert err == (
        "hookshift: error: stopped after 3 replays in a row were refused the same way (5 of 5 "
        f"tried): {url}/callback answered 503 Invalid request body; 1 other replay(s) refused "
        "before; the 1 accepted are in the ledger, and a rerun skips them (fix: the stage's "
        "integration fails (its SQS access or mapping template): check its execution log, then "
        "rerun)\n"
    )
    assert len(handler.received) == 5
    ledger = read_ledger(tmp_path / "hookshift-heal-ledger.jsonl")
    assert (list(ledger.sent), ledger.sending) == ([rid(0)], {})


def test_heal_replays_a_lost_callback_whose_body_is_not_utf8_as_the_queue_got_it(
    tmp_path: Path, stage: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    """A vendor posting EUC-KR: parity finds the lost copy, and heal must find its body too
    (every invalid byte sequence a U+FFFD, as API Gateway put the others in the queue)."""
    from tests.verify.test_honest_verdicts import PROFILE, _euc_kr_lines

    url, received = stage
    euc, delivered = _euc_kr_lines(range(3))
    log = tmp_path / "parity.log"
    log.write_bytes(b"".join(line + b"\n" for line in euc))
    queue = write_messages(
        tmp_path / "q.jsonl",
        [message(f"m{n}", delivered[n], T0 + n * 1000 + 50, request_id=rid(n)) for n in (0, 1)],
    )
    report = run_parity(f"nginx:{log}", f"jsonl:{queue}", replace(PROFILE, stage_urls=(url,)))
    assert report.counts["missing_in_queue"] == 1
    path = tmp_path / "report.json"
    path.write_text(render(report, "json"), encoding="utf-8")
    result = heal(path, url, apply=True, plain_http_loopback=True)
    assert (result.sent, result.not_found) == (1, ())
    [(headers, data)] = received
    assert (headers[REPLAY_HEADER], data.decode()) == (rid(2), delivered[2])
