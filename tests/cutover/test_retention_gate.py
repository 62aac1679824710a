"""Before a mirror stage: the queue must keep messages longer than the parity window plus a day,
and the `pull --follow` that keeps the archive must still be receiving. Pure gates over what was
read; the reasons name the exact command that fixes the queue."""

from __future__ import annotations

import pytest

from hookshift.cutover.stages import (
    DoctorEvidence,
    Evidence,
    GateResult,
    HeartbeatEvidence,
    ParityEvidence,
    ProbeEvidence,
    RetentionEvidence,
    Thresholds,
    TransitionCheck,
    check_transition,
    evidence_from_json,
    needed_evidence,
)

HOUR = 3600.0
ENTERED = 1_000_000.0
QUEUE = "https://sqs.ap-northeast-2.amazonaws.com/123456789012/results"
FIX = (
    f"`aws sqs set-queue-attributes --queue-url {QUEUE} "
    "--attributes MessageRetentionPeriod=1209600`"
)
PROBE = ProbeEvidence("https://abc.execute-api.ap-northeast-2.amazonaws.com/prod/cb", True)
PARITY = ParityEvidence("pass", "", ENTERED + 1, ENTERED + 2 * HOUR, 500)


def _check(stage: str, evidence: Evidence, min_window: float = HOUR) -> TransitionCheck:
    thresholds = Thresholds(min_window=min_window, min_events=10)
    return check_transition(stage, evidence, entered_at=ENTERED, thresholds=thresholds)


def _baseline(
    *,
    retention: RetentionEvidence | None = None,
    heartbeat: HeartbeatEvidence | None = None,
) -> Evidence:
    return Evidence(
        doctor=DoctorEvidence(), stage_probe=PROBE, retention=retention, heartbeat=heartbeat
    )


def _gate(check: TransitionCheck, name: str) -> GateResult:
    return next(r for r in check.results if r.gate == name)


@pytest.mark.parametrize("stage", ["baseline", "mirror-stage"])
def test_a_queue_that_forgets_before_the_window_ends_refuses_the_mirror_stage(stage: str) -> None:
    evidence = Evidence(
        doctor=DoctorEvidence(),
        stage_probe=PROBE,
        parity=PARITY,
        domain_probe=PROBE,
        retention=RetentionEvidence(QUEUE, retention_s=3600),
    )
    check = _check(stage, evidence)
    assert not check.passed
    assert [r.gate for r in check.failed] == ["queue-retention"]
    why = _gate(check, "queue-retention").why
    assert why.startswith(f"{QUEUE} keeps messages 1 h, less than the planned window of 1 h")
    assert why.endswith(f"(fix: {FIX})")


def test_a_fourteen_day_queue_passes_and_says_what_it_compared() -> None:
    check = _check("baseline", _baseline(retention=RetentionEvidence(QUEUE, 1_209_600)))
    assert check.passed
    assert _gate(check, "queue-retention").why == (
        "the queue keeps messages 14 d >= window 1 h + 1 d of margin"
    )


def test_the_window_plus_a_day_is_the_bar() -> None:
    need = int(HOUR) + 86_400
    assert _check("baseline", _baseline(retention=RetentionEvidence(QUEUE, need))).passed
    refused = _check("baseline", _baseline(retention=RetentionEvidence(QUEUE, need - 1)))
    assert [r.gate for r in refused.failed] == ["queue-retention"]


def test_the_fix_names_the_endpoint_and_region_the_queue_was_read_from() -> None:
    local = RetentionEvidence(QUEUE, 60, endpoint_url="http://127.0.0.1:5055", region="eu-west-1")
    why = _gate(_check("baseline", _baseline(retention=local)), "queue-retention").why
    assert (
        f"--queue-url {QUEUE} --endpoint-url http://127.0.0.1:5055 --region eu-west-1 "
        "--attributes MessageRetentionPeriod=1209600`" in why
    )


def test_a_window_longer_than_sqs_can_keep_asks_for_a_shorter_window() -> None:
    check = _check(
        "baseline", _baseline(retention=RetentionEvidence(QUEUE, 1_209_600)), 14 * 86_400
    )
    why = _gate(check, "queue-retention").why
    assert not check.passed
    assert "lower --min-window to 13 d at most" in why and "set-queue-attributes" not in why


def test_an_unreadable_retention_is_said_but_does_not_refuse() -> None:
    check = _check("baseline", _baseline(retention=RetentionEvidence(QUEUE, None)))
    assert check.passed
    assert "cannot read MessageRetentionPeriod" in _gate(check, "queue-retention").why


def test_without_an_sqs_queue_there_is_no_retention_gate() -> None:
    check = _check("baseline", _baseline())
    assert check.passed
    assert [r.gate for r in check.results] == ["doctor", "stage-probe"]


def test_the_retention_gate_guards_only_the_way_into_a_mirror_stage() -> None:
    assert "retention" in needed_evidence("baseline")
    assert "retention" in needed_evidence("mirror-stage")
    assert "retention" not in needed_evidence("mirror-domain")
    assert "retention" not in needed_evidence("vendor-switched")


def test_a_follow_that_stopped_receiving_refuses_naming_the_archive() -> None:
    archive = "/var/lib/hookshift/archive"
    stale = HeartbeatEvidence(archive, ENTERED - 2 * HOUR, ENTERED - 3 * HOUR, ENTERED)
    check = _check(
        "baseline",
        _baseline(retention=RetentionEvidence(QUEUE, 1_209_600), heartbeat=stale),
    )
    assert [r.gate for r in check.failed] == ["pull-heartbeat"]
    why = _gate(check, "pull-heartbeat").why
    assert why.startswith("nothing has pulled from the queue for 2 h (more than 15 min)")
    assert why.endswith("; it keeps /var/lib/hookshift/archive")


def test_a_follow_that_received_lately_passes() -> None:
    fresh = HeartbeatEvidence("/a", ENTERED - 30, ENTERED - HOUR, checked_at=ENTERED)
    check = _check("baseline", _baseline(heartbeat=fresh))
    assert check.passed
    assert _gate(check, "pull-heartbeat").why == (
        "the pull --follow into /a answered 30s ago (<= 15 min)"
    )


def test_the_evidence_reads_back_from_the_journal() -> None:
    evidence = _baseline(
        retention=RetentionEvidence(QUEUE, 3600, endpoint_url="http://127.0.0.1:1"),
        heartbeat=HeartbeatEvidence("/a", None, ENTERED, ENTERED + 5),
    )
    assert evidence_from_json(evidence.to_json()) == evidence
