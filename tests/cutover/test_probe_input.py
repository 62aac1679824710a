"""The probe's input is refused before anything is sent: one line, exit 2, no traceback."""

from __future__ import annotations

import pytest

from hookshift.cutover.probe import QueueSpec, run_probe
from hookshift.cutover.settings import Settings
from hookshift.errors import InputError


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:99999/callback", "https://[::1/callback", "callback"]
)
def test_a_probe_url_that_is_no_url_is_refused(url: str) -> None:
    with pytest.raises(InputError, match="is not an https URL"):
        run_probe(url, queue=None)


@pytest.mark.parametrize("timeout", [-1.0, float("nan"), float("inf")])
def test_a_probe_timeout_that_is_no_number_of_seconds_is_refused(timeout: float) -> None:
    with pytest.raises(InputError, match="--timeout: not a number of seconds"):
        run_probe("https://127.0.0.1:9/callback", queue=None, timeout=timeout)


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
