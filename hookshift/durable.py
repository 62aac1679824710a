"""Writes that survive a crash, and locks that refuse a second writer.

Every part that persists something a later run depends on (the cut-over journal, verify's
archive and reports, rendered artifacts) writes it whole or not at all: a temp file in the same
directory, fsync, rename, then fsync of the directory so the rename itself is durable. A kill -9
at any moment leaves the old file or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hookshift.errors import OperationError


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (POSIX needs the directory fsynced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str, *, default_mode: int = 0o644) -> None:
    """Replace `path` with `data` (str is written as UTF-8), keeping an existing file's mode."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else default_mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def exclusive_lock(lock_path: Path, refusal: str, *, mode: int = 0o600) -> Iterator[None]:
    """Hold an exclusive, non-blocking flock on `lock_path`; a second holder gets `refusal`.

    Non-blocking on purpose: an operator who runs a second command while one is changing nginx
    or the journal is told at once, instead of waiting behind it and acting on stale state.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, mode)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OperationError(refusal) from None
        yield
    finally:
        os.close(fd)
