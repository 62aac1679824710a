"""A queue endpoint that accepts connections and never answers fails the probe's search within
seconds, reported as an observation (botocore's defaults would wait minutes)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from hookshift.cutover.probe import QueueSpec, find_marker


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
