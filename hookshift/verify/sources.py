"""Where the two sides of a parity check come from, as DuckDB relations with one shape.

Every source becomes rows of ``src, ok, rid, t_ms, body, cls`` (plus ``mid`` and ``replay`` on
the queue side) so that matching is one SQL query whatever produced the data:

- app side: ``nginx:PATH`` (hookshift's parity log, docs/contracts.md §1; globs and rotated
  ``.gz``), ``jsonl:PATH`` and ``csv:PATH`` (the app's own export);
- queue side: ``archive:DIR`` (``hookshift verify pull``'s archive), ``jsonl:PATH`` (Message
  objects as the AWS CLI prints them), ``sqs:URL`` (pulled into a temporary archive first).

Line-oriented files are read as raw lines (``read_csv`` with a delimiter that valid JSON cannot
contain), so a malformed line is counted instead of stopping the scan; DuckDB's rejects table
gives file:line for lines that are not even UTF-8, and `locate_malformed` finds the others.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hookshift.errors import InputError

APP_KINDS = ("nginx", "jsonl", "csv")
# the largest record the JSON reader takes (DuckDB's default, stated so errors can name it): a
# callback is kilobytes, and a larger limit costs every reader thread its buffer
JSON_RECORD_MAX = 16 * 1024 * 1024
QUEUE_KINDS = ("sqs", "archive", "jsonl")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``KIND:TARGET`` source argument."""

    side: str  # "app" | "queue"
    kind: str
    target: str

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.target}"

    @property
    def absolute_label(self) -> str:
        """The label with a file path made absolute: a report read later (by ``verify heal``,
        from another directory) must find the same files."""
        if self.kind == "sqs":
            return self.label
        return f"{self.kind}:{os.path.abspath(self.target)}"


@dataclass(frozen=True)
class AppFields:
    """Field (or column) names of the app's own export (``jsonl:`` and ``csv:`` app sources)."""

    body: str = "body"
    request_id: str = "request_id"
    time: str = "time"


def parse_source(text: str, side: str) -> SourceSpec:
    kinds = APP_KINDS if side == "app" else QUEUE_KINDS
    kind, sep, target = text.partition(":")
    if not sep or kind not in kinds or not target:
        raise InputError(
            f"bad {side} source {text!r}",
            where=f"--{side}",
            fix="write one of " + ", ".join(f"{k}:..." for k in kinds),
        )
    if kind == "sqs":
        from hookshift.verify.pull import check_queue_url

        check_queue_url(target, option=f"--{side}")
    return SourceSpec(side, kind, target)


def resolve_files(spec: SourceSpec) -> list[Path]:
    """The files a source reads, sorted; an InputError when there are none."""
    if spec.kind == "archive":
        root = Path(spec.target)
        if not root.is_dir():
            raise InputError(
                "archive directory not found",
                where=spec.label,
                fix="pass the --archive directory of `hookshift verify pull`",
            )
        files = sorted(p for p in root.glob("*.jsonl") if p.is_file())
        if not files:
            raise InputError(
                "archive holds no segment (*.jsonl)",
                where=spec.label,
                fix="run `hookshift verify pull` into it first",
            )
        return files
    matches = sorted(glob.glob(spec.target)) if glob.has_magic(spec.target) else [spec.target]
    files = [Path(m) for m in matches if Path(m).is_file()]
    if not files:
        raise InputError(
            "no file matches", where=spec.label, fix="check the path (globs like *.log* work)"
        )
    return files


def sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_list(files: list[Path]) -> str:
    return "[" + ", ".join(sql_str(str(f)) for f in files) + "]"


def lines_sql(files: list[Path], rejects: str) -> str:
    """Raw lines (``filename, line``) of text files, gzip or not, that never fail on content."""
    return (
        f"read_csv({_file_list(files)}, columns={{'line': 'VARCHAR'}}, delim=E'\\x1f', "
        "quote='', escape='', header=false, auto_detect=false, filename=true, "
        f"strict_mode=false, store_rejects=true, rejects_table={sql_str(rejects)}, "
        f"rejects_scan={sql_str(rejects + '_scan')})"
    )


QUEUE_COLUMNS = {
    "MessageId": "VARCHAR",
    "Body": "VARCHAR",
    "Attributes": "STRUCT(SentTimestamp VARCHAR)",
    "MessageAttributes": "STRUCT(nginx_request_id STRUCT(StringValue VARCHAR), "
    "hookshift_replay STRUCT(StringValue VARCHAR))",
}
NGINX_COLUMNS = {
    name: "VARCHAR" for name in ("request_id", "msec", "body", "upstream_status", "content_type")
}


def read_json_sql(files: list[Path], columns: dict[str, str]) -> str:
    """DuckDB's JSON reader with only the needed fields typed (the fastest full scan).

    With ignore_errors a line that is not JSON (torn, not UTF-8, raw control characters)
    becomes a row of NULLs, so it is still counted: as malformed, by the callers' ``ok``.
    """
    spec = ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in columns.items())
    return (
        f"read_json({_file_list(files)}, format='newline_delimited', columns={{{spec}}}, "
        f"ignore_errors=true, filename=true, maximum_object_size={JSON_RECORD_MAX})"
    )


def _nginx_read_json(files: list[Path]) -> str:
    # upstream_status is empty (or "-") when nginx answered itself: the mirror never ran.
    # Otherwise its last value ("502, 200" on retries) is what the app finally answered. The
    # common answer is tested first: trim() on every line cost 5% of the app side's scan
    # (instructions counted with callgrind, one thread).
    return f"""
        SELECT filename AS src, f, ok, request_id AS rid,
            CASE WHEN ok AND ms BETWEEN 0 AND {MS_MAX} THEN round(ms)::BIGINT END AS t_ms,
            body,
            CASE WHEN NOT ok THEN NULL
                 WHEN upstream_status LIKE '2__' THEN 'a'
                 WHEN coalesce(trim(upstream_status), '') IN ('', '-') THEN 'n'
                 WHEN regexp_extract(upstream_status, '([0-9]{{3}})\\s*$', 1) LIKE '2__' THEN 'a'
                 ELSE 'r' END AS cls,
            content_type AS ct
        FROM (SELECT *, file_index AS f, body IS NOT NULL AND msec IS NOT NULL AS ok,
                try_cast(msec AS DOUBLE) * 1000 AS ms
              FROM {read_json_sql(files, NGINX_COLUMNS)})"""


def _jsonl_read_json(files: list[Path], fields: AppFields) -> str:
    names = dict.fromkeys((fields.body, fields.request_id, fields.time))
    columns = {name: "VARCHAR" for name in names}
    col = _csv_col
    return f"""
        SELECT filename AS src, f, ok, {col(fields.request_id)} AS rid,
            {time_ms_sql(col(fields.time))} AS t_ms, {col(fields.body)} AS body,
            CASE WHEN ok THEN 'a' END AS cls, NULL::VARCHAR AS ct
        FROM (SELECT *, file_index AS f, {col(fields.body)} IS NOT NULL AS ok
              FROM {read_json_sql(files, columns)})"""


def time_ms_sql(expr: str) -> str:
    """Epoch milliseconds from ISO 8601 or epoch seconds/milliseconds (as text)."""
    num = f"try_cast({expr} AS DOUBLE)"
    # try_cast: a time out of BIGINT's range (1e20) is no time, not an error of the whole scan
    return sane_ms(
        f"CASE WHEN {num} IS NULL THEN epoch_ms(try_cast({expr} AS TIMESTAMPTZ)) "
        f"WHEN abs({num}) >= 1e11 THEN try_cast(round({num}) AS BIGINT) "
        f"ELSE try_cast(round({num} * 1000) AS BIGINT) END"
    )


# epoch milliseconds of 1970-01-01 .. 9999-12-31: a time outside is no time (sums and
# differences of times stay far from BIGINT's end, and every one can be shown as a date)
MS_MAX = 253_402_300_799_999


def sane_ms(expr: str) -> str:
    return f"(CASE WHEN ({expr}) BETWEEN 0 AND {MS_MAX} THEN ({expr}) END)"


def _json_path(field: str) -> str:
    return "$" + "".join('."' + s.replace('"', '\\"') + '"' for s in field.split("."))


def _extract(paths: list[str]) -> str:
    """One parse per line: the listed paths as strings; NULL for a line that is not JSON."""
    listed = ", ".join(sql_str(p) for p in paths)
    return f"try(json_extract_string(line, [{listed}]))"


# not trim(): on long lines it costs more than the JSON parse; blank lines are rare
NONEMPTY_LINE = "line IS NOT NULL AND line <> ''"


def app_rows_sql(
    spec: SourceSpec, files: list[Path], fields: AppFields, rejects: str = "rej_app"
) -> str:
    """App rows: src, f (file index), ok, rid, t_ms, body, cls ('a' accepted, 'r' rejected,
    'n' not mirrored).

    DuckDB's JSON reader with typed columns where it can; raw lines and per-line extraction
    for nested (dotted) field names. `rejects` names the table of undecodable lines: a re-read
    of a few records uses another one, so that only the main scan's rejects are counted.
    """
    if spec.kind == "nginx":
        return _nginx_read_json(files)
    if spec.kind == "jsonl" and "." not in fields.body + fields.time + fields.request_id:
        return _jsonl_read_json(files, fields)
    source = lines_sql(files, rejects)
    if spec.kind == "jsonl":
        v = _extract([_json_path(f) for f in (fields.request_id, fields.time, fields.body)])
        return f"""
            SELECT src, f, ok, v[1] AS rid, {time_ms_sql("v[2]")} AS t_ms, v[3] AS body,
                CASE WHEN ok THEN 'a' END AS cls, NULL::VARCHAR AS ct
            FROM (
                SELECT src, f, v, v IS NOT NULL AND v[3] IS NOT NULL AS ok
                FROM (SELECT filename AS src, file_index AS f, {v} AS v FROM {source}
                      WHERE {NONEMPTY_LINE})
            )"""
    # csv: the app's own table export, with a header row naming the columns
    col = _csv_col
    return f"""
        SELECT filename AS src, file_index AS f, {col(fields.body)} IS NOT NULL AS ok,
            {col(fields.request_id)} AS rid, {time_ms_sql(col(fields.time))} AS t_ms,
            {col(fields.body)} AS body,
            CASE WHEN {col(fields.body)} IS NOT NULL THEN 'a' END AS cls, NULL::VARCHAR AS ct
        FROM read_csv({_file_list(files)}, header=true, all_varchar=true, filename=true,
            store_rejects=true, rejects_table={sql_str(rejects)},
            rejects_scan={sql_str(rejects + "_scan")})"""


def _csv_col(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def csv_columns(files: list[Path]) -> list[str]:
    """Header names of the first CSV file (to fail early on a wrong --app-*-field)."""
    import csv

    with _open_text(files[0]) as fh:
        return next(csv.reader(fh), [])


def queue_rows_sql(files: list[Path]) -> str:
    """Queue rows from Message-per-line JSONL: src, f (file index), ok, mid, rid, replay, t_ms,
    body."""
    return f"""
            SELECT filename AS src, file_index AS f,
                MessageId IS NOT NULL AND Body IS NOT NULL AS ok,
                MessageId AS mid,
                coalesce(nullif(MessageAttributes.nginx_request_id.StringValue, ''),
                         nullif(MessageAttributes.hookshift_replay.StringValue, '')) AS rid,
                nullif(MessageAttributes.hookshift_replay.StringValue, '') AS replay,
                CASE WHEN ts BETWEEN 0 AND {MS_MAX} THEN ts END AS t_ms, Body AS body
            FROM (SELECT *, file_index, try_cast(Attributes.SentTimestamp AS BIGINT) AS ts
                  FROM {read_json_sql(files, QUEUE_COLUMNS)})"""


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="\n")
    return path.open("r", encoding="utf-8", errors="replace", newline="\n")


def is_messages_document(path: Path) -> bool:
    """True when a queue JSONL file is really ``{"Messages": [...]}`` (AWS CLI output)."""
    with _open_text(path) as fh:
        head = fh.read(4096).lstrip()
    if not head.startswith("{"):
        return False
    first_line = head.split("\n", 1)[0].strip()
    try:
        obj = json.loads(first_line)
    except ValueError:
        return True  # a pretty-printed document spans lines
    return isinstance(obj, dict) and "Messages" in obj


def messages_documents_to_jsonl(path: Path, out: IO[str]) -> list[str]:
    """Flatten one or more concatenated ``{"Messages": [...]}`` documents into JSONL lines.

    Returns the problems found (``file:#index: what``); the messages that are fine are written.
    """
    problems: list[str] = []
    with _open_text(path) as fh:
        text = fh.read()
    decoder = json.JSONDecoder()
    pos, doc_no = 0, 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        doc_no += 1
        line_no = text.count("\n", 0, pos) + 1
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{line_no}: not a JSON document ({exc.msg})")
            break
        messages = doc.get("Messages") if isinstance(doc, dict) else None
        if not isinstance(messages, list):
            problems.append(f"{path}:{line_no}: document {doc_no} has no Messages list")
            continue
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("MessageId"), str):
                problems.append(f"{path}:{line_no}: Messages[{index}] is not a Message")
                continue
            out.write(json.dumps(message, ensure_ascii=False) + "\n")
    return problems


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            yield number, line.rstrip(b"\n")


def _line_problem(side: str, kind: str, raw: bytes, fields: AppFields) -> str | None:
    """Why a line is malformed (mirrors the ``ok`` test of the SQL above), or None."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 (byte {exc.start + 1})"
    try:
        obj: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg})"
    if not isinstance(obj, dict):
        return "not a JSON object"
    if side == "queue":
        for name in ("MessageId", "Body"):
            if not isinstance(obj.get(name), str):
                return f"no string {name}"
        return None
    if kind == "nginx":
        if not isinstance(obj.get("body"), str):
            return "no string body (is this hookshift's parity log?)"
        if "msec" not in obj:
            return "no msec"
        return None
    return None if _dig(obj, fields.body.split(".")) is not None else f"no {fields.body} field"


TAIL_READ = 64 * 1024  # enough for a callback; a longer unfinished line is one too


def unfinished_last_line(path: Path) -> int | None:
    """The number of `path`'s last line when it has no newline yet and is not a whole JSON
    record: nginx is still writing it (a reader caught it half-way). None otherwise, and for
    compressed files (rotated ones, complete)."""
    if path.suffix == ".gz":
        return None
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        if size == 0:
            return None
        fh.seek(max(0, size - TAIL_READ))
        tail = fh.read()
    if tail.endswith(b"\n"):
        return None
    last = tail.rpartition(b"\n")[2]
    if not last.strip():
        return None
    try:
        json.loads(last)
        return None  # a whole record without its newline: read like any other
    except ValueError:
        pass
    with path.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) + 1


def locate_malformed(
    side: str, kind: str, files: list[Path], fields: AppFields, limit: int
) -> list[str]:
    """The first `limit` malformed lines as ``file:line: why`` (a scan that stops early)."""
    found: list[str] = []
    for path in files:
        for number, line in iter_lines(path):
            if not line:
                continue
            problem = _line_problem(side, kind, line, fields)
            if problem:
                found.append(f"{path}:{number}: {problem}")
                if len(found) >= limit:
                    return found
    return found


def carries_request_ids(
    side: str, kind: str, files: list[Path], fields: AppFields, lines: int = 1000
) -> bool | None:
    """Whether the first records of a source carry request ids (as the row SQL reads them),
    read in Python: choosing the default key then costs no DuckDB scan. None for CSV."""
    if kind == "csv":
        return None
    if side == "queue":
        paths = [
            ["MessageAttributes", "nginx_request_id", "StringValue"],
            ["MessageAttributes", "hookshift_replay", "StringValue"],
        ]
    else:
        paths = [["request_id"] if kind == "nginx" else fields.request_id.split(".")]
    with _open_text(files[0]) as fh:
        for _, line in zip(range(lines), fh, strict=False):
            try:
                obj: Any = json.loads(line)
            except ValueError:
                continue
            if any(_dig(obj, path) not in (None, "") for path in paths):
                return True
    return False


def _dig(obj: Any, path: list[str]) -> Any:
    """``obj[a][b]...`` for a dotted field name, None where a step is missing."""
    for seg in path:
        obj = obj.get(seg) if isinstance(obj, dict) else None
    return obj
