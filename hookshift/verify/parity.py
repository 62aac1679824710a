"""Parity: does the queue hold every callback nginx passed to the app, with the same body?

One DuckDB scan of each side turns every record into a narrow row (key hash, body hash, time,
class) and tallies them per key (verify/tally.py), with ``memory_limit`` and a spill directory
so that inputs larger than RAM are fine. Keys that are one accepted app record and one message
with the same bytes are only counted; the others (usually a handful) are classified one by one,
and the records that a report shows or that must be compared canonically (raw bodies differ)
are fetched by key hash (verify/fetch.py), by seeking instead of reading the inputs again.

The classes: matched, missing_in_queue, missing_in_app, duplicates_app,
duplicates_queue, mismatched, in_flight, not_mirrored, plus app_rejected (the app answered
non-2xx: not a callback the app accepted), replayed (in the queue only through a ``hookshift
verify heal`` replay), body_not_logged (the parity log has an empty body because nginx kept the
body in a temporary file: nothing to compare, not a failure), unkeyed and malformed. Counts of
classes are per key (one callback and its retries count once); duplicates count the extra
copies.

A record without the key's fields (a second shape of callback the vendor posts) is matched by
nginx's request id instead, which the parity log and the mirror's copy both carry
(keys.KeySpec.fallback_sql), and classified like any other: counted as by_request_id. One with
neither is unkeyed: nothing can pair it, so an accepted one fails the verdict (unkeyed_accepted)
rather than pass unseen; and a key no record has at all is bad input, not a verdict.

The mirror copies every callback nginx passes to the app, whatever the app answers: its
subrequest starts before the content phase that proxies to the app. So a key the app only
rejected (non-2xx, or not reachable while it deploys) and that the queue lacks is
missing_in_queue too (``missing_in_queue_rejected`` counts those): its copy is one the mirror
lost, and ``verify heal`` re-sends it. With a copy in the queue it is missing_in_app: the app
lost it, the queue has it.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hookshift.addresses import is_http_url
from hookshift.errors import InputError
from hookshift.verify.archive import archive_drained_at, archive_queue_url
from hookshift.verify.canonical import same_body
from hookshift.verify.fetch import Hint, Side, fetch
from hookshift.verify.keys import BY_REQUEST_ID, PROFILES, KeySpec, parse_key, resolve_key
from hookshift.verify.pull import NetworkLimits
from hookshift.verify.redact import field_is_phone, mask, redact_body, redact_text
from hookshift.verify.sources import (
    SHAPES,
    AppFields,
    SourceSpec,
    app_rows_sql,
    carries_request_ids,
    check_some_record,
    csv_columns,
    first_bodies,
    is_messages_document,
    leave_out_copies,
    live_files,
    locate_malformed,
    messages_documents_to_jsonl,
    parse_source,
    queue_rows_sql,
    repair_undecodable,
    resolve_files,
    sql_str,
    unfinished_last_line,
    unreadable_as_input_error,
)
from hookshift.verify.tally import (
    APP_BAD,
    BUCKET_MS,
    BY_REQUEST_ID_BIT,
    FILES_MAX,
    HK,
    QUEUE_BAD,
    Bulk,
    C,
    Spread,
    Strays,
    create_detail,
    create_rows,
    hints,
    null_counts,
    side_rows,
    spread,
    tally,
)

CLASSES = (
    "matched",
    "missing_in_queue",
    "missing_in_app",
    "duplicates_app",
    "duplicates_queue",
    "mismatched",
    "body_not_logged",
    "in_flight",
    "not_mirrored",
    "app_rejected",
    "replayed",
)
COUNT_KEYS = (
    "app",
    "queue",
    "compared",
    *CLASSES,
    "missing_in_queue_rejected",  # of missing_in_queue, the keys the app only rejected
    "unkeyed_app",
    "unkeyed_queue",
    "unkeyed_accepted",  # of unkeyed_app, the accepted records: not compared, not a pass
    "by_request_id_app",  # records without the key, matched by nginx's request id instead
    "by_request_id_queue",
    "malformed",
)
# a median lag beyond this (either sign) is no network's: the clocks disagree
SKEW_MS = 60_000
# what a long run is doing, in order: `run_parity` names each phase as it starts (the CLI draws
# them as a bar on a terminal)
PHASES = ("reading both inputs", "pairing keys", "classifying", "fetching samples")
# nginx logs $request_body only while the body is in memory; a body larger than
# client_body_buffer_size goes to a temp file and the log gets an empty string
BODY_NOT_LOGGED_ADVICE = (
    "{n} callback(s) have no body in the parity log: nginx kept those bodies in a temporary "
    "file, where $request_body cannot log them. Set client_body_buffer_size in the callback's "
    "location above the largest callback (e.g. `client_body_buffer_size 64k;`, the mirror "
    "apply raises it) and reload nginx; they were not compared"
)
PYTHON_COMPARE_MAX = 20000
BODY_SAMPLE_CHARS = 600


@dataclass(frozen=True)
class ParityOptions:
    """Everything that shapes a parity run besides its two sources."""

    key: str | None = None
    profile: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    grace_s: float = 30.0
    min_events: int = 1
    samples: int = 5
    strict: bool = False
    redact: bool = True
    app_fields: AppFields = field(default_factory=AppFields)
    memory_limit: str = "1GB"
    threads: int | None = None
    temp_dir: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    malformed_examples: int = 5
    missing_keys_cap: int = 1_000_000
    sqs_wait_s: int = 5  # long poll of an sqs: source; it ends after one empty poll
    network: NetworkLimits = field(default_factory=NetworkLimits)  # each SQS call's bound
    stage_urls: tuple[str, ...] = ()  # where the mirror sends: the report names them for heal


@dataclass(frozen=True)
class ParityReport:
    """The verdict and the evidence; `to_dict()` is the JSON report (``--format json``)."""

    verdict: str  # "pass" | "fail"
    reason: str
    key: str
    window: dict[str, Any]
    counts: dict[str, int]
    lag_ms: dict[str, int | None]
    samples: dict[str, list[dict[str, Any]]]
    timeline: dict[str, Any]
    malformed_examples: list[str]
    sources: dict[str, str]
    missing_in_queue_keys: list[str]
    redacted: bool
    generated_at: str
    duration_s: float
    warnings: list[str] = field(default_factory=list)
    app_fields: dict[str, str] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)  # per phase, for the bench
    heal_targets: list[str] = field(default_factory=list)  # where `verify heal` may send

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "key": self.key,
            "window": self.window,
            "counts": self.counts,
            "lag_ms": self.lag_ms,
            "samples": self.samples,
            "timeline": self.timeline,
            "malformed_examples": self.malformed_examples,
            "sources": self.sources,
            "app_fields": self.app_fields,
            "missing_in_queue_keys": self.missing_in_queue_keys,
            "heal_targets": self.heal_targets,
            "redacted": self.redacted,
            "warnings": self.warnings,
            "generated_at": self.generated_at,
            "duration_s": self.duration_s,
            "timings_s": self.timings_s,
        }


# --------------------------------------------------------------------------- pure helpers

THREADS_MAX = 256  # DuckDB starts every thread it is given at once


def check_options(options: ParityOptions) -> None:
    """Refuse option values no run can use, before any input is read."""
    if not math.isfinite(options.grace_s) or options.grace_s < 0:
        raise InputError(
            f"not a number of seconds: {options.grace_s}",
            where="--grace",
            fix="give e.g. --grace 30",
        )
    if options.threads is not None and not 1 <= options.threads <= THREADS_MAX:
        raise InputError(
            f"{options.threads} threads: at most {THREADS_MAX} can be used",
            where="--threads",
            fix="leave it out to use every core",
        )
    for url in options.stage_urls:
        if not is_http_url(url):
            raise InputError(
                f"not a URL: {url!r}",
                where="--stage-url",
                fix="give the stage URL the mirror sends to, e.g. "
                "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
            )


def verdict_for(counts: dict[str, int], min_events: int) -> tuple[str, str]:
    """pass when nothing is missing in the queue, nothing mismatched, and enough compared."""
    problems = []
    missing, rejected = counts["missing_in_queue"], counts.get("missing_in_queue_rejected", 0)
    if missing and rejected:
        problems.append(
            f"{missing} callback(s) nginx passed to the app are missing in the queue"
            f" ({rejected} of them the app rejected)"
        )
    elif missing:
        problems.append(f"{missing} callback(s) the app accepted are missing in the queue")
    if counts["mismatched"]:
        problems.append(f"{counts['mismatched']} callback(s) reached the queue with another body")
    if counts.get("unkeyed_accepted"):
        problems.append(
            f"{counts['unkeyed_accepted']} record(s) the app accepted have neither the key nor a"
            " request id: they could not be compared"
        )
    if counts["compared"] < min_events:
        problems.append(
            f"only {counts['compared']} callback(s) compared, fewer than --min-events {min_events}"
        )
    if problems:
        return "fail", "; ".join(problems)
    notes = []
    if counts["in_flight"]:
        notes.append(f"{counts['in_flight']} still in flight")
    if counts.get("body_not_logged"):
        notes.append(f"{counts['body_not_logged']} with no body in the log, not compared")
    if counts.get("by_request_id_app"):
        notes.append(
            f"{counts['by_request_id_app']} app record(s) without the key matched by request id"
        )
    extra = f" ({'; '.join(notes)})" if notes else ""
    return "pass", f"all {counts['compared']} compared callback(s) reached the queue intact{extra}"


def parse_time(text: str, what: str) -> int:
    """``--since``/``--until``: ISO 8601 (UTC unless it says otherwise) or epoch seconds."""
    value = text.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        number = float(value)
        return _in_calendar(int(number if abs(number) >= 1e11 else number * 1000), text, what)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"cannot read time {text!r}",
            where=what,
            fix="use ISO 8601 (2026-11-28T09:15:00Z) or epoch seconds",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _in_calendar(int(parsed.timestamp() * 1000), text, what)


def _in_calendar(ms: int, text: str, what: str) -> int:
    """A time between 1970 and 9999: what a log or a queue can hold, and what reports show."""
    if not 0 <= ms <= TIME_MAX_MS:
        raise InputError(
            f"time {text!r} is outside 1970..9999",
            where=what,
            fix="use ISO 8601 (2026-11-28T09:15:00Z) or epoch seconds",
        )
    return ms


TIME_MAX_MS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- the run


@contextmanager
def _workdir(options: ParityOptions) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hookshift-parity-", dir=options.temp_dir) as tmp:
        yield Path(tmp)


def _connect(options: ParityOptions, tmp: Path) -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    try:
        con.execute(f"SET memory_limit = {sql_str(options.memory_limit)}")
    except duckdb.Error:
        con.close()
        raise InputError(
            f"cannot read memory limit {options.memory_limit!r}",
            where="--memory-limit",
            fix="write a size such as 1GB or 512MB",
        ) from None
    # a path is data, never SQL: quoted as a literal whatever it holds
    con.execute(f"SET temp_directory = {sql_str(str(tmp / 'spill'))}")
    # in order everywhere but the scan (verify/tally.py): samples and anchor probes come back
    # in the order of the lines they were read from
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"SET threads = {options.threads or os.cpu_count() or 2}")
    return con


def _queue_files(
    spec: SourceSpec, options: ParityOptions, tmp: Path
) -> tuple[list[Path], list[str]]:
    """Files holding one Message per line (live queues and CLI documents are converted), and
    the problems found while converting documents."""
    if spec.kind == "sqs":
        from hookshift.verify.pull import pull

        archive = tmp / "sqs-archive"
        pull(
            spec.target,
            archive,
            endpoint_url=options.endpoint_url,
            region=options.region,
            delete=False,
            wait_time_s=options.sqs_wait_s,
            limits=options.network,
        )
        if not any(archive.glob("*.jsonl")):
            (archive / "empty.jsonl").write_text("", encoding="utf-8")
        return sorted(archive.glob("*.jsonl")), []
    files = resolve_files(spec)
    if spec.kind != "jsonl":
        return files, []
    out: list[Path] = []
    problems: list[str] = []
    for index, path in enumerate(files):
        if is_messages_document(path):
            flat = tmp / f"messages-{index}.jsonl"
            with flat.open("w", encoding="utf-8") as fh:
                problems += messages_documents_to_jsonl(path, fh)
            out.append(flat)
        else:
            out.append(path)
    return out, problems


def _probe_key(
    con: Any,
    app: tuple[SourceSpec, list[Path]],
    queue: tuple[SourceSpec, list[Path]],
    fields: AppFields,
) -> tuple[KeySpec, list[str], list[str]]:
    """``request_id`` when both sides carry request ids, else ``sha256`` of the body; the
    sources whose first records carry none (what the report's note names); and the sources
    that hold no record at all, which say nothing about the key (an empty parity log is no
    log without request ids)."""
    sides = (("app", app, "app_rows"), ("queue", queue, "queue_rows"))
    have: list[bool | None] = []
    for side, (spec, files), view in sides:
        if spec.kind == "csv":  # ask DuckDB
            row = con.execute(
                f"SELECT count(*), count(rid) FROM (SELECT rid FROM {view} WHERE ok LIMIT 1000)"
            ).fetchone()
            have.append(None if not row or not row[0] else bool(row[1]))
        else:
            kind = spec.kind if side == "app" else "jsonl"
            have.append(carries_request_ids(side, kind, files, fields))
    labels = [spec.label for _, (spec, _), _ in sides]
    without = [label for label, ok in zip(labels, have, strict=True) if ok is False]
    empty = [label for label, ok in zip(labels, have, strict=True) if ok is None]
    return parse_key("sha256" if without else "request_id"), without, empty


def run_parity(
    app: str | SourceSpec,
    queue: str | SourceSpec,
    options: ParityOptions,
    progress: Callable[[str], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> ParityReport:
    """Compare an app-side source with a queue-side source; see the module docstring.

    `progress` is called with each of PHASES as it starts; `notice` with what a person
    watching the run should hear at once (a line left out because nginx is still writing it,
    records without the key, clocks that disagree), which the report also notes."""
    started = time.monotonic()
    app_spec = app if isinstance(app, SourceSpec) else parse_source(app, "app")
    queue_spec = queue if isinstance(queue, SourceSpec) else parse_source(queue, "queue")
    key = resolve_key(options.key, options.profile)
    check_options(options)
    if options.temp_dir is not None and not Path(options.temp_dir).is_dir():
        raise InputError(
            "not a directory",
            where=f"--temp-dir {options.temp_dir}",
            fix="give an existing directory with room for spilled data",
        )
    with unreadable_as_input_error(app_spec, queue_spec):
        return _run_parity(
            app_spec,
            queue_spec,
            key,
            options,
            started,
            (progress or (lambda phase: None), notice or (lambda text: None)),
        )


def _run_parity(
    app_spec: SourceSpec,
    queue_spec: SourceSpec,
    key: KeySpec | None,
    options: ParityOptions,
    started: float,
    callbacks: tuple[Callable[[str], None], Callable[[str], None]],
) -> ParityReport:
    with _workdir(options) as tmp:
        app_files = resolve_files(app_spec)
        if app_spec.kind == "csv":
            _check_csv_fields(app_spec, app_files, options.app_fields)
        queue_files, doc_problems = _queue_files(queue_spec, options, tmp)
        if max(len(app_files), len(queue_files)) >= FILES_MAX:
            raise InputError(
                f"{FILES_MAX} files or more on one side",
                fix="merge the files, or compare in several runs with --since/--until",
            )
        con = _connect(options, tmp)
        try:
            return _run(
                con,
                (app_spec, app_files),
                (queue_spec, queue_files, doc_problems),
                key,
                options,
                started,
                tmp,
                callbacks,
            )
        finally:
            con.close()


def _check_csv_fields(spec: SourceSpec, files: list[Path], fields: AppFields) -> None:
    columns = csv_columns(files)
    if fields.body not in columns:
        raise InputError(
            f"no column {fields.body!r} in the header ({', '.join(columns) or 'empty'})",
            where=f"{files[0]}:1",
            fix="name the body column with --app-body-field",
        )


def _run(
    con: Any,
    app: tuple[SourceSpec, list[Path]],
    queue: tuple[SourceSpec, list[Path], list[str]],
    key: KeySpec | None,
    options: ParityOptions,
    started: float,
    tmp: Path,
    callbacks: tuple[Callable[[str], None], Callable[[str], None]],
) -> ParityReport:
    progress, notice = callbacks
    app_spec, app_files = app
    queue_spec, queue_files, doc_problems = queue
    fields = options.app_fields
    warnings: list[str] = []
    # what the person running the check hears at once, said once the inputs are known to be
    # readable: a refusal is the one line they get
    heard: list[str] = []
    if app_spec.kind == "nginx":
        app_files, copies = leave_out_copies(app_files)
        warnings += copies
        heard += copies
    con.execute(f"CREATE TEMP VIEW app_rows AS {app_rows_sql(app_spec, app_files, fields)}")
    con.execute(f"CREATE TEMP VIEW queue_rows AS {queue_rows_sql(queue_files)}")
    if queue_spec.kind == "sqs":
        warnings.append(
            "the queue was read without deleting: every message received is hidden from its "
            "consumers for the visibility timeout; for repeated checks pull it into an archive "
            "(hookshift verify pull --delete) and use archive:DIR"
        )
    if key is None:
        key, without, empty = _probe_key(
            con, (app_spec, app_files), (queue_spec, queue_files), fields
        )
        if without:
            warnings.append(
                f"the first records of {' and of '.join(without)} carry no request id: matched"
                " on sha256 of the body, so a changed body shows as missing on both sides, not"
                " as mismatched"
            )
        for label in empty:
            warnings.append(f"{label} holds no record")
    key_sql = key.matching_sql("rid", "body")
    grace_ms = int(options.grace_s * 1000)
    since, until = options.since_ms, options.until_ms
    app_win, queue_win = side_windows("t_ms", since, until, grace_ms)
    progress(PHASES[0])
    mark = time.monotonic()
    repaired = _Repaired(app_spec, app_files, fields, tmp)
    app_rows = create_rows(
        con,
        key.sql("rid", "body"),
        app_win,
        queue_win,
        "app_rows",
        "queue_rows",
        fallback_sql=key.fallback_sql("rid", "body"),
        more_app=lambda: repaired.rows_sql(con),
    )
    timings = {"scan": time.monotonic() - mark}
    progress(PHASES[1])
    mark = time.monotonic()
    bulk = tally(con)
    create_detail(con, bulk.rows)
    timings["tally"] = time.monotonic() - mark
    progress(PHASES[2])
    now_ms = int(time.time() * 1000)
    read_at = queue_read_at(queue_spec, now_ms)
    seen, end, counts, lag = classify_rows(con, bulk, since, until, grace_ms, read_at, now_ms)
    _check_key(con, key, options, counts, ((app_spec, app_files), (queue_spec, queue_files)))
    stale = stale_drain_warning(read_at, now_ms, counts["in_flight"])
    skewed = window_skew_warning(lag, grace_ms, since, until)
    for line in (
        key_warning(key, counts),
        clock_warning(lag),
        skewed,
        stray_warning(seen.strays),
        stale,
    ):
        if line:
            warnings.append(line)
            heard.append(line)
    timeline = _timeline(con, seen, bulk.rows)
    first_seen = seen.oldest
    sides = _Sides(
        key,
        _fetch_side(
            "app", key_sql, app_win, repaired.files, app_spec, fields, app_rows, repaired.origins
        ),
        _fetch_side("queue", key_sql, queue_win, queue_files, None, fields, app_rows),
        options,
        tmp,
    )
    picks = _pick(con, sides, app_win)
    progress(PHASES[3])
    mark = time.monotonic()
    samples, (mism_total, not_logged), missing_keys = _second_read(con, sides, picks)
    timings["fetch"] = time.monotonic() - mark
    counts["mismatched"] = mism_total
    # on both sides, but the app side logged no body: not compared, and not a failure
    counts["compared"] -= not_logged
    counts["body_not_logged"] = not_logged + counts.pop("unkeyed_app_unlogged")
    counts["matched"] = counts["compared"] - mism_total
    malformed_examples = _malformed(
        con, counts, (app_spec, app_files), queue_files, doc_problems, options, repaired.settle
    )
    malformed_examples, unfinished = _leave_out_unfinished(
        app_spec, app_files, counts, malformed_examples
    )
    malformed_examples, being_pulled = _leave_out_unpulled(
        queue_spec, queue_files, counts, malformed_examples
    )
    for line in (*unfinished.values(), *being_pulled.values()):
        warnings.append(line)
        heard.append(line)
    _check_readable(
        con,
        counts,
        (app_spec, app_files, frozenset(unfinished)),
        (queue_spec, queue_files, doc_problems, frozenset(being_pulled)),
        fields,
        app_rows,
    )
    if options.strict and counts["malformed"]:
        first = malformed_examples[0] if malformed_examples else "see the report"
        raise InputError(
            f"{counts['malformed']} malformed record(s), first: {first}",
            fix="fix or drop them, or run without --strict to count and skip them",
        )
    for line in heard:
        notice(line)
    if counts["missing_in_queue"] > len(missing_keys):
        warnings.append(
            f"missing_in_queue_keys lists the first {len(missing_keys)} of "
            f"{counts['missing_in_queue']}: heal in several rounds"
        )
    if counts["body_not_logged"]:
        warnings.append(BODY_NOT_LOGGED_ADVICE.format(n=counts["body_not_logged"]))
    verdict, reason = verdict_for(counts, options.min_events)
    if options.redact:
        shown_keys = [redact_key(key, k) for k in missing_keys]
        if shown_keys != missing_keys:
            warnings.append(
                "some keys hold a phone number: they are masked, heal cannot use them"
                " (rerun with --no-redact for heal)"
            )
        missing_keys = shown_keys
    return ParityReport(
        verdict=verdict,
        reason=reason,
        key=str(key),
        window={
            "since": iso(since),
            "until": iso(until),
            "end": iso(end),
            "grace_s": options.grace_s,
            "first_seen": iso(first_seen),
        },
        counts=counts,
        lag_ms=lag,
        samples=samples,
        timeline=timeline,
        malformed_examples=malformed_examples,
        sources={"app": app_spec.absolute_label, "queue": queue_spec.absolute_label},
        missing_in_queue_keys=missing_keys,
        heal_targets=heal_targets(queue_spec, options),
        redacted=options.redact,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=round(time.monotonic() - started, 3),
        timings_s={k: round(v, 3) for k, v in timings.items()},
        warnings=warnings,
        app_fields={
            "body": options.app_fields.body,
            "request_id": options.app_fields.request_id,
            "time": options.app_fields.time,
        },
    )


def heal_targets(queue: SourceSpec, options: ParityOptions) -> list[str]:
    """Where this run's callbacks go: the stage URLs the user named, and the queue (given as
    sqs:URL, or recorded in the archive by `verify pull`)."""
    targets = list(dict.fromkeys(options.stage_urls))
    if queue.kind == "sqs":
        targets.append(f"sqs:{queue.target}")
    elif queue.kind == "archive":
        url = archive_queue_url(Path(queue.target))
        if url is not None:
            targets.append(f"sqs:{url}")
    return targets


def queue_read_at(spec: SourceSpec, now_ms: int) -> int | None:
    """When the queue side was read (epoch ms): now for the queue itself, the last pull that
    found it empty for an archive; None when nothing says (a file of messages)."""
    if spec.kind == "sqs":
        return now_ms
    if spec.kind == "archive":
        return archive_drained_at(Path(spec.target))
    return None


def classify_rows(
    con: Any,
    bulk: Bulk,
    since: int | None,
    until: int | None,
    grace_ms: int,
    read_at: int | None = None,
    now_ms: int | None = None,
) -> tuple[Spread, int | None, dict[str, int], dict[str, int | None]]:
    """Classes and counts of the tallied rows (table record_rows, `tally` and `create_detail` done):
    view classified (a class per key of the detail), the spread, the window's end, the counts
    (before the canonical compare settles mismatched) and the lag. `verify watch` shares it.

    A callback is in flight when it came within the grace of the window's end: `until`, else
    when the queue was read (`read_at`), else the newest record (an accepted or a rejected app
    record, or a message: tally.SEEN). Not the newest record when the read time is known: after
    traffic stops, copies lost at the end would otherwise stay in flight however long ago they
    were lost. Nor one timed after `in_flight_latest` (`now_ms`: this run's clock)."""
    seen = on_bulk(spread(con, bulk.rows), grace_ms)
    end = until if until is not None else read_at if read_at is not None else seen.newest
    judged = flight_edge(end, read_at)
    latest = (
        None if judged is None or now_ms is None else in_flight_latest(judged, now_ms, grace_ms)
    )
    cls_sql = class_sql(judged, grace_ms, since, until, latest)
    con.execute(f"CREATE TEMP VIEW classified AS SELECT *, {cls_sql} AS cls FROM key_detail")
    counts, lag = class_counts(con, bulk, null_counts(con))
    return seen, end, counts, lag


# A message sent this far before the first app record or after the last (or the app records'
# own span, or the grace, when longer) is far from them: the mirror's copy is sent within
# seconds of the callback it copies
STRAY_FAR_MS = 10 * 60_000
# so few such messages beside the rest that they are strays (kept in the queue for a day, sent
# again by hand, a wrong clock), not a queue that covers more time than the log
STRAYS_FEW = 3
STRAYS_SHARE = 0.01


def on_bulk(seen: Spread, grace_ms: int) -> Spread:
    """`seen` with the newest and the oldest record of the bulk, and the strays named: a few
    mirror's copies sent far from the app's records would otherwise stretch the window (its
    end judges what is in flight) and the timeline's span (its bars become hours wide) to
    reach them. They are still compared by key; only their times are left out. A heal replay
    is never a stray: it is sent when heal runs, and says the queue was read after that.

    Decided per bucket of `seen.queue_spans` (a minute): parity and `verify watch` keep the
    same buckets, so they leave out the same messages."""
    app_oldest, app_newest, spans = seen.app_oldest, seen.app_newest, seen.queue_spans
    if app_oldest is None or app_newest is None or not spans:
        return seen
    far = max(STRAY_FAR_MS, grace_ms, app_newest - app_oldest)
    low, high = app_oldest - far, app_newest + far

    def stray(span: list[int]) -> bool:
        return span[2] < low or span[1] > high

    strays = [span for span in spans.values() if stray(span)]
    count = sum(span[0] for span in strays)
    total = sum(span[0] for span in spans.values())
    if not strays or count > max(STRAYS_FEW, total * STRAYS_SHARE):
        return seen
    kept = [span for span in spans.values() if not stray(span)]
    seen.newest = max([app_newest, *(span[2] for span in kept), *_known(seen.kept_newest)])
    seen.oldest = min([app_oldest, *(span[1] for span in kept), *_known(seen.kept_oldest)])
    seen.strays = Strays(
        count,
        max((app_oldest - span[1] for span in strays if span[2] < low), default=0),
        max((span[2] - app_newest for span in strays if span[1] > high), default=0),
    )
    return seen


def _known(value: int | None) -> list[int]:
    return [] if value is None else [value]


def stray_warning(strays: Strays | None) -> str | None:
    """The line that names the messages `on_bulk` leaves out of the window and the timeline."""
    if strays is None:
        return None
    where = [
        f"up to {_duration(ms)} {side}"
        for ms, side in (
            (strays.before_ms, "before the first app record"),
            (strays.after_ms, "after the last"),
        )
        if ms
    ]
    return (
        f"{strays.count:,} queue message(s) were sent far from the app's records"
        f" ({' and '.join(where)}): a SentTimestamp a mirror's copy does not have (a message"
        " kept or sent again long after, or a clock); the window and the timeline leave them"
        " out, and they are still matched by key"
    )


def side_windows(col: str, since: int | None, until: int | None, grace_ms: int) -> tuple[str, str]:
    """The app's and the queue's rows a window keeps (SQL conditions on `col`): a message may
    be sent up to the grace after the window's edges. Rows without a time are always kept."""
    return _window_sql(col, since, until), _window_sql(
        col,
        None if since is None else since - grace_ms,
        None if until is None else until + grace_ms,
    )


def _fetch_side(
    name: str,
    key_sql: str,
    window: str,
    files: list[Path],
    spec: SourceSpec | None,
    fields: AppFields,
    app_rows: int,
    origins: dict[str, str] | None = None,
) -> Side:
    """How verify/fetch.py finds records of one side: the scan's SQL over some files (with
    `origins`, the copies of lines repaired after the scan named as the files they came from)."""
    rows_sql: Callable[[list[Path]], str]
    if spec is not None:
        app_spec = spec

        def app_sql(some: list[Path]) -> str:
            return named_as(
                app_rows_sql(app_spec, some, fields, rejects="rej_fetch_app"), origins or {}
            )

        rows_sql = app_sql
        columns: tuple[str, ...] = ("src", "rid", "t_ms", "body", "cls")
        side, line_per_record = 0, spec.kind != "csv"
    else:
        rows_sql = queue_rows_sql
        columns = ("src", "rid", "t_ms", "body", "mid", "replay")
        side, line_per_record = 1, True
    where = f"ok AND ({window})"
    rows = side_rows(side, app_rows)
    return Side(name, files, rows_sql, key_sql, rows, where, columns, line_per_record)


def _window_sql(col: str, lo: int | None, hi: int | None) -> str:
    terms = [f"{col} IS NULL"]
    bounds = []
    if lo is not None:
        bounds.append(f"{col} >= {int(lo)}")
    if hi is not None:
        bounds.append(f"{col} < {int(hi)}")
    if not bounds:
        return "true"
    return f"({terms[0]} OR ({' AND '.join(bounds)}))"


# A key's time on the app side: its first accepted record's, else (a key the app only rejected)
# its first rejected record's. In flight is judged by it, and the timeline puts a loss there.
KEY_TIME = "(CASE WHEN an > 0 THEN ta ELSE tr END)"
# keys in the queue only through `verify heal` replays: matched ones, and ones the app only
# rejected (missing_in_app: the app lost them, a replay brought them to the queue)
REPLAYED = "(qrep = qn AND qrep > 0 AND (cls = 'both' OR (cls = 'mia' AND arej > 0)))"


def flight_edge(end: int | None, read_at: int | None) -> int | None:
    """What a callback's copy is judged in flight against: when the queue was read, when that
    is known (a copy of one logged well before then has arrived, whatever the window's end:
    an `--until` past it leaves the newer ones unjudged, not missing), else the window's end."""
    return read_at if read_at is not None else end


STALE_DRAIN_MS = 10 * 60_000


def stale_drain_warning(read_at: int | None, now_ms: int, in_flight: int) -> str | None:
    """A line when callbacks are left in flight because the queue was last found empty long
    ago (no `pull` since): they are not judged until it is pulled again."""
    if read_at is None or not in_flight or now_ms - read_at < STALE_DRAIN_MS:
        return None
    minutes = (now_ms - read_at) // 60_000
    return (
        f"the queue was last found empty {minutes} min ago: {in_flight:,} callback(s) logged "
        "since are in flight, not judged; pull the queue again (hookshift verify pull, or keep "
        "`pull --follow` running) to judge them"
    )


def in_flight_latest(end: int, now_ms: int, grace_ms: int) -> int:
    """The latest time a record in flight may have: now (the window's end if later), plus the
    grace. A record logged after the queue was last found empty may well still be on its way
    (a live mirror period); one logged later than now cannot be: it comes from a clock ahead
    of this host's, and is missing like any other (`clock_warning` says so)."""
    return max(end, now_ms) + grace_ms


def class_sql(
    end: int | None,
    grace_ms: int,
    since: int | None,
    until: int | None,
    latest: int | None = None,
) -> str:
    """One class per key: 'both', 'miq' (missing in queue), 'fly', 'mia', or 'none'.

    A key with an accepted record is judged by those. A key the app only rejected and the
    queue lacks is missing (or in flight) alike, by its rejected record's time: the mirror ran
    for it (module docstring). With a message it is the app's loss (mia), as a queue-only key.

    In flight is `end - grace < t`, and `t <= latest` when given (`in_flight_latest`)."""

    def flying(col: str) -> str:
        if end is None:
            return "false"
        upper = "" if latest is None else f" AND {col} <= {int(latest)}"
        return f"{col} IS NOT NULL AND {col} > {int(end) - grace_ms}{upper}"

    in_window = _window_sql("tq", since, until)
    return f"""CASE
        WHEN an > 0 AND qd > 0 THEN 'both'
        WHEN an > 0 AND ({flying("ta")}) THEN 'fly'
        WHEN an > 0 THEN 'miq'
        WHEN qd > 0 AND {in_window} THEN 'mia'
        WHEN arej > 0 AND qd = 0 AND ({flying("tr")}) THEN 'fly'
        WHEN arej > 0 AND qd = 0 THEN 'miq'
        ELSE 'none' END"""


def quantile_disc(hist: Counter[int], q: float) -> int | None:
    """DuckDB's quantile_disc over a histogram: the value at rank ceil(q * n) (nearest rank)."""
    n = sum(hist.values())
    if not n:
        return None
    rank = max(math.ceil(q * n), 1)
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= rank:
            return value
    return max(hist)


def class_counts(
    con: Any, bulk: Bulk, nulls: dict[str, int]
) -> tuple[dict[str, int], dict[str, int | None]]:
    """Counts per class: the perfect keys' bulk plus the detail of the others."""
    row = con.execute(f"""
        SELECT
            coalesce(sum(an), 0), coalesce(sum(qd), 0),
            count(*) FILTER (cls = 'both'),
            count(*) FILTER (cls = 'miq'),
            count(*) FILTER (cls = 'mia'),
            coalesce(sum(an - 1) FILTER (an > 1), 0),
            coalesce(sum(qd - 1) FILTER (qd > 1), 0),
            count(*) FILTER (cls = 'fly'),
            coalesce(sum(anm), 0),
            coalesce(sum(arej) FILTER (an = 0), 0),
            count(*) FILTER {REPLAYED},
            count(*) FILTER (cls = 'miq' AND an = 0)
        FROM classified
    """).fetchone()
    assert row is not None
    v = [int(x or 0) for x in row]
    p = bulk.keys
    counts = {
        "app": v[0] + p,
        "queue": v[1] + p,
        "compared": v[2] + p,
        "matched": v[2] + p,
        "missing_in_queue": v[3],
        "missing_in_queue_rejected": v[11],
        "missing_in_app": v[4],
        "duplicates_app": v[5],
        "duplicates_queue": v[6],
        "mismatched": 0,
        "body_not_logged": 0,
        "in_flight": v[7],
        "not_mirrored": v[8],
        "app_rejected": v[9],
        "replayed": v[10],
        "unkeyed_app": nulls["unkeyed_app"],
        "unkeyed_app_unlogged": nulls["unkeyed_app_unlogged"],
        "unkeyed_queue": nulls["unkeyed_queue"],
        "unkeyed_accepted": nulls["unkeyed_accepted"],
        "by_request_id_app": nulls["by_request_id_app"],
        "by_request_id_queue": nulls["by_request_id_queue"],
        "malformed": nulls["malformed_app"] + nulls["malformed_queue"],
        "malformed_app": nulls["malformed_app"],
        "malformed_queue": nulls["malformed_queue"],
    }
    return counts, lag_summary(bulk.lags + detail_lags(con))


def detail_lags(con: Any) -> Counter[int]:
    """The lags (ms) of the classified keys that reached the queue through the mirror: the
    mirror's first copy's SentTimestamp minus the nginx time, lag -> keys.

    A heal replay is left out (a key that only a replay brought is `replayed`; one with both
    counts its mirror copy's lag): its SentTimestamp is when `verify heal` ran, hours or days
    after the callback, which says nothing about the mirror. The bulk's perfect keys are a
    record and a plain message, so their lags are the mirror's too. `verify watch` shares it.
    """
    return Counter(
        {
            int(lag): int(n)
            for lag, n in con.execute(
                "SELECT tm - ta, count(*) FROM classified"
                " WHERE cls = 'both' AND tm - ta IS NOT NULL GROUP BY 1"
            ).fetchall()
        }
    )


def lag_summary(lags: Counter[int]) -> dict[str, int | None]:
    """The report's lag figures from a histogram (lag -> keys): p50, p99 and max, in ms."""
    return {
        "p50": quantile_disc(lags, 0.5),
        "p99": quantile_disc(lags, 0.99),
        "max": max(lags) if lags else None,
    }


# --------------------------------------------------------------------------- records by key


@dataclass(frozen=True)
class _Sides:
    key: KeySpec
    app: Side
    queue: Side
    options: ParityOptions
    tmp: Path


def _mismatched(
    hks: list[int],
    app_recs: dict[int, list[dict[str, Any]]],
    queue_recs: dict[int, list[dict[str, Any]]],
) -> tuple[list[int], list[int]]:
    """Of the keys whose raw bodies differ, those that differ canonically too, and those whose
    app side logged no body at all (nothing to compare: body_not_logged)."""
    mismatched, not_logged = [], []
    for hk in hks:
        app_bodies = [r["body"] for r in app_recs.get(hk, []) if r["cls"] == "a"]
        queue_bodies = [r["body"] for r in queue_recs.get(hk, [])]
        if any(same_body(a, q) for a in app_bodies for q in queue_bodies):
            continue
        if app_bodies and all(a == "" for a in app_bodies):
            not_logged.append(hk)
        else:
            mismatched.append(hk)
    return mismatched, not_logged


def _resolve_mismatches_sql(con: Any, sides: _Sides) -> tuple[list[int], int, list[int], int]:
    """Many differing bodies (a systematic encoding bug): compare minified JSON in SQL.

    Key order differences count as mismatches on this path (JSON is minified, not sorted).
    """
    canon = "hash(CASE WHEN json_valid(body) THEN json(body)::VARCHAR ELSE body END)"

    def hashes(side: Side, where: str = "true") -> str:
        return f"""
            SELECT hk, list_distinct(list({canon})) AS hs, bool_and(body = '') AS unlogged
            FROM ({side.keyed_sql(side.files, where)})
            WHERE hk IN (SELECT hk FROM cand) GROUP BY hk"""

    con.execute(
        "CREATE TEMP TABLE cand AS SELECT hk FROM classified WHERE cls = 'both' AND NOT same"
    )
    con.execute(f"""
        CREATE TEMP TABLE mism AS
        WITH a AS ({hashes(sides.app, "cls = 'a'")}), q AS ({hashes(sides.queue)})
        SELECT a.hk, a.unlogged FROM a JOIN q ON a.hk = q.hk WHERE NOT list_has_any(a.hs, q.hs)
    """)
    found: list[tuple[list[int], int]] = []
    for unlogged in ("NOT unlogged", "unlogged"):
        row = con.execute(f"SELECT count(*) FROM mism WHERE {unlogged}").fetchone()
        hks = con.execute(f"SELECT hk FROM mism WHERE {unlogged} ORDER BY hk LIMIT 1000")
        found.append(([int(r[0]) for r in hks.fetchall()], int(row[0]) if row else 0))
    return found[0][0], found[0][1], found[1][0], found[1][1]


_SAMPLE_QUERIES = {
    "missing_in_queue": "cls = 'miq'",
    "missing_in_app": "cls = 'mia'",
    "duplicates_app": "an > 1",
    "duplicates_queue": "qd > 1",
    "in_flight": "cls = 'fly'",
    "not_mirrored": "anm > 0",
    "app_rejected": "arej > 0 AND an = 0",
    "replayed": REPLAYED,
}
# which side's records a sample of each class shows (the other side has none to show)
_APP_SIDE = {"missing_in_queue", "duplicates_app", "in_flight", "not_mirrored", "app_rejected"}
_QUEUE_SIDE = {"missing_in_app", "duplicates_queue"}
HEAD_ROWS = 2000


@dataclass
class _Picks:
    """What the fetch must find, chosen from the per-key detail (key hashes)."""

    picked: dict[str, list[int]]
    candidates: list[int]  # keys whose raw bodies differ (compared canonically after the fetch)
    mismatched: list[int] | None  # already settled in SQL when there were very many
    mism_total: int
    not_logged: list[int]  # settled in SQL with mismatched: keys whose app body is empty
    not_logged_total: int
    missing: list[int]  # missing_in_queue, earliest first (their keys are the report's list)
    head: dict[int, tuple[dict[str, Any], dict[str, Any]]]


def _pick(con: Any, sides: _Sides, app_win: str) -> _Picks:
    """Sample keys per class, mismatch candidates, missing keys and matched samples."""
    n = max(int(sides.options.samples), 0)
    row = con.execute("SELECT count(*) FROM classified WHERE cls = 'both' AND NOT same").fetchone()
    differing = int(row[0]) if row else 0
    candidates: list[int] = []
    mismatched: list[int] | None = None
    mism_total = 0
    not_logged: list[int] = []
    not_logged_total = 0
    if differing > PYTHON_COMPARE_MAX:
        mismatched, mism_total, not_logged, not_logged_total = _resolve_mismatches_sql(con, sides)
    elif differing:
        candidates = [
            int(r[0])
            for r in con.execute(
                "SELECT hk FROM classified WHERE cls = 'both' AND NOT same"
            ).fetchall()
        ]
    picked: dict[str, list[int]] = {}
    for name, cond in _SAMPLE_QUERIES.items():
        rows = con.execute(
            f"SELECT hk FROM classified WHERE {cond}"
            f" ORDER BY coalesce(ta, tq, tr) NULLS LAST, hk LIMIT {n}"
        ).fetchall()
        picked[name] = [int(r[0]) for r in rows]
    if mismatched is not None:
        picked["mismatched"] = mismatched[:n]
        picked["body_not_logged"] = not_logged[:n]
    missing = [
        int(r[0])
        for r in con.execute(
            f"SELECT hk FROM classified WHERE cls = 'miq' ORDER BY {KEY_TIME} NULLS LAST, hk "
            f"LIMIT {int(sides.options.missing_keys_cap)}"
        ).fetchall()
    ]
    head = _matched_head(con, sides.key, app_win, sides.queue.rows, n)
    return _Picks(
        picked, candidates, mismatched, mism_total, not_logged, not_logged_total, missing, head
    )


def _fetch_records(
    con: Any, side: Side, hks: set[int], complete: set[int], per_key: int, tmp: Path
) -> dict[int, list[dict[str, Any]]]:
    """The records of `hks` on one side: every one (up to `per_key`) for the keys in
    `complete` (their bodies are compared), the earliest found for the others (a sample)."""
    found_at, seen = hints(con, side.rows, sorted(hks), per_key)
    expected = {hk: (n if hk in complete else 1) for hk, n in seen.items()}
    return fetch(
        con,
        side,
        [Hint(int(hk), int(f), int(pos)) for hk, f, pos in found_at],
        expected,
        per_key,
        tmp,
    )


def _second_read(
    con: Any, sides: _Sides, picks: _Picks
) -> tuple[dict[str, list[dict[str, Any]]], tuple[int, int], list[str]]:
    """Samples per class (with bodies), the mismatched and body_not_logged counts and the
    missing keys' text.

    The scan kept no text, so the records of the keys that need it are fetched by key hash
    (verify/fetch.py), on the side(s) that hold them: a clean run fetches only the matched
    samples, which come from the first records of the app source (their queue body is the same
    bytes: that is what a perfect key is).
    """
    options = sides.options
    n = max(int(options.samples), 0)
    picked, candidates = dict(picks.picked), picks.candidates
    app_want = {k for c, ks in picked.items() if c not in _QUEUE_SIDE for k in ks}
    queue_want = {k for c, ks in picked.items() if c not in _APP_SIDE for k in ks}
    per_key = 50 if candidates else 3
    complete = set(candidates)
    app_want |= complete | set(picks.missing)
    app_recs = _fetch_records(con, sides.app, app_want, complete, per_key, sides.tmp)
    queue_recs = _fetch_records(
        con, sides.queue, queue_want | complete, complete, per_key, sides.tmp
    )
    mismatched, mism_total = picks.mismatched, picks.mism_total
    not_logged_total = picks.not_logged_total
    if mismatched is None:
        mismatched, not_logged = _mismatched(candidates, app_recs, queue_recs)
        mism_total, not_logged_total = len(mismatched), len(not_logged)
        picked["mismatched"] = mismatched[:n]
        picked["body_not_logged"] = not_logged[:n]
    sizes = _record_counts(con, {hk for hks in picked.values() for hk in hks})
    picked["matched"] = list(picks.head)[:n]
    for hk, (a_rec, q_rec) in picks.head.items():
        app_recs[hk] = [a_rec]
        queue_recs[hk] = [q_rec]
        sizes[hk] = (1, 1)
    out: dict[str, list[dict[str, Any]]] = {}
    for name in CLASSES:
        out[name] = [
            _sample(
                sides.key,
                _key_text(hk, app_recs, queue_recs),
                app_recs.get(hk, []),
                queue_recs.get(hk, []),
                sizes.get(hk, (0, 0)),
                options.redact,
            )
            for hk in picked.get(name, [])
        ]
    missing_keys = [_key_text(hk, app_recs, queue_recs) for hk in picks.missing if hk in app_recs]
    return out, (mism_total, not_logged_total), missing_keys


def _record_counts(con: Any, hks: set[int]) -> dict[int, tuple[int, int]]:
    """Records per key on each side (the fetch finds only what a sample shows)."""
    if not hks:
        return {}
    listed = ", ".join(str(hk) for hk in sorted(hks))
    rows = con.execute(
        f"SELECT hk, an + anm + arej, qn FROM key_detail WHERE hk IN ({listed})"
    ).fetchall()
    return {int(hk): (int(a), int(q)) for hk, a, q in rows}


def _key_text(
    hk: int, app_recs: dict[int, list[dict[str, Any]]], queue_recs: dict[int, list[dict[str, Any]]]
) -> str:
    for recs in (app_recs.get(hk), queue_recs.get(hk)):
        if recs:
            return str(recs[0]["k"])
    return f"#{hk:016x}"  # not found again (the input changed since the scan)


def _matched_head(
    con: Any, key: KeySpec, app_win: str, queue_rows: str, n: int
) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """Matched samples from the first records of the app source (a read that stops early)."""
    if n <= 0:
        return {}
    rows = con.execute(f"""
        SELECT h.hk, h.k, h.src, h.rid, h.t_ms, h.body FROM (
            SELECT *, {HK} AS hk FROM (
                SELECT *, {key.matching_sql("rid", "body")} AS k FROM (
                    SELECT * FROM app_rows WHERE ok AND cls = 'a' AND {app_win} LIMIT {HEAD_ROWS}
                )
            )
        ) h
        WHERE h.hk IS NOT NULL AND (h.hk NOT IN (SELECT hk FROM unsettled_keys)
            OR h.hk IN (SELECT hk FROM classified WHERE cls = 'both' AND same AND qrep = 0))
        ORDER BY h.t_ms NULLS LAST LIMIT {n}
    """).fetchall()
    if not rows:
        return {}
    listed = ", ".join(str(int(r[0])) for r in rows)
    sent = dict(
        con.execute(
            f"SELECT hk, min(t) FROM record_rows"
            f" WHERE {queue_rows} AND hk IN ({listed}) GROUP BY hk"
        ).fetchall()
    )
    out: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for hk, k, src, rid, t_ms, body in rows:
        a_rec = {"k": k, "src": src, "rid": rid, "t_ms": t_ms, "body": body, "cls": "a"}
        q_rec = {
            "k": k,
            "src": None,
            "rid": rid,
            "t_ms": sent.get(hk),
            "body": body,
            "mid": None,
            "replay": None,
        }
        out.setdefault(int(hk), (a_rec, q_rec))
    return out


_APP_STATUS = {"a": "accepted", "r": "rejected", "n": "not_mirrored"}


def redact_key(key: KeySpec, text: str) -> str:
    """A key value as a redacted report shows it: a phone field's value masked, phone numbers
    in other parts of the body masked; nginx's request ids are not the sender's data."""
    if text.startswith((BY_REQUEST_ID, "request_id=")):  # matched by request id: no body field
        return text
    if any(field_is_phone(p.field) for p in key.parts if p.field):
        return mask(text)
    if any(p.kind in ("json", "form") for p in key.parts):
        return redact_text(text)
    return text


def _sample(
    key: KeySpec,
    k: str,
    app_recs: list[dict[str, Any]],
    queue_recs: list[dict[str, Any]],
    sizes: tuple[int, int],
    redact: bool,
) -> dict[str, Any]:
    a = app_recs[0] if app_recs else None
    q = queue_recs[0] if queue_recs else None
    shown = redact_key(key, key.display(k)) if redact else key.display(k)

    def body(rec: dict[str, Any] | None) -> str | None:
        if rec is None or rec["body"] is None:
            return None
        text = str(rec["body"])
        text = (redact_body(text) or "") if redact else text
        return text if len(text) <= BODY_SAMPLE_CHARS else text[:BODY_SAMPLE_CHARS] + "…"

    app_t = a["t_ms"] if a else None
    queue_t = q["t_ms"] if q else None
    return {
        "key": shown,
        "app_records": sizes[0],
        "queue_records": sizes[1],
        "app_time": iso(app_t),
        "queue_time": iso(queue_t),
        "lag_ms": None if app_t is None or queue_t is None else int(queue_t - app_t),
        "request_id": (a or q or {}).get("rid"),
        "message_id": q["mid"] if q else None,
        "replay_of": q["replay"] if q else None,
        "app_status": _APP_STATUS.get(a["cls"]) if a else None,
        "where": f"{a['src']}" if a else (f"{q['src']}" if q else None),
        "app_body": body(a),
        "queue_body": body(q),
    }


# Readable timeline buckets, in seconds, smallest first; a span too long for the last one gets
# buckets of whole days.
TIMELINE_BUCKETS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200)
DAY_S = 86_400
# enough bars to see when something happened, few enough to tell them apart in a report
TIMELINE_BARS_MAX = 120


def _bars_at_most(span_ms: int, bucket_ms: int) -> int:
    # buckets start on whole multiples of their size: a span can touch one more than it covers
    return span_ms // bucket_ms + 2


def timeline_bucket_s(span_ms: int) -> int:
    """The smallest readable bucket that draws records `span_ms` apart in at most
    TIMELINE_BARS_MAX bars: a few seconds of rehearsal get a bar a second, a day one every quarter
    of an hour, a week one every two hours."""
    for size in (*TIMELINE_BUCKETS_S, DAY_S):
        if _bars_at_most(span_ms, size * 1000) <= TIMELINE_BARS_MAX:
            return size
    return DAY_S * (span_ms // (DAY_S * 1000 * (TIMELINE_BARS_MAX - 2)) + 1)


def bucket_label(bucket_s: int) -> str:
    """A bucket size as people say it: 1 s, 15 s, 5 min, 2 h, 1 day."""
    for unit_s, unit in ((DAY_S, " day"), (3600, " h"), (60, " min")):
        if bucket_s >= unit_s and bucket_s % unit_s == 0:
            n = bucket_s // unit_s
            return f"{n}{unit}{'s' if unit == ' day' and n > 1 else ''}"
    return f"{bucket_s} s"


def _timeline(con: Any, seen: Spread, rows: str = "record_rows") -> dict[str, Any]:
    """Counts of both sides and of the losses per bucket, the bucket chosen from the span of the
    records (timeline_bucket_s), every bucket from the first with records to the last (an empty
    one is a gap in the traffic): every record but those of the keys in the detail, which count
    per key (the first record's bucket; distinct messages) with their losses. `rows` holds every
    row of the keys in the detail (Bulk.rows)."""
    names = ("app", "queue", "missing_in_queue", "missing_in_app", "in_flight")
    span_ms = 0 if seen.oldest is None or seen.newest is None else seen.newest - seen.oldest
    bucket_s = timeline_bucket_s(span_ms)
    empty = {"bucket_s": bucket_s, "bucket": bucket_label(bucket_s), "buckets": []}
    if seen.oldest is None:
        return empty
    bucket_ms = bucket_s * 1000
    # the spread counts per minute; a finer bucket needs the rows counted again at its size
    base = seen if bucket_ms % BUCKET_MS == 0 else spread(con, rows, bucket_ms)
    totals: dict[int, list[int]] = {}
    for (start, side), n in base.minutes.items():
        totals.setdefault(start // bucket_ms * bucket_ms, [0] * 5)[names.index(side)] += n
    for row in con.execute(f"""
        SELECT b, sum(app), sum(queue), sum(miq), sum(mia), sum(fly) FROM (
            SELECT {KEY_TIME} // {bucket_ms} * {bucket_ms} AS b, an AS app, 0 AS queue,
                (cls = 'miq')::INT AS miq, 0 AS mia, (cls = 'fly')::INT AS fly
            FROM classified WHERE {KEY_TIME} IS NOT NULL
            UNION ALL
            SELECT tq // {bucket_ms} * {bucket_ms}, 0, qd, 0, (cls = 'mia')::INT, 0
            FROM classified WHERE tq IS NOT NULL
        ) GROUP BY b
    """).fetchall():
        counts = totals.setdefault(int(row[0]), [0] * 5)
        for i in range(5):
            counts[i] += int(row[i + 1])
    starts = on_the_bulk(totals, seen, bucket_ms)
    if not starts:
        return empty
    return {
        **empty,
        "buckets": [
            {"start": iso(start), **dict(zip(names, totals.get(start, [0] * 5), strict=True))}
            for start in range(min(starts), max(starts) + 1, bucket_ms)
        ],
    }


def on_the_bulk(totals: dict[int, list[int]], seen: Spread, bucket_ms: int) -> list[int]:
    """The buckets of `totals` with counts, the strays' left out (`on_bulk`: they lie past the
    bulk's newest or oldest record)."""
    starts = [start for start, counts in totals.items() if any(counts)]
    if seen.strays is None or seen.oldest is None or seen.newest is None:
        return starts
    first, last = seen.oldest // bucket_ms * bucket_ms, seen.newest // bucket_ms * bucket_ms
    return [start for start in starts if first <= start <= last]


def _leave_out_unfinished(
    app_spec: SourceSpec,
    app_files: list[Path],
    counts: dict[str, int],
    examples: list[str],
) -> tuple[list[str], dict[tuple[Path, int], str]]:
    """A log line nginx is still writing is not a malformed record: it is left out of the
    counts and the examples, and the next run reads it whole. Returns the examples left and
    each such line with the notice that names it.

    Only a file nginx may still write (sources.live_files) can end in such a line: a rotated
    one that ends without a newline was cut short and is never written again, so its last line
    is malformed like any other, named by file:line."""
    if app_spec.kind == "csv" or not counts["malformed_app"]:
        return examples, {}
    return _leave_out_torn(live_files(app_files), "app", "nginx is", counts, examples)


def _leave_out_unpulled(
    queue_spec: SourceSpec,
    queue_files: list[Path],
    counts: dict[str, int],
    examples: list[str],
) -> tuple[list[str], dict[tuple[Path, int], str]]:
    """An archive segment's last line that `verify pull` is still writing (it appends a batch
    while the check reads) is no malformed message: left out as `_leave_out_unfinished`
    leaves nginx's. Nor is one a killed pull left: it deletes a batch from the queue only once
    the whole batch is on disk, so that batch is pulled again, and pull repairs the torn end
    when it next opens the archive. `verify watch` reads only whole lines of a segment too."""
    if queue_spec.kind != "archive" or not counts["malformed_queue"]:
        return examples, {}
    writer = "`hookshift verify pull` is"
    return _leave_out_torn(queue_files, "queue", writer, counts, examples)


def _leave_out_torn(
    files: list[Path], side: str, writer: str, counts: dict[str, int], examples: list[str]
) -> tuple[list[str], dict[tuple[Path, int], str]]:
    """Leave out of `side`'s malformed counts and `examples` the last line of each of `files`
    that has no end yet (`writer` still writing it); each such line with its notice."""
    unfinished: dict[tuple[Path, int], str] = {}
    for path in files:
        line = unfinished_last_line(path)  # (the common case reads no file)
        if line is None:
            continue
        counts[f"malformed_{side}"] -= 1
        counts["malformed"] -= 1
        examples = [e for e in examples if not e.startswith(f"{path}:{line}:")]
        unfinished[(path, line)] = (
            f"{path}:{line}: the last line has no end yet ({writer} still writing it): left "
            "out; the next run reads it"
        )
    return examples, unfinished


def _check_readable(
    con: Any,
    counts: dict[str, int],
    app: tuple[SourceSpec, list[Path], frozenset[tuple[Path, int]]],
    queue: tuple[SourceSpec, list[Path], list[str], frozenset[tuple[Path, int]]],
    fields: AppFields,
    app_rows: int,
) -> None:
    """A side that gave malformed records and not one record is input that could not be
    read (a JSON array given as JSONL, another log), not a verdict: every callback would count
    as lost. Costs nothing unless a side has malformed records."""
    app_spec, app_files, unfinished = app
    queue_spec, queue_files, doc_problems, being_pulled = queue
    for index, (side, bad) in enumerate((("app", APP_BAD), ("queue", QUEUE_BAD))):
        if not counts[f"malformed_{side}"] or (side == "app" and app_spec.kind == "csv"):
            continue
        row = con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM record_rows WHERE {side_rows(index, app_rows)}"
            f" AND {C} & {bad} = 0 LIMIT 1)"
        ).fetchone()
        if row and row[0]:
            continue  # the scan kept a record of this side (the window may leave some out)
        if side == "app":
            check_some_record("app", app_spec, app_files, fields, unfinished)
            continue
        check_some_record("queue", queue_spec, queue_files, fields, being_pulled)
        if doc_problems:  # the documents held no message that could be read
            found = re.match(r"(.*?:\d+): (.*)", doc_problems[0])
            raise InputError(
                f"no message of {queue_spec.label} could be read; "
                + (found.group(2) if found else doc_problems[0]),
                where=found.group(1) if found else None,
                fix=f"give --queue a source of {SHAPES['queue']}",
            )


def _malformed(
    con: Any,
    counts: dict[str, int],
    app: tuple[SourceSpec, list[Path]],
    queue_files: list[Path],
    doc_problems: list[str],
    options: ParityOptions,
    settle: Callable[[dict[str, int], list[str]], list[str]] | None = None,
) -> list[str]:
    """Malformed records: counted (rejected non-UTF-8 lines too), the first few located.
    `settle` takes out lines read after all (repaired) before any is looked for line by line:
    a search over every line of a big log for records that are not malformed at all."""
    app_spec, app_files = app
    examples: list[str] = list(doc_problems)
    counts["malformed"] += len(doc_problems)
    counts["malformed_queue"] += len(doc_problems)
    for side, table in (("app", "rej_app"), ("queue", "rej_queue")):
        try:
            rows = con.execute(
                f"SELECT DISTINCT s.file_path, e.line, e.error_type FROM {table} e "
                f"JOIN {table}_scan s USING (scan_id, file_id) ORDER BY 1, 2"
            ).fetchall()
        except Exception:  # no rejects table: nothing was rejected
            rows = []
        counts["malformed"] += len(rows)
        counts[f"malformed_{side}"] += len(rows)
        examples.extend(f"{r[0]}:{r[1]}: {str(r[2]).lower()}" for r in rows)
    if settle is not None:
        examples = settle(counts, examples)
    limit = options.malformed_examples
    fields = options.app_fields
    if counts["malformed_app"] and app_spec.kind != "csv" and len(examples) < limit:
        examples += locate_malformed("app", app_spec.kind, app_files, fields, limit)
    if counts["malformed_queue"] and len(examples) < limit:
        examples += locate_malformed("queue", "jsonl", queue_files, fields, limit)
    seen: dict[str, None] = dict.fromkeys(examples)
    return list(seen)[:limit]


# --------------------------------------------------------------------------- inputs as delivered


def named_as(rows_sql: str, origins: dict[str, str]) -> str:
    """Rows whose src is a copy (`origins`: copy -> the file it came from) named as that file."""
    if not origins:
        return rows_sql
    cases = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in origins.items())
    return f"SELECT * REPLACE (CASE src {cases} ELSE src END AS src) FROM ({rows_sql})"


class _Repaired:
    """App lines that are not UTF-8, read as the queue got their bodies (sources.as_delivered).

    The scan counts such a line malformed (DuckDB reads UTF-8 only). Only when the app side
    has malformed rows are its files checked (the common case pays one count over the row
    table); the lines found are copied, repaired, and their rows go in after the app's, with
    file indexes after the app's files. `settle` then takes them out of the malformed count."""

    def __init__(self, spec: SourceSpec, files: list[Path], fields: AppFields, tmp: Path):
        self.spec, self.fields, self.tmp = spec, fields, tmp
        self.app_files = files
        self.found: list[tuple[Path, Path, list[int]]] = []

    @property
    def files(self) -> list[Path]:
        return self.app_files + [copy for _, copy, _ in self.found]

    @property
    def origins(self) -> dict[str, str]:
        return {str(copy): str(path) for path, copy, _ in self.found}

    def rows_sql(self, con: Any) -> str | None:
        if self.spec.kind == "csv":
            return None
        row = con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM record_rows WHERE {C} & {APP_BAD} <> 0 LIMIT 1)"
        ).fetchone()
        if not row or not row[0]:
            return None
        self.found = repair_undecodable(self.app_files, self.tmp)
        if not self.found:
            return None
        copies = [copy for _, copy, _ in self.found]
        rows = app_rows_sql(self.spec, copies, self.fields, rejects="rej_repaired_app")
        first = len(self.app_files)
        return named_as(f"SELECT * REPLACE (f + {first} AS f) FROM ({rows})", self.origins)

    def settle(self, counts: dict[str, int], examples: list[str]) -> list[str]:
        """The repaired lines are read from their copies (as records, or as malformed there):
        their failed read of the file itself is not counted, nor shown."""
        lines = {f"{path}:{n}:" for path, _, numbers in self.found for n in numbers}
        if not lines:
            return examples
        taken = min(len(lines), counts["malformed_app"])
        counts["malformed_app"] -= taken
        counts["malformed"] -= taken
        return [
            e for e in examples if not (e.endswith("invalid unicode") and e.split(" ")[0] in lines)
        ]


# --------------------------------------------------------------------------- warnings


def clock_warning(lag: dict[str, int | None]) -> str | None:
    """A median lag no network gives: the nginx host's clock and the clock of the queue (SQS's
    SentTimestamp, and the pull host's that says when it was read) disagree. Records are judged
    in flight or lost by those times, so the verdict is only as right as the clocks."""
    p50 = lag.get("p50")
    if p50 is None or abs(p50) <= SKEW_MS:
        return None
    side = "ahead of" if p50 < 0 else "behind"
    return (
        f"the median lag is {p50:,} ms (about {_duration(abs(p50))}): the nginx host's clock"
        f" looks {side} the queue's (SentTimestamp) and the pull host's. Records are judged in"
        " flight or lost by their times, so sync the clocks of the nginx host and the pull"
        " host (NTP) and run again"
    )


def window_skew_warning(
    lag: dict[str, int | None], grace_ms: int, since: int | None, until: int | None
) -> str | None:
    """A median lag beyond the grace when --since/--until cut the window: the queue side is
    cut by SentTimestamp, the grace past the app's edges, so with clocks that far apart the
    copies of the callbacks near an edge fall outside it. Those callbacks then show as missing
    in the queue (and messages as missing in the app), though every copy arrived. A wider
    grace takes them in; `clock_warning` says when the clocks are off by more than any
    network's lag, this says so sooner, when a window makes a smaller gap matter."""
    p50 = lag.get("p50")
    if (since is None and until is None) or p50 is None or abs(p50) <= grace_ms:
        return None
    grace_s = math.ceil((abs(p50) + grace_ms) / 1000)
    return (
        f"the median lag is {p50:,} ms, more than the grace ({grace_ms / 1000:g} s): the nginx"
        " host's clock and the queue's (SentTimestamp) disagree, so the copies of callbacks"
        " near the --since/--until edges were sent outside the window and those callbacks"
        f" show as missing; run again with --grace {grace_s}, and sync the clocks (NTP)"
    )


def _duration(ms: int) -> str:
    for unit_ms, unit in ((86_400_000, "day"), (3_600_000, "h"), (60_000, "min")):
        if ms >= unit_ms:
            return f"{ms / unit_ms:.1f} {unit}"
    return f"{ms / 1000:.0f} s"


def lacking_key(counts: dict[str, int]) -> tuple[int, int]:
    """App records and messages with no value for the key (matched by request id or not)."""
    return (
        counts["unkeyed_app"] + counts["by_request_id_app"],
        counts["unkeyed_queue"] + counts["by_request_id_queue"],
    )


def key_warning(key: KeySpec | str, counts: dict[str, int]) -> str | None:
    """The records that lack the key, in one line: how many, and what became of them."""
    app_n, queue_n = lacking_key(counts)
    if not app_n and not queue_n:
        return None
    text = (
        f"{app_n:,} app record(s) and {queue_n:,} queue message(s) have no value for the key {key}"
    )
    by_rid = counts["by_request_id_app"] + counts["by_request_id_queue"]
    if by_rid:
        text += f"; {by_rid:,} of them matched by nginx's request id instead"
    unkeyed = counts["unkeyed_app"] + counts["unkeyed_queue"]
    if unkeyed:
        text += f"; {unkeyed:,} carry no request id either and were not compared"
    return text


def no_key_error(
    key: KeySpec,
    options: ParityOptions,
    counts: dict[str, int],
    labels: tuple[str, str],
    bodies: list[str],
) -> InputError:
    """A key no record has: not a verdict (every record would be unmatched by it) but the
    wrong key for these inputs."""
    app_n, queue_n = lacking_key(counts)
    return InputError(
        f"the key matches no record: none of the {app_n:,} app record(s) and {queue_n:,}"
        f" message(s) of {labels[0]} and {labels[1]} has a value for {key}",
        where=f"--profile {options.profile}" if options.profile else f"--key {key}",
        fix=key_suggestion(bodies),
    )


def _check_key(
    con: Any,
    key: KeySpec,
    options: ParityOptions,
    counts: dict[str, int],
    sources: tuple[tuple[SourceSpec, list[Path]], tuple[SourceSpec, list[Path]]],
) -> None:
    """Refuse a key no record has, when the app has records without it (costs nothing while
    every app record has it)."""
    if not lacking_key(counts)[0]:
        return
    row = con.execute(
        "SELECT count(*) FROM (SELECT 1 FROM record_rows"
        f" WHERE hk IS NOT NULL AND m & {BY_REQUEST_ID_BIT} = 0 LIMIT 1)"
    ).fetchone()
    if row and row[0]:
        return
    (app_spec, app_files), (queue_spec, queue_files) = sources
    bodies = first_bodies("app", app_spec.kind, app_files, options.app_fields)
    bodies += first_bodies("queue", "jsonl", queue_files, options.app_fields)
    raise no_key_error(key, options, counts, (app_spec.label, queue_spec.label), bodies)


def _body_fields(body: str) -> list[tuple[str, str]]:
    """The (kind, field) pairs a key could name in `body`: a JSON object's top-level fields, or
    a form body's names."""
    import json
    from urllib.parse import parse_qsl

    try:
        data = json.loads(body)
        return [("json", str(k)) for k in data] if isinstance(data, dict) else []
    except ValueError:
        return [("form", k) for k, _ in parse_qsl(body, keep_blank_values=True)]


def _fitting_profile(names: list[tuple[str, str]]) -> str | None:
    for name, spec in PROFILES.items():
        if all((p.kind, p.field) in names for p in parse_key(spec).parts):
            return name
    return None


def key_suggestion(bodies: list[str]) -> str:
    """The --profile or --key that fits bodies of the inputs (what the key error's fix names):
    a profile whose fields one of them has, else the fields they have."""
    seen: dict[tuple[str, str], None] = {}  # (kind, field), in the order first seen
    for body in bodies:
        names = _body_fields(body)
        name = _fitting_profile(names)
        if name is not None:
            return f"pass --profile {name} (some bodies are {name}'s), or {_DEFAULT_KEY}"
        seen.update(dict.fromkeys(names))
    if seen:
        kind = next(iter(seen))[0]
        fields = [f for k, f in seen if k == kind]
        shown = ", ".join(fields[:8]) + (", ..." if len(fields) > 8 else "")
        return f"pass --key {kind}:FIELD with a field the bodies have ({shown}), or {_DEFAULT_KEY}"
    return _DEFAULT_KEY


_DEFAULT_KEY = (
    "leave --key and --profile out to match on nginx's request id (the body's sha256 when a side"
    " has none)"
)


def key_contradicted(key: KeySpec, bodies: list[str]) -> bool:
    """Whether bodies without the key show that the key is wrong for these callbacks, rather
    than that none that carries it has come yet (a vendor's second shape of callback can come
    first, matched by nginx's request id meanwhile): a key with no request-id fallback; bodies
    none of which is of the key's kind (JSON for a form key, a form for a JSON key); bodies
    of a known profile; or a body with one of the key's fields under another case (`msgid` for
    `MSGID`)."""
    if not key.has_fallback:
        return True
    kinds = {p.kind for p in key.parts}
    named = {p.field.split(".")[0] for p in key.parts}
    folded = {field.lower() for field in named}
    shapes = [_body_fields(body) for body in bodies]
    if shapes and not any(kind in kinds for names in shapes for kind, _ in names):
        return True
    for names in shapes:
        if _fitting_profile(names) is not None:
            return True
        if any(
            kind in kinds and field not in named and field.lower() in folded
            for kind, field in names
        ):
            return True
    return False
