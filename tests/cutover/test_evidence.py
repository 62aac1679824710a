"""What the gates are fed: nginx's request times from its logs, direct arrivals in the queue,
and a parity report's JSON read as gate evidence."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from hookshift.cutover.evidence import direct_arrivals, nginx_times, parity_evidence


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


def _message(sent_ms: int, request_id: str | None) -> dict[str, object]:
    attrs = {}
    if request_id is not None:
        attrs["nginx_request_id"] = {"DataType": "String", "StringValue": request_id}
    return {"MessageId": str(sent_ms), "Body": "{}", "Attributes": {"SentTimestamp": str(sent_ms)},
            "MessageAttributes": attrs}  # fmt: skip


def test_direct_arrivals_are_messages_since_the_switch_without_an_nginx_request_id() -> None:
    messages = [
        _message(1_000_000, None),  # before the switch
        _message(2_000_000, None),  # straight from the vendor
        _message(2_500_000, "a" * 32),  # a straggler nginx forwarded
        _message(3_000_000, None),
        {"MessageId": "x", "Body": "{}"},  # no SentTimestamp: not counted
    ]
    assert direct_arrivals(messages, since=2000.0) == 2


def test_a_parity_report_becomes_gate_evidence_over_the_window_asked() -> None:
    report = {
        "verdict": "fail",
        "reason": "2 callback(s) the app accepted are missing in the queue",
        "counts": {"app": 120, "in_flight": 3, "missing_in_queue": 2, "mismatched": 1},
    }
    evidence = parity_evidence(report, since=100.0, until=400.0)
    assert evidence.verdict == "fail"
    assert evidence.compared == 117
    assert (evidence.window_start, evidence.window_end) == (100.0, 400.0)
    assert (evidence.missing_in_queue, evidence.mismatched) == (2, 1)
    report["counts"]["compared"] = 110  # type: ignore[index]
    assert parity_evidence(report, since=100.0, until=400.0).compared == 110
