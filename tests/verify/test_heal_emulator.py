"""`verify heal` against the API Gateway emulator (TLS, a private DNS, SQS on moto): each replay
goes where the mirror sent its copy, the stage URL + the callback's request URI, so healing
with the report's own stage URL lands in the queue; a stage that refuses every replay stops
the run after the first few, with one line saying why."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hookshift.apigw.emulator import RunningStage, StageConfig
from hookshift.apigw.emulator import serve as start
from hookshift.rehearsal.dns import DnsServer
from hookshift.rehearsal.sqs import CREDENTIALS, REGION, MotoServer
from hookshift.verify.heal import REPLAY_ATTRIBUTE, read_ledger
from tests.in_process import run_captured
from tests.verify.data import T0, body, nginx_line, rid, write_lines

pytestmark = pytest.mark.e2e

STAGE_HOST = "abc123.execute-api.ap-northeast-2.amazonaws.com"
LOST = 5


def _heal(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`hookshift verify heal ARGV`: its exit code, stdout and stderr."""
    return run_captured(capsys, "verify", "heal", *argv)


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer([f"{STAGE_HOST}=127.0.0.1"]) as server:
        yield server


@pytest.fixture
def queue_url(moto: MotoServer) -> str:
    return moto.create_queue(f"heal-{uuid.uuid4().hex[:8]}")


def _stage(moto: MotoServer, queue_url: str, tmp_path: Path, **kw: Any) -> RunningStage:
    config = StageConfig(
        sqs_endpoint=moto.endpoint,
        queue_url=queue_url,
        region=REGION,
        cert_dir=tmp_path / "certs",
        **kw,
    )
    return start(config)


def _report(tmp_path: Path, stage_url: str, uri: str) -> Path:
    """What `verify parity --stage-url STAGE_URL` reports when the mirror lost LOST callbacks
    nginx logged with request URI `uri`."""
    lines = []
    for n in range(LOST + 2):
        record = json.loads(nginx_line(rid(n), T0 + n * 1000, body(n)))
        record["uri"] = uri
        lines.append(json.dumps(record))
    log = write_lines(tmp_path / "parity.log", lines)
    report = {
        "verdict": "fail",
        "key": "request_id",
        "sources": {"app": f"nginx:{log}"},
        "missing_in_queue_keys": [rid(n) for n in range(LOST)],
        "heal_targets": [stage_url],  # the bare --stage-url, as parity records it
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def _queued(moto: MotoServer, queue_url: str) -> dict[str, str]:
    """Replay id -> body of every message in the queue."""
    client = moto.client()
    found: dict[str, str] = {}
    while True:
        got = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
            VisibilityTimeout=60,
        ).get("Messages", [])
        if not got:
            return found
        for m in got:
            found[m["MessageAttributes"][REPLAY_ATTRIBUTE]["StringValue"]] = m["Body"]


def test_heal_to_the_report_s_own_stage_url_lands_each_replay_where_the_mirror_sent_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    moto: MotoServer,
    queue_url: str,
    dns: DnsServer,
) -> None:
    with _stage(moto, queue_url, tmp_path) as stage:
        report = _report(tmp_path, stage.url, "/callback?src=vendor")
        argv = ["--report", str(report), "--resolver", dns.address]
        argv += ["--ca-file", str(stage.ca_pem), "--apply"]
        code, out, err = _heal(capsys, "--to", stage.url, *argv)
        assert (code, err) == (0, ""), err
        assert out.startswith(
            f"sent {LOST} replay(s) to {stage.url}/callback?src=vendor; 0 already sent"
        )
        assert [e.path for e in stage.executions] == ["/prod/callback?src=vendor"] * LOST
        assert {e.status for e in stage.executions} == {200}
        # the README's form, the callback URL written out, is the same place: nothing twice
        code, out, err = _heal(capsys, "--to", stage.invoke_url, *argv)
        assert (code, err) == (0, ""), err
        assert out.startswith(f"sent 0 replay(s) to {stage.invoke_url}; {LOST} already sent")
        assert len(stage.executions) == LOST
    assert _queued(moto, queue_url) == {rid(n): body(n) for n in range(LOST)}


def test_a_stage_that_refuses_every_replay_stops_after_three_with_one_line_and_why(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    moto: MotoServer,
    queue_url: str,
    dns: DnsServer,
) -> None:
    # the mirror's copies went to /prod/hooks/bizppurio; this stage has /prod/callback only
    with _stage(moto, queue_url, tmp_path) as stage:
        report = _report(tmp_path, stage.url, "/hooks/bizppurio")
        code, out, err = _heal(
            capsys, "--report", str(report), "--to", stage.url, "--resolver", dns.address,
            "--ca-file", str(stage.ca_pem), "--apply",
        )  # fmt: skip
        executions = stage.executions
    assert (code, out) == (1, "")
    assert err == (
        "hookshift: error: stopped after 3 replays in a row were refused the same way (3 of "
        f"{LOST} tried): {stage.url}/hooks/bizppurio answered 403 Missing Authentication "
        "Token; none was accepted (fix: the stage has no POST resource at "
        "/prod/hooks/bizppurio: give --to the stage's URL, as the mirror's --stage-url (each "
        "replay goes to it + its callback's path, as the mirror's copies do))\n"
    )
    assert [e.status for e in executions] == [403, 403, 403]
    ledger = read_ledger(tmp_path / "hookshift-heal-ledger.jsonl")
    assert (ledger.sent, ledger.sending) == ({}, {})  # not sent, and known not to be
    assert _queued(moto, queue_url) == {}
