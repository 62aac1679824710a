"""The probe's input is refused before anything is sent: one line, exit 2, no traceback."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from hookshift.cutover.probe import QueueSpec, run_probe
from hookshift.cutover.settings import Settings
from hookshift.errors import InputError
from tests.cutover.listener import connected as _connected
from tests.cutover.listener import listener as listener  # a fixture, as named
from tests.refusals import refusal


@pytest.mark.parametrize("url", ["https://[::1/callback", "callback", "ftp://host/x"])
def test_a_probe_url_that_is_no_url_is_refused(url: str) -> None:
    with pytest.raises(InputError, match="is not an https URL"):
        run_probe(url, queue=None)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://127.0.0.1:99999/x", "the port 99999 is out of range (1-65535)"),
        ("https://127.0.0.1:0/x", "the port 0 is out of range (1-65535)"),
        ("https://[::1]:99999/x", "the port 99999 is out of range (1-65535)"),
        ("https://host.example:https/x", "the port 'https' is not a number"),
    ],
)
def test_a_probe_url_with_a_port_that_cannot_be_is_refused_naming_the_port(
    url: str, says: str
) -> None:
    with pytest.raises(InputError) as refused:
        run_probe(url, queue=None)
    assert says in refused.value.line()
    assert "not an https URL" not in refused.value.line()


@pytest.mark.parametrize(
    ("resolver", "says"),
    [
        ("999.1.1.1", "--resolver '999.1.1.1' is not an IP address with an optional port"),
        ("127.0.0.1:99999", "--resolver '127.0.0.1:99999': the port must be 1-65535"),
        ("abc:xyz", "--resolver 'abc:xyz' is not an IP address with an optional port"),
    ],
)
@pytest.mark.parametrize("output", ["text", "json"])
def test_a_resolver_that_is_no_address_and_port_is_one_line_before_any_query(
    capsys: pytest.CaptureFixture[str], resolver: str, says: str, output: str
) -> None:
    err = refusal(capsys, "probe", "https://hooks.example.com/callback", "--resolver", resolver,
                  "--timeout", "1", "--format", output)  # fmt: skip
    assert says in err


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: d / "missing.pem", "not found"),
        (lambda d: d, "not a file"),
        (lambda d: _write(d / "nginx.conf", "events {}\n"), "no PEM certificate in it"),
        (
            lambda d: _write(d / "cut.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n"),
            "its PEM certificates cannot be read",
        ),
    ],
)
def test_a_ca_file_that_holds_no_certificate_is_refused_not_blamed_on_the_network(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make: Callable[[Path], Path], says: str
) -> None:
    ca = make(tmp_path)
    err = refusal(capsys, "probe", "https://127.0.0.1:9/cb", "--ca-file", str(ca), "--timeout", "1")
    assert f"--ca-file {ca}: {says}" in err


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("timeout", [-1.0, 0.0, float("nan"), float("inf")])
def test_a_probe_timeout_that_is_no_number_of_seconds_is_refused(timeout: float) -> None:
    with pytest.raises(InputError, match="--timeout: not a number of seconds"):
        run_probe("https://127.0.0.1:9/callback", queue=None, timeout=timeout)


def test_a_probe_timeout_of_zero_is_one_line_like_a_negative_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = refusal(capsys, "probe", "https://127.0.0.1:9/cb", "--timeout", "0")
    assert "--timeout: not a number of seconds above 0: 0" in err


@pytest.mark.parametrize(
    ("spec", "region", "says"),
    [
        ("sqs:https://sqs.example:99999/1/q", None, "--queue: not a URL"),
        ("sqs:queue-name", None, "--queue: not a URL"),
        ("https://sqs.ap-northeast-2.amazonaws.com/1/q", "no region!", "not an AWS region"),
    ],
)
def test_a_queue_the_probe_cannot_reach_is_refused_when_read(
    spec: str, region: str | None, says: str
) -> None:
    with pytest.raises(InputError, match=says):
        QueueSpec.parse(spec, region=region)


def test_a_cut_over_threshold_that_is_no_number_is_refused_when_given() -> None:
    with pytest.raises(InputError, match="--min-window is NaN"):
        Settings().override(min_window=float("nan"))
    with pytest.raises(InputError, match="--quiet-period is -1"):
        Settings().override(quiet_period=-1)
    assert Settings().override(min_events=0).min_events == 0


@pytest.mark.parametrize(
    ("option", "make", "says"),
    [
        ("--queue", lambda d: f"jsonl:{d / 'missing.jsonl'}", "no such file"),
        ("--queue", lambda d: f"jsonl:{d}", "not a regular file"),
        ("--queue", lambda d: f"archive:{d / 'missing'}", "archive directory not found"),
        ("--queue", lambda d: f"archive:{_write(d / 'q.jsonl', '')}",
         "is a file, not the archive directory"),
        ("--execution-log", lambda d: str(d / "missing.log"), "no such file"),
        ("--execution-log", lambda d: str(d), "not a regular file"),
        ("--execution-log", lambda d: "cloudwatch:", "names no log group"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("output", ["text", "json"])
def test_a_queue_or_execution_log_path_that_cannot_be_read_is_refused_before_sending(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    listener: socket.socket,
    option: str,
    make: Callable[[Path], str],
    says: str,
    output: str,
) -> None:
    """Read only after the POST, a wrong path would read as a probe that did not land (or
    leave out the very answer the log was given for), with the synthetic callback sent."""
    value = make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    port = listener.getsockname()[1]
    err = refusal(capsys, "probe", f"http://127.0.0.1:{port}/callback", option, value,
                  "--timeout", "1", "--format", output)  # fmt: skip
    assert f"{option} {value}: {says}" in err
    assert not _connected(listener)
    assert sorted(tmp_path.rglob("*")) == before


def test_a_queue_file_with_a_byte_that_is_not_utf8_is_still_searched(tmp_path: Path) -> None:
    """The search runs after the probe was sent: a bad byte in another line (a segment cut
    mid-character) must neither end it in a traceback nor hide the marker."""
    from hookshift.cutover.probe import find_marker

    queue = tmp_path / "q.jsonl"
    queue.write_bytes(
        b'{"Body": "caf\xc3"}\n{"Body": "{\\"hookshift_probe\\": \\"hs-probe-1\\"}"}\n'
    )
    found = find_marker(QueueSpec("jsonl", str(queue)), "hs-probe-1", timeout=0)
    assert found.found and found.searched == 2


def test_a_fifo_named_like_a_segment_in_an_archive_is_passed_over_not_waited_on(
    tmp_path: Path,
) -> None:
    """Opening a FIFO for reading blocks until a writer comes: the search, run after the probe
    was sent, would hang for ever on one named like a segment."""
    from hookshift.cutover.probe import find_marker

    archive = tmp_path / "archive"
    archive.mkdir()
    os.mkfifo(archive / "seg-000001.jsonl")
    (archive / "seg-000002.jsonl").write_text(
        '{"Body": "{\\"hookshift_probe\\": \\"hs-probe-1\\"}"}\n', encoding="utf-8"
    )
    found = find_marker(QueueSpec("archive", str(archive)), "hs-probe-1", timeout=0)
    assert found.found and found.searched == 1


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://ops:s3cret@hooks.example.com/callback", "holds a user name or password"),
        ("https://s3cret@hooks.example.com:8443/callback", "holds a user name or password"),
        ("https://ops:s3cret@[::1/callback", "is not an https URL"),
        ("https://ops:s3cret@127.0.0.1:99999/callback", "holds a user name or password"),
    ],
)
def test_a_probe_url_with_credentials_is_refused_without_showing_them(
    capsys: pytest.CaptureFixture[str], url: str, says: str
) -> None:
    """API Gateway takes no credentials in the URL (nor does nginx's proxy_pass), and the
    line that refuses them must not print them."""
    err = refusal(capsys, "probe", url, "--timeout", "1")
    assert says in err and "https://***@" in err
    assert "s3cret" not in err and "ops" not in err


@pytest.mark.parametrize(
    "host", [f"{'a' * 64}.example.com", "hooks..example.com", "-hooks.example.com"]
)
def test_a_probe_url_whose_host_dns_cannot_hold_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], host: str
) -> None:
    """dnspython would raise on the label before asking (a traceback), or DNS be asked for a
    name that cannot exist."""
    err = refusal(capsys, "probe", f"https://{host}/callback", "--resolver", "127.0.0.1:9",
                  "--timeout", "1")  # fmt: skip
    assert f"probe URL 'https://{host}/callback': its host is not a host name DNS can hold" in err
