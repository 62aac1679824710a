"""Each transition's gates: pass only on the evidence the runbook asks for, and say why not."""

from __future__ import annotations

import pytest

from hookshift.cutover.stages import (
    STAGES,
    DoctorEvidence,
    DrainEvidence,
    DrainSetup,
    Evidence,
    GateResult,
    ParityEvidence,
    ProbeEvidence,
    ProbeSetup,
    QuietEvidence,
    SwitchEvidence,
    Thresholds,
    TransitionCheck,
    check_transition,
    evidence_from_json,
    next_stage,
    nginx_counts,
    previous_stage,
    quiet_since,
)

T = Thresholds(min_window=600, min_events=50, quiet_period=3600)
ENTERED = 1_000_000.0
GOOD_PROBE = ProbeEvidence("https://abc.execute-api.ap-northeast-2.amazonaws.com/prod/cb", True)
GOOD_PARITY = ParityEvidence("pass", "", ENTERED + 10, ENTERED + 1000, 500)


def _gate(check: TransitionCheck, name: str) -> GateResult:
    return next(r for r in check.results if r.gate == name)


def test_the_five_stages_are_in_runbook_order() -> None:
    assert STAGES == (
        "baseline",
        "mirror-stage",
        "mirror-domain",
        "vendor-switched",
        "decommissioned",
    )
    assert next_stage("baseline") == "mirror-stage"
    assert next_stage("decommissioned") is None
    assert previous_stage("mirror-stage") == "baseline"
    assert previous_stage("baseline") is None


def test_baseline_leaves_with_a_clean_doctor_and_a_landed_stage_probe() -> None:
    ok = check_transition(
        "baseline",
        Evidence(doctor=DoctorEvidence(), stage_probe=GOOD_PROBE),
        entered_at=ENTERED,
        thresholds=T,
    )
    assert ok.passed and ok.to_stage == "mirror-stage"


def test_baseline_refuses_on_doctor_errors_naming_them() -> None:
    check = check_transition(
        "baseline",
        Evidence(
            doctor=DoctorEvidence(errors=("nginx.conf:12: no resolver defined",)),
            stage_probe=GOOD_PROBE,
        ),
        entered_at=ENTERED,
        thresholds=T,
    )
    assert not check.passed
    assert [r.gate for r in check.failed] == ["doctor"]
    assert "nginx.conf:12: no resolver defined" in check.failed[0].why


def test_a_probe_that_did_not_land_fails_with_its_first_finding() -> None:
    probe = ProbeEvidence(GOOD_PROBE.url, False, ("missing-auth-token: wrong stage",))
    check = check_transition(
        "baseline",
        Evidence(doctor=DoctorEvidence(), stage_probe=probe),
        entered_at=ENTERED,
        thresholds=T,
    )
    assert "missing-auth-token: wrong stage" in _gate(check, "stage-probe").why


def test_missing_evidence_fails_and_says_what_to_pass() -> None:
    check = check_transition("baseline", Evidence(), entered_at=ENTERED, thresholds=T)
    assert not check.passed
    assert all("no evidence" in r.why for r in check.failed)
    assert "--stage-url" in _gate(check, "stage-probe").why


@pytest.mark.parametrize(
    ("setup", "asked"),
    [
        (ProbeSetup(url=GOOD_PROBE.url), "pass --queue"),
        (ProbeSetup(queue="sqs:https://sqs.example/1/q"), "pass --stage-url"),
        (ProbeSetup(), "pass --stage-url and --queue"),
        (None, "pass --stage-url and --queue"),
    ],
)
def test_a_probe_that_could_not_run_asks_only_for_what_was_not_given(
    setup: ProbeSetup | None, asked: str
) -> None:
    evidence = Evidence(doctor=DoctorEvidence(), probe_setup=setup)
    check = check_transition("baseline", evidence, entered_at=ENTERED, thresholds=T)
    assert _gate(check, "stage-probe").why == f"no evidence: {asked}"
    domain = check_transition(
        "mirror-stage",
        Evidence(parity=GOOD_PARITY, probe_setup=setup),
        entered_at=ENTERED,
        thresholds=T,
    )
    assert _gate(domain, "domain-probe").why == (
        f"no evidence: {asked.replace('--stage-url', '--domain-url')}"
    )


def test_mirror_stage_needs_passing_parity_over_window_and_events_and_a_domain_probe() -> None:
    ok = check_transition(
        "mirror-stage",
        Evidence(parity=GOOD_PARITY, domain_probe=GOOD_PROBE),
        entered_at=ENTERED,
        thresholds=T,
    )
    assert ok.passed, ok.failed


@pytest.mark.parametrize(
    ("parity", "gate", "why"),
    [
        (
            ParityEvidence("fail", "3 missing_in_queue", ENTERED, ENTERED + 1000, 500, 3),
            "parity-stage",
            "3 missing_in_queue",
        ),
        (
            ParityEvidence("pass", "", ENTERED, ENTERED + 100, 500),
            "parity-stage-window",
            "< --min-window 10m",
        ),
        (
            ParityEvidence("pass", "", ENTERED, ENTERED + 1000, 49),
            "parity-stage-window",
            "49 events < --min-events 50",
        ),
        (
            ParityEvidence("pass", "", ENTERED - 500, ENTERED + 1000, 500),
            "parity-stage-window",
            "before this stage was entered",
        ),
    ],
)
def test_mirror_stage_refuses_weak_parity(parity: ParityEvidence, gate: str, why: str) -> None:
    check = check_transition(
        "mirror-stage",
        Evidence(parity=parity, domain_probe=GOOD_PROBE),
        entered_at=ENTERED,
        thresholds=T,
    )
    assert not check.passed
    assert why in _gate(check, gate).why


def test_mirror_domain_needs_a_drained_queue_or_confirmed_dedup() -> None:
    drained = DrainEvidence(archived=480, left_in_queue=0, archive="/var/hookshift/archive")
    assert check_transition(
        "mirror-domain",
        Evidence(parity=GOOD_PARITY, drain=drained),
        entered_at=ENTERED,
        thresholds=T,
    ).passed
    assert check_transition(
        "mirror-domain",
        Evidence(parity=GOOD_PARITY, drain=DrainEvidence(dedup_confirmed=True)),
        entered_at=ENTERED,
        thresholds=T,
    ).passed
    left = check_transition(
        "mirror-domain",
        Evidence(parity=GOOD_PARITY, drain=DrainEvidence(archived=10, left_in_queue=7)),
        entered_at=ENTERED,
        thresholds=T,
    )
    assert not left.passed
    assert "7 message(s) still in the queue" in _gate(left, "drain").why


ARCHIVE = "/var/lib/hookshift/archive"
QUEUE = "sqs:https://sqs.ap-northeast-2.amazonaws.com/123456789012/results"
FAILED_PARITY = ParityEvidence("fail", "3 missing_in_queue", ENTERED + 10, ENTERED + 1000, 500, 3)


def _drain_why(evidence: Evidence) -> str:
    check = check_transition("mirror-domain", evidence, entered_at=ENTERED, thresholds=T)
    assert not check.passed
    return _gate(check, "drain").why


def test_a_failed_parity_leaves_the_drain_unchecked_without_asking_for_the_archive_given() -> None:
    given = DrainSetup(archive=ARCHIVE, queue=QUEUE)
    assert _drain_why(Evidence(parity=FAILED_PARITY, drain_setup=given)) == (
        "not checked: parity-domain failed (the queue is drained only once every other gate passes)"
    )
    short = ParityEvidence("pass", "", ENTERED + 10, ENTERED + 100, 500)
    assert _drain_why(Evidence(parity=short, drain_setup=given)).startswith(
        "not checked: parity-domain-window failed"
    )
    confirmed = DrainSetup(dedup_confirmed=True)
    assert "--" not in _drain_why(Evidence(parity=FAILED_PARITY, drain_setup=confirmed))


def test_the_drain_asks_for_the_archive_only_when_it_is_missing() -> None:
    no_archive = DrainSetup(queue=QUEUE)
    assert _drain_why(Evidence(parity=FAILED_PARITY, drain_setup=no_archive)) == (
        "not checked: parity-domain failed (the queue is drained only once every other gate "
        "passes); also pass --archive PATH to drain the mirror-period messages, or "
        "--dedup-confirmed"
    )
    assert _drain_why(Evidence(parity=GOOD_PARITY, drain_setup=no_archive)) == (
        "no evidence: pass --archive PATH to drain the mirror-period messages, or --dedup-confirmed"
    )
    no_queue = DrainSetup(archive=ARCHIVE)
    assert _drain_why(Evidence(parity=GOOD_PARITY, drain_setup=no_queue)) == (
        f"no evidence: pass --queue sqs:QUEUE_URL to drain it into {ARCHIVE}, or --dedup-confirmed"
    )


def test_vendor_switched_needs_direct_arrivals_falling_nginx_and_the_quiet_period() -> None:
    good = Evidence(
        switch=SwitchEvidence(
            40, nginx_before=60, before_seconds=3600, nginx_after=2, after_seconds=7200
        ),
        quiet=QuietEvidence(seconds_since_last=4000, seconds_in_stage=7200),
    )
    assert check_transition("vendor-switched", good, entered_at=ENTERED, thresholds=T).passed
    still_nginx = Evidence(
        switch=SwitchEvidence(
            0, nginx_before=60, before_seconds=600, nginx_after=60, after_seconds=600
        ),
        quiet=QuietEvidence(seconds_since_last=1, seconds_in_stage=600),
    )
    check = check_transition("vendor-switched", still_nginx, entered_at=ENTERED, thresholds=T)
    assert {r.gate for r in check.failed} == {"direct-arrivals", "nginx-falling", "quiet-period"}
    assert "still calls nginx" in _gate(check, "direct-arrivals").why
    assert (
        "did not fall: 60 in 10m (6.0/min) -> 60 in 10m (6.0/min)"
        in _gate(check, "nginx-falling").why
    )
    assert "< --quiet-period 1h" in _gate(check, "quiet-period").why


def test_quiet_period_counts_from_the_switch_when_nginx_saw_nothing_since() -> None:
    assert quiet_since([1.0, 2.0], switch_at=10.0, now=100.0).seconds_since_last is None
    q = quiet_since([1.0, 50.0], switch_at=10.0, now=100.0)
    assert q.seconds_since_last == 50.0 and q.seconds_in_stage == 90.0


def test_nginx_counts_split_the_previous_stage_from_the_time_since_the_switch() -> None:
    times = [10.0, 80.0, 90.0, 95.0, 101.0, 150.0]
    assert nginx_counts(times, previous_at=50.0, switch_at=100.0, now=120.0) == (3, 50.0, 1, 20.0)


def test_a_straggler_after_the_switch_still_counts_as_falling_when_the_rate_dropped() -> None:
    switch = SwitchEvidence(5, nginx_before=10, before_seconds=5, nginx_after=1, after_seconds=3)
    check = check_transition(
        "vendor-switched",
        Evidence(switch=switch, quiet=QuietEvidence(4000, 4000)),
        entered_at=ENTERED,
        thresholds=T,
    )
    assert check.passed, check.failed


def test_decommissioned_is_final() -> None:
    check = check_transition("decommissioned", Evidence(), entered_at=ENTERED, thresholds=T)
    assert not check.passed and check.to_stage is None


def test_evidence_round_trips_through_the_journal_form() -> None:
    evidence = Evidence(
        doctor=DoctorEvidence(("a:1: x",), 2),
        stage_probe=GOOD_PROBE,
        parity=GOOD_PARITY,
        drain=DrainEvidence(3, 0, "/a"),
        drain_setup=DrainSetup("/a", QUEUE),
    )
    assert evidence_from_json(evidence.to_json()) == evidence


def test_an_unknown_stage_is_bad_input_not_a_crash() -> None:
    from hookshift.errors import InputError

    with pytest.raises(InputError, match="unknown stage 'mirror'") as bad:
        check_transition("mirror", Evidence(), entered_at=ENTERED, thresholds=T)
    assert "baseline, mirror-stage" in bad.value.line()
