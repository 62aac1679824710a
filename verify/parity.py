"""Parity: does the queue hold every callback the app accepted, with the same body?

One DuckDB pass per side reads every record, extracts its key and a 64-bit hash of its raw body
and aggregates per key (count, first time, min/max MessageId hash), with ``memory_limit`` and a
spill directory so inputs larger than RAM are fine; a full outer join of the two aggregates
classifies every key. Only the keys whose raw bodies differ (usually none) and the few samples
are read again, with a substring prefilter on the raw lines, and compared canonically in Python.
The cost is one scan of each input plus a join: close to the floor of any parity computation.

The classes (docs: issue 4): matched, missing_in_queue, missing_in_app, duplicates_app,
duplicates_queue, mismatched, in_flight, not_mirrored, plus app_rejected (the app answered
non-2xx: not a callback the app accepted), replayed (matched only through a ``hookshift verify
heal`` replay), unkeyed and malformed. Counts of classes are per key (one callback and its
retries count once); duplicates count the extra copies.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hookshift.errors import InputError
from verify.canonical import same_body
from verify.keys import KeySpec, parse_key, resolve_key
from verify.redact import field_is_phone, mask, redact_body
from verify.sources import (
    AppFields,
    SourceSpec,
    app_rows_sql,
    csv_columns,
    is_messages_document,
    locate_malformed,
    messages_documents_to_jsonl,
    parse_source,
    queue_rows_sql,
    resolve_files,
    sql_str,
)

LITERAL_KEYS_MAX = 20000
CLASSES = (
    "matched",
    "missing_in_queue",
    "missing_in_app",
    "duplicates_app",
    "duplicates_queue",
    "mismatched",
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
    "unkeyed_app",
    "unkeyed_queue",
    "malformed",
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
            "redacted": self.redacted,
            "warnings": self.warnings,
            "generated_at": self.generated_at,
            "duration_s": self.duration_s,
            "timings_s": self.timings_s,
        }


# --------------------------------------------------------------------------- pure helpers


def verdict_for(counts: dict[str, int], min_events: int) -> tuple[str, str]:
    """pass when nothing is missing in the queue, nothing mismatched, and enough compared."""
    problems = []
    if counts["missing_in_queue"]:
        problems.append(
            f"{counts['missing_in_queue']} callback(s) the app accepted are missing in the queue"
        )
    if counts["mismatched"]:
        problems.append(f"{counts['mismatched']} callback(s) reached the queue with another body")
    if counts["compared"] < min_events:
        problems.append(
            f"only {counts['compared']} callback(s) compared, fewer than --min-events {min_events}"
        )
    if problems:
        return "fail", "; ".join(problems)
    extra = f" ({counts['in_flight']} still in flight)" if counts["in_flight"] else ""
    return "pass", f"all {counts['compared']} compared callback(s) reached the queue intact{extra}"


def parse_time(text: str, what: str) -> int:
    """``--since``/``--until``: ISO 8601 (UTC unless it says otherwise) or epoch seconds."""
    value = text.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        number = float(value)
        return int(number if abs(number) >= 1e11 else number * 1000)
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
    return int(parsed.timestamp() * 1000)


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
    con.execute(f"SET memory_limit = '{options.memory_limit}'")
    con.execute(f"SET temp_directory = '{tmp / 'spill'}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET threads = {options.threads or os.cpu_count() or 2}")
    return con


def _queue_files(
    spec: SourceSpec, options: ParityOptions, tmp: Path
) -> tuple[list[Path], list[str]]:
    """Files holding one Message per line (live queues and CLI documents are converted), and
    the problems found while converting documents."""
    if spec.kind == "sqs":
        from verify.pull import pull

        archive = tmp / "sqs-archive"
        pull(
            spec.target,
            archive,
            endpoint_url=options.endpoint_url,
            region=options.region,
            delete=False,
            wait_time_s=options.sqs_wait_s,
            progress=False,
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


def _probe_key(con: Any) -> KeySpec:
    """``request_id`` when both sides carry request ids, else ``sha256`` of the body."""
    have = []
    for view in ("app_rows", "queue_rows"):
        row = con.execute(
            f"SELECT count(rid) FROM (SELECT rid FROM {view} WHERE ok LIMIT 1000)"
        ).fetchone()
        have.append(bool(row and row[0]))
    return parse_key("request_id" if all(have) else "sha256")


def run_parity(
    app: str | SourceSpec, queue: str | SourceSpec, options: ParityOptions
) -> ParityReport:
    """Compare an app-side source with a queue-side source; see the module docstring."""
    started = time.monotonic()
    app_spec = app if isinstance(app, SourceSpec) else parse_source(app, "app")
    queue_spec = queue if isinstance(queue, SourceSpec) else parse_source(queue, "queue")
    key = resolve_key(options.key, options.profile)
    with _workdir(options) as tmp:
        app_files = resolve_files(app_spec)
        if app_spec.kind == "csv":
            _check_csv_fields(app_spec, app_files, options.app_fields)
        queue_files, doc_problems = _queue_files(queue_spec, options, tmp)
        con = _connect(options, tmp)
        try:
            return _run(
                con,
                (app_spec, app_files),
                (queue_spec, queue_files, doc_problems),
                key,
                options,
                started,
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
) -> ParityReport:
    app_spec, app_files = app
    queue_spec, queue_files, doc_problems = queue
    fields = options.app_fields
    app_base = app_rows_sql(app_spec, app_files, fields)
    queue_base = queue_rows_sql(queue_files)
    con.execute(f"CREATE TEMP VIEW app_rows AS {app_base}")
    con.execute(f"CREATE TEMP VIEW queue_rows AS {queue_base}")
    warnings: list[str] = []
    if queue_spec.kind == "sqs":
        warnings.append(
            "the queue was read without deleting: every message received is hidden from its "
            "consumers for the visibility timeout; for repeated checks pull it into an archive "
            "(hookshift verify pull --delete) and use archive:DIR"
        )
    if key is None:
        key = _probe_key(con)
        if key.parts[0].kind == "sha256":
            warnings.append(
                "no request ids on both sides: matched on sha256 of the body, so a changed body"
                " shows as missing on both sides, not as mismatched"
            )
    key_sql = key.sql("rid", "body")
    grace_ms = int(options.grace_s * 1000)
    since, until = options.since_ms, options.until_ms
    app_win = _window_sql("t_ms", since, until)
    queue_win = _window_sql(
        "t_ms",
        None if since is None else since - grace_ms,
        None if until is None else until + grace_ms,
    )
    con.execute(f"""
        CREATE TEMP TABLE j AS
        WITH a AS (
            SELECT hk, any_value(k) AS k,
                count(*) FILTER (cls = 'a' AND win) AS an,
                count(*) FILTER (cls = 'n' AND win) AS anm,
                count(*) FILTER (cls = 'r' AND win) AS arej,
                min(hash(body)) FILTER (cls = 'a' AND win) AS ah,
                min(t_ms) FILTER (cls = 'a' AND win) AS ta,
                count(*) FILTER (NOT ok) AS abad,
                count(*) FILTER (ok AND k IS NULL AND win) AS anokey
            FROM (SELECT ok, cls, body, t_ms, k, {HK} AS hk, {app_win} AS win
                  FROM (SELECT *, {key_sql} AS k FROM app_rows))
            GROUP BY hk
        ), q AS (
            SELECT hk, any_value(k) AS k,
                count(*) FILTER (ok AND win) AS qn,
                count(*) FILTER (ok AND win AND replay IS NOT NULL) AS qrep,
                min(hash(body)) FILTER (ok AND win) AS qh,
                min(t_ms) FILTER (ok AND win) AS tq,
                min(hash(mid)) FILTER (ok AND win) AS qlo,
                max(hash(mid)) FILTER (ok AND win) AS qhi,
                count(*) FILTER (NOT ok) AS qbad,
                count(*) FILTER (ok AND k IS NULL AND win) AS qnokey
            FROM (SELECT ok, mid, replay, body, t_ms, k, {HK} AS hk, {queue_win} AS win
                  FROM (SELECT *, {key_sql} AS k FROM queue_rows))
            GROUP BY hk
        )
        -- one narrow row per key; the key text is kept only where a later step needs it
        -- (every key but the perfect one-to-one raw matches): 10 M keys fit in memory_limit
        SELECT coalesce(a.hk, q.hk) AS hk,
            CASE WHEN an = 1 AND qn = 1 AND ah = qh AND anm = 0 AND arej = 0 AND qrep = 0
                 THEN NULL ELSE coalesce(a.k, q.k) END AS k,
            coalesce(an, 0)::INTEGER AS an, coalesce(anm, 0)::INTEGER AS anm,
            coalesce(arej, 0)::INTEGER AS arej, ta,
            coalesce(qn, 0)::INTEGER AS qn, coalesce(qrep, 0)::INTEGER AS qrep, tq,
            CASE WHEN coalesce(qn, 0) <= 1 OR qlo = qhi THEN least(coalesce(qn, 0), 1)
                 WHEN qn = 2 THEN 2 END::INTEGER AS qd,
            ah = qh AS same,
            coalesce(abad, 0)::INTEGER AS abad, coalesce(anokey, 0)::INTEGER AS anokey,
            coalesce(qbad, 0)::INTEGER AS qbad, coalesce(qnokey, 0)::INTEGER AS qnokey
        FROM a FULL OUTER JOIN q ON a.hk = q.hk
    """)
    timings = {"scan_and_join": time.monotonic() - started}
    _exact_queue_duplicates(con, key_sql)
    end_row = con.execute("SELECT max(ta), max(tq) FROM j WHERE hk IS NOT NULL").fetchone()
    data_end = max((v for v in (end_row or ()) if v is not None), default=None)
    end = until if until is not None else data_end
    cls_sql = _class_sql(end, grace_ms, since, until)
    con.execute(f"CREATE TEMP VIEW c AS SELECT *, {cls_sql} AS cls FROM j WHERE hk IS NOT NULL")
    counts, lag = _counts(con)
    timeline = _timeline(con)
    missing_keys = [
        str(r[0])
        for r in con.execute(
            f"SELECT k FROM c WHERE cls = 'miq' ORDER BY ta NULLS LAST, k "
            f"LIMIT {int(options.missing_keys_cap)}"
        ).fetchall()
    ]
    first_seen = _first_seen(con)
    sides = _Sides(key, app_spec, app_files, queue_files, options)
    picks = _pick(con, sides)
    con.execute("DROP VIEW c")
    con.execute("DROP TABLE j")  # free its memory for the re-read
    mark = time.monotonic()
    samples, mism_total = _second_read(con, sides, picks)
    timings["second_read"] = time.monotonic() - mark
    counts["mismatched"] = mism_total
    counts["matched"] = counts["compared"] - mism_total
    malformed_examples = _malformed(
        con, counts, (app_spec, app_files), queue_files, doc_problems, options
    )
    if options.strict and counts["malformed"]:
        first = malformed_examples[0] if malformed_examples else "see the report"
        raise InputError(
            f"{counts['malformed']} malformed record(s), first: {first}",
            fix="fix or drop them, or run without --strict to count and skip them",
        )
    if counts["missing_in_queue"] > len(missing_keys):
        warnings.append(
            f"missing_in_queue_keys lists the first {len(missing_keys)} of "
            f"{counts['missing_in_queue']}: heal in several rounds"
        )
    verdict, reason = verdict_for(counts, options.min_events)
    if options.redact and any(field_is_phone(p.field) for p in key.parts if p.field):
        missing_keys = [mask(k) for k in missing_keys]
        warnings.append("the key holds a phone field: keys are masked, heal cannot use them")
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
        sources={"app": app_spec.label, "queue": queue_spec.label},
        missing_in_queue_keys=missing_keys,
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


# Group and join on a 64-bit hash of the key (cheaper than strings); the key itself rides along.
# A collision (~1e-5 for 10 M + 10 M keys) pairs two different callbacks: their bodies differ,
# so they show as mismatched, never as a silent match.
HK = "CASE WHEN k IS NULL THEN NULL ELSE hash(k) END"


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


def _class_sql(end: int | None, grace_ms: int, since: int | None, until: int | None) -> str:
    """One class per key: 'both', 'miq' (missing in queue), 'fly', 'mia', or 'none'."""
    flying = "false" if end is None else f"ta IS NOT NULL AND ta > {int(end) - grace_ms}"
    in_window = _window_sql("tq", since, until)
    return f"""CASE
        WHEN an > 0 AND qd > 0 THEN 'both'
        WHEN an > 0 AND ({flying}) THEN 'fly'
        WHEN an > 0 THEN 'miq'
        WHEN qd > 0 AND {in_window} THEN 'mia'
        ELSE 'none' END"""


def _exact_queue_duplicates(con: Any, key_sql: str) -> None:
    """Count distinct MessageIds exactly for the (rare) keys held by 3+ queue rows.

    The main pass keeps only min/max of the MessageId hashes per key, which settles 0, 1 and 2
    copies; SQS redelivers a message with the same MessageId, so copies are not messages.
    """
    row = con.execute("SELECT count(*) FROM j WHERE qd IS NULL").fetchone()
    if not row or not row[0]:
        return
    con.execute(f"""
        UPDATE j SET qd = d.n FROM (
            SELECT k, count(DISTINCT mid) AS n FROM (
                SELECT mid, k FROM (SELECT mid, ok, {key_sql} AS k FROM queue_rows) WHERE ok
            ) WHERE k IN (SELECT k FROM j WHERE qd IS NULL) GROUP BY k
        ) d WHERE j.k = d.k AND j.qd IS NULL
    """)


def _counts(con: Any) -> tuple[dict[str, int], dict[str, int | None]]:
    row = con.execute("""
        SELECT
            sum(an), sum(qd),
            count(*) FILTER (cls = 'both'),
            count(*) FILTER (cls = 'miq'),
            count(*) FILTER (cls = 'mia'),
            coalesce(sum(an - 1) FILTER (an > 1), 0),
            coalesce(sum(qd - 1) FILTER (qd > 1), 0),
            count(*) FILTER (cls = 'fly'),
            coalesce(sum(anm), 0),
            coalesce(sum(arej) FILTER (an = 0), 0),
            count(*) FILTER (cls = 'both' AND qrep = qn AND qrep > 0),
            quantile_disc(tq - ta, 0.5) FILTER (cls = 'both'),
            quantile_disc(tq - ta, 0.99) FILTER (cls = 'both'),
            max(tq - ta) FILTER (cls = 'both')
        FROM c
    """).fetchone()
    nulls = con.execute(
        "SELECT coalesce(sum(abad), 0), coalesce(sum(qbad), 0), coalesce(sum(anokey), 0), "
        "coalesce(sum(qnokey), 0) FROM j WHERE hk IS NULL"
    ).fetchone()
    assert row is not None and nulls is not None
    v = [int(x or 0) for x in row[:11]]
    counts = {
        "app": v[0],
        "queue": v[1],
        "compared": v[2],
        "matched": v[2],
        "missing_in_queue": v[3],
        "missing_in_app": v[4],
        "duplicates_app": v[5],
        "duplicates_queue": v[6],
        "mismatched": 0,
        "in_flight": v[7],
        "not_mirrored": v[8],
        "app_rejected": v[9],
        "replayed": v[10],
        "unkeyed_app": int(nulls[2]),
        "unkeyed_queue": int(nulls[3]),
        "malformed": int(nulls[0]) + int(nulls[1]),
        "malformed_app": int(nulls[0]),
        "malformed_queue": int(nulls[1]),
    }
    lag = {"p50": _int(row[11]), "p99": _int(row[12]), "max": _int(row[13])}
    return counts, lag


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _first_seen(con: Any) -> int | None:
    row = con.execute("SELECT least(min(ta), min(tq)) FROM j WHERE hk IS NOT NULL").fetchone()
    return _int(row[0]) if row else None


# --------------------------------------------------------------------------- second reads


def _fetch(
    con: Any,
    side: str,
    key: KeySpec,
    spec: SourceSpec | None,
    files: list[Path],
    keys: list[str],
    fields: AppFields,
    per_key: int = 3,
) -> dict[str, list[dict[str, Any]]]:
    """The records of `keys` on one side (at most `per_key` each, earliest first)."""
    if not keys:
        return {}
    if len(keys) <= LITERAL_KEYS_MAX:
        # A constant list is a filter DuckDB pushes into the scan (the body is read only for
        # the rows that pass); a semi-join against a table made it build a hash table of the
        # whole input instead: 23 s against 4 s on 10 M records.
        wanted = "(" + ", ".join(sql_str(k) for k in keys) + ")"
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE want_{side} (k VARCHAR)")
        con.executemany(f"INSERT INTO want_{side} VALUES (?)", [(k,) for k in keys])
        wanted = f"(SELECT k FROM want_{side})"
    # A full re-read with a semi-join on the wanted keys. A substring prefilter on the raw
    # lines was tried: with ~20 keys (samples of 5 classes) the memmem per key per line costs
    # more than DuckDB's JSON reader, which this is.
    base = app_rows_sql(spec, files, fields) if spec is not None else queue_rows_sql(files)
    cols = "src, rid, t_ms, body, cls" if side == "app" else "src, rid, t_ms, body, mid, replay"
    order = "t_ms NULLS LAST"
    rows = con.execute(
        f"""
        SELECT k, {cols} FROM (
            SELECT *, {key.sql("rid", "body")} AS k FROM ({base}) WHERE ok
        ) WHERE k IN {wanted}
        QUALIFY row_number() OVER (PARTITION BY k ORDER BY {order}) <= {per_key}
        """
    ).fetchall()
    names = ["k", *[c.strip() for c in cols.split(",")]]
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        rec = dict(zip(names, r, strict=True))
        out.setdefault(str(rec["k"]), []).append(rec)
    return out


@dataclass(frozen=True)
class _Sides:
    key: KeySpec
    app_spec: SourceSpec
    app_files: list[Path]
    queue_files: list[Path]
    options: ParityOptions


def _mismatched(
    keys: list[str],
    app_recs: dict[str, list[dict[str, Any]]],
    queue_recs: dict[str, list[dict[str, Any]]],
) -> list[str]:
    """Of the keys whose raw bodies differ, those that differ canonically too."""
    mismatched = []
    for k in keys:
        app_bodies = [r["body"] for r in app_recs.get(k, []) if r["cls"] == "a"]
        queue_bodies = [r["body"] for r in queue_recs.get(k, [])]
        if not any(same_body(a, q) for a in app_bodies for q in queue_bodies):
            mismatched.append(k)
    return mismatched


def _resolve_mismatches_sql(con: Any, sides: _Sides) -> tuple[list[str], int]:
    """Many differing bodies (a systematic encoding bug): compare minified JSON in SQL.

    Key order differences count as mismatches on this path (JSON is minified, not sorted).
    """
    canon = "hash(CASE WHEN json_valid(body) THEN json(body)::VARCHAR ELSE body END)"
    ksql = sides.key.sql("rid", "body")
    app_base = app_rows_sql(sides.app_spec, sides.app_files, sides.options.app_fields)
    queue_base = queue_rows_sql(sides.queue_files)
    con.execute("CREATE TEMP TABLE cand AS SELECT k FROM c WHERE cls = 'both' AND NOT same")
    con.execute(f"""
        CREATE TEMP TABLE mism AS
        WITH a AS (SELECT k, list_distinct(list({canon})) AS hs FROM (
                SELECT *, {ksql} AS k FROM ({app_base}) WHERE ok AND cls = 'a')
            WHERE k IN (SELECT k FROM cand) GROUP BY k),
        q AS (SELECT k, list_distinct(list({canon})) AS hs FROM (
                SELECT *, {ksql} AS k FROM ({queue_base}) WHERE ok)
            WHERE k IN (SELECT k FROM cand) GROUP BY k)
        SELECT a.k FROM a JOIN q ON a.k = q.k WHERE NOT list_has_any(a.hs, q.hs)
    """)
    row = con.execute("SELECT count(*) FROM mism").fetchone()
    keys = [str(r[0]) for r in con.execute("SELECT k FROM mism LIMIT 1000").fetchall()]
    return keys, int(row[0]) if row else 0


_SAMPLE_QUERIES = {
    "missing_in_queue": "cls = 'miq'",
    "missing_in_app": "cls = 'mia'",
    "duplicates_app": "an > 1",
    "duplicates_queue": "qd > 1",
    "in_flight": "cls = 'fly'",
    "not_mirrored": "anm > 0",
    "app_rejected": "arej > 0 AND an = 0",
    "replayed": "cls = 'both' AND qrep = qn AND qrep > 0",
}
# which side's records a sample of each class shows (the other side has none to show)
_APP_SIDE = {"missing_in_queue", "duplicates_app", "in_flight", "not_mirrored", "app_rejected"}
_QUEUE_SIDE = {"missing_in_app", "duplicates_queue"}
HEAD_ROWS = 2000


@dataclass
class _Picks:
    """What the re-read must fetch, chosen while the per-key table is still there."""

    picked: dict[str, list[str]]
    candidates: list[str]  # keys whose raw bodies differ (compared canonically after the read)
    mismatched: list[str] | None  # already settled in SQL when there were very many
    mism_total: int
    head: dict[str, tuple[dict[str, Any], dict[str, Any]]]


def _pick(con: Any, sides: _Sides) -> _Picks:
    """Sample keys per class, mismatch candidates and matched samples (from the app's head)."""
    n = max(int(sides.options.samples), 0)
    row = con.execute("SELECT count(*) FROM c WHERE cls = 'both' AND NOT same").fetchone()
    differing = int(row[0]) if row else 0
    candidates: list[str] = []
    mismatched: list[str] | None = None
    mism_total = 0
    if differing > PYTHON_COMPARE_MAX:
        mismatched, mism_total = _resolve_mismatches_sql(con, sides)
    elif differing:
        candidates = [
            str(r[0])
            for r in con.execute("SELECT k FROM c WHERE cls = 'both' AND NOT same").fetchall()
        ]
    picked: dict[str, list[str]] = {}
    for name, cond in _SAMPLE_QUERIES.items():
        rows = con.execute(
            f"SELECT k FROM c WHERE {cond} ORDER BY coalesce(ta, tq) NULLS LAST, k LIMIT {n}"
        ).fetchall()
        picked[name] = [str(r[0]) for r in rows]
    if mismatched is not None:
        picked["mismatched"] = mismatched[:n]
    head = _matched_head(con, sides.key, n)
    return _Picks(picked, candidates, mismatched, mism_total, head)


def _second_read(
    con: Any, sides: _Sides, picks: _Picks
) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Samples per class (with bodies) and the mismatch count, in one re-read per side.

    Bodies are not kept by the main pass (that would hold every body in memory), so the keys
    whose raw bodies differ and the sample keys of the problem classes are re-read together,
    on the side(s) that hold them (a clean run re-reads nothing). Matched samples come from
    the first records of the app source, whose queue body is the same bytes (that is what
    matched without canonicalising means).
    """
    key, options = sides.key, sides.options
    n = max(int(options.samples), 0)
    picked, candidates = dict(picks.picked), picks.candidates
    app_want = {k for c, ks in picked.items() if c not in _QUEUE_SIDE for k in ks}
    queue_want = {k for c, ks in picked.items() if c not in _APP_SIDE for k in ks}
    fields = options.app_fields
    per_key = 50 if candidates else 3
    app_recs = _fetch(
        con,
        "app",
        key,
        sides.app_spec,
        sides.app_files,
        sorted(app_want | set(candidates)),
        fields,
        per_key,
    )
    queue_recs = _fetch(
        con,
        "queue",
        key,
        None,
        sides.queue_files,
        sorted(queue_want | set(candidates)),
        fields,
        per_key,
    )
    mismatched, mism_total = picks.mismatched, picks.mism_total
    if mismatched is None:
        mismatched = _mismatched(candidates, app_recs, queue_recs)
        mism_total = len(mismatched)
        picked["mismatched"] = mismatched[:n]
    picked["matched"] = list(picks.head)[:n]
    for k, (a_rec, q_rec) in picks.head.items():
        app_recs[k] = [a_rec]
        queue_recs[k] = [q_rec]
    out: dict[str, list[dict[str, Any]]] = {}
    for name in CLASSES:
        out[name] = [
            _sample(key, k, app_recs.get(k, []), queue_recs.get(k, []), options.redact)
            for k in picked.get(name, [])
        ]
    return out, mism_total


def _matched_head(
    con: Any, key: KeySpec, n: int
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Matched samples from the first records of the app source (a read that stops early)."""
    if n <= 0:
        return {}
    rows = con.execute(f"""
        SELECT h.k, h.src, h.rid, h.t_ms, h.body, c.tq
        FROM (SELECT *, {HK} AS hk
              FROM (SELECT *, {key.sql("rid", "body")} AS k
                    FROM (SELECT * FROM app_rows WHERE ok AND cls = 'a' LIMIT {HEAD_ROWS}))) h
        JOIN c ON c.hk = h.hk
        WHERE c.cls = 'both' AND c.same AND c.qrep = 0
        ORDER BY h.t_ms NULLS LAST LIMIT {n}
    """).fetchall()
    out: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for k, src, rid, t_ms, body, tq in rows:
        a_rec = {"src": src, "rid": rid, "t_ms": t_ms, "body": body, "cls": "a"}
        q_rec = {"src": None, "rid": rid, "t_ms": tq, "body": body, "mid": None, "replay": None}
        out.setdefault(str(k), (a_rec, q_rec))
    return out


_APP_STATUS = {"a": "accepted", "r": "rejected", "n": "not_mirrored"}


def _sample(
    key: KeySpec,
    k: str,
    app_recs: list[dict[str, Any]],
    queue_recs: list[dict[str, Any]],
    redact: bool,
) -> dict[str, Any]:
    a = app_recs[0] if app_recs else None
    q = queue_recs[0] if queue_recs else None
    shown = key.display(k)
    if redact and any(field_is_phone(p.field) for p in key.parts if p.field):
        shown = mask(shown)

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
        "app_records": len(app_recs),
        "queue_records": len(queue_recs),
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


def _timeline(con: Any) -> dict[str, Any]:
    """Per-minute counts of both sides and of the losses (coarser buckets for long windows)."""
    span = con.execute(
        "SELECT least(min(ta), min(tq)), greatest(max(ta), max(tq)) FROM c"
    ).fetchone()
    if not span or span[0] is None:
        return {"bucket_s": 60, "buckets": []}
    lo, hi = int(span[0]), int(span[1])
    bucket_ms = 60_000
    while (hi - lo) // bucket_ms > 1440:
        bucket_ms *= 2
    rows = con.execute(f"""
        SELECT b, sum(app), sum(queue), sum(miq), sum(mia), sum(fly) FROM (
            SELECT (ta // {bucket_ms}) * {bucket_ms} AS b, an AS app, 0 AS queue,
                (cls = 'miq')::INT AS miq, 0 AS mia, (cls = 'fly')::INT AS fly
            FROM c WHERE ta IS NOT NULL
            UNION ALL
            SELECT (tq // {bucket_ms}) * {bucket_ms}, 0, qd, 0, (cls = 'mia')::INT, 0
            FROM c WHERE tq IS NOT NULL
        ) GROUP BY b ORDER BY b
    """).fetchall()
    return {
        "bucket_s": bucket_ms // 1000,
        "buckets": [
            {
                "start": iso(int(r[0])),
                "app": int(r[1]),
                "queue": int(r[2]),
                "missing_in_queue": int(r[3]),
                "missing_in_app": int(r[4]),
                "in_flight": int(r[5]),
            }
            for r in rows
        ],
    }


def _malformed(
    con: Any,
    counts: dict[str, int],
    app: tuple[SourceSpec, list[Path]],
    queue_files: list[Path],
    doc_problems: list[str],
    options: ParityOptions,
) -> list[str]:
    """Malformed records: counted (rejected non-UTF-8 lines too), the first few located."""
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
    limit = options.malformed_examples
    fields = options.app_fields
    if counts["malformed_app"] and app_spec.kind != "csv" and len(examples) < limit:
        examples += locate_malformed("app", app_spec.kind, app_files, fields, limit)
    if counts["malformed_queue"] and len(examples) < limit:
        examples += locate_malformed("queue", "jsonl", queue_files, fields, limit)
    seen: dict[str, None] = dict.fromkeys(examples)
    return list(seen)[:limit]
