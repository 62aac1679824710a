"""The SQS archive (docs/contracts.md §3): JSONL segments, one Message per line, keyed on
MessageId, written so that a crash at any point loses nothing and duplicates nothing.

- A batch is written and fsync'ed before `hookshift verify pull --delete` deletes it, so a
  deleted message is always on disk.
- A message written but not deleted (a kill between the two) comes back after the visibility
  timeout; the archive knows every MessageId it holds and does not write it twice.
- A kill in the middle of a write leaves a torn last line; opening the archive cuts it off
  (that message was not deleted either, so it is received again).

Messages carry phone numbers: the directory is the owner's only (0700) and so is every file
in it (0600: segments, the index and its companions, the record), whatever the umask
(verify.private). ``hookshift-archive.json`` records the queue the archive was
pulled from, so that a report over it names where a heal may send.

The MessageIds the archive holds live in an SQLite index beside the segments (INDEX_NAME), not
in memory, so a pull that follows the queue for days keeps a bounded footprint. The segments
stay the truth: the index records how many bytes of each segment it covers, committed with the
ids, and opening the archive indexes only what lies beyond (a kill between the segment's fsync
and the index's commit); an index that disagrees with the segments is rebuilt from them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from hookshift.durable import exclusive_lock, fsync_dir
from hookshift.errors import InputError
from hookshift.verify.private import (
    PRIVATE_DIR,
    PRIVATE_FILE,
    connect_private,
    make_dirs,
    owner_only,
    write_private,
)

SEGMENT_BYTES = 256 * 1024 * 1024
INDEX_NAME = "message-ids.sqlite"
LOCK_NAME = ".pull.lock"
_LOOKUP_CHUNK = 500  # ids per IN (...) lookup, under SQLite's bound-parameter limit
ARCHIVE_FIELDS = ("MessageId", "MD5OfBody", "Body", "Attributes", "MessageAttributes")
META = "hookshift-archive.json"


def _blob_text(value: object) -> str:
    """A Binary attribute's value (bytes from boto3) as base64 text: how the AWS CLI prints
    every blob, so an archive line reads like a Message of `aws sqs receive-message`."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not a part of an SQS Message")


def message_line(message: dict[str, Any]) -> bytes:
    """The archive line of a received Message: its ARCHIVE_FIELDS as one JSON object.

    SQS lets a sender attach Binary message attributes (``BinaryValue``, ``BinaryListValues``),
    which boto3 hands over as bytes; they are kept as base64 text, so that the message is
    archived (and deleted) like any other instead of stopping its whole batch."""
    record = {k: message[k] for k in ARCHIVE_FIELDS if k in message}
    return (json.dumps(record, ensure_ascii=False, default=_blob_text) + "\n").encode("utf-8")


def archive_queue_url(root: Path) -> str | None:
    """The queue URL an archive was pulled from (None for an archive made before it was kept)."""
    try:
        meta = json.loads((root / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = meta.get("queue_url") if isinstance(meta, dict) else None
    return url if isinstance(url, str) else None


def same_queue(recorded: str | None, url: str) -> bool:
    """Whether `url` names the queue an archive records: the same account and queue name (the
    last two steps of the path). The host may be written another way (the legacy
    ``REGION.queue.amazonaws.com``, a local endpoint on another port), the queue is the same."""
    if recorded is None:
        return True

    def tail(text: str) -> list[str]:
        return [step for step in urlsplit(text).path.split("/") if step][-2:]

    return tail(recorded) == tail(url)


def archive_drained_at(root: Path) -> int | None:
    """When (epoch ms) a pull into the archive last found the queue empty: every message sent
    before then that the queue still held is in the archive. None when no pull recorded it.
    A callback older than that (and its grace) that the archive lacks is missing, not in
    flight."""
    try:
        meta = json.loads((root / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    at = meta.get("drained_at_ms") if isinstance(meta, dict) else None
    return at if isinstance(at, int) and not isinstance(at, bool) else None


def repair_torn_tail(path: Path) -> int:
    """Cut an incomplete last line (no newline) off a segment; returns the bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        chunk = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - chunk)
            fh.seek(start)
            data = fh.read(pos - start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
        return size - keep


def _message_id(line: str) -> str | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    mid = obj.get("MessageId") if isinstance(obj, dict) else None
    return mid if isinstance(mid, str) else None


def iter_archive(root: Path) -> Iterator[dict[str, Any]]:
    """Every archived Message, in segment order (the reader for small archives and tests).

    A last line without its newline is a write in progress (a pull running now) or one a kill
    cut short: it is not a message yet, so it is left out rather than read as a broken one."""
    for seg in sorted(root.glob("*.jsonl")):
        with seg.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip() and line.endswith("\n"):
                    yield json.loads(line)


class Archive:
    """An append-only, fsync'ed, MessageId-keyed archive directory (thread-safe).

    One writer at a time: a second pull into the same directory is refused. Segments rotate at
    `segment_bytes`, and at `segment_seconds` when given, so that a long follow leaves closed
    files that can be compressed, copied or pruned while it runs.
    """

    def __init__(
        self,
        root: Path,
        queue_url: str | None = None,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        segment_seconds: float | None = None,
    ) -> None:
        self.root = root
        self.queue_url = queue_url
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._held: contextlib.ExitStack | None = None
        self._fh: IO[bytes] | None = None
        self._name = ""
        self._opened_at = 0.0
        self._total = 0
        self.repaired_bytes = 0
        self.segments_opened = 0

    def open(self) -> Archive:
        make_dirs(self.root)
        owner_only(self.root, PRIVATE_DIR)  # also an archive made before this rule
        held = contextlib.ExitStack()
        held.enter_context(
            exclusive_lock(
                self.root / LOCK_NAME,
                f"{self.root}: another `hookshift verify pull` is writing to this archive "
                "(stop it first, or pull into another directory)",
            )
        )
        self._held = held
        try:
            recorded = archive_queue_url(self.root)
            if self.queue_url is not None and recorded is None:
                meta = json.dumps({"queue_url": self.queue_url}) + "\n"
                write_private(self.root / META, meta)
            elif self.queue_url is not None and not same_queue(recorded, self.queue_url):
                raise InputError(
                    f"the archive holds the messages of another queue, {recorded}",
                    where=str(self.root),
                    fix=f"pull {self.queue_url} into another directory: a parity check over "
                    "one archive compares the app with every message in it, and heal sends "
                    "to the queue it records",
                )
            segments = sorted(self.root.glob("*.jsonl"))
            for seg in segments:
                owner_only(seg)
                self.repaired_bytes += repair_torn_tail(seg)
            self._db = self._index(segments)
            row = self._db.execute("SELECT count(*) FROM ids").fetchone()
            self._total = int(row[0]) if row else 0
        except BaseException:
            held.close()
            raise
        return self

    def _index(self, segments: list[Path]) -> sqlite3.Connection:
        """The id index, brought up to date with the segments (rebuilt when it cannot be)."""
        path = self.root / INDEX_NAME
        db: sqlite3.Connection | None = None
        covered: dict[str, int] | None = None
        try:
            db = _connect_index(path)
            covered = dict(db.execute("SELECT segment, bytes FROM covered").fetchall())
        except sqlite3.DatabaseError:
            pass
        names = {seg.name: seg.stat().st_size for seg in segments}
        if (
            db is None
            or covered is None
            or any(name not in names or names[name] < int(size) for name, size in covered.items())
        ):
            # segments removed, shrunk or an unreadable index: the ids it holds may name
            # messages the archive no longer has, and trusting them would drop those for good
            if db is not None:
                db.close()
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    (self.root / (INDEX_NAME + suffix)).unlink()
            db = _connect_index(path)
            covered = {}
        for seg in segments:
            start = int(covered.get(seg.name, 0))
            if names[seg.name] > start:
                _index_tail(db, seg, start)
        return db

    def __enter__(self) -> Archive:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def mark_drained(self, at_ms: int) -> None:
        """Record that a receive begun at `at_ms` found the queue empty (`archive_drained_at`)."""
        with self._lock:
            if at_ms <= (archive_drained_at(self.root) or 0):
                return
            meta: dict[str, object] = {"drained_at_ms": at_ms}
            url = self.queue_url or archive_queue_url(self.root)
            if url is not None:
                meta = {"queue_url": url, **meta}
            write_private(self.root / META, json.dumps(meta) + "\n")

    def __len__(self) -> int:
        return self._total

    def __contains__(self, message_id: object) -> bool:
        if not isinstance(message_id, str):
            return False
        with self._lock:
            return bool(self._known([message_id]))

    def _known(self, ids: list[str]) -> set[str]:
        assert self._db is not None, "open the archive first"
        found: set[str] = set()
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            found.update(
                r[0] for r in self._db.execute(f"SELECT mid FROM ids WHERE mid IN ({marks})", chunk)
            )
        return found

    def _segment(self) -> IO[bytes]:
        aged = (
            self.segment_seconds is not None
            and time.monotonic() - self._opened_at >= self.segment_seconds
        )
        if self._fh is None or self._fh.tell() >= self.segment_bytes or aged:
            if self._fh is not None:
                self._fh.close()
            name = f"seg-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}.jsonl"
            fd = os.open(
                self.root / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, PRIVATE_FILE
            )
            os.fchmod(fd, PRIVATE_FILE)  # whatever the umask
            self._fh = os.fdopen(fd, "ab")
            self._name = name
            self._opened_at = time.monotonic()
            self.segments_opened += 1
            fsync_dir(self.root)
        return self._fh

    def append(self, messages: Iterable[dict[str, Any]]) -> int:
        """Write the messages not yet archived, durably; returns how many were new.

        When this returns, every given message is on disk (new or already there), so all of
        them may be deleted from the queue.
        """
        with self._lock:
            batch = [m for m in messages if isinstance(m.get("MessageId"), str)]
            known = self._known(sorted({m["MessageId"] for m in batch}))
            lines: dict[str, bytes] = {}
            for message in batch:
                mid = message["MessageId"]
                if mid in known or mid in lines:
                    continue
                lines[mid] = message_line(message)
            if not lines:
                return 0
            fh = self._segment()
            fh.write(b"".join(lines.values()))
            fh.flush()
            os.fsync(fh.fileno())
            assert self._db is not None
            with self._db:  # only once they are on disk, with the bytes they now cover
                self._db.executemany("INSERT OR IGNORE INTO ids VALUES (?)", [(m,) for m in lines])
                self._db.execute(
                    "INSERT OR REPLACE INTO covered VALUES (?, ?)", (self._name, fh.tell())
                )
            self._total += len(lines)
            return len(lines)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._held is not None:
                self._held.close()
                self._held = None


def _connect_index(path: Path) -> sqlite3.Connection:
    db = connect_private(path, check_same_thread=False)
    try:
        # WAL with synchronous=NORMAL: a kill -9 loses no committed id, a power cut may lose
        # the last few, which the covered offsets then index again from the segments
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS ids (mid TEXT PRIMARY KEY) WITHOUT ROWID")
        db.execute(
            "CREATE TABLE IF NOT EXISTS covered (segment TEXT PRIMARY KEY, bytes INTEGER NOT NULL)"
        )
    except sqlite3.DatabaseError:
        db.close()
        raise
    db.isolation_level = "DEFERRED"  # `with db:` groups each batch into one transaction
    return db


def _index_tail(db: sqlite3.Connection, seg: Path, start: int) -> None:
    """Index the ids in `seg` from byte `start` to its end (complete lines: the tail is
    repaired first), and record that the index covers it."""
    with seg.open("rb") as fh:
        fh.seek(start)
        with db:
            batch: list[tuple[str]] = []
            for line in fh:
                mid = _message_id(line.decode("utf-8", errors="replace"))
                if mid:
                    batch.append((mid,))
                if len(batch) >= 10_000:
                    db.executemany("INSERT OR IGNORE INTO ids VALUES (?)", batch)
                    batch = []
            db.executemany("INSERT OR IGNORE INTO ids VALUES (?)", batch)
            db.execute("INSERT OR REPLACE INTO covered VALUES (?, ?)", (seg.name, fh.tell()))
