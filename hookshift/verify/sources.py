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
import hashlib
import json
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hookshift.errors import InputError, OperationError

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
        if root.exists() and not root.is_dir():
            raise InputError(
                "is a file, not the archive directory",
                where=spec.label,
                fix="pass the --archive directory of `hookshift verify pull` (the one holding "
                "its *.jsonl segments), or --queue jsonl:FILE for one file of messages",
            )
        if not root.is_dir():
            raise InputError(
                "archive directory not found",
                where=spec.label,
                fix="pass the --archive directory of `hookshift verify pull`",
            )
        # a closed segment may be compressed (seg-....jsonl.gz); one gzip is writing still has
        # its segment beside it, which holds every message the .gz will
        plain = {p.name for p in root.glob("*.jsonl")}
        files = sorted(
            p
            for p in (*root.glob("*.jsonl"), *root.glob("*.jsonl.gz"))
            if p.is_file() and not (p.suffix == ".gz" and p.name[: -len(".gz")] in plain)
        )
        if not files:
            raise InputError(
                "archive holds no segment (*.jsonl)",
                where=spec.label,
                fix="run `hookshift verify pull` into it first",
            )
        return files
    if not glob.has_magic(spec.target) and Path(spec.target).is_dir():
        example = "parity.log*" if spec.kind == "nginx" else f"*.{spec.kind}"
        raise InputError(
            "is a directory: the source names files",
            where=spec.label,
            fix=f"name the files in it, e.g. {spec.kind}:"
            f"{os.path.join(spec.target, example)} (quoted, so that the shell leaves the glob)",
        )
    matches = sorted(glob.glob(spec.target)) if glob.has_magic(spec.target) else [spec.target]
    files = [Path(m) for m in matches if Path(m).is_file()]
    if not files:
        others = [m for m in matches if os.path.exists(m)]
        if others:  # /dev/null, a fifo, a socket: there, but nothing a parity run can read
            raise InputError(
                f"{others[0]} is not a regular file",
                where=spec.label,
                fix="name the log or export file itself (globs like *.log* work)",
            )
        raise InputError(
            "no file matches", where=spec.label, fix="check the path (globs like *.log* work)"
        )
    return files


# how long a rotated file may still be written: nginx writes to the renamed file until it
# reopens its logs, which logrotate's postrotate asks for at once
ROTATED_QUIET_S = 60.0


def live_files(files: list[Path], now: float | None = None) -> list[Path]:
    """The files of a source a writer may still be appending to. A file whose name extends
    another's (``p.log.1``, ``p.log-20261207`` beside ``p.log``) or that is compressed was
    rotated: nginx no longer writes it once it has reopened its logs (a minute at most), so a
    last line without its end there was cut short for good (a crash, a full disk)."""
    names = [str(p) for p in files]
    now = time.time() if now is None else now
    live = []
    for path, name in zip(files, names, strict=True):
        if path.suffix == ".gz":
            continue
        rotated = any(other != name and name.startswith(other) for other in names)
        if not rotated or now - path.stat().st_mtime < ROTATED_QUIET_S:
            live.append(path)
    return live


# a first line longer than this is told apart by its first 64 KiB
HEAD_BYTES = 64 * 1024


def head_identity(read: Callable[[int], bytes]) -> str | None:
    """A hash of a file's first line (`read` gives its bytes, decompressed), or None while it
    has no complete line: what tells one log from another whatever its name (`verify watch`
    follows a log through logrotate's renames by it).

    A parity-log line holds nginx's request id and time, so two files that begin with the same
    line are one log and a copy of it: logrotate's copytruncate caught while it copies, or its
    compress while gzip writes the ``.gz`` beside the file it then removes."""
    head = b""
    # in small reads that stop at the first line's end: a .gz that gzip is still writing
    # decompresses only so far, and its first line is all this needs
    while b"\n" not in head and len(head) < HEAD_BYTES:
        piece = read(min(4096, HEAD_BYTES - len(head)))
        if not piece:
            return None
        head += piece
    end = head.find(b"\n")
    first = head[:HEAD_BYTES] if end < 0 else head[:end]
    return hashlib.sha256(first).hexdigest()


def _inflating(raw: IO[bytes]) -> Callable[[int], bytes]:
    """A reader of a .gz file as far as it decompresses: Python's gzip refuses a read that
    reaches the end of a file gzip is still writing (EOFError), though its first lines are
    there."""
    inflate = zlib.decompressobj(wbits=31)

    def read(size: int) -> bytes:
        while True:
            data = inflate.unconsumed_tail or raw.read(1 << 14)
            if not data:
                return b""
            out = inflate.decompress(data, size)
            if out:
                return out

    return read


def leave_out_copies(files: list[Path]) -> tuple[list[Path], list[str]]:
    """The files of a parity log without the copies of another (`head_identity`), and a line
    naming each copy left out. The first file of each first line is read, as `verify watch`
    reads it: the sorted names put the log before its copy (``p.log`` before the ``p.log.1``
    copytruncate is writing), and the copy holds no line the log lacks; a ``.gz`` beside the
    file it compresses is left out too. Read both, every callback in them would count twice.
    A file that cannot be decompressed otherwise is kept: reading it names the damage."""
    kept: list[Path] = []
    first: dict[str, Path] = {}
    notes: list[str] = []
    names = set(files)
    for path in files:
        plain = path.with_suffix("")
        if path.suffix == ".gz" and plain in names:
            # gzip writes p.log.2.gz from p.log.2 and removes p.log.2 once done: while both
            # are there, the .gz may not even hold a whole first line yet
            notes.append(f"{path} is {plain} being compressed: left out, {plain} is read")
            continue
        try:
            with path.open("rb") as raw:
                ident = head_identity(_inflating(raw) if path.suffix == ".gz" else raw.read)
        except (OSError, zlib.error):
            ident = None
        if ident is not None and ident in first:
            notes.append(
                f"{path} begins with the same line as {first[ident]}: a copy of it (logrotate's"
                " copytruncate copying it), left out"
            )
            continue
        if ident is not None:
            first[ident] = path
        kept.append(path)
    return kept, notes


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


def _nginx_read_json(files: list[Path], uri: bool = False) -> str:
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
            content_type AS ct{", uri" if uri else ""}
        FROM (SELECT *, file_index AS f, body IS NOT NULL AND msec IS NOT NULL AS ok,
                try_cast(msec AS DOUBLE) * 1000 AS ms
              FROM {read_json_sql(files, NGINX_COLUMNS | ({"uri": "VARCHAR"} if uri else {}))})"""


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
    spec: SourceSpec,
    files: list[Path],
    fields: AppFields,
    rejects: str = "rej_app",
    *,
    uri: bool = False,
) -> str:
    """App rows: src, f (file index), ok, rid, t_ms, body, cls ('a' accepted, 'r' rejected,
    'n' not mirrored), ct; with `uri`, also the request URI (path and query) the parity log
    has, NULL for the other sources.

    DuckDB's JSON reader with typed columns where it can; raw lines and per-line extraction
    for nested (dotted) field names. `rejects` names the table of undecodable lines: a re-read
    of a few records uses another one, so that only the main scan's rejects are counted.
    """
    if spec.kind == "nginx":
        return _nginx_read_json(files, uri)
    if uri:
        return f"SELECT *, NULL::VARCHAR AS uri FROM ({app_rows_sql(spec, files, fields, rejects)})"
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
    """A file as text, a byte-order mark dropped: Excel's "CSV UTF-8" and PowerShell's
    `Out-File -Encoding utf8` begin with one, which DuckDB's readers skip too."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="\n")
    return path.open("r", encoding="utf-8-sig", errors="replace", newline="\n")


# how a document of `aws sqs receive-message` opens: a line of its own (pretty-printed, the
# CLI's default) or the Messages key (compact, `jq -c`, several documents on one line)
_DOCUMENT_OPENING = re.compile(r'\{\s*("Messages"\s*:.*)?', re.DOTALL)


def is_messages_document(path: Path) -> bool:
    """True when a queue JSONL file is really ``{"Messages": [...]}`` (AWS CLI output).

    Judged by the first line read whole (up to the longest record a reader takes): a Message
    of a large callback makes a line far longer than any fixed head, and a cut-off Message
    line must not pass for a document's opening."""
    first = ""
    with _open_text(path) as fh:
        while not first:
            line = fh.readline(JSON_RECORD_MAX + 1)
            if not line:
                break
            first = line.strip()
    if not first.startswith("{"):
        return False
    try:
        obj = json.loads(first)
    except ValueError:
        return _DOCUMENT_OPENING.fullmatch(first) is not None
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
            problems.append(
                f"{path}:{exc.lineno}: not a JSON document (unreadable at character "
                f"{exc.colno} of that line)"
            )
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


# the start of a line of nginx's `combined` (or `main`) log format: the access log given where
# the parity log was meant, the likeliest mistake with an nginx source
_ACCESS_LOG_LINE = re.compile(r'\S+ \S+ \S+ \[[^\]]+\] "')


def _line_problem(side: str, kind: str, raw: bytes, fields: AppFields) -> str | None:
    """Why a line is malformed (mirrors the ``ok`` test of the SQL above, with an app line that
    is not UTF-8 read as `repair_undecodable` gives it to that SQL), or None."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if side == "queue":  # SQS holds only UTF-8: such a line is not a message
            return f"not UTF-8 (byte {exc.start + 1})"
        line = raw.decode("utf-8", "replace")
    try:
        obj: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        if _ACCESS_LOG_LINE.match(line):
            return "a line of an access log (nginx's combined format), not JSON"
        return f"not JSON (unreadable at character {exc.pos + 1})"
    if isinstance(obj, list):
        return "a JSON array, not one JSON object per line"
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


TAIL_READ = 64 * 1024  # the step of the backward search for a file's last line
CHECK_BLOCK = 1 << 20


def as_delivered(block: bytes) -> bytes:
    """Whole lines as the queue holds their bodies: every byte sequence that is not UTF-8 made
    U+FFFD, as API Gateway and SQS make it. nginx's escape=json passes a body's bytes >= 0x80
    through as they came, so a vendor posting EUC-KR (or any bytes) writes log lines that are
    not UTF-8, while its queue copy has U+FFFD in their place. Valid UTF-8 comes back as is."""
    try:
        block.decode("utf-8")
        return block
    except UnicodeDecodeError:
        return block.decode("utf-8", "replace").encode("utf-8")


def _undecodable_lines(block: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of each line of `block` (whole lines) that is not UTF-8: the decoder
    (in C) runs from just past each such line to the next, so a block of UTF-8 costs one
    decode and a few bad lines among many cost about one more, not a Python loop per line."""
    view = memoryview(block)
    start = 0
    while start < len(block):
        try:
            str(view[start:], "utf-8")
            return
        except UnicodeDecodeError as exc:
            bad = start + exc.start
        line_start = block.rfind(b"\n", 0, bad) + 1
        line_end = block.find(b"\n", bad)
        line_end = len(block) if line_end < 0 else line_end
        yield line_start, block[line_start:line_end]
        start = line_end + 1


def repair_undecodable(files: list[Path], out_dir: Path) -> list[tuple[Path, Path, list[int]]]:
    """The lines of `files` that are not UTF-8, as `as_delivered` makes them, one copy per file
    that has them in `out_dir`: (the file, its copy, the numbers of those lines). DuckDB's
    readers cannot take such a line at all, so parity reads the copies beside the files.

    Checked a block of whole lines at a time (`_undecodable_lines`: a block of UTF-8, the
    common case, costs one decode in C)."""
    out: list[tuple[Path, Path, list[int]]] = []
    for index, path in enumerate(files):
        numbers: list[int] = []
        copy = out_dir / f"as-delivered-{index}.jsonl"
        opener: Any = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh, copy.open("wb") as sink:
            pending, seen = b"", 0
            while True:
                chunk = fh.read(CHECK_BLOCK)
                data = pending + chunk
                # whole lines only: a last line without its end is judged as it is (torn)
                cut = data.rfind(b"\n") + 1
                block, pending = data[:cut], data[cut:]
                for offset, line in _undecodable_lines(block):
                    numbers.append(seen + block.count(b"\n", 0, offset) + 1)
                    sink.write(as_delivered(line) + b"\n")
                seen += block.count(b"\n")
                if not chunk:
                    break
        if numbers:
            out.append((path, copy, numbers))
        else:
            copy.unlink()
    return out


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
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return None
        # the whole last line, however long (a record of a 1 MB callback is a whole record
        # too), up to the longest record the reader takes: a longer line is no record
        pos = size
        while pos > 0 and size - pos <= JSON_RECORD_MAX:
            start = max(0, pos - TAIL_READ)
            fh.seek(start)
            newline = fh.read(pos - start).rfind(b"\n")
            if newline >= 0:
                pos = start + newline + 1
                break
            pos = start
        fh.seek(pos)
        last = fh.read()
    if not last.strip():
        return None
    try:
        json.loads(last)
        return None  # a whole record without its newline: read like any other
    except ValueError:
        pass
    with path.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) + 1


def _malformed_lines(
    side: str, kind: str, files: list[Path], fields: AppFields
) -> Iterator[tuple[Path, int, str | None]]:
    """Every non-blank line of the files with why it is malformed (None: a record)."""
    for path in files:
        for number, line in iter_lines(path):
            if line:
                yield path, number, _line_problem(side, kind, line, fields)


def locate_malformed(
    side: str, kind: str, files: list[Path], fields: AppFields, limit: int
) -> list[str]:
    """The first `limit` malformed lines as ``file:line: why`` (a scan that stops early)."""
    found: list[str] = []
    for path, number, problem in _malformed_lines(side, kind, files, fields):
        if problem:
            found.append(f"{path}:{number}: {problem}")
            if len(found) >= limit:
                break
    return found


SHAPES = {
    "queue": "one SQS message per line, a JSON object with MessageId and Body (what `hookshift "
    "verify pull` archives, or the Messages of `aws sqs receive-message`)",
    "nginx": "hookshift's parity log: one JSON object per line, written by the hookshift_parity "
    "log_format that `hookshift mirror apply` adds",
    "jsonl": "one JSON object per line, its body in the field --app-body-field names",
}


def check_some_record(
    side: str,
    spec: SourceSpec,
    files: list[Path],
    fields: AppFields,
    skip: frozenset[tuple[Path, int]] = frozenset(),
) -> None:
    """Refuse a source none of whose lines is a record (a JSON array given as JSONL, another
    log): its callbacks would all count as lost, when in truth it could not be read. Stops at
    the first record; `skip` holds lines that are not judged (one nginx is still writing)."""
    first: tuple[Path, int, str] | None = None
    for path, number, problem in _malformed_lines(side, spec.kind, files, fields):
        if problem is None:
            return
        if first is None and (path, number) not in skip:
            first = (path, number, problem)
    if first is None:
        return
    path, number, problem = first
    shape = SHAPES["queue" if side == "queue" else spec.kind]
    raise InputError(
        f"no record of {spec.label} could be read; the first line: {problem}",
        where=f"{path}:{number}",
        fix=f"give --{side} a source of {shape}",
    )


# how far the key probe reads past lines that are not records (junk, a torn line) before it
# gives up on a side
PROBE_LINES_MAX = 100_000


def carries_request_ids(
    side: str, kind: str, files: list[Path], fields: AppFields, records: int = 1000
) -> bool | None:
    """Whether the first records of a source carry request ids (as the row SQL reads them),
    read in Python: choosing the default key then costs no DuckDB scan. None for CSV, and for
    a source that holds no record yet (a parity log nginx has just created): it says nothing
    about the records to come.

    The files are read in order until records turn up: right after logrotate the first file
    (the live log, which sorts first) is empty and the rotated ones hold the records."""
    if kind == "csv":
        return None
    if side == "queue":
        paths = [
            ["MessageAttributes", "nginx_request_id", "StringValue"],
            ["MessageAttributes", "hookshift_replay", "StringValue"],
        ]
    else:
        paths = [["request_id"] if kind == "nginx" else fields.request_id.split(".")]
    seen, lines = 0, 0
    for path in files:
        with _open_text(path) as fh:
            for line in fh:
                lines += 1
                if lines > PROBE_LINES_MAX:
                    return False
                try:
                    obj: Any = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(obj, dict):
                    continue
                if any(_dig(obj, path) not in (None, "") for path in paths):
                    return True
                seen += 1
                if seen >= records:
                    return False
    return False if seen else None


def first_bodies(
    side: str, kind: str, files: list[Path], fields: AppFields, n: int = 50
) -> list[str]:
    """The bodies of the first `n` records of a source (what a key error's fix looks at)."""
    if kind == "csv":
        return []
    path = ["Body"] if side == "queue" else ["body"] if kind == "nginx" else fields.body.split(".")
    bodies: list[str] = []
    for name in files:
        with _open_text(name) as fh:
            for line in fh:
                try:
                    obj: Any = json.loads(line)
                except ValueError:
                    continue
                body = _dig(obj, path)
                if isinstance(body, str) and body:
                    bodies.append(body)
                    if len(bodies) >= n:
                        return bodies
    return bodies


def _dig(obj: Any, path: list[str]) -> Any:
    """``obj[a][b]...`` for a dotted field name, None where a step is missing."""
    for seg in path:
        obj = obj.get(seg) if isinstance(obj, dict) else None
    return obj


# --------------------------------------------------------------------------- unreadable inputs


GZIP_MAGIC = b"\x1f\x8b"


def gzip_problem(path: Path) -> tuple[str, str] | None:
    """What is wrong with a ``.gz`` file and how to fix it, in the words of the person who has
    to; None when it decompresses whole. Reads it all: only for an error already seen.

    zlib is driven member by member (not through `gzip`) so that the place of the damage is
    exact: the lines before it came out whole."""
    lines = members = produced = 0
    started = False  # a member begun and not ended yet
    inflate = zlib.decompressobj(wbits=31)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            data = block
            while data:
                if not started and members and not data.startswith(GZIP_MAGIC):
                    if data.strip(b"\0"):  # zeros pad a tape block; anything else is junk
                        return (
                            f"bytes that are not gzip follow its compressed data "
                            f"(after line {lines})",
                            f"read it from a copy without them (`zcat {path} > FILE` keeps the "
                            "data), or leave it out of the source",
                        )
                    break
                started = True
                try:
                    out = inflate.decompress(data)
                except zlib.error:
                    if members == 0 and produced == 0 and not block.startswith(GZIP_MAGIC):
                        return (
                            "not a gzip file, though its name ends in .gz",
                            "decompress or rename it, or leave it out of the source",
                        )
                    return f"its compressed data is damaged {_after(lines)}", _RESTORE
                lines += out.count(b"\n")
                produced += len(out)
                data = b""
                if inflate.eof:
                    members, started = members + 1, False
                    data = inflate.unused_data
                    inflate = zlib.decompressobj(wbits=31)
    if started:
        return f"the compressed file is truncated {_after(lines)}", _RESTORE
    return None


_RESTORE = "restore it from a backup, or leave it out of the source (a narrower glob)"


def _after(lines: int) -> str:
    return f"after line {lines}" if lines else "before its first line ends"


def _damaged_gzip(named: str | None, specs: tuple[SourceSpec, ...]) -> InputError:
    """The error for a compressed input that does not decompress: the file DuckDB named, else
    the first damaged ``.gz`` among the sources' files."""
    candidates = [Path(named)] if named else []
    for spec in specs:
        if spec.kind != "sqs":
            try:
                candidates += [p for p in resolve_files(spec) if p.suffix == ".gz"]
            except InputError:
                continue
    for path in candidates:
        found = gzip_problem(path) if path.is_file() else None
        if found is not None:
            return InputError(found[0], where=str(path), fix=found[1])
    return InputError(
        "a compressed input is truncated or damaged",
        where=named,
        fix="check the .gz files with `gzip -t`; leave out the damaged one",
    )


def first_line_longer_than(path: Path, limit: int) -> int | None:
    """The number of the first line of `path` longer than `limit` bytes (None: none is)."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    number, length = 1, 0  # the line being read, and its bytes so far
    with opener(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            parts = chunk.split(b"\n")
            if length + len(parts[0]) > limit:
                return number
            if len(parts) == 1:
                length += len(parts[0])
                continue
            for index, part in enumerate(parts[1:], 1):
                if len(part) > limit:
                    return number + index
            number += len(parts) - 1
            length = len(parts[-1])
    return None


def _first_line(text: str) -> str:
    """The first line of a DuckDB error, without its ``IO Error:`` label."""
    lines = text.strip().splitlines()
    return re.sub(r"^[A-Za-z ]+ Error: ", "", lines[0]) if lines else "unreadable input"


@contextmanager
def unreadable_as_input_error(*specs: SourceSpec) -> Iterator[None]:
    """Inputs DuckDB or gzip cannot read (a damaged .gz, a record larger than the JSON reader
    takes) as one line naming the file, instead of the library's error; the files of `specs`
    are where a damaged .gz is looked for when the library does not name it."""
    import duckdb

    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error):
        raise _damaged_gzip(None, specs) from None
    except duckdb.InvalidInputException as exc:
        text = str(exc)
        if "maximum_object_size" not in text:
            raise InputError(_first_line(text), fix="check the input files") from None
        found = re.search(r'reading file "([^"]+)"', text)
        where = found.group(1) if found else None
        line = None
        if where is not None and Path(where).is_file():
            line = first_line_longer_than(Path(where), JSON_RECORD_MAX)
        raise InputError(
            f"a record is larger than {JSON_RECORD_MAX // (1 << 20)} MiB: no callback is that big",
            where=where if line is None else f"{where}:{line}",
            fix="remove that line"
            if line is not None
            else "remove that line (find it with `awk 'length > 16000000 {print NR}' FILE`)",
        ) from None
    except duckdb.IOException as exc:
        text = _first_line(str(exc))
        if "GZIP" in text or "gzip" in text:
            named = re.search(r"GZIP stream: (.+)$", text)
            raise _damaged_gzip(named.group(1) if named else None, specs) from None
        raise InputError(text, fix="check that the input files are readable") from None
    except duckdb.OutOfMemoryException:
        raise OperationError(
            "the comparison ran out of memory (fix: raise --memory-limit or give --temp-dir)"
        ) from None
    except (duckdb.InterruptException, RuntimeError) as exc:
        # Ctrl-C (or SIGTERM, which the command turns into it) inside a query comes back
        # from DuckDB as its own error: it is the interrupt, not a failure of the inputs
        if isinstance(exc, duckdb.InterruptException) or str(exc) == "Query interrupted":
            raise KeyboardInterrupt from None
        raise
