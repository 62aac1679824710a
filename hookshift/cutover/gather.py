"""Gathering the evidence the gate out of the current stage reads, in the order that keeps it
honest: the queue's settings first (a read), parity next (it archives the queue, and a probe's
receive would hide messages from it), the probes, and the drain last (it deletes from the queue,
so it runs only once every other gate passes).

Each observation is one call into `cutover.evidence`; this module decides which ones a stage
needs and puts them together into `stages.Evidence` for the pure gates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hookshift.cutover import evidence as ev
from hookshift.cutover import journal, stages
from hookshift.cutover.settings import Settings


def _quiet(text: str) -> None:
    return None


def gather(
    current: journal.Journal,
    settings: Settings,
    *,
    dedup_confirmed: bool,
    progress: Callable[[str], None] = _quiet,
) -> tuple[stages.Evidence, dict[str, Any]]:
    """The evidence of the gate out of the current stage, and detail for the report (the
    probes' full diagnosis). ``progress`` hears of each step that may take long (a probe waits
    for its marker, the parity report and the drain pull the queue), before it starts: an
    advance may otherwise sit silent for minutes."""
    stage = current.stage
    entered = current.entered(stage)
    entered_at = entered.timestamp if entered else time.time()
    now = time.time()
    found: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    needs = stages.needed_evidence(stage)
    if "retention" in needs:
        found["retention"] = retention(settings)
        found["heartbeat"] = heartbeat(settings, now)
    if "parity" in needs and settings.parity_log and settings.queue:
        progress(f"parity: comparing nginx's parity log with {settings.queue} ...")
        found["parity"] = ev.parity(settings, entered_at, now)
    if "doctor" in needs and settings.config:
        found["doctor"] = ev.doctor(settings)
    for name, url_setting in (("stage_probe", "stage_url"), ("domain_probe", "domain_url")):
        if name not in needs:
            continue
        url = getattr(settings, url_setting)
        if url and settings.queue:
            target = settings.callback_url(url)
            progress(f"probe: posting a marker to {target} and looking for it in the queue ...")
            found[name], diagnosis = ev.probe(settings, url_setting)
            detail[name] = diagnosis.to_json()
        else:  # the gate asks for what is missing of the two
            found["probe_setup"] = stages.ProbeSetup(url, settings.queue)
    if "drain" in needs:
        # the gate reads it when the drain does not run: what the operator has yet to pass
        setup = stages.DrainSetup(settings.archive, settings.queue, dedup_confirmed)
        found["drain_setup"] = setup
        if setup.missing is None:
            pre = stages.check_transition(
                stage,
                stages.Evidence(**found),
                entered_at=entered_at,
                thresholds=settings.thresholds,
            )
            if all(r.passed for r in pre.results if r.gate != "drain"):
                found["drain"] = ev.drain(settings, dedup_confirmed, progress)
    if "switch" in needs and settings.queue and (settings.nginx_log or settings.parity_log):
        previous = stages.previous_stage(stage)
        before = current.entered(previous) if previous else None
        previous_at = before.timestamp if before else entered_at
        found["switch"], found["quiet"] = ev.switch_and_quiet(
            settings, previous_at, entered_at, now
        )
    return stages.Evidence(**found), detail


def retention(settings: Settings) -> stages.RetentionEvidence | None:
    """The SQS queue's MessageRetentionPeriod (None when the settings name no SQS queue: an
    archive or a file forgets nothing)."""
    if not settings.queue:
        return None
    spec = ev.queue_spec(settings)
    if spec.kind != "sqs":
        return None
    from hookshift.cutover.probe import sqs_client
    from hookshift.verify.retention import queue_retention_s

    return stages.RetentionEvidence(
        queue_url=spec.target,
        retention_s=queue_retention_s(sqs_client(spec), spec.target),
        endpoint_url=settings.endpoint_url,
        region=settings.region,
    )


def heartbeat(settings: Settings, now: float) -> stages.HeartbeatEvidence | None:
    """The heartbeat of the `verify pull --follow` that keeps the archive (None when no follow
    ever kept it: the cut-over then pulls into the archive itself)."""
    if not settings.archive:
        return None
    from hookshift.verify.follow import read_state, state_path

    state = read_state(state_path(Path(settings.archive), None))
    if state is None:
        return None
    return stages.HeartbeatEvidence(
        archive=settings.archive,
        last_success=state.last_success,
        started_at=state.started_at,
        checked_at=now,
    )
