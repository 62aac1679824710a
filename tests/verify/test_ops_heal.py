"""`verify heal` run as an operator runs it: killed (kill -9) while a replay is on its way to the
stage, then run again. The replay in flight may have reached the stage, so the rerun does not
send it blindly a second time; it says it holds it back, and sends it once a parity report over
the queue read after it still lists it missing. Nothing is sent twice, nothing is lost."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hookshift.rehearsal.dns import DnsServer
from hookshift.verify.heal import REPLAY_HEADER, SETTLE_MS, read_ledger
from tests.verify.data import T0, body, nginx_line, rid, write_lines
from tests.verify.tls_stage import STAGE_HOST, Received, TlsStage
from tests.verify.tls_stage import dns as dns  # fixtures, as named
from tests.verify.tls_stage import stage_context as stage_context  # a fixture, as named

pytestmark = pytest.mark.e2e

LOST = 4
HELD = 1  # the replay (by its place among the lost) the stage takes and never answers


@dataclass
class HoldingStage(TlsStage):
    """A stage that takes the replay of `hold` (a replay id) and keeps its answer until
    `release` is set: the heal sending it is killed meanwhile, the request delivered."""

    hold: str = ""
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def answers(self, received: Received) -> bool:
        if received.headers.get(REPLAY_HEADER) == self.hold and not self.holding.is_set():
            self.holding.set()
            self.release.wait(60)
            return False  # its sender is gone: no answer
        return True


@pytest.fixture
def stage(stage_context: ssl.SSLContext) -> Iterator[HoldingStage]:
    running = HoldingStage(stage_context, STAGE_HOST, hold=rid(HELD))
    yield running
    running.release.set()
    running.stop()


def _report(tmp_path: Path, target: str, name: str, read_at: datetime | None) -> Path:
    """A parity report listing the LOST callbacks missing in the queue; `read_at`: when its
    queue was read (its window's end), None for a report that does not say."""
    log = tmp_path / "parity.log"
    if not log.exists():
        write_lines(log, [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(LOST + 2)])
    report = {
        "verdict": "fail",
        "key": "request_id",
        "sources": {"app": f"nginx:{log}", "queue": f"jsonl:{tmp_path / 'queue.jsonl'}"},
        "missing_in_queue_keys": [rid(n) for n in range(LOST)],
        "heal_targets": [target],
        "window": {"since": None, "until": None, "end": read_at and read_at.isoformat()},
    }
    path = tmp_path / name
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def _heal(report: Path, stage: HoldingStage, dns: DnsServer, ca_file: Path) -> list[str]:
    return [
        sys.executable, "-m", "hookshift", "verify", "heal", "--report", str(report),
        "--to", stage.url(), "--resolver", dns.address, "--ca-file", str(ca_file), "--apply",
        "--ledger", str(report.parent / "ledger.jsonl"),
    ]  # fmt: skip


def _replays(stage: HoldingStage) -> list[str]:
    return sorted(r.headers[REPLAY_HEADER] for r in stage.received)


def test_a_heal_killed_while_a_replay_is_in_flight_never_sends_it_twice_nor_loses_it(
    tmp_path: Path, stage: HoldingStage, dns: DnsServer, ca_file: Path
) -> None:
    report = _report(tmp_path, stage.url(), "report.json", None)
    killed = subprocess.Popen(
        _heal(report, stage, dns, ca_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert stage.holding.wait(60), "the held replay never reached the stage"
        os.kill(killed.pid, signal.SIGKILL)  # the stage has the replay; its answer is lost
    finally:
        assert killed.wait(60) == -signal.SIGKILL
        killed.communicate()
    stage.release.set()
    assert _replays(stage) == [rid(0), rid(HELD)]

    # the rerun sends the rest, and holds back the one that may have arrived
    rerun = subprocess.run(_heal(report, stage, dns, ca_file), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr
    assert rerun.stdout.startswith(f"sent {LOST - 2} replay(s) to ")
    assert f"warning: 1 replay(s) held back ({rid(HELD)}): an earlier run stopped while " in (
        rerun.stderr
    )
    assert _replays(stage) == sorted(rid(n) for n in range(LOST))  # each exactly once
    sent_at = read_ledger(tmp_path / "ledger.jsonl").sending
    assert list(sent_at) == [(rid(HELD), stage.url())]  # written ahead, never settled

    # a report over a queue read before the replay could have arrived proves nothing
    early = datetime.fromtimestamp((max(sent_at.values()) + SETTLE_MS // 2) / 1000, UTC)
    again = subprocess.run(
        _heal(_report(tmp_path, stage.url(), "early.json", early), stage, dns, ca_file),
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and "1 replay(s) held back" in again.stderr, again.stderr
    assert len(stage.received) == LOST

    # one over a queue read well after it, still listing it missing: it never arrived
    late = datetime.fromtimestamp((max(sent_at.values()) + 2 * SETTLE_MS) / 1000, UTC)
    last = subprocess.run(
        _heal(_report(tmp_path, stage.url(), "late.json", late), stage, dns, ca_file),
        capture_output=True,
        text=True,
    )
    assert (last.returncode, last.stderr) == (0, "")
    assert last.stdout.startswith(f"sent 1 replay(s) to {stage.url()}; {LOST - 1} already sent")
    assert [r.headers[REPLAY_HEADER] for r in stage.received][-1] == rid(HELD)
    ledger = read_ledger(tmp_path / "ledger.jsonl")
    assert (sorted(ledger.sent), ledger.sending) == (sorted(rid(n) for n in range(LOST)), {})
