"""An endpoint that accepts connections and never answers fails the probe's step within its
timeout, reported as an observation: the queue (botocore's defaults would wait minutes) and the
TLS handshake (a port where something other than HTTPS listens)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from hookshift.cli import main
from hookshift.cutover.diagnosis import diagnose
from hookshift.cutover.probe import QueueSpec, find_marker, observe_dns, run_probe


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A loopback port whose kernel completes the TCP handshake and nothing ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.timeout(60)
@pytest.mark.e2e  # waits out the SQS client's real read timeouts (about 15 s)
def test_a_queue_endpoint_that_never_answers_is_an_error_not_a_hang(
    silent_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    spec = QueueSpec.parse(
        f"sqs:{silent_endpoint}/123456789012/results",
        endpoint_url=silent_endpoint,
        region="ap-northeast-2",
    )
    seen = find_marker(spec, "marker", timeout=1.0)
    assert not seen.found
    assert "timeout" in seen.error.lower() or "timed out" in seen.error.lower(), seen.error


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


@pytest.mark.e2e  # a listening socket, and a handshake that waits out the timeout
@pytest.mark.parametrize("output", ["text", "json"])
def test_a_port_that_accepts_tcp_and_never_speaks_tls_is_named_after_one_timeout(
    silent_endpoint: str, output: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _port(silent_endpoint)
    with pytest.raises(SystemExit) as exited:
        main(["probe", f"https://127.0.0.1:{port}/prod/callback", "--timeout", "0.5",
              "--format", output])  # fmt: skip
    out, err = capsys.readouterr()
    assert exited.value.code == 1 and err == ""
    assert (
        f"the TCP connection to 127.0.0.1:{port} was made but the TLS handshake got no answer "
        "within 0.5 s: something that is not HTTPS listens there"
    ) in (json.loads(out)["findings"][0]["cause"] if output == "json" else out)
    assert "_ssl.c" not in out and "no TCP connection" not in out


@pytest.mark.e2e  # a listening socket
def test_localhost_is_this_machines_to_resolve_even_with_a_resolver_given(
    silent_endpoint: str,
) -> None:
    """A DNS server knows no localhost: asking the one given (nothing answers on port 9)
    would blame a missing DNS record."""
    port = _port(silent_endpoint)
    observation = run_probe(
        f"https://localhost:{port}/cb", queue=None, resolver="127.0.0.1:9", timeout=0.5
    )
    assert observation.dns is not None and "127.0.0.1" in observation.dns.addresses
    codes = [f.code for f in diagnose(observation).findings]
    assert codes == ["tls-no-answer"]


def test_an_address_in_the_url_is_not_asked_of_dns() -> None:
    assert observe_dns("::1", ("127.0.0.1", 9)).addresses == ("::1",)
    assert observe_dns("127.0.0.1", ("127.0.0.1", 9)).addresses == ("127.0.0.1",)
