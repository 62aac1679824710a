"""The five cut-over stages and the gate of each transition, as pure functions over evidence.

WHY pure: the gates are the whole safety argument of the cut-over ("we moved to the custom domain
because parity passed over 24 h and 50,000 callbacks"). Keeping them free of I/O means they are
specified by tests exactly, and the evidence a gate used can be written to the journal verbatim.
The API (`cutover.gather`) gathers the evidence (doctor, probes, parity, queue reads) and asks
`check_transition`.

Stages, in order:

1. ``baseline``        nginx proxies the callback path to the app.
2. ``mirror-stage``    nginx also mirrors every callback to the API Gateway stage URL.
3. ``mirror-domain``   the mirror targets the custom domain (DNS, TLS, base path mapping live).
4. ``vendor-switched`` the vendor calls the custom domain; nginx forwards stragglers there too.
5. ``decommissioned``  mirror and forward are removed: nginx's config is the user's original
                       again (it still proxies the path to the app), and the vendor calls the
                       custom domain, so nginx receives no callbacks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hookshift.errors import InputError
from hookshift.verify.retention import (
    DEFAULT_MARGIN_S,
    DEFAULT_STALE_S,
    SQS_MAX_RETENTION_S,
    check_heartbeat,
    check_retention,
    human,
)

STAGES: tuple[str, ...] = (
    "baseline",
    "mirror-stage",
    "mirror-domain",
    "vendor-switched",
    "decommissioned",
)

STAGE_SUMMARY: dict[str, str] = {
    "baseline": "nginx proxies the callback path to the app",
    "mirror-stage": "nginx mirrors every callback to the API Gateway stage URL",
    "mirror-domain": "nginx mirrors every callback to the custom domain",
    "vendor-switched": "the vendor calls the custom domain; nginx forwards stragglers to it",
    "decommissioned": (
        "mirror and forward removed: nginx's config is the original again (it would proxy the "
        "callback path to the app), and the vendor calls the custom domain"
    ),
}


def next_stage(stage: str) -> str | None:
    """The stage after ``stage`` (None at the end)."""
    index = STAGES.index(stage)
    return STAGES[index + 1] if index + 1 < len(STAGES) else None


def previous_stage(stage: str) -> str | None:
    """The stage before ``stage`` (None at the start)."""
    index = STAGES.index(stage)
    return STAGES[index - 1] if index > 0 else None


# ---------------------------------------------------------------------------------------------
# Evidence: what the cut-over observed. Every field is plain data so it can go into the journal.


@dataclass(frozen=True)
class DoctorEvidence:
    """`hookshift doctor` on the config: the error-level findings (``file:line: message``)."""

    errors: tuple[str, ...] = ()
    warnings: int = 0


@dataclass(frozen=True)
class ProbeEvidence:
    """A probe (`cutover.probe`): did the marker land in the queue, and if not, why."""

    url: str
    landed: bool
    findings: tuple[str, ...] = ()  # "code: cause" lines, errors first


@dataclass(frozen=True)
class ParityEvidence:
    """A parity report (`hookshift verify parity`) over ``[window_start, window_end]``."""

    verdict: str  # "pass" | "fail"
    reason: str
    window_start: float  # epoch seconds
    window_end: float
    compared: int  # events compared (the app side's count in the window)
    missing_in_queue: int = 0
    mismatched: int = 0


@dataclass(frozen=True)
class DrainEvidence:
    """Mirror-period messages drained into an archive, or the consumer's dedup confirmed."""

    archived: int = 0
    left_in_queue: int | None = None  # ApproximateNumberOfMessages(+NotVisible) after the drain
    archive: str | None = None
    dedup_confirmed: bool = False


@dataclass(frozen=True)
class DrainSetup:
    """What the operator gave the drain, known before it runs: the archive the mirror-period
    messages go to and the queue they come from, or the consumer's deduplication confirmed.

    The drain runs only once every other gate passed (it deletes from the queue), so a drain
    gate without `DrainEvidence` says from this whether anything is missing on the operator's
    side, rather than asking for an ``--archive`` that was given.
    """

    archive: str | None = None
    queue: str | None = None
    dedup_confirmed: bool = False

    @property
    def missing(self) -> str | None:
        """What to pass before the drain can run (None: nothing)."""
        if self.dedup_confirmed or (self.archive and self.queue):
            return None
        if self.archive:
            return (
                f"pass --queue sqs:QUEUE_URL to drain it into {self.archive}, or --dedup-confirmed"
            )
        return NO_DRAIN


NO_DRAIN = "pass --archive PATH to drain the mirror-period messages, or --dedup-confirmed"


@dataclass(frozen=True)
class ProbeSetup:
    """What the operator gave a probe that could not run: its URL and the queue its marker
    lands in, so the gate asks only for what is missing, not for an option that was given."""

    url: str | None = None
    queue: str | None = None

    def missing(self, url_option: str) -> str:
        """What to pass before the probe can run, `url_option` naming its URL's option."""
        names = [name for name, value in ((url_option, self.url), ("--queue", self.queue))
                 if not value]  # fmt: skip
        return "pass " + " and ".join(names or [url_option, "--queue"])


@dataclass(frozen=True)
class SwitchEvidence:
    """After the vendor switch: callbacks without an nginx request id, and nginx's traffic.

    nginx's rate before is taken over the previous stage (mirror-domain), after over the time
    since the switch, so both are the same kind of figure however long each stage lasted.
    """

    direct_arrivals: int  # queue messages since the switch without ``nginx_request_id``
    nginx_before: int  # nginx requests for the path during the previous stage
    before_seconds: float
    nginx_after: int  # nginx requests since the switch
    after_seconds: float

    @property
    def rate_before(self) -> float:
        """Requests per minute before the switch."""
        return 60.0 * self.nginx_before / self.before_seconds if self.before_seconds > 0 else 0.0

    @property
    def rate_after(self) -> float:
        return 60.0 * self.nginx_after / self.after_seconds if self.after_seconds > 0 else 0.0


@dataclass(frozen=True)
class QuietEvidence:
    """Seconds since nginx last received a callback for the path (None: none since the switch)."""

    seconds_since_last: float | None
    seconds_in_stage: float


@dataclass(frozen=True)
class RetentionEvidence:
    """The SQS queue's MessageRetentionPeriod (None: SQS did not say), read before a mirror
    stage, and where it was read (for the exact command that fixes it)."""

    queue_url: str
    retention_s: int | None
    endpoint_url: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class HeartbeatEvidence:
    """The state of the `verify pull --follow` that keeps the archive: when it last received."""

    archive: str
    last_success: float | None  # epoch seconds (None: no receive has answered yet)
    started_at: float
    checked_at: float


@dataclass(frozen=True)
class Evidence:
    """Everything a gate may look at; a gate whose evidence is None fails with what to pass.

    Except ``retention`` and ``heartbeat``: their gates only exist when the settings name an SQS
    queue (an archive or file keeps everything) and a ``pull --follow`` keeps the archive.
    """

    doctor: DoctorEvidence | None = None
    stage_probe: ProbeEvidence | None = None
    domain_probe: ProbeEvidence | None = None
    parity: ParityEvidence | None = None
    drain: DrainEvidence | None = None
    switch: SwitchEvidence | None = None
    quiet: QuietEvidence | None = None
    retention: RetentionEvidence | None = None
    heartbeat: HeartbeatEvidence | None = None
    drain_setup: DrainSetup | None = None  # None: not known, so the drain gate asks for all
    probe_setup: ProbeSetup | None = None  # None: not known, so a probe gate asks for all

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Thresholds:
    """The operator's bar: parity window and events, and the quiet period before decommission."""

    min_window: float = 3600.0
    min_events: int = 100
    quiet_period: float = 86400.0


@dataclass(frozen=True)
class GateResult:
    """One gate: its name, whether it passed, and why (always said, pass or fail)."""

    gate: str
    passed: bool
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.gate, "passed": self.passed, "why": self.why}


@dataclass(frozen=True)
class TransitionCheck:
    """All gates of one transition; it may proceed only when every gate passed."""

    from_stage: str
    to_stage: str | None
    results: tuple[GateResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.to_stage is not None and all(r.passed for r in self.results)

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if not r.passed)


# ---------------------------------------------------------------------------------------------
# The gates.


def _missing(gate: str, what: str) -> GateResult:
    return GateResult(gate, False, f"no evidence: {what}")


def gate_doctor(doctor: DoctorEvidence | None) -> GateResult:
    if doctor is None:
        return _missing("doctor", "pass --config so `hookshift doctor` can check it")
    if doctor.errors:
        shown = "; ".join(doctor.errors[:3])
        more = f" (+{len(doctor.errors) - 3} more)" if len(doctor.errors) > 3 else ""
        return GateResult("doctor", False, f"{len(doctor.errors)} error(s): {shown}{more}")
    return GateResult("doctor", True, f"no errors ({doctor.warnings} warning(s))")


def gate_probe(
    gate: str, probe: ProbeEvidence | None, url_option: str, setup: ProbeSetup | None = None
) -> GateResult:
    """The probe's marker landed in the queue; without a probe, what to pass for one (all of
    it unless `setup` says what was given)."""
    if probe is None:
        return _missing(gate, (setup or ProbeSetup()).missing(url_option))
    if probe.landed:
        return GateResult(gate, True, f"probe through {probe.url} landed in the queue")
    cause = probe.findings[0] if probe.findings else "no finding recorded"
    return GateResult(gate, False, f"probe through {probe.url} did not land: {cause}")


def gate_parity(
    gate: str, parity: ParityEvidence | None, entered_at: float, thresholds: Thresholds
) -> tuple[GateResult, GateResult]:
    """The parity verdict, and the window it covered (long enough, enough events, this stage)."""
    if parity is None:
        miss = "pass --queue (and the parity log) so the parity report can run"
        return _missing(gate, miss), _missing(f"{gate}-window", miss)
    if parity.verdict == "pass":
        verdict = GateResult(gate, True, f"parity passed ({parity.compared} compared)")
    else:
        verdict = GateResult(
            gate,
            False,
            f"parity {parity.verdict}: {parity.reason} (missing_in_queue="
            f"{parity.missing_in_queue}, mismatched={parity.mismatched})",
        )
    length = parity.window_end - parity.window_start
    problems = []
    if parity.window_start + 1.0 < entered_at:
        problems.append("the window starts before this stage was entered")
    if length < thresholds.min_window:
        problems.append(f"window {_dur(length)} < --min-window {_dur(thresholds.min_window)}")
    if parity.compared < thresholds.min_events:
        problems.append(f"{parity.compared} events < --min-events {thresholds.min_events}")
    if problems:
        window = GateResult(f"{gate}-window", False, "; ".join(problems))
    else:
        window = GateResult(
            f"{gate}-window",
            True,
            f"window {_dur(length)} >= {_dur(thresholds.min_window)}, "
            f"{parity.compared} events >= {thresholds.min_events}",
        )
    return verdict, window


def gate_drain(
    drain: DrainEvidence | None,
    setup: DrainSetup | None = None,
    blocked_by: tuple[str, ...] = (),
) -> GateResult:
    """The mirror-period messages are out of the queue (or the consumer deduplicates them).

    Without `DrainEvidence` the drain did not run. When ``blocked_by`` (the gates before it)
    failed, that is the reason given, and an option is asked for only when `setup` shows it
    missing: an operator who gave ``--archive`` must not be told to pass it. Otherwise the
    drain could not run for what `setup` lacks (unknown: everything the drain can use).
    """
    if drain is None:
        if blocked_by:
            missing = setup.missing if setup is not None else None
            return GateResult(
                "drain",
                False,
                f"not checked: {', '.join(blocked_by)} failed (the queue is drained only once "
                f"every other gate passes)" + (f"; also {missing}" if missing else ""),
            )
        missing = setup.missing if setup is not None else NO_DRAIN
        return _missing("drain", missing or "the mirror-period messages were not drained")
    if drain.dedup_confirmed:
        return GateResult(
            "drain", True, "the consumer's deduplication was confirmed by the operator"
        )
    if drain.left_in_queue is None:
        return GateResult("drain", False, "the queue's depth after the drain is unknown")
    if drain.left_in_queue > 0:
        return GateResult(
            "drain",
            False,
            f"{drain.left_in_queue} message(s) still in the queue after draining "
            f"{drain.archived}: a consumer started now would process them a second time",
        )
    return GateResult(
        "drain",
        True,
        f"{drain.archived} mirror-period message(s) archived at {drain.archive}; queue empty",
    )


def gate_switch(switch: SwitchEvidence | None) -> tuple[GateResult, GateResult]:
    if switch is None:
        miss = "pass --queue and the parity log to see where callbacks arrive"
        return _missing("direct-arrivals", miss), _missing("nginx-falling", miss)
    if switch.direct_arrivals > 0:
        direct = GateResult(
            "direct-arrivals",
            True,
            f"{switch.direct_arrivals} callback(s) reached the queue without an nginx request id",
        )
    else:
        direct = GateResult(
            "direct-arrivals",
            False,
            "no callback reached the queue without an nginx request id: the vendor still "
            "calls nginx (is the new URL registered at the vendor?)",
        )
    rates = (
        f"{switch.nginx_before} in {_dur(switch.before_seconds)} "
        f"({switch.rate_before:.1f}/min) -> {switch.nginx_after} in "
        f"{_dur(switch.after_seconds)} ({switch.rate_after:.1f}/min)"
    )
    if switch.nginx_after == 0 or switch.rate_after < switch.rate_before:
        falling = GateResult("nginx-falling", True, f"nginx traffic for the path fell: {rates}")
    else:
        falling = GateResult(
            "nginx-falling", False, f"nginx traffic for the path did not fall: {rates}"
        )
    return direct, falling


def gate_quiet(quiet: QuietEvidence | None, thresholds: Thresholds) -> GateResult:
    if quiet is None:
        return _missing("quiet-period", "pass the parity log so nginx's last callback is known")
    need = thresholds.quiet_period
    if quiet.seconds_since_last is None:
        if quiet.seconds_in_stage >= need:
            return GateResult(
                "quiet-period", True, f"no callback at nginx in {_dur(quiet.seconds_in_stage)}"
            )
        return GateResult(
            "quiet-period",
            False,
            f"only {_dur(quiet.seconds_in_stage)} since the switch, --quiet-period {_dur(need)}",
        )
    if quiet.seconds_since_last >= need:
        return GateResult(
            "quiet-period",
            True,
            f"last callback at nginx {_dur(quiet.seconds_since_last)} ago >= {_dur(need)}",
        )
    return GateResult(
        "quiet-period",
        False,
        f"last callback at nginx {_dur(quiet.seconds_since_last)} ago < --quiet-period "
        f"{_dur(need)}",
    )


def gate_retention(
    retention: RetentionEvidence, thresholds: Thresholds, margin_s: int = DEFAULT_MARGIN_S
) -> GateResult:
    """The queue keeps messages longer than the parity window plus a margin to notice a pull
    that stopped: else SQS deletes mirrored callbacks nobody read, and parity blames the mirror.
    """
    window_s = math.ceil(thresholds.min_window)
    finding = check_retention(retention.retention_s, window_s, margin_s, queue=retention.queue_url)
    if finding is None:
        assert retention.retention_s is not None
        return GateResult(
            "queue-retention",
            True,
            f"the queue keeps messages {human(retention.retention_s)} >= window "
            f"{human(window_s)} + {human(margin_s)} of margin",
        )
    if not finding.blocking:  # unknown (no sqs:GetQueueAttributes): said, not refused
        return GateResult("queue-retention", True, finding.line())
    if window_s + margin_s > SQS_MAX_RETENTION_S:
        fix = (
            f"lower --min-window to {human(SQS_MAX_RETENTION_S - margin_s)} at most: SQS keeps "
            f"messages {human(SQS_MAX_RETENTION_S)} at most"
        )
    else:
        where = "".join(
            f" --{name} {value}"
            for name, value in (
                ("endpoint-url", retention.endpoint_url),
                ("region", retention.region),
            )
            if value
        )
        fix = (
            f"`aws sqs set-queue-attributes --queue-url {retention.queue_url}{where} "
            f"--attributes MessageRetentionPeriod={SQS_MAX_RETENTION_S}`"
        )
    return GateResult("queue-retention", False, f"{finding.what} (fix: {fix})")


def gate_heartbeat(heartbeat: HeartbeatEvidence, stale_s: int = DEFAULT_STALE_S) -> GateResult:
    """The `pull --follow` that keeps the archive still receives: a silent one leaves the
    mirror-period messages to the queue's retention."""
    finding = check_heartbeat(
        heartbeat.last_success, heartbeat.checked_at, stale_s, started_at=heartbeat.started_at
    )
    if finding is not None:
        return GateResult(
            "pull-heartbeat", False, f"{finding.line()}; it keeps {heartbeat.archive}"
        )
    since = heartbeat.last_success if heartbeat.last_success is not None else heartbeat.started_at
    return GateResult(
        "pull-heartbeat",
        True,
        f"the pull --follow into {heartbeat.archive} answered {_dur(heartbeat.checked_at - since)}"
        f" ago (<= {human(stale_s)})",
    )


def _mirror_safety(evidence: Evidence, thresholds: Thresholds) -> list[GateResult]:
    """The gates before a mirror stage that only exist when their evidence does."""
    results = []
    if evidence.retention is not None:
        results.append(gate_retention(evidence.retention, thresholds))
    if evidence.heartbeat is not None:
        results.append(gate_heartbeat(evidence.heartbeat))
    return results


def check_transition(
    stage: str, evidence: Evidence, *, entered_at: float, thresholds: Thresholds
) -> TransitionCheck:
    """Every gate between ``stage`` and the next one, over ``evidence``.

    ``entered_at`` is when the current stage was entered (epoch seconds): parity evidence must
    come from this stage, not the one before.
    """
    if stage not in STAGES:
        raise InputError(f"unknown stage {stage!r}", fix=f"one of {', '.join(STAGES)}")
    target = next_stage(stage)
    results: list[GateResult]
    if target is None:
        results = [GateResult("final", False, "decommissioned is the last stage")]
    elif stage == "baseline":
        results = [
            gate_doctor(evidence.doctor),
            gate_probe("stage-probe", evidence.stage_probe, "--stage-url", evidence.probe_setup),
            *_mirror_safety(evidence, thresholds),
        ]
    elif stage == "mirror-stage":
        results = [
            *gate_parity("parity-stage", evidence.parity, entered_at, thresholds),
            gate_probe("domain-probe", evidence.domain_probe, "--domain-url", evidence.probe_setup),
            *_mirror_safety(evidence, thresholds),
        ]
    elif stage == "mirror-domain":
        parity = gate_parity("parity-domain", evidence.parity, entered_at, thresholds)
        blocked = tuple(r.gate for r in parity if not r.passed)
        results = [*parity, gate_drain(evidence.drain, evidence.drain_setup, blocked)]
    else:  # vendor-switched
        results = [*gate_switch(evidence.switch), gate_quiet(evidence.quiet, thresholds)]
    return TransitionCheck(stage, target, tuple(results))


def gate_names(stage: str, *, sqs_queue: bool) -> tuple[str, ...]:
    """The gates out of ``stage`` by the names an advance reports them under (none out of the
    last stage). ``sqs_queue``: the settings name an SQS queue, whose retention is a gate
    before each mirror stage; the heartbeat gate of a ``pull --follow`` is left out, as it
    exists only once one runs."""
    if next_stage(stage) is None:
        return ()
    check = check_transition(stage, Evidence(), entered_at=0.0, thresholds=Thresholds())
    names = tuple(result.gate for result in check.results)
    if sqs_queue and "retention" in needed_evidence(stage):
        names += ("queue-retention",)
    return names


def needed_evidence(stage: str) -> tuple[str, ...]:
    """The evidence fields the gate out of ``stage`` reads (so only those are gathered).

    ``retention`` stands for the queue's retention and the follow's heartbeat, read together.
    """
    return {
        "baseline": ("doctor", "stage_probe", "retention"),
        "mirror-stage": ("parity", "domain_probe", "retention"),
        "mirror-domain": ("parity", "drain"),
        "vendor-switched": ("switch", "quiet"),
    }.get(stage, ())


def nginx_counts(
    times: list[float], previous_at: float, switch_at: float, now: float
) -> tuple[int, float, int, float]:
    """nginx requests in ``[previous_at, switch_at)`` and ``[switch_at, now]``, with durations."""
    before = sum(1 for t in times if previous_at <= t < switch_at)
    after = sum(1 for t in times if switch_at <= t <= now)
    return before, switch_at - previous_at, after, max(now - switch_at, 0.0)


def quiet_since(times: list[float], switch_at: float, now: float) -> QuietEvidence:
    """Quiet evidence from nginx request times (only those after the switch count)."""
    after = [t for t in times if t >= switch_at]
    return QuietEvidence(
        seconds_since_last=(now - max(after)) if after else None,
        seconds_in_stage=now - switch_at,
    )


def _dur(seconds: float) -> str:
    """``90`` -> ``1m30s``; short and exact enough for a gate's reason."""
    total = round(seconds)
    if total < 60:
        return f"{seconds:.0f}s" if seconds >= 1 or seconds == 0 else f"{seconds:.1f}s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts)


def evidence_from_json(data: Mapping[str, Any]) -> Evidence:
    """The inverse of `Evidence.to_json` (journal read-back)."""
    kinds: dict[str, Any] = {
        "doctor": DoctorEvidence,
        "stage_probe": ProbeEvidence,
        "domain_probe": ProbeEvidence,
        "parity": ParityEvidence,
        "drain": DrainEvidence,
        "switch": SwitchEvidence,
        "quiet": QuietEvidence,
        "retention": RetentionEvidence,
        "heartbeat": HeartbeatEvidence,
        "drain_setup": DrainSetup,
        "probe_setup": ProbeSetup,
    }
    values: dict[str, Any] = {}
    for name, kind in kinds.items():
        raw = data.get(name)
        if isinstance(raw, dict):
            fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
            values[name] = kind(**fixed)
    return Evidence(**values)
