"""`verify heal` to a stage behind a private resolver and CA: a real DNS server and a real TLS
stage on loopback. The replays reach the stage at the address that resolver gives, with the
stage's name as Host and SNI; a stage that cannot be reached is one line with nothing sent, and
one that stops part-way stops the run with what was sent kept in the ledger."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest
import trustme

from hookshift.procs import LOOPBACK
from hookshift.rehearsal.dns import DnsServer
from hookshift.verify.heal import REPLAY_HEADER
from tests.in_process import run_captured
from tests.verify.data import T0, body, nginx_line, rid, write_lines
from tests.verify.tls_stage import STAGE_HOST, TlsStage
from tests.verify.tls_stage import dns as dns  # fixtures, as named
from tests.verify.tls_stage import stage as stage
from tests.verify.tls_stage import stage_context as stage_context

pytestmark = pytest.mark.e2e

UNKNOWN_HOST = "zzz999.execute-api.ap-northeast-2.amazonaws.com"


def _heal(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`hookshift verify heal ARGV`: its exit code, stdout and stderr."""
    return run_captured(capsys, "verify", "heal", *argv)


def _report(tmp_path: Path, target: str, lost: int = 2) -> Path:
    lines = [nginx_line(rid(n), T0 + n * 1000, body(n)) for n in range(lost + 3)]
    log = write_lines(tmp_path / "parity.log", lines)
    report = {
        "verdict": "fail",
        "key": "request_id",
        "sources": {"app": f"nginx:{log}"},
        "missing_in_queue_keys": [rid(n) for n in range(lost)],
        "heal_targets": [target],
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def _ledger(tmp_path: Path) -> list[str]:
    """The ledger's lines of replays sent (each is written ahead too, before it is sent)."""
    path = tmp_path / "hookshift-heal-ledger.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line for line in lines if "sent_at" in json.loads(line)]


def test_heal_sends_through_the_private_resolver_to_the_stage_with_its_name_as_host_and_sni(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stage: TlsStage,
    dns: DnsServer,
    ca_file: Path,
) -> None:
    report = _report(tmp_path, stage.url())
    code, out, err = _heal(
        capsys, "--report", str(report), "--to", stage.url(), "--resolver", dns.address,
        "--ca-file", str(ca_file), "--apply",
    )  # fmt: skip
    assert (code, err) == (0, ""), err
    assert out.startswith(f"sent 2 replay(s) to {stage.url()}; 0 already sent earlier")
    assert [r.sni for r in stage.received] == [STAGE_HOST, STAGE_HOST]
    assert {r.headers["Host"] for r in stage.received} == {f"{STAGE_HOST}:{stage.port}"}
    by_replay = {r.headers[REPLAY_HEADER]: r.body for r in stage.received}
    assert by_replay == {rid(0): body(0).encode(), rid(1): body(1).encode()}
    assert len(_ledger(tmp_path)) == 2


def test_a_name_the_resolver_does_not_know_is_one_line_exit_2_and_nothing_is_sent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stage: TlsStage,
    dns: DnsServer,
    ca_file: Path,
) -> None:
    url = stage.url(UNKNOWN_HOST)
    report = _report(tmp_path, url, lost=30)
    code, out, err = _heal(
        capsys, "--report", str(report), "--to", url, "--resolver", dns.address,
        "--ca-file", str(ca_file), "--apply",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err == (
        f"hookshift: error: cannot resolve {UNKNOWN_HOST}: no such name at {dns.address}; "
        "nothing was sent (fix: check --resolver, or send to the queue: --to sqs:QUEUE_URL)\n"
    )
    assert stage.received == []
    assert not (tmp_path / "hookshift-heal-ledger.jsonl").exists()


def test_a_private_ca_left_out_is_named_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stage: TlsStage, dns: DnsServer
) -> None:
    report = _report(tmp_path, stage.url())
    code, out, err = _heal(
        capsys,
        "--report",
        str(report),
        "--to",
        stage.url(),
        "--resolver",
        dns.address,
        "--apply",
    )
    assert (code, out) == (1, "")
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"hookshift: error: the certificate of {STAGE_HOST} at {LOOPBACK}:{stage.port} is "
        "refused: unable to get local issuer certificate; nothing was sent"
    ), err
    assert "(fix: for a private CA, pass its bundle with --ca-file PATH)" in err
    assert stage.received == [] and _ledger(tmp_path) == []


def test_a_stage_that_is_down_is_one_line_with_nothing_sent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stage: TlsStage,
    dns: DnsServer,
    ca_file: Path,
) -> None:
    stage.stop()  # the port is free again: nothing listens there
    report = _report(tmp_path, stage.url(), lost=30)
    code, out, err = _heal(
        capsys, "--report", str(report), "--to", stage.url(), "--resolver", dns.address,
        "--ca-file", str(ca_file), "--apply",
    )  # fmt: skip
    assert (code, out) == (1, "")
    assert err.startswith(
        f"hookshift: error: cannot connect to {STAGE_HOST} at {LOOPBACK}:{stage.port}: "
        "Connection refused; nothing was sent (fix: "
    ), err
    assert err.count("\n") == 1 and _ledger(tmp_path) == []


def test_a_stage_that_goes_away_part_way_stops_the_run_and_a_rerun_sends_the_rest(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stage_context: ssl.SSLContext,
    dns: DnsServer,
    ca_file: Path,
) -> None:
    # the check before sending, then one replay; then nothing listens on the port
    first = TlsStage(stage_context, STAGE_HOST, connections=2)
    url = first.url()
    report = _report(tmp_path, url, lost=30)
    argv = ["--report", str(report), "--to", url, "--resolver", dns.address]
    argv += ["--ca-file", str(ca_file), "--apply"]
    try:
        code, out, err = _heal(capsys, *argv)
    finally:
        first.stop()
    assert (code, out) == (1, "")
    assert err == (
        f"hookshift: error: {url} stopped answering after 1 of 30 replay(s): "
        "Connection refused; the 1 sent are in the ledger "
        "(fix: rerun when it answers: it skips them)\n"
    )
    assert len(first.received) == 1 and len(_ledger(tmp_path)) == 1

    second = TlsStage(stage_context, STAGE_HOST, port=first.port)  # the stage is back
    try:
        code, out, err = _heal(capsys, *argv)
    finally:
        second.stop()
    assert (code, err) == (0, ""), err
    assert out.startswith(f"sent 29 replay(s) to {url}; 1 already sent earlier (ledger)")
    sent = [r.headers[REPLAY_HEADER] for r in first.received + second.received]
    assert sorted(sent) == [rid(n) for n in range(30)]


IDN_HOST = "bücher.example.test"
IDN_WIRE = "xn--bcher-kva.example.test"  # what DNS, the certificate, SNI and Host carry


def test_a_stage_host_outside_ascii_is_reached_by_its_idna_form_as_the_mirror_writes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ca: trustme.CA, ca_file: Path
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(IDN_WIRE).configure_cert(context)
    stage = TlsStage(context, STAGE_HOST)
    url = f"https://{IDN_HOST}:{stage.port}/prod/callback"
    report = _report(tmp_path, f"https://{IDN_HOST}:{stage.port}/prod")
    try:
        with DnsServer([f"{IDN_WIRE}={LOOPBACK}"]) as server:
            code, out, err = _heal(
                capsys, "--report", str(report), "--to", url, "--resolver", server.address,
                "--ca-file", str(ca_file), "--apply", "--i-mean-this-target",
            )  # fmt: skip
    finally:
        stage.stop()
    assert (code, err) == (0, ""), err
    assert out.startswith(f"sent 2 replay(s) to {url}; 0 already sent earlier")
    assert [r.sni for r in stage.received] == [IDN_WIRE, IDN_WIRE]
    assert {r.headers["Host"] for r in stage.received} == {f"{IDN_WIRE}:{stage.port}"}


def test_the_ledger_knows_a_place_however_its_url_is_written(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stage: TlsStage,
    dns: DnsServer,
    ca_file: Path,
) -> None:
    report = _report(tmp_path, f"https://{STAGE_HOST}:{stage.port}/prod", lost=10)
    common = ["--report", str(report), "--resolver", dns.address, "--ca-file", str(ca_file)]
    code, out, err = _heal(capsys, *common, "--to", stage.url(), "--apply")
    assert (code, err) == (0, ""), err
    assert len(stage.received) == 10
    base = f"{STAGE_HOST}:{stage.port}/prod"
    for to in (
        f"https://{base}/callback/",  # a trailing slash
        f"https://{base.upper().replace('/PROD', '/prod')}/callback",  # the host in capitals
        f"HTTPS://{base}/callback",
        f"https://{base}",  # the stage URL: each replay goes to it + /callback
        f"https://{base}/",
    ):
        code, out, err = _heal(capsys, *common, "--to", to, "--apply")
        assert (code, err) == (0, ""), (to, err)
        assert out.startswith(f"sent 0 replay(s) to {to}; 10 already sent earlier (ledger)"), to
    assert len(stage.received) == 10


def test_a_ledger_written_by_an_older_hookshift_is_read_the_same_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stage: TlsStage, dns: DnsServer
) -> None:
    """Older ledgers hold the --to as it was given (then the URL each replay was POSTed to)."""
    report = _report(tmp_path, f"https://{STAGE_HOST}:{stage.port}/prod", lost=3)
    old_to = f"https://{STAGE_HOST.upper()}:{stage.port}/prod/callback/"
    lines = [
        json.dumps({"key": rid(n), "replay_id": rid(n), "to": old_to, "sent_at": "2026-11-28"})
        for n in range(3)
    ]
    (tmp_path / "hookshift-heal-ledger.jsonl").write_text("\n".join(lines) + "\n")
    code, out, err = _heal(
        capsys, "--report", str(report), "--to", f"https://{STAGE_HOST}:{stage.port}/prod",
        "--resolver", dns.address, "--apply",
    )  # fmt: skip
    assert (code, err) == (0, ""), err
    assert out.startswith(f"sent 0 replay(s) to https://{STAGE_HOST}:{stage.port}/prod; 3 already")
    assert stage.received == []
