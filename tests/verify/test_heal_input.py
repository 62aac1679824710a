"""`verify heal --resolver/--ca-file` are read and checked before anything is sent or written:
one line, exit 2, no ledger, and the same rules and words as the probe's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.refusals import refusal
from tests.verify.data import T0, body, nginx_line, rid, write_lines

STAGE = "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod/callback"
QUEUE = "sqs:https://sqs.ap-northeast-2.amazonaws.com/123456789012/results"
LOCAL_STAGE = "http://127.0.0.1:9/prod/callback"


def _report(tmp_path: Path) -> Path:
    log = write_lines(tmp_path / "parity.log", [nginx_line(rid(0), T0, body(0))])
    report = {
        "verdict": "fail",
        "key": "request_id",
        "sources": {"app": f"nginx:{log}"},
        "missing_in_queue_keys": [rid(0)],
        "heal_targets": [STAGE, QUEUE, LOCAL_STAGE],
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def _refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> str:
    err = refusal(capsys, "verify", "heal", "--report", str(_report(tmp_path)), *argv)
    assert not (tmp_path / "hookshift-heal-ledger.jsonl").exists()
    return err


@pytest.mark.parametrize(
    ("resolver", "says"),
    [
        ("999.1.1.1", "--resolver '999.1.1.1' is not an IP address with an optional port"),
        ("127.0.0.1:99999", "--resolver '127.0.0.1:99999': the port must be 1-65535"),
        ("dns.example.com", "--resolver 'dns.example.com' is not an IP address"),
        ("::1", "--resolver '::1': nginx takes an IPv6 resolver in brackets"),
    ],
)
def test_a_resolver_that_is_no_address_and_port_is_refused_as_the_probe_refuses_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, resolver: str, says: str
) -> None:
    err = _refused(capsys, tmp_path, "--to", STAGE, "--resolver", resolver, "--apply")
    assert says in err


@pytest.mark.parametrize("apply", [["--apply"], []], ids=["apply", "dry-run"])
def test_a_ca_file_that_is_missing_or_holds_no_certificate_is_refused_before_any_network(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, apply: list[str]
) -> None:
    missing = tmp_path / "missing.pem"
    err = _refused(capsys, tmp_path, "--to", STAGE, "--ca-file", str(missing), *apply)
    assert f"--ca-file {missing}: not found (fix: pass the PEM bundle of the CA" in err
    config = tmp_path / "nginx.conf"
    config.write_text("events {}\n", encoding="utf-8")
    err = _refused(capsys, tmp_path, "--to", STAGE, "--ca-file", str(config), *apply)
    assert f"--ca-file {config}: no PEM certificate in it" in err


@pytest.mark.parametrize(
    ("option", "value"), [("--resolver", "127.0.0.1:5353"), ("--ca-file", "/etc/ssl/ca.pem")]
)
def test_resolver_and_ca_file_are_refused_for_a_queue_target_which_the_aws_sdk_sends_to(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, value: str
) -> None:
    err = _refused(capsys, tmp_path, "--to", QUEUE, option, value, "--apply")
    assert err == (
        f"hookshift: error: {option} {value}: is for a stage URL: an sqs: target is sent by "
        "the AWS SDK, which uses this machine's resolver and CAs "
        f"(fix: drop {option}, or give --to the stage's https URL)\n"
    )


def test_a_ca_file_is_refused_for_plain_http_which_has_no_certificate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ca_file: Path
) -> None:
    err = _refused(
        capsys, tmp_path, "--to", LOCAL_STAGE, "--allow-plain-http-loopback",
        "--ca-file", str(ca_file), "--apply",
    )  # fmt: skip
    assert f"--ca-file {ca_file}: checks a TLS certificate, and --to {LOCAL_STAGE}" in err
