"""`verify heal`'s inputs are read and checked before anything is sent or written: one line,
exit 2, no ledger (--resolver and --ca-file with the same rules and words as the probe's);
and where each replay goes, and the ledger's place for it, as pure functions."""

from __future__ import annotations

import importlib
import json
import os
import socket
from pathlib import Path

import pytest

from hookshift.cli import main
from hookshift.verify.heal import ledger_place, replay_url
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


@pytest.mark.parametrize(
    ("to", "says"),
    [
        ("https://abc123.execute-api.ap-northeast-2.amazonaws.com:0/prod/callback",
         "port 0 is no port a stage listens on (1-65535) (fix: give the stage's port, or none "
         "for 443)"),
        (f"{STAGE}?x=1", "a stage URL has no query or fragment: each replay carries its "
         "callback's own query (from the parity log) (fix: drop ?... and #...)"),
        (f"{STAGE}#frag", "a stage URL has no query or fragment"),
        ("https://bad_host.example/prod", "its host bad_host.example is not a host name DNS"),
    ],
)  # fmt: skip
def test_a_stage_url_that_names_no_one_place_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, to: str, says: str
) -> None:
    err = _refused(capsys, tmp_path, "--to", to, "--apply", "--i-mean-this-target")
    assert err.startswith(f"hookshift: error: --to {to}: {says}"), err


def test_a_report_whose_keys_are_not_strings_is_refused_as_damaged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _report(tmp_path)
    report = json.loads(path.read_text())
    report["missing_in_queue_keys"] = [1, None, {"a": 1}]
    path.write_text(json.dumps(report), encoding="utf-8")
    err = refusal(capsys, "verify", "heal", "--report", str(path), "--to", STAGE)
    assert err == (
        f"hookshift: error: {path}: the report is damaged: its 'missing_in_queue_keys' holds "
        "something that is not a key (a key is a string) (fix: use the --format json output "
        "of verify parity, unedited)\n"
    )


def test_an_ipv6_resolver_is_shown_in_brackets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the module, not the function hookshift.verify exports under its name
    monkeypatch.setattr(importlib.import_module("hookshift.verify.heal"), "DNS_TIMEOUT", 0.2)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as silent:  # reads, never answers
        silent.bind(("::1", 0))
        port = silent.getsockname()[1]
        with pytest.raises(SystemExit) as exited:
            main(["verify", "heal", "--report", str(_report(tmp_path)), "--to", STAGE,
                  "--resolver", f"[::1]:{port}", "--apply"])  # fmt: skip
    out, err = capsys.readouterr()
    assert (exited.value.code, out) == (1, "")
    assert err == (
        "hookshift: error: cannot resolve abc123.execute-api.ap-northeast-2.amazonaws.com: "
        f"no answer at [::1]:{port} within 0.2 s; nothing was sent (fix: check that a DNS "
        f"server answers at [::1]:{port} (--resolver), or send to the queue: "
        "--to sqs:QUEUE_URL)\n"
    )


@pytest.mark.parametrize(
    ("to", "uri", "url"),
    [
        ("https://h/prod", "/callback/bizppurio", "https://h/prod/callback/bizppurio"),
        ("https://h/prod/", "/callback?a=1", "https://h/prod/callback?a=1"),
        ("https://h/prod/callback", "/callback", "https://h/prod/callback"),  # not twice
        ("https://h/prod/callback/", "/callback?a=1", "https://h/prod/callback?a=1"),
        ("https://h/prod/xcallback", "/callback", "https://h/prod/xcallback/callback"),
        ("https://h:8443/prod", "/", "https://h:8443/prod/"),
        ("https://h/prod/callback", None, "https://h/prod/callback"),  # a jsonl/csv source
        ("sqs:https://sqs.example/1/q", "/callback", "sqs:https://sqs.example/1/q"),
    ],
)
def test_a_replay_goes_to_the_stage_url_plus_its_callback_s_request_uri(
    to: str, uri: str | None, url: str
) -> None:
    assert replay_url(to, uri) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://abc.example/prod/callback",
        "https://ABC.example/prod/callback/",
        "HTTPS://abc.example:443/prod/callback",
        "https://abc.example./prod/callback",
        "https://abc.example/prod/callback?x=1",
    ],
)
def test_a_ledger_place_is_one_text_however_the_url_is_written(url: str) -> None:
    assert ledger_place(url) == "https://abc.example/prod/callback"


def test_a_ledger_place_keeps_what_chooses_another_place() -> None:
    assert ledger_place("https://abc.example:8443/prod") == "https://abc.example:8443/prod"
    assert ledger_place("http://abc.example/prod") == "http://abc.example/prod"
    assert ledger_place("https://[::1]:443/p") == "https://[::1]/p"
    assert ledger_place("https://bücher.example/p") == "https://xn--bcher-kva.example/p"
    assert ledger_place("sqs:https://SQS.example/1/q/") == "sqs:https://sqs.example/1/q"
    assert ledger_place("not a url") == "not a url"


def test_a_stage_named_by_its_ipv6_address_is_shown_once_in_brackets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with socket.socket(socket.AF_INET6) as taken:  # a port nothing listens on
        taken.bind(("::1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exited:
            main(["verify", "heal", "--report", str(_report(tmp_path)), "--to",
                  f"https://[::1]:{port}/prod", "--i-mean-this-target", "--apply"])  # fmt: skip
    out, err = capsys.readouterr()
    assert (exited.value.code, out) == (1, "")
    assert err.startswith(
        f"hookshift: error: cannot connect to [::1]:{port}: Connection refused; nothing was sent"
    ), err


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_report_that_is_not_a_regular_file_is_refused_without_reading_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    """A FIFO nobody writes would block forever, /dev/zero would fill the memory."""
    if kind == "fifo":
        report = tmp_path / "report.json"
        os.mkfifo(report)
    else:
        report = Path("/dev/zero")
    err = refusal(capsys, "verify", "heal", "--report", str(report), "--to", STAGE)
    assert err.startswith(f"hookshift: error: {report}: not a regular file, so not a report")
    assert not (tmp_path / "hookshift-heal-ledger.jsonl").exists()
