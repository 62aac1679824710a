"""The SQS archive (docs/contracts.md §3): JSONL segments, one Message per line, keyed on
MessageId, written so that a crash at any point loses nothing and duplicates nothing.

- A batch is written and fsync'ed before `hookshift verify pull --delete` deletes it, so a
  deleted message is always on disk.
- A message written but not deleted (a kill between the two) comes back after the visibility
  timeout; the archive knows every MessageId it holds and does not write it twice.
- A kill in the middle of a write leaves a torn last line; opening the archive cuts it off
  (that message was not deleted either, so it is received again).

Messages carry phone numbers: the directory is the owner's only (0700) and so is every file
in it (0600), whatever the umask. ``hookshift-archive.json`` records the queue the archive was
pulled from, so that a report over it names where a heal may send.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from hookshift.durable import fsync_dir, write_atomic

SEGMENT_BYTES = 256 * 1024 * 1024
ARCHIVE_FIELDS = ("MessageId", "MD5OfBody", "Body", "Attributes", "MessageAttributes")
META = "hookshift-archive.json"
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def archive_queue_url(root: Path) -> str | None:
    """The queue URL an archive was pulled from (None for an archive made before it was kept)."""
    try:
        meta = json.loads((root / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = meta.get("queue_url") if isinstance(meta, dict) else None
    return url if isinstance(url, str) else None


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
    """Every archived Message, in segment order (the reader for small archives and tests)."""
    for seg in sorted(root.glob("*.jsonl")):
        with seg.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def _owner_only(path: Path, most: int) -> None:
    mode = path.stat().st_mode & 0o7777
    if mode & ~most:
        os.chmod(path, mode & most)


class Archive:
    """An append-only, fsync'ed, MessageId-keyed archive directory (thread-safe)."""

    def __init__(self, root: Path, queue_url: str | None = None) -> None:
        self.root = root
        self.queue_url = queue_url
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._fh: IO[str] | None = None
        self._written = 0
        self.repaired_bytes = 0

    def open(self) -> Archive:
        self.root.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        _owner_only(self.root, PRIVATE_DIR)  # also an archive made before this rule
        if self.queue_url is not None and archive_queue_url(self.root) is None:
            meta = json.dumps({"queue_url": self.queue_url}) + "\n"
            write_atomic(self.root / META, meta, default_mode=PRIVATE_FILE)
        for seg in sorted(self.root.glob("*.jsonl")):
            _owner_only(seg, PRIVATE_FILE)
            self.repaired_bytes += repair_torn_tail(seg)
            with seg.open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    mid = _message_id(line)
                    if mid:
                        self._seen.add(mid)
        return self

    def __enter__(self) -> Archive:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._seen

    def _segment(self) -> IO[str]:
        if self._fh is None or self._written >= SEGMENT_BYTES:
            if self._fh is not None:
                self._fh.close()
            name = f"seg-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}.jsonl"
            fd = os.open(
                self.root / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, PRIVATE_FILE
            )
            os.fchmod(fd, PRIVATE_FILE)  # whatever the umask
            self._fh = os.fdopen(fd, "a", encoding="utf-8")
            self._written = 0
            fsync_dir(self.root)
        return self._fh

    def append(self, messages: Iterable[dict[str, Any]]) -> int:
        """Write the messages not yet archived, durably; returns how many were new.

        When this returns, every given message is on disk (new or already there), so all of
        them may be deleted from the queue.
        """
        with self._lock:
            lines: dict[str, str] = {}
            for message in messages:
                mid = message.get("MessageId")
                if not isinstance(mid, str) or mid in self._seen or mid in lines:
                    continue
                record = {k: message[k] for k in ARCHIVE_FIELDS if k in message}
                lines[mid] = json.dumps(record, ensure_ascii=False) + "\n"
            if not lines:
                return 0
            fh = self._segment()
            data = "".join(lines.values())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            self._written += len(data)
            self._seen.update(lines)  # only once they are on disk
            return len(lines)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
