"""An advance says, before each step that may take long, what it is doing: a probe waits for its
marker, parity and the drain pull the queue, and the drain waits out messages another reader
holds. Without it an operator watches a silent terminal for minutes and presses Ctrl-C."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import pytest

from hookshift.cutover import evidence, journal
from hookshift.cutover.gather import gather
from hookshift.cutover.settings import Settings
from hookshift.rehearsal.sqs import REGION, MotoServer


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_each_slow_step_of_the_gates_is_announced_before_it_starts(tmp_path: Path) -> None:
    parity_log = tmp_path / "parity.log"
    parity_log.write_text("", encoding="utf-8")
    queue = tmp_path / "queue.jsonl"
    queue.write_text("", encoding="utf-8")
    domain = f"https://127.0.0.1:{_closed_port()}"
    settings = Settings(
        path="/callback",
        domain_url=domain,
        queue=f"jsonl:{queue}",
        parity_log=str(parity_log),
        probe_timeout=2.0,
    )
    state = tmp_path / "cutover.jsonl"
    first = journal.next_entry(None, action="init", to_stage="baseline", evidence={"files": {}})
    started = journal.create(state, settings.to_json(), first)
    current = journal.append(
        started, journal.next_entry(started, action="advance", to_stage="mirror-stage")
    )
    heard: list[str] = []

    found, _ = gather(current, settings, dedup_confirmed=False, progress=heard.append)

    assert heard == [
        f"parity: comparing nginx's parity log with jsonl:{queue} ...",
        f"probe: posting a marker to {domain}/callback and looking for it in the queue ...",
    ]
    assert found.parity is not None and found.domain_probe is not None


@pytest.mark.e2e
def test_the_drain_says_when_it_waits_for_messages_another_reader_holds(
    tmp_path: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    url = moto.create_queue(f"drain-{uuid.uuid4().hex[:8]}", VisibilityTimeout="1")
    client = moto.client()
    for n in range(2):
        client.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}))
    held = client.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    assert len(held) == 1  # in flight at another reader until its visibility timeout ends
    archive = tmp_path / "archive"
    settings = Settings(
        queue=f"sqs:{url}", endpoint_url=moto.endpoint, region=REGION, archive=str(archive)
    )
    heard: list[str] = []

    drained = evidence.drain(settings, False, heard.append)

    assert heard == [
        f"drain: moving the queue's messages into {archive} ...",
        "drain: 1 message(s) still in the queue (in flight at another reader, or just sent): "
        "waiting up to 6 s (the queue's visibility timeout) for them ...",
    ]
    assert (drained.archived, drained.left_in_queue) == (2, 0)
