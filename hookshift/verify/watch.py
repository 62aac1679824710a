"""``hookshift verify watch``: keep the parity result current while the parity log and the
archive grow, reading only the bytes that are new.

State (a directory): a DuckDB database with one narrow row per record read so far, exactly the rows
``verify parity`` builds in its scan (verify/tally.py's table record_rows: key hash, body hash,
time, class code), plus how far each file has been read, plus a canonical hash per distinct body (so
that a body that differs only in key order or spacing is not a mismatch, as in parity). An update
reads the new complete lines of each file, turns them into rows with parity's own SQL, and appends
them in one transaction with the new offsets (a kill at any point leaves both as they were). The
classes and the verdict are then recomputed over the table by parity's own functions (`tally`,
`create_detail`, `classify_rows`, `verdict_for`), so a watched result is a one-shot parity over the
same files, without reading those files again.

A file is known by its first line (a parity-log line holds the request id and nginx's time, an
archive line the MessageId), not by its name or inode: a log renamed by logrotate (.log ->
.log.1), compressed (.log.2.gz) or recreated after copytruncate is recognised, and only what
follows the part already read is read.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from hookshift.durable import exclusive_lock, write_atomic
from hookshift.errors import InputError
from hookshift.verify.canonical import canonical
from hookshift.verify.follow import read_json_state
from hookshift.verify.keys import KeySpec, parse_key, resolve_key
from hookshift.verify.parity import (
    COUNT_KEYS,
    ParityOptions,
    classify_rows,
    iso,
    side_windows,
    verdict_for,
)
from hookshift.verify.sources import (
    SourceSpec,
    app_rows_sql,
    carries_request_ids,
    parse_source,
    queue_rows_sql,
    resolve_files,
)
from hookshift.verify.tally import (
    APP_ACCEPTED,
    APP_BAD,
    IS_QUEUE,
    QUEUE_BAD,
    C,
    create_detail,
    create_rows,
)
from hookshift.verify.tally import tally as tally_rows

if TYPE_CHECKING:
    from hookshift.verify.metrics import Family

DB_NAME = "watch.duckdb"
STATE_NAME = "watch-state.json"
# new bytes a side per round of an update: bounds a first update's memory over a long
# history (larger rounds grew it faster than they saved time)
READ_BUDGET = 16 * 1024 * 1024
CANON_CHUNK = 50_000  # bodies brought into Python at once for their canonical hash
HEAD_BYTES = 64 * 1024  # a first line longer than this is identified by its first 64 KiB
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
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def file_identity(path: Path) -> str | None:
    """A hash of the file's first line (decompressed), or None while it has no complete line."""
    with _open_binary(path) as fh:
        head = fh.read(HEAD_BYTES)
    end = head.find(b"\n")
    if end < 0 and len(head) < HEAD_BYTES:
        return None
    first = head if end < 0 else head[:end]
    return hashlib.sha256(first).hexdigest()


def read_new(path: Path, offset: int, out: IO[bytes], budget: int | None = None) -> int:
    """Copy the complete lines of `path` after byte `offset` (of its decompressed content) to
    `out`, stopping at a line end once `budget` bytes are copied; returns the new offset (a
    torn last line is left for the next update)."""
    with _open_binary(path) as fh:
        fh.seek(offset)
        pending = b""
        position = offset
        while chunk := fh.read(1 << 20):
            data = pending + chunk
            cut = data.rfind(b"\n") + 1
            out.write(data[:cut])
            position += cut
            pending = data[cut:]
            if budget is not None and position - offset >= budget:
                break
    return position


# --------------------------------------------------------------------------- the database


def _connect(db_path: Path, options: ParityOptions, spill: Path) -> Any:
    import duckdb

    con = duckdb.connect(str(db_path))
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{options.memory_limit}'")
    con.execute(f"SET temp_directory = '{spill}'")
    if options.threads:
        con.execute(f"SET threads = {int(options.threads)}")
    con.execute("CREATE TABLE IF NOT EXISTS meta (name VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute(
        "CREATE TABLE IF NOT EXISTS files (side INTEGER, ident VARCHAR, path VARCHAR, "
        "pos BIGINT, PRIMARY KEY (side, ident))"
    )
    con.execute("CREATE TABLE IF NOT EXISTS rows (hk UBIGINT, bh UBIGINT, t BIGINT, m UBIGINT)")
    # no PRIMARY KEY: DuckDB rewrites a table's index at every checkpoint, which made an
    # update's cost grow with the history; new bodies are told apart by an anti-join instead
    con.execute("CREATE TABLE IF NOT EXISTS canon (bh UBIGINT, ch UBIGINT)")
    con.execute("CREATE TABLE IF NOT EXISTS rejected (side INTEGER, n BIGINT)")
    return con


def _meta(con: Any, name: str) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE name = ?", [name]).fetchone()
    return None if row is None else str(row[0])


def _canon_hash(body: str) -> int:
    return int.from_bytes(hashlib.blake2b(canonical(body).encode(), digest_size=8).digest(), "big")


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
        self.state_dir = state_dir
        self.options = options
        self._stack = ExitStack()
        self.con: Any = None

    def __enter__(self) -> Watcher:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._stack.enter_context(
            exclusive_lock(
                self.state_dir / ".watch.lock",
                f"{self.state_dir}: another `hookshift verify watch` uses this state directory",
            )
        )
        spill = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="hs-watch-")))
        self.con = _connect(self.state_dir / DB_NAME, self.options, spill)
        self._stack.callback(self.con.close)
        self._check_sources()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _check_sources(self) -> None:
        for name, value in (("app", self.app.label), ("queue", self.queue.label)):
            known = _meta(self.con, name)
            if known is None:
                self.con.execute("INSERT INTO meta VALUES (?, ?)", [name, value])
            elif known != value:
                raise InputError(
                    f"this state directory watches {name} {known}, not {value}",
                    where=str(self.state_dir),
                    fix="pass the same sources, or use a new --state directory",
                )

    def _key(self, app_files: list[Path], queue_files: list[Path]) -> KeySpec | None:
        """The key: given, or chosen once from the first records as parity chooses it, and
        kept (rows already stored are hashed with it)."""
        stored = _meta(self.con, "key")
        given = resolve_key(self.options.key, self.options.profile)
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
            both = carries_request_ids(
                "app", self.app.kind, app_files, fields
            ) and carries_request_ids("queue", "jsonl", queue_files, fields)
            key = parse_key("request_id" if both else "sha256")
        self.con.execute("INSERT INTO meta VALUES ('key', ?)", [str(key)])
        return key

    def _files(self, spec: SourceSpec) -> list[Path]:
        try:
            return resolve_files(spec)
        except InputError:
            return []  # nothing written yet: the next update looks again

    def update(self) -> WatchState:
        """Read what is new on both sides, store its rows, and recompute the result."""
        started = time.monotonic()
        con = self.con
        sides = (self._files(self.app), self._files(self.queue))
        new_bytes = {"app": 0, "queue": 0}
        key = self._key(*sides)
        while key is not None:
            # in rounds of at most READ_BUDGET bytes a side, each committed: a long history
            # (the first update, or a watcher stopped for a day) is caught up in bounded
            # memory, and a kill resumes where the last round ended. The result is computed
            # once every round is in, never from one side read further than the other.
            with tempfile.TemporaryDirectory(prefix="hs-watch-chunk-") as tmp:
                chunks, offsets, more = self._read_chunks(sides, Path(tmp))
                sizes = [chunk.stat().st_size for chunk in chunks]
                new_bytes = {
                    "app": new_bytes["app"] + sizes[0],
                    "queue": new_bytes["queue"] + sizes[1],
                }
                con.execute("BEGIN TRANSACTION")
                try:
                    if any(sizes):
                        self._ingest(key, chunks)
                    for side, ident, path, pos in offsets:
                        con.execute(
                            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                            [side, ident, str(path), pos],
                        )
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            if not more:
                break
        state = self._classify(key)
        state.new_bytes = new_bytes
        state.update_s = round(time.monotonic() - started, 3)
        write_atomic(self.state_dir / STATE_NAME, json.dumps(state.to_dict(), indent=2) + "\n")
        return state

    def _read_chunks(
        self, sides: tuple[list[Path], list[Path]], tmp: Path
    ) -> tuple[tuple[Path, Path], list[tuple[int, str, Path, int]], bool]:
        """The new lines of each side into a chunk file (at most about READ_BUDGET bytes a
        side), the offsets they end at, and whether more is left to read."""
        known = {
            (int(s), str(i)): int(p)
            for s, i, p in self.con.execute("SELECT side, ident, pos FROM files").fetchall()
        }
        offsets: list[tuple[int, str, Path, int]] = []
        chunks = (tmp / "app.jsonl", tmp / "queue.jsonl")
        more = False
        for side, files in enumerate(sides):
            seen: set[str] = set()
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
                    end = read_new(path, start, out, budget)
                    if end != start:
                        offsets.append((side, ident, path, end))
                    more = more or out.tell() >= READ_BUDGET
        return chunks, offsets, more

    def _ingest(self, key: KeySpec, chunks: tuple[Path, Path]) -> None:
        """Rows of the new lines, by parity's own row SQL (verify/tally.py's create_rows)."""
        con = self.con
        fields = self.options.app_fields
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW app_rows AS {app_rows_sql(self.app, [chunks[0]], fields)}"
        )
        con.execute(f"CREATE OR REPLACE TEMP VIEW queue_rows AS {queue_rows_sql([chunks[1]])}")
        con.execute("DROP VIEW IF EXISTS classified")
        con.execute("DROP VIEW IF EXISTS record_rows")  # the last classification's
        create_rows(con, key.sql("rid", "body"), "true", "true", "app_rows", "queue_rows")
        con.execute("INSERT INTO rows SELECT hk, bh, t, m FROM record_rows")
        con.execute("DROP TABLE record_rows")
        con.execute("""
            CREATE OR REPLACE TEMP TABLE newb AS
            SELECT row_number() OVER () AS i, bh, body FROM (
                SELECT DISTINCT ON (bh) hash(body) AS bh, body FROM (
                    SELECT body FROM app_rows WHERE ok
                    UNION ALL SELECT body FROM queue_rows WHERE ok
                )
            ) n WHERE NOT EXISTS (SELECT 1 FROM canon c WHERE c.bh = n.bh)
        """)
        (total,) = con.execute("SELECT count(*) FROM newb").fetchone()
        for start in range(0, int(total), CANON_CHUNK):  # bodies held a chunk at a time
            rows = con.execute(
                "SELECT bh, body FROM newb WHERE i > ? AND i <= ?",  # (rowids inside a
                [start, start + CANON_CHUNK],  # transaction start elsewhere)
            ).fetchall()
            con.execute(
                "INSERT INTO canon SELECT unnest($1::UBIGINT[]), unnest($2::UBIGINT[])",
                [[int(b) for b, _ in rows], [_canon_hash(str(t)) for _, t in rows]],
            )
        con.execute("DROP TABLE newb")
        tables = {
            str(r[0]) for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        for side, table in ((0, "rej_app"), (1, "rej_queue")):
            if table not in tables:  # nothing was rejected (a failed query would end the
                continue  # transaction)
            row = con.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT file_id, line FROM {table})"
            ).fetchone()
            if row and row[0]:
                con.execute("INSERT INTO rejected VALUES (?, ?)", [side, int(row[0])])
            con.execute(f"DROP TABLE IF EXISTS {table}")
            con.execute(f"DROP TABLE IF EXISTS {table}_scan")

    def _classify(self, key: KeySpec | None) -> WatchState:
        con = self.con
        opts = self.options
        grace_ms = int(opts.grace_s * 1000)
        since, until = opts.since_ms, opts.until_ms
        app_win, queue_win = side_windows("t", since, until, grace_ms)
        bad = f"({C} & {APP_BAD | QUEUE_BAD} <> 0)"
        con.execute("DROP VIEW IF EXISTS classified")
        for name in (
            "key_detail",
            "unsettled_keys",
            "bucket_sketch",
            "dirty_rows",
            "dirty_buckets",
            "wanted",
        ):
            con.execute(f"DROP TABLE IF EXISTS {name}")
        con.execute("DROP VIEW IF EXISTS record_rows")
        # a view, not a copy: the tally reads record_rows a few times, copying it cost more (and
        # grew with the history)
        con.execute(f"""
            CREATE TEMP VIEW record_rows AS SELECT * FROM rows
            WHERE {bad} OR (NOT {IS_QUEUE} AND {app_win}) OR ({IS_QUEUE} AND {queue_win})
        """)
        bulk = tally_rows(con)
        create_detail(con, bulk.rows)
        _, end, counts, lag = classify_rows(con, bulk, since, until, grace_ms)
        mismatched = _mismatched(con)
        counts["mismatched"] = mismatched
        counts["matched"] = counts["compared"] - mismatched
        for side, n in con.execute("SELECT side, sum(n) FROM rejected GROUP BY side").fetchall():
            name = "malformed_app" if int(side) == 0 else "malformed_queue"
            counts[name] += int(n)
            counts["malformed"] += int(n)
        verdict, reason = verdict_for(counts, opts.min_events)
        return WatchState(
            verdict=verdict,
            reason=reason,
            key=str(key) if key is not None else "",
            counts={k: counts.get(k, 0) for k in (*COUNT_KEYS, "malformed_app", "malformed_queue")},
            lag_ms=lag,
            window={
                "since": iso(since),
                "until": iso(until),
                "end": iso(end),
                "grace_s": opts.grace_s,
            },
            sources={"app": self.app.label, "queue": self.queue.label},
            updated_at=time.time(),
        )


def _mismatched(con: Any) -> int:
    """Keys on both sides whose raw bodies differ and no accepted app body says the same as
    any message (parity's canonical compare, over the stored canonical hashes)."""
    row = con.execute(f"""
        WITH d AS (SELECT hk FROM classified WHERE cls = 'both' AND NOT same),
        a AS (SELECT record_rows.hk, ch FROM record_rows JOIN canon USING (bh)
              WHERE record_rows.hk IN (SELECT hk FROM d)
                AND {C} & 7 = {APP_ACCEPTED} AND NOT {IS_QUEUE}),
        q AS (SELECT record_rows.hk, ch FROM record_rows JOIN canon USING (bh)
              WHERE record_rows.hk IN (SELECT hk FROM d) AND {IS_QUEUE})
        SELECT count(*) FROM d
        WHERE hk NOT IN (SELECT a.hk FROM a JOIN q ON a.hk = q.hk AND a.ch = q.ch)
    """).fetchone()
    return int(row[0]) if row else 0


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
    if outputs.follow_state is not None:
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
        write_textfile(outputs.metrics_file, families)
    memory_path = state_dir / ALERT_MEMORY
    memory, alerts = alert.evaluate(
        alert.load(memory_path), now, state.counts["missing_in_queue"], finding, outputs.rearm_s
    )
    alert.save(memory_path, memory)
    for item in alerts:
        notice("ok" if item.kind == "recovered" else "error", f"alert: {item.message}")
        if outputs.alert_cmd:
            problem = alert.run_alert(outputs.alert_cmd, item)
            if problem:
                notice("warning", problem)
    return families


def gate_reading(state: WatchState, now: float, max_age_s: float) -> tuple[bool, str]:
    """Whether a cut-over gate may use this watched result instead of a one-shot parity: it
    must be recent (the watcher still running). The text names the window it covers."""
    window = state.window
    span = f"{window.get('since') or 'the first record'} .. {window.get('end') or 'now'}"
    age = now - state.updated_at
    if age > max_age_s:
        return False, f"the watched parity is {round(age)} s old (watcher stopped?); window {span}"
    return True, f"watched parity {state.verdict} over {span} (updated {round(age)} s ago)"
