"""``hookshift verify watch``: keep the parity result current while the parity log and the
archive grow, at a cost per update that depends on what is new, not on the history.

An update reads the new complete lines of each file and turns them into parity's narrow rows
with parity's own SQL (verify/tally.py's create_rows). The state (SQLite, in a directory) keeps
every keyed row, running sums of what parity counts over all keys, the lags, and the app-only
keys by time. The keys the new lines mention are the only ones looked at: their old rows are
fetched by index, their part of the sums is computed with parity's per-key detail, classes and
counts (`create_detail`, `class_sql`, `class_counts`) and taken out, then the same over their old
and new rows together is put back; the rows, the sums and the new offsets are committed in one
transaction (a kill at any point leaves them as they were). The one class that depends on the
window's end, in flight, is an app-only key (accepted, or only rejected) within the grace of
the window's end: a range on the index of the app-only keys' times, so only keys near the edge
are counted. The result is a one-shot parity over the same files, without reading them again
and without a pass over the history.

A file is known by its first line (a parity-log line holds the request id and nginx's time, an
archive line the MessageId), not by its name or inode: a log renamed by logrotate (.log ->
.log.1), compressed (.log.2.gz) or recreated after copytruncate is recognised, and only what
follows the part already read is read.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import os
import sqlite3
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from hookshift.durable import exclusive_lock
from hookshift.errors import InputError, OperationError
from hookshift.verify.canonical import canonical
from hookshift.verify.follow import read_json_state
from hookshift.verify.keys import KeySpec, parse_key, resolve_key
from hookshift.verify.parity import (
    COUNT_KEYS,
    KEY_TIME,
    TIMELINE_BARS_MAX,
    ParityOptions,
    ParityReport,
    bucket_label,
    check_options,
    class_sql,
    clock_warning,
    detail_lags,
    flight_edge,
    in_flight_latest,
    iso,
    key_contradicted,
    key_warning,
    lacking_key,
    lag_summary,
    no_key_error,
    on_bulk,
    on_the_bulk,
    queue_read_at,
    side_windows,
    stale_drain_warning,
    stray_warning,
    timeline_bucket_s,
    verdict_for,
    window_skew_warning,
)
from hookshift.verify.parity import class_counts as parity_counts
from hookshift.verify.private import SQLITE_COMPANIONS, connect_private, make_dirs, write_private
from hookshift.verify.sources import (
    SourceSpec,
    app_rows_sql,
    as_delivered,
    carries_request_ids,
    first_bodies,
    head_identity,
    live_files,
    parse_source,
    queue_rows_sql,
    resolve_files,
)
from hookshift.verify.tally import (
    APP_ACCEPTED,
    APP_BAD,
    BY_REQUEST_ID_BIT,
    IS_QUEUE,
    PLAIN_COPY,
    QUEUE_BAD,
    SEEN,
    Bulk,
    C,
    Spread,
    add_span,
    create_detail,
    create_rows,
    null_counts,
)

if TYPE_CHECKING:
    from hookshift.verify.metrics import Family

DB_NAME = "watch.sqlite"
STATE_NAME = "watch-state.json"
LOCK_NAME = ".watch.lock"
# new bytes a side per round of an update: bounds a first update's memory over a long
# history (larger rounds grew it faster than they saved time)
READ_BUDGET = 16 * 1024 * 1024
STATE_CACHE_KIB = 128 * 1024
CANON_CHUNK = 50_000  # bodies brought into Python at once for their canonical hash
# the version of parity's per-key rules a state directory's sums were made with (meta 'rules');
# 2: a key the app only rejected, with no copy in the queue, is missing_in_queue, and rejected
# records count for the newest and the oldest record; 3: a record without the key is matched by
# its request id (and kept), and an app line that is not UTF-8 is read as the queue got it; 4: an
# empty body is the same callback as `{}` (what API Gateway sends SQS for it)
RULES = "4"
# parity's options (samples, fetching and sqs: sources aside, which a watch has no use for);
# a long-running process gets a smaller DuckDB memory limit than a one-shot run
WATCH_OPTIONS = ParityOptions(memory_limit="512MB")


@dataclass
class WatchState:
    """The watched parity result: what `watch-state.json` holds and a cut-over reads."""

    verdict: str
    reason: str
    key: str
    counts: dict[str, int]
    lag_ms: dict[str, int | None]
    window: dict[str, Any]
    sources: dict[str, str]
    updated_at: float
    new_bytes: dict[str, int] = field(default_factory=dict)  # read by the last update
    update_s: float = 0.0
    warnings: list[str] = field(default_factory=list)  # parity's: records without the key, clocks

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_state(path: Path) -> WatchState | None:
    """The watched result in `path` (a state directory or its watch-state.json), or None when
    there is none yet; what the cut-over's parity gates read."""
    return read_json_state(path / STATE_NAME if path.is_dir() else path, WatchState)


# --------------------------------------------------------------------------- reading new bytes


def _open_binary(path: Path) -> IO[bytes]:
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return path.open("rb")
    except PermissionError:
        raise InputError(
            "cannot read it (permission denied)",
            where=str(path),
            fix="run the watch as a user who may read nginx's logs (root, or one in group adm)",
        ) from None


# what Python's gzip raises for a .gz that gzip is still writing (its end not there yet)
_GZIP_UNFINISHED = (EOFError, zlib.error, gzip.BadGzipFile)


def file_identity(path: Path) -> str | None:
    """What tells the file apart from the others (sources.head_identity), or None while it has
    no complete line: also a .gz that gzip has only begun to write (logrotate's compress),
    whose first line does not decompress yet; the file it compresses is beside it."""
    with _open_binary(path) as fh:
        try:
            return head_identity(fh.read)
        except _GZIP_UNFINISHED:
            return None


def read_new(
    path: Path,
    offset: int,
    out: IO[bytes],
    budget: int | None = None,
    *,
    final: bool = False,
    delivered: bool = False,
) -> int:
    """Copy the complete lines of `path` after byte `offset` (of its decompressed content) to
    `out`, stopping at a line end once `budget` bytes are copied; returns the new offset. A
    torn last line is left for the next update, unless the file is `final` (rotated: nobody
    will finish it), when it is copied as a line of its own, to be counted malformed. With
    `delivered`, lines that are not UTF-8 are copied as the queue got their bodies
    (sources.as_delivered), as parity reads them."""
    with _open_binary(path) as fh, contextlib.suppress(*_GZIP_UNFINISHED):
        # a .gz gzip is still writing is read as far as it goes, in whole lines; the rest is
        # read at a later update, from the offset returned
        position = offset
        fh.seek(offset)
        pending = b""
        while chunk := fh.read(1 << 20):
            data = pending + chunk
            cut = data.rfind(b"\n") + 1
            out.write(as_delivered(data[:cut]) if delivered else data[:cut])
            position += cut
            pending = data[cut:]
            if budget is not None and position - offset >= budget:
                return position
        if final and pending:
            out.write((as_delivered(pending) if delivered else pending) + b"\n")
            position += len(pending)
    return position


# --------------------------------------------------------------------------- the database

# SQLite holds integers as signed 64 bits; DuckDB's hashes are unsigned: shifted by 2^63 on the
# way in and back on the way out (a bijection, which is all a hash needs)
_SHIFT = 1 << 63
_RESULT_COUNTS = (*COUNT_KEYS, "malformed_app", "malformed_queue")
TIMELINE = ("app", "queue", "missing_in_queue", "missing_in_app", "in_flight")
# the timeline's counts are kept per minute, and per second while the records span so little
# that parity's timeline may choose a bucket under a minute (the span only grows: once past
# this, the seconds are dropped for good)
SECOND, MINUTE = 1000, 60_000
SECONDS_SPAN_MS = TIMELINE_BARS_MAX * MINUTE


def _signed(col: str) -> str:
    return f"({col}::HUGEINT - {_SHIFT})::BIGINT"


def _unsigned(col: str) -> str:
    return f"({col}::HUGEINT + {_SHIFT})::UBIGINT"


# keys nginx passed to the app that the queue has not seen, by the key's app time (parity's
# KEY_TIME), and whether the app only rejected them: those within the grace of the window's end
# are in flight, found by a range on the index
_PENDING = "pending (hk INTEGER PRIMARY KEY, ta INTEGER NOT NULL, rejected INTEGER NOT NULL)"


def _open_state(path: Path) -> sqlite3.Connection:
    """The state: SQLite, because an update looks up and rewrites a few keys among millions,
    which a B-tree does in time that does not grow with the table (DuckDB rewrites a table's
    index at every checkpoint and has no cheaper way to find a few rows than a scan)."""
    db = connect_private(path)
    try:
        db.execute("PRAGMA journal_mode = WAL")
    except sqlite3.DatabaseError as exc:
        db.close()
        if _system_refused(exc):  # a full disk is no damage: the state is kept as it is
            raise OperationError(state_unwritable(path.parent, exc)) from None
        raise InputError(
            "is not the watch's state (a damaged file, or another one)",
            where=str(path),
            fix="move the state directory away and give --state a new one (the watch reads "
            "the logs and the archive again from their start)",
        ) from None
    try:
        _prepare_state(db)
    except sqlite3.OperationalError as exc:
        db.close()
        raise OperationError(state_unwritable(path.parent, exc)) from None
    return db


# how the line of a file the watch could not write begins (`state_unwritable`, `_unwritable`)
UNWRITABLE = "cannot write "
# SQLite's names for a write the system refused (a full disk, an I/O error, a read-only
# mount, a file it may not create), as opposed to a file that is no database of the watch's
_SYSTEM_REFUSALS = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY")


def _system_refused(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed because the system refused a write, not because of the file."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    return name.startswith(_SYSTEM_REFUSALS)


# errnos of a write the system refused: the disk or the quota full, a read-only mount, an
# I/O error; and no permission, for a file in the state directory
_REFUSED_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
_FORBIDDEN_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


def system_refusal(state_dir: Path, exc: BaseException) -> str | None:
    """The line for an update the system did not let the watch keep (`state_unwritable`), or
    None when `exc` is something else (a bug, which is not to be hidden behind this line)."""
    if isinstance(exc, OSError) and (
        exc.errno in _REFUSED_ERRNOS
        or (
            exc.errno in _FORBIDDEN_ERRNOS
            and Path(os.fsdecode(exc.filename or "")).is_relative_to(state_dir)
        )
    ):
        return state_unwritable(state_dir, exc)
    if isinstance(exc, sqlite3.Error) and _system_refused(exc):
        return state_unwritable(state_dir, exc)
    return None


def state_unwritable(state_dir: Path, exc: BaseException) -> str:
    """The one line of a state directory the system does not let the watch write (a full disk,
    a read-only mount): what is there is kept, and an update that could not be kept is read
    again by the next one."""
    if isinstance(exc, OSError):
        why = exc.strerror or str(exc)
        where = exc.filename or state_dir
    else:
        why, where = str(exc), state_dir / DB_NAME
    return (
        f"{UNWRITABLE}the watch's state in {state_dir} ({where}: {why}); the last result "
        "stands and nothing read is lost: the next update (or run) reads again what this one "
        "could not keep (fix: free space on its disk, or make the directory writable)"
    )


def _prepare_state(db: sqlite3.Connection) -> None:
    """The state's tables and indexes, made when missing."""
    # a commit is durable against a kill at once and against a power cut from the next
    # checkpoint on; a transaction lost to a power cut is read again from the files (its
    # offsets went with it), so the state is never wrong, only behind
    db.execute("PRAGMA synchronous = NORMAL")
    # the key index of a long history: its pages kept in memory make a first update's inserts
    # (random keys) far cheaper than SQLite's default 2 MiB cache
    db.execute(f"PRAGMA cache_size = -{STATE_CACHE_KIB}")
    for ddl in (
        "meta (name TEXT PRIMARY KEY, value TEXT)",
        "files (side INTEGER, ident TEXT, path TEXT, pos INTEGER, PRIMARY KEY (side, ident))",
        # every keyed record read so far (parity's narrow row, and the canonical hash of its
        # body: bodies that say the same thing are no mismatch): what a key's class is
        # recomputed from when a new record of that key arrives. The hash sits in the row, not
        # in a table of its own: one index fewer whose pages each new key dirties
        "rows (hk INTEGER NOT NULL, bh INTEGER, t INTEGER, m INTEGER, ch INTEGER)",
        # running sums over every key of what parity counts (an app-only key counted missing),
        # and the lags (ms) of the keys seen on both sides
        "totals (name TEXT PRIMARY KEY, n INTEGER)",
        "lags (lag INTEGER PRIMARY KEY, n INTEGER)",
        _PENDING,
        # the report's timeline: per minute, the app's and the queue's callbacks and the keys
        # missing on either side (app-only keys at their app time, in flight or not)
        "timeline (grain INTEGER, start INTEGER, col INTEGER, n INTEGER,"
        " PRIMARY KEY (grain, start, col))",
        # the messages per minute (how many, the oldest and the newest) and, in meta, the app's
        # newest and oldest record: what tells the strays parity leaves out of the window
        "queue_spans (start INTEGER PRIMARY KEY, n INTEGER, oldest INTEGER, newest INTEGER)",
    ):
        db.execute(f"CREATE TABLE IF NOT EXISTS {ddl}")
    db.execute("CREATE INDEX IF NOT EXISTS rows_hk ON rows (hk)")
    db.execute("CREATE INDEX IF NOT EXISTS pending_ta ON pending (ta)")
    db.execute("CREATE TEMP TABLE IF NOT EXISTS touched (hk INTEGER PRIMARY KEY)")


def _engine(options: ParityOptions, spill: Path) -> Any:
    """DuckDB in memory: parity's SQL over the new lines and over the rows of the keys they
    touch (nothing in it outlives an update)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{options.memory_limit}'")
    con.execute(f"SET temp_directory = '{spill}'")
    if options.threads:
        con.execute(f"SET threads = {int(options.threads)}")
    return con


def _meta(db: sqlite3.Connection, name: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE name = ?", [name]).fetchone()
    return None if row is None else str(row[0])


def _canon_hash(body: str) -> int:
    digest = hashlib.blake2b(canonical(body).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _load(con: Any, rows: list[tuple[Any, ...]]) -> None:
    """DuckDB temp table old_rows (hk, bh, t, m) from SQLite's rows (signed, with the
    canonical hash), and the canonical hashes into table canon (bh, ch)."""
    cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[], [], [], [], []]
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE old_loaded AS
        SELECT {_unsigned("a")} AS hk, {_unsigned("b")} AS bh, c AS t, {_unsigned("d")} AS m,
            e AS ch
        FROM (SELECT unnest($1::BIGINT[]) AS a, unnest($2::BIGINT[]) AS b,
                     unnest($3::BIGINT[]) AS c, unnest($4::BIGINT[]) AS d,
                     unnest($5::BIGINT[]) AS e)""",
        cols,
    )
    con.execute("CREATE OR REPLACE TEMP TABLE old_rows AS SELECT hk, bh, t, m FROM old_loaded")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE canon AS SELECT DISTINCT ON (bh) bh, ch FROM (
            SELECT bh, ch FROM old_loaded UNION ALL SELECT bh, ch FROM new_canon)
    """)
    con.execute("DROP TABLE old_loaded")


def _fill(db: sqlite3.Connection, table: str, values: list[int]) -> None:
    db.execute(f"DELETE FROM temp.{table}")
    db.executemany(f"INSERT OR IGNORE INTO temp.{table} VALUES (?)", [(v,) for v in values])


@dataclass
class _Part:
    """What a set of keys adds to the result: parity's counts (an app-only key counted as
    missing, whatever its time), the lags of the keys on both sides, the app-only keys' times,
    and the newest and oldest record."""

    counts: Counter[str]
    lags: Counter[int]
    pending: dict[int, tuple[int, int]]  # key -> (app time, 1 when the app only rejected it)
    newest: int | None
    oldest: int | None
    timeline: Counter[tuple[int, int, int]]  # (grain, start, index in TIMELINE) -> n

    @classmethod
    def nothing(cls) -> _Part:
        return cls(Counter(), Counter(), {}, None, None, Counter())


class Watcher:
    """One state directory, watching one app source against one queue source."""

    def __init__(
        self, app: str, queue: str, state_dir: Path, options: ParityOptions = WATCH_OPTIONS
    ) -> None:
        self.app = parse_source(app, "app")
        self.queue = parse_source(queue, "queue")
        if self.app.kind == "csv":
            raise InputError(
                "watch reads line by line: a CSV export has one header for all its lines",
                where=f"--app {app}",
                fix="use `hookshift verify parity` for a CSV export, or watch the parity log",
            )
        if self.queue.kind == "sqs":
            raise InputError(
                "watch reads the archive that `hookshift verify pull --follow` fills",
                where=f"--queue {queue}",
                fix="run pull --follow into a directory and pass --queue archive:DIR",
            )
        check_options(options)
        # a --key or --profile no run can use is refused before the state directory is made
        self._given = resolve_key(options.key, options.profile)
        self.state_dir = state_dir
        self.options = options
        self._made: list[Path] = []  # what this watcher created, let go of on a first refusal
        self._kept_any = False  # an update committed something: a refusal later keeps it
        self._stack = ExitStack()
        self.con: Any = None
        self.db: sqlite3.Connection | None = None
        self._seconds = True  # the timeline is still kept per second too
        grace_ms = int(options.grace_s * 1000)
        app_win, queue_win = side_windows("t", options.since_ms, options.until_ms, grace_ms)
        bad = f"({C} & {APP_BAD | QUEUE_BAD} <> 0)"
        # the rows a one-shot parity with these options keeps (the window is fixed for a state
        # directory: its sums were made with it)
        self._kept = f"{bad} OR (NOT {IS_QUEUE} AND {app_win}) OR ({IS_QUEUE} AND {queue_win})"
        self._class = class_sql(None, grace_ms, options.since_ms, options.until_ms)

    def __enter__(self) -> Watcher:
        from hookshift.verify.outputs import check_not_input

        for name in (DB_NAME, STATE_NAME, ALERT_MEMORY):
            check_not_input(
                self.state_dir / name,
                "--state",
                (self.app, self.queue),
                fix="give --state a directory the sources do not read",
            )
        self._made = missing_dirs(self.state_dir)
        self._made += [
            self.state_dir / name
            for name in (DB_NAME, LOCK_NAME)
            if not os.path.lexists(self.state_dir / name)
        ]
        try:
            make_dirs(self.state_dir)
        except OSError as exc:
            raise InputError(
                f"cannot make the state directory ({exc.strerror})",
                where=f"--state {self.state_dir}",
                fix="give a directory you may write",
            ) from None
        self._stack.enter_context(
            exclusive_lock(
                self.state_dir / LOCK_NAME,
                f"{self.state_dir}: another `hookshift verify watch` uses this state directory",
            )
        )
        try:
            spill = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="hs-watch-"))
            self.db = _open_state(self.state_dir / DB_NAME)
            self._stack.callback(self.db.close)
            self.con = _engine(self.options, Path(spill))
            self._stack.callback(self.con.close)
            self._check_sources()
            self._seconds = _meta(self.db, "seconds") != "dropped"
        except BaseException:
            self._stack.close()  # the lock and the databases are let go of on a refusal too
            self._forget()
            raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._stack.close()
        if exc_type is not None:
            self._forget()

    def _forget(self) -> None:
        """Remove what this watcher created when it ends in a refusal before any update kept
        something: a refused watch writes nothing (a service restarted on it would otherwise
        leave a state directory that looks like a watch's)."""
        if self._kept_any:
            return
        for path in reversed(self._made):  # files first, then the deepest directory
            if path.name == DB_NAME:
                for suffix in ("", *SQLITE_COMPANIONS):
                    with contextlib.suppress(FileNotFoundError):
                        path.with_name(path.name + suffix).unlink()
            elif path.name == LOCK_NAME:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            else:
                remove_if_empty([path])
        self._made = []

    @property
    def _db(self) -> sqlite3.Connection:
        assert self.db is not None, "use the Watcher as a context manager"
        return self.db

    def _check_sources(self) -> None:
        self._check_rules()
        opts = self.options
        window = json.dumps(
            [opts.since_ms, opts.until_ms, opts.grace_s if opts.since_ms or opts.until_ms else 0]
        )
        for name, value, what in (
            ("app", self.app.label, f"app {self.app.label}"),
            ("queue", self.queue.label, f"queue {self.queue.label}"),
            ("window", window, "this --since/--until (and --grace with them)"),
        ):
            known = _meta(self._db, name)
            if known is None:
                self._db.execute("INSERT INTO meta VALUES (?, ?)", [name, value])
            elif known != value:
                shown = f"{name} {known}" if name != "window" else "another --since/--until/--grace"
                raise InputError(
                    f"this state directory watches {shown}, not {what}",
                    where=str(self.state_dir),
                    fix="pass the same options, or use a new --state directory",
                )

    def _check_rules(self) -> None:
        """The sums hold each key's part by the per-key rules (RULES) of the hookshift that
        made them; an update takes a touched key's old part out by the rules of this one. So a
        directory that read files under other rules (or before RULES was recorded) is refused."""
        db = self._db
        known = _meta(db, "rules")
        unread = db.execute("SELECT 1 FROM files LIMIT 1").fetchone() is None
        if unread:
            # the strays are told from queue_spans, kept from the first file read on (a
            # directory that read files before keeps none: its window takes every message)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('spans', '1')")
        if known is None and unread:
            # nothing read yet: a table of an older layout holds nothing either
            columns = {str(r[1]) for r in db.execute("PRAGMA table_info(pending)").fetchall()}
            if "rejected" not in columns:
                db.execute("DROP TABLE pending")
                db.execute(f"CREATE TABLE {_PENDING}")
                db.execute("CREATE INDEX pending_ta ON pending (ta)")
            db.execute("INSERT INTO meta VALUES ('rules', ?)", [RULES])
            return
        if known != RULES:
            raise InputError(
                "this state directory was made by an older hookshift, whose parity rules differ"
                " (records without the key, a key the app only rejected: counted otherwise now)",
                where=str(self.state_dir),
                fix="use a new --state directory (its first update reads the files again)",
            )

    def _key(self, app_files: list[Path], queue_files: list[Path]) -> KeySpec | None:
        """The key: given, or chosen once from the first records as parity chooses it, and
        kept (rows already stored are hashed with it)."""
        stored = _meta(self._db, "key")
        given = self._given
        if stored is not None:
            if given is not None and str(given) != stored:
                raise InputError(
                    f"this state directory was built with key {stored}, not {given}",
                    where=str(self.state_dir),
                    fix="pass the same --key, or use a new --state directory",
                )
            return parse_key(stored)
        key = given
        if key is None:
            if not app_files or not queue_files:
                return None  # wait for both sides to have a line
            fields = self.options.app_fields
            have = (
                carries_request_ids("app", self.app.kind, app_files, fields),
                carries_request_ids("queue", "jsonl", queue_files, fields),
            )
            if None in have:
                # a file with no record yet (the parity log nginx creates on reload) says
                # nothing of the records to come, and the key chosen is kept for good
                return None
            key = parse_key("request_id" if all(have) else "sha256")
        self._db.execute("INSERT INTO meta VALUES ('key', ?)", [str(key)])
        return key

    def _check_key(self, key: KeySpec, chunks: tuple[Path, Path]) -> None:
        """Refuse a key no record read so far has when the data shows it is the wrong one, as
        parity refuses it (in the transaction of the round that found it: nothing of it is
        kept); `chunks` hold this round's new lines.

        Unlike a one-shot parity, a watch starts before most callbacks have come: the first
        ones may all be a vendor's second shape, without the key's fields, matched by nginx's
        request id meanwhile. That is not refused (a service would restart on it until a
        keyed callback came): the result says the key has matched nothing yet
        (`_waiting_warning`). A key the bodies contradict (parity.key_contradicted), or
        records that carry no request id either, are refused."""
        db = self._db
        if _meta(db, "keyed") == "1":
            return
        names = ("unkeyed_app", "unkeyed_queue", "by_request_id_app", "by_request_id_queue")
        sums = dict(db.execute("SELECT name, n FROM totals").fetchall())
        counts = {name: int(sums.get(name, 0)) for name in names}
        if not lacking_key(counts)[0]:  # messages alone: nothing to compare them with yet
            return
        keyed = self.con.execute(
            f"SELECT 1 FROM new_rows WHERE hk IS NOT NULL AND m & {BY_REQUEST_ID_BIT} = 0 LIMIT 1"
        ).fetchone()
        if keyed is None and _meta(db, "keyed") is None:  # rows stored before this was kept
            keyed = db.execute(
                f"SELECT 1 FROM rows WHERE m & {BY_REQUEST_ID_BIT} = 0 LIMIT 1"
            ).fetchone()
        db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('keyed', ?)", ["0" if keyed is None else "1"]
        )
        if keyed is not None:
            return
        fields = self.options.app_fields
        bodies = first_bodies("app", self.app.kind, [chunks[0]], fields)
        bodies += first_bodies("queue", "jsonl", [chunks[1]], fields)
        if not counts["unkeyed_app"] and not key_contradicted(key, bodies):
            return
        raise no_key_error(key, self.options, counts, (self.app.label, self.queue.label), bodies)

    def _waiting_warning(self, key: KeySpec | None, counts: dict[str, int]) -> str | None:
        """The line a result carries while no callback has had a value for the key (see
        `_check_key`): a wrong key looks the same until a keyed callback comes."""
        lacking = lacking_key(counts)[0]
        if key is None or not lacking or _meta(self._db, "keyed") != "0":
            return None
        return (
            f"no callback so far has a value for the key {key}: the {lacking:,} so far were"
            " matched by nginx's request id (a vendor's other kind of callback can come"
            " first); if none ever has a value for it, the key is wrong: stop the watch and"
            " start it with the right --key or --profile and a new --state directory"
        )

    def _files(self, spec: SourceSpec) -> list[Path]:
        try:
            return resolve_files(spec)
        except InputError:
            return []  # nothing written yet: the next update looks again

    def update(self) -> WatchState:
        """Read what is new on both sides, fold it into the state, and give the result."""
        started = time.monotonic()
        db = self._db
        sides = (self._files(self.app), self._files(self.queue))
        new_bytes = {"app": 0, "queue": 0}
        key = self._key(*sides)
        while key is not None:
            # in rounds of at most READ_BUDGET bytes a side, each committed: a long history
            # (the first update, or a watcher stopped for a day) is caught up in bounded
            # memory, and a kill resumes where the last round ended
            with tempfile.TemporaryDirectory(prefix="hs-watch-chunk-") as tmp:
                chunks, offsets, more = self._read_chunks(sides, Path(tmp))
                sizes = [chunk.stat().st_size for chunk in chunks]
                new_bytes = {
                    "app": new_bytes["app"] + sizes[0],
                    "queue": new_bytes["queue"] + sizes[1],
                }
                db.execute("BEGIN IMMEDIATE")
                try:
                    if any(sizes):
                        self._ingest(key, chunks)
                        self._check_key(key, chunks)
                    db.executemany(
                        "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                        [(side, ident, str(path), pos) for side, ident, path, pos in offsets],
                    )
                    db.execute("COMMIT")
                    self._kept_any = self._kept_any or bool(offsets)
                except BaseException:
                    # SQLite has rolled back already when a write failed (a full disk)
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    with contextlib.suppress(sqlite3.OperationalError):  # the disk still full
                        if db.execute("SELECT 1 FROM files LIMIT 1").fetchone() is None:
                            # nothing read: the next run may choose another key
                            db.execute("DELETE FROM meta WHERE name = 'key'")
                    raise
            if not more:
                break
        # each update writes its own pages back to the database file, so that its cost is
        # whole (not left to whichever later update crosses SQLite's checkpoint threshold)
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        state = self._result(key)
        state.new_bytes = new_bytes
        state.update_s = round(time.monotonic() - started, 3)
        write_private(self.state_dir / STATE_NAME, json.dumps(state.to_dict(), indent=2) + "\n")
        self._kept_any = True
        return state

    def _read_chunks(
        self, sides: tuple[list[Path], list[Path]], tmp: Path
    ) -> tuple[tuple[Path, Path], list[tuple[int, str, Path, int]], bool]:
        """The new lines of each side into a chunk file (at most about READ_BUDGET bytes a
        side), the offsets they end at, and whether more is left to read."""
        known = {
            (int(s), str(i)): int(p)
            for s, i, p in self._db.execute("SELECT side, ident, pos FROM files").fetchall()
        }
        offsets: list[tuple[int, str, Path, int]] = []
        chunks = (tmp / "app.jsonl", tmp / "queue.jsonl")
        more = False
        for side, files in enumerate(sides):
            seen: set[str] = set()
            live = set(live_files(files)) if side == 0 else set(files)
            with chunks[side].open("wb") as out:
                for path in files:
                    ident = file_identity(path)
                    if ident is None or ident in seen:
                        continue  # no complete line yet; or a copy of a file read this round
                    seen.add(ident)
                    budget = READ_BUDGET - out.tell()
                    if budget <= 0:
                        more = True
                        break
                    start = known.get((side, ident), 0)
                    final = path not in live  # a rotated log: its torn last line is final
                    end = read_new(path, start, out, budget, final=final, delivered=side == 0)
                    if end != start:
                        offsets.append((side, ident, path, end))
                    more = more or out.tell() >= READ_BUDGET
        return chunks, offsets, more

    def _ingest(self, key: KeySpec, chunks: tuple[Path, Path]) -> None:
        """Rows of the new lines by parity's own row SQL (verify/tally.py's create_rows); the
        keys they mention are taken out of the sums with their old rows and put back with
        their old and new rows together."""
        con, db = self.con, self._db
        fields = self.options.app_fields
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW app_rows AS {app_rows_sql(self.app, [chunks[0]], fields)}"
        )
        con.execute(f"CREATE OR REPLACE TEMP VIEW queue_rows AS {queue_rows_sql([chunks[1]])}")
        self._drop_classification()
        create_rows(
            con,
            key.sql("rid", "body"),
            "true",
            "true",
            "app_rows",
            "queue_rows",
            fallback_sql=key.fallback_sql("rid", "body"),
        )
        con.execute("DROP TABLE IF EXISTS new_rows")
        con.execute("ALTER TABLE record_rows RENAME TO new_rows")
        self._keep_spans()
        self._canonical_hashes()
        self._count_rejected()
        touched = [
            int(h)
            for (h,) in con.execute(
                f"SELECT DISTINCT {_signed('hk')} FROM new_rows WHERE hk IS NOT NULL"
            ).fetchall()
        ]
        _fill(db, "touched", touched)
        old_rows = db.execute(
            "SELECT hk, bh, t, m, ch FROM rows WHERE hk IN (SELECT hk FROM temp.touched)"
        ).fetchall()
        _load(con, old_rows)
        # keys seen for the first time had no part yet
        old = self._part("old_rows") if old_rows else _Part.nothing()
        con.execute(
            "CREATE OR REPLACE TEMP TABLE all_rows AS"
            " SELECT * FROM old_rows UNION ALL SELECT * FROM new_rows"
        )
        new = self._part("all_rows")
        db.executemany(
            "INSERT INTO rows VALUES (?, ?, ?, ?, ?)",
            con.execute(
                f"SELECT {_signed('hk')}, {_signed('bh')}, t, {_signed('m')}, ch"
                " FROM new_rows LEFT JOIN new_canon USING (bh) WHERE hk IS NOT NULL"
            ).fetchall(),
        )
        self._fold(old, new)

    def _keep_spans(self) -> None:
        """The new rows' part of what tells the strays (tally.Spread: the app's newest and
        oldest record, the same of the records that are not a mirror's copy, the copies per
        minute; keyed rows with a time, in the window, as parity's spread counts them)."""
        db = self._db
        rows = f"FROM new_rows WHERE hk IS NOT NULL AND t IS NOT NULL AND ({self._kept})"
        app, kept = (
            self.con.execute(f"SELECT max(t), min(t) {rows} AND {SEEN} AND {which}").fetchone()
            for which in (f"NOT {IS_QUEUE}", f"NOT {PLAIN_COPY}")
        )
        for name, value, pick in (
            ("app_newest", app[0], max),
            ("app_oldest", app[1], min),
            ("kept_newest", kept[0], max),
            ("kept_oldest", kept[1], min),
        ):
            if value is not None:
                known = _meta(db, name)
                best = int(value) if known is None else pick(int(known), int(value))
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [name, str(best)])
        db.executemany(
            "INSERT INTO queue_spans VALUES (?, ?, ?, ?) ON CONFLICT (start) DO UPDATE SET"
            " n = n + excluded.n, oldest = min(oldest, excluded.oldest),"
            " newest = max(newest, excluded.newest)",
            self.con.execute(
                f"SELECT t // {MINUTE} * {MINUTE}, count(*), min(t), max(t) {rows}"
                f" AND {PLAIN_COPY} GROUP BY 1"
            ).fetchall(),
        )

    def _seen(self) -> Spread:
        """The newest and the oldest record, of the bulk when a few messages are strays
        (parity.on_bulk, over the same minutes parity keeps)."""
        db = self._db

        def number(name: str) -> int | None:
            value = _meta(db, name)
            return None if value is None else int(value)

        seen = Spread(newest=number("newest"), oldest=number("oldest"))
        if _meta(db, "spans") != "1":
            return seen
        seen.app_newest, seen.app_oldest = number("app_newest"), number("app_oldest")
        seen.kept_newest, seen.kept_oldest = number("kept_newest"), number("kept_oldest")
        for start, n, oldest, newest in db.execute("SELECT * FROM queue_spans"):
            add_span(seen.queue_spans, int(start), int(n), int(oldest), int(newest))
        return on_bulk(seen, int(self.options.grace_s * 1000))

    def _canonical_hashes(self) -> None:
        """Table new_canon (bh, ch): the canonical hash of every body the new lines bring
        (the bodies a chunk at a time in Python)."""
        cursor = self.con.execute("""
            SELECT DISTINCT ON (bh) hash(body) AS bh, body FROM (
                SELECT body FROM app_rows WHERE ok UNION ALL SELECT body FROM queue_rows WHERE ok)
        """)
        bhs: list[int] = []
        chs: list[int] = []
        while batch := cursor.fetchmany(CANON_CHUNK):
            bhs += [int(bh) for bh, _ in batch]
            chs += [_canon_hash(str(text)) for _, text in batch]
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE new_canon AS"
            " SELECT unnest($1::UBIGINT[]) AS bh, unnest($2::BIGINT[]) AS ch",
            [bhs, chs],
        )

    def _count_rejected(self) -> None:
        """Lines the reader could not decode at all (counted malformed, as parity counts them)."""
        con = self.con
        tables = {
            str(r[0]) for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        for side, table in ((0, "rej_app"), (1, "rej_queue")):
            if table not in tables:
                continue
            row = con.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT file_id, line FROM {table})"
            ).fetchone()
            if row and row[0]:
                _add(self._db, "totals", {f"rejected_{side}": int(row[0])})
            con.execute(f"DROP TABLE IF EXISTS {table}")
            con.execute(f"DROP TABLE IF EXISTS {table}_scan")

    def _drop_classification(self) -> None:
        # record_rows is a view here: the table create_rows makes is renamed at once
        for statement in (
            "DROP VIEW IF EXISTS classified",
            "DROP TABLE IF EXISTS key_detail",
            "DROP TABLE IF EXISTS unsettled_keys",
            "DROP VIEW IF EXISTS record_rows",
        ):
            self.con.execute(statement)

    def _part(self, table: str) -> _Part:
        """What the rows of `table` (every row of some keys, and rows without a key) add to
        the result, by parity's own per-key detail, classes and counts."""
        con = self.con
        self._drop_classification()
        con.execute(f"CREATE TEMP VIEW record_rows AS SELECT * FROM {table} WHERE {self._kept}")
        con.execute(
            "CREATE TEMP TABLE unsettled_keys AS"
            " SELECT DISTINCT hk FROM record_rows WHERE hk IS NOT NULL"
        )
        create_detail(con)
        con.execute(
            f"CREATE TEMP VIEW classified AS SELECT *, {self._class} AS cls FROM key_detail"
        )
        counts, _ = parity_counts(con, Bulk(), null_counts(con))
        mismatched, unlogged = _mismatched(con)
        counts["mismatched"] = mismatched
        counts["not_logged"] = unlogged
        lags = detail_lags(con)
        pending = {
            int(hk): (int(ta), int(rejected))
            for hk, ta, rejected in con.execute(
                f"SELECT {_signed('hk')}, {KEY_TIME}, (an = 0)::INTEGER FROM classified"
                f" WHERE cls = 'miq' AND {KEY_TIME} IS NOT NULL"
            ).fetchall()
        }
        seen = con.execute(f"""
            SELECT max(t), min(t) FROM record_rows
            WHERE hk IS NOT NULL AND t IS NOT NULL AND {SEEN}
        """).fetchone()
        newest, oldest = seen if seen else (None, None)
        timeline: Counter[tuple[int, int, int]] = Counter()
        for grain in (MINUTE, SECOND) if self._seconds else (MINUTE,):
            for start, *values in con.execute(f"""
                SELECT b, sum(app), sum(queue), sum(miq), sum(mia) FROM (
                    SELECT {KEY_TIME} // {grain} * {grain} AS b, an AS app, 0 AS queue,
                        (cls = 'miq')::INT AS miq, 0 AS mia
                    FROM classified WHERE {KEY_TIME} IS NOT NULL
                    UNION ALL
                    SELECT tq // {grain} * {grain}, 0, qd, 0, (cls = 'mia')::INT
                    FROM classified WHERE tq IS NOT NULL
                ) GROUP BY b
            """).fetchall():
                for col, n in enumerate(values):
                    timeline[(grain, int(start), col)] += int(n)
        return _Part(Counter(counts), lags, pending, newest, oldest, timeline)

    def _fold(self, old: _Part, new: _Part) -> None:
        """Take the touched keys' old part out of the sums and put their new part in."""
        db = self._db
        counts = Counter(new.counts)
        counts.subtract(old.counts)
        _add(db, "totals", counts)
        lags = Counter(new.lags)
        lags.subtract(old.lags)
        _add(db, "lags", lags)
        db.execute("DELETE FROM lags WHERE n = 0")  # one row per distinct lag: a small table
        timeline = Counter(new.timeline)
        timeline.subtract(old.timeline)
        db.executemany(
            "INSERT INTO timeline VALUES (?, ?, ?, ?)"
            " ON CONFLICT (grain, start, col) DO UPDATE SET n = n + excluded.n",
            [(grain, start, col, n) for (grain, start, col), n in timeline.items() if n],
        )
        db.execute("DELETE FROM pending WHERE hk IN (SELECT hk FROM temp.touched)")
        db.executemany(
            "INSERT INTO pending VALUES (?, ?, ?)",
            [(hk, ta, rejected) for hk, (ta, rejected) in new.pending.items()],
        )
        for name, value, pick in (("newest", new.newest, max), ("oldest", new.oldest, min)):
            if value is None:
                continue
            known = _meta(db, name)
            best = int(value) if known is None else pick(int(known), int(value))
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [name, str(best)])
        # the span of the bulk, as the timeline draws it (strays aside: parity.on_bulk)
        seen = self._seen() if self._seconds else Spread()
        newest, oldest = seen.newest, seen.oldest
        if self._seconds and newest and oldest and newest - oldest > SECONDS_SPAN_MS:
            db.execute("DELETE FROM timeline WHERE grain = ?", [SECOND])
            db.execute("INSERT OR REPLACE INTO meta VALUES ('seconds', 'dropped')")
            self._seconds = False

    def _result(self, key: KeySpec | None) -> WatchState:
        """The result from the sums: the window's end decides which app-only keys are still in
        flight (a range on the pending index), the rest is arithmetic."""
        db, opts = self._db, self.options
        grace_ms = int(opts.grace_s * 1000)
        since, until = opts.since_ms, opts.until_ms
        sums: Counter[str] = Counter(
            {str(k): int(n) for k, n in db.execute("SELECT name, n FROM totals").fetchall()}
        )
        seen = self._seen()
        now_ms = int(time.time() * 1000)
        read_at = queue_read_at(self.queue, now_ms)  # as parity measures it
        end = until if until is not None else read_at if read_at is not None else seen.newest
        flying = flying_rejected = 0
        judged = flight_edge(end, read_at)
        if judged is not None:
            row = db.execute(  # parity's in flight: edge - grace < t <= in_flight_latest
                "SELECT count(*), coalesce(sum(rejected), 0) FROM pending WHERE ta > ? AND ta <= ?",
                [judged - grace_ms, in_flight_latest(judged, now_ms, grace_ms)],
            ).fetchone()
            flying, flying_rejected = int(row[0]), int(row[1])
        rejected = (sums["rejected_0"], sums["rejected_1"])
        compared = sums["compared"] - sums["not_logged"]
        counts = {name: sums[name] for name in _RESULT_COUNTS}
        counts |= {
            "compared": compared,
            "mismatched": sums["mismatched"],
            "matched": compared - sums["mismatched"],
            "missing_in_queue": sums["missing_in_queue"] - flying,
            "missing_in_queue_rejected": sums["missing_in_queue_rejected"] - flying_rejected,
            "in_flight": flying,
            "body_not_logged": sums["not_logged"] + sums["unkeyed_app_unlogged"],
            "malformed": sums["malformed"] + sum(rejected),
            "malformed_app": sums["malformed_app"] + rejected[0],
            "malformed_queue": sums["malformed_queue"] + rejected[1],
        }
        hist = Counter(
            {int(lag): int(n) for lag, n in db.execute("SELECT lag, n FROM lags WHERE n > 0")}
        )
        lag = lag_summary(hist)
        verdict, reason = verdict_for(counts, opts.min_events)
        stale = stale_drain_warning(read_at, now_ms, flying)
        waiting = self._waiting_warning(key, counts)
        strays = stray_warning(seen.strays)
        warnings = [
            w
            for w in (
                key_warning(self._key_text(key), counts),
                waiting,
                clock_warning(lag),
                window_skew_warning(lag, grace_ms, since, until),
                strays,
                stale,
            )
            if w
        ]
        return WatchState(
            verdict=verdict,
            reason=reason,
            key=str(key) if key is not None else "",
            counts=counts,
            lag_ms=lag,
            window={
                "since": iso(since),
                "until": iso(until),
                "end": iso(end),
                "grace_s": opts.grace_s,
                "first_seen": iso(seen.oldest),
            },
            sources={"app": self.app.label, "queue": self.queue.label},
            updated_at=time.time(),
            warnings=warnings,
        )

    @staticmethod
    def _key_text(key: KeySpec | None) -> str:
        return str(key) if key is not None else ""

    def report(self, state: WatchState) -> ParityReport:
        """The watched result as a parity report (what the HTML page shows): counts, verdict,
        lags and the timeline from the state; no samples (they would mean reading the files)."""
        return ParityReport(
            verdict=state.verdict,
            reason=state.reason,
            key=state.key,
            window=state.window,
            counts=state.counts,
            lag_ms=state.lag_ms,
            samples={},
            timeline=self._timeline(state),
            malformed_examples=[],
            sources=state.sources,
            missing_in_queue_keys=[],
            redacted=self.options.redact,
            generated_at=datetime.fromtimestamp(state.updated_at, UTC).isoformat("T", "seconds"),
            duration_s=state.update_s,
            warnings=[
                *state.warnings,
                "a watch keeps counts, not callbacks: for examples of each class run "
                "`hookshift verify parity` over the same files",
            ],
        )

    def _timeline(self, state: WatchState) -> dict[str, Any]:
        """Both sides and the losses per bucket, the bucket chosen from the records' span as
        parity chooses it, every bucket from the first with records to the last; app-only keys
        within the grace of the end are in flight."""
        db = self._db
        seen = self._seen()
        newest, oldest = seen.newest, seen.oldest
        span_ms = 0 if newest is None or oldest is None else newest - oldest
        bucket_s = timeline_bucket_s(span_ms)
        empty = {"bucket_s": bucket_s, "bucket": bucket_label(bucket_s), "buckets": []}
        if oldest is None:
            return empty
        bucket_ms = bucket_s * 1000
        grain = MINUTE if bucket_ms % MINUTE == 0 else SECOND
        totals: dict[int, list[int]] = {}
        for start, col, n in db.execute(
            "SELECT start, col, n FROM timeline WHERE grain = ? AND n <> 0", [grain]
        ):
            totals.setdefault(int(start) // bucket_ms * bucket_ms, [0] * len(TIMELINE))[
                int(col)
            ] += int(n)
        end = state.window.get("end")
        if end is not None:
            grace_ms = int(self.options.grace_s * 1000)
            end_ms = int(datetime.fromisoformat(end).timestamp() * 1000)
            latest = in_flight_latest(end_ms, int(time.time() * 1000), grace_ms)
            for start, n in db.execute(
                f"SELECT ta / {bucket_ms} * {bucket_ms}, count(*) FROM pending"  # (times > 0)
                " WHERE ta > ? AND ta <= ? GROUP BY 1",
                [end_ms - grace_ms, latest],
            ):
                counts = totals.setdefault(int(start), [0] * len(TIMELINE))
                counts[2] -= int(n)
                counts[4] += int(n)
        starts = on_the_bulk(totals, seen, bucket_ms)
        if not starts:
            return empty
        return {
            **empty,
            "buckets": [
                {
                    "start": iso(start),
                    **dict(zip(TIMELINE, totals.get(start, [0] * 5), strict=True)),
                }
                for start in range(min(starts), max(starts) + 1, bucket_ms)
            ],
        }


def _add(db: sqlite3.Connection, table: str, deltas: Mapping[Any, int]) -> None:
    """Add to the named sums of `totals` or the lag counts of `lags`."""
    column = "name" if table == "totals" else "lag"
    db.executemany(
        f"INSERT INTO {table} VALUES (?, ?)"
        f" ON CONFLICT ({column}) DO UPDATE SET n = n + excluded.n",
        [(k, int(v)) for k, v in deltas.items() if v],
    )


def _mismatched(con: Any) -> tuple[int, int]:
    """Keys on both sides whose raw bodies differ and no accepted app body says the same as
    any message (parity's canonical compare, over the canonical hashes in table canon): those whose
    app side logged a body, and those whose app side logged none (not compared)."""
    accepted = f"{C} & 7 = {APP_ACCEPTED} AND NOT {IS_QUEUE}"
    row = con.execute(f"""
        WITH d AS (SELECT hk FROM classified WHERE cls = 'both' AND NOT same),
        a AS (SELECT record_rows.hk, ch, bh FROM record_rows JOIN canon USING (bh)
              WHERE record_rows.hk IN (SELECT hk FROM d) AND {accepted}),
        q AS (SELECT record_rows.hk, ch FROM record_rows JOIN canon USING (bh)
              WHERE record_rows.hk IN (SELECT hk FROM d) AND {IS_QUEUE}),
        differ AS (SELECT hk FROM d
              WHERE hk NOT IN (SELECT a.hk FROM a JOIN q ON a.hk = q.hk AND a.ch = q.ch)),
        unlogged AS (SELECT hk, bool_and(bh = hash(''::VARCHAR)) AS none FROM a GROUP BY hk)
        SELECT count(*) FILTER (NOT coalesce(none, false)), count(*) FILTER (none)
        FROM differ LEFT JOIN unlogged USING (hk)
    """).fetchone()
    return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)


def missing_dirs(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, outermost first (what making it
    creates)."""
    missing = []
    for each in (path, *path.parents):
        if os.path.lexists(each):
            break
        missing.append(each)
    return missing[::-1]


def remove_if_empty(dirs: list[Path]) -> None:
    """Remove the directories of `dirs` that are empty, deepest first (a refusal takes back
    the ones it made; one that holds anything is left)."""
    for path in reversed(dirs):
        with contextlib.suppress(OSError):
            path.rmdir()


@contextmanager
def watcher(
    app: str, queue: str, state_dir: Path, options: ParityOptions = WATCH_OPTIONS
) -> Iterator[Watcher]:
    with Watcher(app, queue, state_dir, options) as w:
        yield w


# --------------------------------------------------------------------------- signals out


ALERT_MEMORY = "alert-state.json"


@dataclass(frozen=True)
class Outputs:
    """Where a watcher's results go besides its state file."""

    follow_state: Path | None = None  # pull --follow's heartbeat file
    # the heartbeat file is the archive's own, not one the user named: it is checked once it
    # exists (a pull started with the watch writes it a moment later; a pull by hand or by
    # timer writes none, and then there is no heartbeat to check)
    follow_state_if_there: bool = False
    stale_s: int = 15 * 60
    metrics_file: Path | None = None
    alert_cmd: str | None = None
    rearm_s: float = 600.0


def publish(
    state: WatchState, state_dir: Path, outputs: Outputs, notice: Callable[[str, str], None]
) -> list[Family]:
    """Metrics (returned, and written to the textfile) and alerts for one update."""
    from hookshift.verify import alert
    from hookshift.verify.follow import read_state as read_follow_state
    from hookshift.verify.metrics import parity_families, pull_families, write_textfile
    from hookshift.verify.parity import CLASSES
    from hookshift.verify.retention import check_heartbeat

    now = time.time()
    families = parity_families(state.counts, CLASSES, state.passed, state.updated_at)
    finding = None
    if outputs.follow_state is not None and (
        not outputs.follow_state_if_there or os.path.lexists(outputs.follow_state)
    ):
        follow = read_follow_state(outputs.follow_state)
        if follow is not None:
            families += pull_families(follow)[:2]  # its heartbeat and the queue's lag
        finding = check_heartbeat(
            follow.last_success if follow else None,
            now,
            outputs.stale_s,
            started_at=follow.started_at if follow else None,
        )
    if outputs.metrics_file is not None:
        try:
            write_textfile(outputs.metrics_file, families)
        except OSError as exc:  # the alerts below matter more than the textfile
            notice("warning", _unwritable("the metrics file", outputs.metrics_file, exc))
    memory_path = state_dir / ALERT_MEMORY
    memory, alerts = alert.evaluate(
        alert.load(memory_path), now, state.counts["missing_in_queue"], finding, outputs.rearm_s
    )
    try:
        alert.save(memory_path, memory)
    except OSError as exc:  # the alert is run all the same: a lost one is worse than a repeat
        notice("warning", _unwritable("the alerts' memory", memory_path, exc))
    for item in alerts:
        notice("ok" if item.kind == "recovered" else "error", f"alert: {item.message}")
        if outputs.alert_cmd:
            problem = alert.run_alert(outputs.alert_cmd, item)
            if problem:
                notice("warning", problem)
    return families


def _unwritable(what: str, path: Path, exc: OSError) -> str:
    """The line of an output the system did not let the watch write (a full disk, a directory
    it may not write): the watch goes on without it."""
    return (
        f"{UNWRITABLE}{what} {path}: {exc.strerror or exc}; the watch goes on "
        "and writes it at the next update that can (fix: free space on its disk, or let the "
        "watch's user write its directory)"
    )


def gate_reading(state: WatchState, now: float, max_age_s: float) -> tuple[bool, str]:
    """Whether a cut-over gate may use this watched result instead of a one-shot parity: it
    must be recent (the watcher still running). The text names the window it covers."""
    window = state.window
    span = f"{window.get('since') or 'the first record'} .. {window.get('end') or 'now'}"
    age = now - state.updated_at
    if age > max_age_s:
        return False, f"the watched parity is {round(age)} s old (watcher stopped?); window {span}"
    return True, f"watched parity {state.verdict} over {span} (updated {round(age)} s ago)"
