"""`verify heal` to a stage that only has an IPv6 address at the resolver the user names, and
replays whose ids are Korean text: a real DNS server and a real TLS stage on loopback (``::1``).

An IPv6-only stage has no A record, and the vendor's side reaches it all the same; a callback
keyed on a field of its body (no request id) carries that field's text as its replay id, which
the stage must get byte for byte so that the replay is matched to the callback it replaces.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from hookshift.rehearsal.dns import DnsServer
from hookshift.verify.heal import REPLAY_HEADER
from tests.in_process import run_captured
from tests.verify.data import T0, body, nginx_line, rid, write_lines
from tests.verify.tls_stage import Received, TlsStage

pytestmark = pytest.mark.e2e

STAGE_HOST = "v6only.execute-api.ap-northeast-2.amazonaws.com"
KOREAN_ID = "주문-1002-배송"


@pytest.fixture
def stage(ca: trustme.CA) -> Iterator[TlsStage]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(STAGE_HOST).configure_cert(context)
    running = TlsStage(context, STAGE_HOST, address="::1")  # listening on IPv6 only
    yield running
    running.stop()


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer([f"{STAGE_HOST}=::1"]) as server:  # an AAAA record, and no A
        yield server


def _report(tmp_path: Path, target: str, keys: list[str]) -> Path:
    lines = [nginx_line(key, T0 + n * 1000, body(n)) for n, key in enumerate(keys)]
    log = write_lines(tmp_path / "parity.log", [*lines, nginx_line(rid(99), T0, body(99))])
    report = {
        "verdict": "fail",
        "key": "request_id",
        "sources": {"app": f"nginx:{log}"},
        "missing_in_queue_keys": keys,
        "heal_targets": [target],
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")
    return path


def _sent(received: Received, header: str) -> bytes:
    """The bytes of a header as the stage got them."""
    return received.headers[header].encode("latin-1")


def _heal(
    capsys: pytest.CaptureFixture[str], report: Path, stage: TlsStage, dns: DnsServer, ca: Path
) -> tuple[int, str, str]:
    argv = ["--report", str(report), "--to", stage.url(), "--resolver", dns.address]
    return run_captured(capsys, "verify", "heal", *argv, "--ca-file", str(ca), "--apply")


def test_a_stage_with_only_an_ipv6_address_is_reached_over_ipv6_by_its_name(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stage: TlsStage,
    dns: DnsServer,
    ca_file: Path,
) -> None:
    report = _report(tmp_path, stage.url(), [rid(0), rid(1)])
    code, out, err = _heal(capsys, report, stage, dns, ca_file)
    assert (code, err) == (0, ""), err
    assert out.startswith(f"sent 2 replay(s) to {stage.url()}")
    assert [r.sni for r in stage.received] == [STAGE_HOST, STAGE_HOST]
    assert {r.headers["Host"] for r in stage.received} == {f"{STAGE_HOST}:{stage.port}"}
    by_replay = {_sent(r, REPLAY_HEADER): r.body for r in stage.received}
    assert by_replay == {rid(0).encode(): body(0).encode(), rid(1).encode(): body(1).encode()}


def test_a_replay_id_in_korean_reaches_the_stage_as_its_utf8_and_the_ledger_keeps_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stage: TlsStage,
    dns: DnsServer,
    ca_file: Path,
) -> None:
    report = _report(tmp_path, stage.url(), [rid(0), KOREAN_ID])
    code, out, err = _heal(capsys, report, stage, dns, ca_file)
    assert (code, err) == (0, ""), err
    assert f"  {KOREAN_ID}  replay of {KOREAN_ID}\n" in out
    by_replay = {_sent(r, REPLAY_HEADER): r.body for r in stage.received}
    assert by_replay == {rid(0).encode(): body(0).encode(), KOREAN_ID.encode(): body(1).encode()}
    ledger = tmp_path / "hookshift-heal-ledger.jsonl"
    rows = [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines()]
    rows = [row for row in rows if "sent_at" in row]  # each written ahead, then as sent
    assert [(row["key"], row["replay_id"]) for row in rows] == [
        (rid(0), rid(0)),
        (KOREAN_ID, KOREAN_ID),
    ]

    code, out, err = _heal(capsys, report, stage, dns, ca_file)  # the ledger is read back
    assert (code, err) == (0, ""), err
    assert "2 already sent earlier" in out
    assert len(stage.received) == 2
