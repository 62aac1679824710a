"""Gathering the evidence a gate needs: doctor, probes, parity, the drain, nginx's traffic.

The imperative shell around `cutover.stages`: each function observes one thing (running the
doctor, a probe, verify's pull and parity, or reading logs and the queue) and returns the
frozen evidence dataclass the pure gate reads. Other parts are called in this process through
their Python APIs (`hookshift.doctor`, `hookshift.verify`: the parity report's JSON form is
what the gate reads) and the parity log's format (docs/contracts.md section 1).
"""

from __future__ import annotations

import glob
import gzip
import json
import math
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from hookshift.cutover.diagnosis import Diagnosis, diagnose
from hookshift.cutover.probe import QueueSpec, run_probe
from hookshift.cutover.settings import Settings
from hookshift.cutover.stages import (
    DoctorEvidence,
    DrainEvidence,
    ParityEvidence,
    ProbeEvidence,
    QuietEvidence,
    SwitchEvidence,
    nginx_counts,
    quiet_since,
)
from hookshift.errors import HookshiftError, InputError, OperationError

NGINX_REQUEST_ID = "nginx_request_id"


def doctor(settings: Settings) -> DoctorEvidence:
    from hookshift.doctor import Severity, diagnose_file

    findings = diagnose_file(settings.need("config", "for the doctor gate"))
    errors = tuple(f"{f.where}: {f.message}" for f in findings if f.severity >= Severity.ERROR)
    warnings = sum(1 for f in findings if f.severity == Severity.WARNING)
    return DoctorEvidence(errors, warnings)


def queue_spec(settings: Settings) -> QueueSpec:
    return QueueSpec.parse(
        settings.need("queue", "to look for messages"),
        endpoint_url=settings.endpoint_url,
        region=settings.region,
    )


def probe(settings: Settings, base: str) -> tuple[ProbeEvidence, Diagnosis]:
    """Probe the callback URL under ``settings.<base>`` and find the marker in the queue."""
    url = settings.callback_url(settings.need(base, "for the probe"))
    assert url is not None
    observation = run_probe(
        url,
        queue=queue_spec(settings),
        resolver=settings.resolvers[0] if settings.resolvers else None,
        ca_file=settings.ca_file,
        timeout=settings.probe_timeout,
        expect_target=settings.domain_target if base == "domain_url" else None,
        execution_log=settings.execution_log,
    )
    result = diagnose(observation)
    evidence = ProbeEvidence(
        url=url,
        landed=result.landed is True and result.ok,
        findings=tuple(f.line() for f in result.findings),
    )
    return evidence, result


def _pull_into_archive(settings: Settings, spec: QueueSpec, archive: str) -> None:
    """verify's pull with delete: archived (fsync) before deleted, keyed on MessageId."""
    from hookshift.verify import PullOptions, pull

    options = PullOptions(
        endpoint_url=settings.endpoint_url, region=settings.region, delete=True, wait_time_s=1
    )
    try:
        pull(spec.target, Path(archive), options)
    except HookshiftError as exc:
        raise OperationError(f"verify pull failed: {exc.line()}") from None


def parity(settings: Settings, since: float, until: float) -> ParityEvidence:
    """``hookshift verify parity`` over ``[since, until]`` (the time in the current stage).

    With an archive (``--archive``) and a live queue, the mirror-period messages are first moved
    into the archive and the report reads it: during the mirror stages the queue holds only
    copies of callbacks the app already processed, so archiving them early is the drain done in
    steps, and a report never hides messages behind the visibility timeout.
    """
    watched = watched_parity(settings, since, time.time())
    if watched is not None:
        return watched
    log = settings.need("parity_log", "for the parity report (nginx's parity log)")
    queue = settings.need("queue", "for the parity report")
    spec = queue_spec(settings)
    with tempfile.TemporaryDirectory(prefix="hookshift-cutover-") as tmp:
        if settings.archive and spec.kind == "sqs" and not _followed(settings.archive):
            _pull_into_archive(settings, spec, settings.archive)
            queue = f"archive:{settings.archive}"
            if not any(Path(settings.archive).rglob("*.jsonl")):
                empty = Path(tmp) / "no-messages-yet.jsonl"  # nothing arrived: still a report
                empty.write_text("", encoding="utf-8")
                queue = f"jsonl:{empty}"
        return _parity_report(settings, log, queue, since, until)


WATCH_MAX_AGE_S = 600.0  # a watcher updates every 30 s by default: ten minutes is a stopped one
FOLLOW_MAX_AGE_S = 600.0


def watched_parity(settings: Settings, since: float, now: float) -> ParityEvidence | None:
    """The parity of a running `verify watch` (``--watch-state``), when it is fresh and its
    window starts in this stage (a window from before would mix in another stage's traffic);
    else None and the gate runs its own report. The reason names the window it used."""
    if not settings.watch_state:
        return None
    from hookshift.verify.watch import gate_reading, read_state

    state = read_state(Path(settings.watch_state))
    if state is None:
        return None
    usable, text = gate_reading(state, now, WATCH_MAX_AGE_S)
    start = _epoch(state.window.get("since"))
    if not usable or start is None or start + 1.0 < since:
        return None
    end = _epoch(state.window.get("end")) or state.updated_at
    counts = state.counts
    return ParityEvidence(
        verdict=state.verdict,
        reason=f"{state.reason}; {text}",
        window_start=start,
        window_end=end,
        compared=max(int(counts.get("compared", 0)), 0),
        missing_in_queue=int(counts.get("missing_in_queue", 0)),
        mismatched=int(counts.get("mismatched", 0)),
    )


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _followed(archive: str) -> bool:
    """True when `verify pull --follow` keeps this archive current (its state is fresh): the
    gate reads the archive as it is instead of pulling into it (one writer per archive)."""
    from hookshift.verify.follow import read_state, state_path

    state = read_state(state_path(Path(archive), None))
    return state is not None and time.time() - state.updated_at < FOLLOW_MAX_AGE_S


def _parity_report(
    settings: Settings, log: str, queue: str, since: float, until: float
) -> ParityEvidence:
    from hookshift.verify import ParityOptions
    from hookshift.verify import parity as parity_report

    options = ParityOptions(
        since_ms=math.floor(since * 1000),
        until_ms=math.floor(until * 1000),
        min_events=settings.min_events,
        endpoint_url=settings.endpoint_url,
        region=settings.region,
    )
    if settings.parity_grace is not None:
        options = replace(options, grace_s=settings.parity_grace)
    try:
        report = parity_report(f"nginx:{log}", queue, options)
    except HookshiftError as exc:
        raise OperationError(f"verify parity failed: {exc.line()}") from None
    return parity_evidence(report.to_dict(), since, until)


def parity_evidence(report: dict[str, Any], since: float, until: float) -> ParityEvidence:
    """The gate's view of a parity report (verify's JSON: verdict, reason, counts)."""
    counts = report.get("counts", {})
    if "compared" in counts:  # verify's own figure: the callbacks its verdict rests on
        compared = int(counts["compared"])
    else:
        compared = int(counts.get("app", 0)) - int(counts.get("in_flight", 0))
    return ParityEvidence(
        verdict=str(report.get("verdict", "fail")),
        reason=str(report.get("reason", "")),
        window_start=since,
        window_end=until,
        compared=max(compared, 0),
        missing_in_queue=int(counts.get("missing_in_queue", 0)),
        mismatched=int(counts.get("mismatched", 0)),
    )


def _archive_ids(archive: Path) -> set[str]:
    from hookshift.verify.archive import iter_archive

    messages = iter_archive(archive) if archive.is_dir() else iter(())
    return {str(m["MessageId"]) for m in messages if "MessageId" in m}


def _depth(client: Any, queue_url: str) -> int:
    """Visible + in-flight messages."""
    attrs = client.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
        attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
    )


def drain(
    settings: Settings, dedup_confirmed: bool, progress: Callable[[str], None] | None = None
) -> DrainEvidence:
    """Move the mirror-period messages into the archive (``verify pull --delete``);
    ``progress`` hears that it started, and when it waits for messages in flight."""
    if dedup_confirmed:
        return DrainEvidence(dedup_confirmed=True)
    archive = settings.need("archive", "to drain the mirror-period messages (or --dedup-confirmed)")
    spec = queue_spec(settings)
    if spec.kind != "sqs":
        raise InputError(
            f"the drain needs a live queue, not {spec.kind}:",
            fix="pass --queue sqs:QUEUE_URL, or --dedup-confirmed",
        )
    from hookshift.cutover.probe import sqs_client

    client = sqs_client(spec)
    # messages in flight (another reader's, or still being sent) come back after the queue's
    # visibility timeout: the drain waits for them rather than leave them for the consumer
    attrs = client.get_queue_attributes(QueueUrl=spec.target, AttributeNames=["VisibilityTimeout"])[
        "Attributes"
    ]
    wait_s = float(attrs.get("VisibilityTimeout", 30)) + 5.0
    deadline = time.monotonic() + wait_s
    say = progress or (lambda text: None)
    say(f"drain: moving the queue's messages into {archive} ...")
    waiting = False
    while True:
        _pull_into_archive(settings, spec, archive)
        left = _depth(client, spec.target)
        if left == 0 or time.monotonic() > deadline:
            break
        if not waiting:
            waiting = True
            say(
                f"drain: {left} message(s) still in the queue (in flight at another reader, "
                f"or just sent): waiting up to {wait_s:.0f} s (the queue's visibility timeout) "
                "for them ..."
            )
        time.sleep(1.0)
    return DrainEvidence(
        archived=len(_archive_ids(Path(archive))), left_in_queue=left, archive=archive
    )


# --- nginx's traffic ------------------------------------------------------------------------

_TIME_LOCAL = re.compile(r"\[(\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\]")


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def nginx_times(pattern: str) -> list[float]:
    """Request end times from the parity log (``msec``) or a combined-format access log."""
    times: list[float] = []
    for name in sorted(glob.glob(pattern)):
        with _open(Path(name)) as handle:
            for line in handle:
                times.extend(_line_time(line))
    return times


def _line_time(line: str) -> Iterator[float]:
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            return
        if isinstance(data, dict) and "msec" in data:
            try:
                yield float(data["msec"])
            except (TypeError, ValueError):
                return
        return
    match = _TIME_LOCAL.search(line)
    if match:
        yield datetime.strptime(match.group(1), "%d/%b/%Y:%H:%M:%S %z").timestamp()


def _queue_messages(settings: Settings, rounds: int = 5) -> list[dict[str, Any]]:
    """Messages to classify: a non-destructive peek at a live queue, or the files given."""
    spec = queue_spec(settings)
    if spec.kind in ("archive", "jsonl"):
        from hookshift.cutover.probe import messages_in_files

        root = Path(spec.target)
        paths = sorted(root.rglob("*.jsonl")) if root.is_dir() else [root]
        return list(messages_in_files(paths))
    from hookshift.cutover.probe import sqs_client

    client = sqs_client(spec)
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        reply = client.receive_message(
            QueueUrl=spec.target, MaxNumberOfMessages=10, VisibilityTimeout=0,
            WaitTimeSeconds=0, AttributeNames=["SentTimestamp"], MessageAttributeNames=["All"],
        )  # fmt: skip
        for message in reply.get("Messages", []):
            seen.setdefault(str(message["MessageId"]), message)
        if not reply.get("Messages"):
            break
    return list(seen.values())


def direct_arrivals(messages: list[dict[str, Any]], since: float) -> int:
    """Messages sent at or after ``since`` that carry no nginx request id (from the vendor)."""
    count = 0
    for message in messages:
        sent_ms = message.get("Attributes", {}).get("SentTimestamp")
        try:
            sent = float(sent_ms) / 1000.0
        except (TypeError, ValueError):
            continue
        attributes = message.get("MessageAttributes") or {}
        if sent >= since and NGINX_REQUEST_ID not in attributes:
            count += 1
    return count


def switch_and_quiet(
    settings: Settings, previous_at: float, switched_at: float, now: float | None = None
) -> tuple[SwitchEvidence, QuietEvidence]:
    """Where callbacks arrive since the switch, and nginx's traffic before and after it."""
    now = time.time() if now is None else now
    log = settings.nginx_log or settings.need("parity_log", "to count nginx's callbacks")
    times = nginx_times(log)
    before, before_s, after, after_s = nginx_counts(times, previous_at, switched_at, now)
    arrivals = direct_arrivals(_queue_messages(settings), switched_at)
    return (
        SwitchEvidence(arrivals, before, before_s, after, after_s),
        quiet_since(times, switched_at, now),
    )
