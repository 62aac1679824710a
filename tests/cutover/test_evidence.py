"""What the gates are fed: nginx's request times from its logs, direct arrivals in the queue,
and a parity report's JSON read as gate evidence."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hookshift.cutover.evidence import (
    _followed,
    direct_arrivals,
    nginx_times,
    parity_evidence,
    watched_parity,
)
from hookshift.cutover.settings import Settings
from hookshift.verify.watch import WatchState


def test_nginx_times_read_the_parity_log_and_combined_logs_with_rotations(tmp_path: Path) -> None:
    parity = tmp_path / "hookshift-parity.log"
    parity.write_text(
        json.dumps({"v": 1, "msec": "1795852500.123", "uri": "/cb"}) + "\n"
        + "not json at all\n"
        + json.dumps({"v": 1, "msec": "1795852501.500"}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    with gzip.open(tmp_path / "hookshift-parity.log.1.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"v": 1, "msec": "1795852400.000"}) + "\n")
    assert sorted(nginx_times(str(tmp_path / "hookshift-parity.log*"))) == [
        1795852400.0, 1795852500.123, 1795852501.5,
    ]  # fmt: skip
    access = tmp_path / "access.log"
    access.write_text(
        '10.0.0.1 - - [28/Nov/2026:09:15:00 +0900] "POST /cb HTTP/1.1" 200 0 "-" "vendor"\n',
        encoding="utf-8",
    )
    assert nginx_times(str(access)) == [1795824900.0]


def _message(sent_ms: int, request_id: str | None) -> dict[str, Any]:
    """An SQS message as boto3 returns it (JSON)."""
    attrs: dict[str, dict[str, str]] = {}
    if request_id is not None:
        attrs["nginx_request_id"] = {"DataType": "String", "StringValue": request_id}
    return {"MessageId": str(sent_ms), "Body": "{}", "Attributes": {"SentTimestamp": str(sent_ms)},
            "MessageAttributes": attrs}  # fmt: skip


def test_direct_arrivals_are_messages_since_the_switch_without_an_nginx_request_id() -> None:
    messages: list[dict[str, Any]] = [
        _message(1_000_000, None),  # before the switch
        _message(2_000_000, None),  # straight from the vendor
        _message(2_500_000, "a" * 32),  # a straggler nginx forwarded
        _message(3_000_000, None),
        {"MessageId": "x", "Body": "{}"},  # no SentTimestamp: not counted
    ]
    assert direct_arrivals(messages, since=2000.0) == 2


def test_a_parity_report_becomes_gate_evidence_over_the_window_asked() -> None:
    report: dict[str, Any] = {  # verify's JSON report
        "verdict": "fail",
        "reason": "2 callback(s) the app accepted are missing in the queue",
        "counts": {"app": 120, "in_flight": 3, "missing_in_queue": 2, "mismatched": 1},
    }
    evidence = parity_evidence(report, since=100.0, until=400.0)
    assert evidence.verdict == "fail"
    assert evidence.compared == 117
    assert (evidence.window_start, evidence.window_end) == (100.0, 400.0)
    assert (evidence.missing_in_queue, evidence.mismatched) == (2, 1)
    report["counts"]["compared"] = 110
    assert parity_evidence(report, since=100.0, until=400.0).compared == 110


def _watched(tmp_path: Path, since: str | None, updated_at: float, verdict: str = "pass") -> Path:
    """A `verify watch` state directory as the watcher writes it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    state = WatchState(
        verdict=verdict,
        reason="all 150 compared callback(s) reached the queue intact",
        key="request_id",
        counts={"compared": 150, "missing_in_queue": 0, "mismatched": 0},
        lag_ms={},
        window={"since": since, "until": None, "end": "2026-12-06T12:00:00.000+00:00"},
        sources={"app": "nginx:p.log", "queue": "archive:a"},
        updated_at=updated_at,
    )
    (tmp_path / "watch-state.json").write_text(json.dumps(state.to_dict()), encoding="utf-8")
    return tmp_path


ENTERED = datetime(2026, 12, 6, 10, 0, tzinfo=UTC).timestamp()
NOW = datetime(2026, 12, 6, 12, 0, 30, tzinfo=UTC).timestamp()


def test_a_fresh_watch_covering_the_stage_is_the_parity_gates_evidence(tmp_path: Path) -> None:
    state = _watched(tmp_path, "2026-12-06T10:00:05.000+00:00", updated_at=NOW - 20)
    evidence = watched_parity(Settings(watch_state=str(state)), ENTERED, NOW)
    assert evidence is not None
    assert (evidence.verdict, evidence.compared) == ("pass", 150)
    assert evidence.window_start == ENTERED + 5
    assert evidence.window_end == datetime(2026, 12, 6, 12, 0, tzinfo=UTC).timestamp()
    assert "watched parity pass over 2026-12-06T10:00:05.000+00:00" in evidence.reason


def test_a_stale_watch_or_one_from_before_the_stage_is_not_used(tmp_path: Path) -> None:
    stale = _watched(tmp_path / "a", "2026-12-06T10:00:05.000+00:00", updated_at=NOW - 3600)
    earlier = _watched(tmp_path / "b", "2026-12-06T09:00:00.000+00:00", updated_at=NOW - 20)
    whole = _watched(tmp_path / "c", None, updated_at=NOW - 20)
    for state in (stale, earlier, whole):
        assert watched_parity(Settings(watch_state=str(state)), ENTERED, NOW) is None
    assert watched_parity(Settings(watch_state=str(tmp_path / "none")), ENTERED, NOW) is None


def test_an_archive_a_running_follower_keeps_current_is_read_not_pulled_into(
    tmp_path: Path,
) -> None:
    """`verify pull --follow` is the archive's one writer; the gate must not start a second."""
    assert not _followed(str(tmp_path))
    state = {"queue_url": "https://sqs.test/1/q", "archive": str(tmp_path), "pid": 1}
    for updated_at, followed in ((time.time() - 5, True), (time.time() - 3600, False)):
        (tmp_path / "follow-state.json").write_text(
            json.dumps({**state, "started_at": updated_at, "updated_at": updated_at}),
            encoding="utf-8",
        )
        assert _followed(str(tmp_path)) is followed
