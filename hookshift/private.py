"""Files and directories that hold callbacks are their owner's only (files 0600, directories
0700), whatever the umask and also when an older run left them more open.

Callbacks carry phone numbers and message text, and a umask of 022 would leave every file
holding them readable by any user of the host: verify's archive, reports, ledgers and state
(what points at callbacks: MessageIds, keys, body hashes), the stage emulator's execution log
(``hookshift apigw serve --log``) and the rehearsal's run directory. Here, below every part, so
that each writes through the one rule (verify's names for it stay in `hookshift.verify.private`).

SQLite creates a database 0644 less the umask and gives its ``-wal`` and ``-shm`` files the
database's mode: a database made 0600 before SQLite opens it keeps all three private.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import BinaryIO

from hookshift.durable import write_atomic

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def owner_only(path: Path, most: int = PRIVATE_FILE) -> None:
    """Take from `path` every permission bit `most` does not allow (nothing is added)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~most:
        os.chmod(path, mode & most)


def make_dirs(path: Path, mode: int = PRIVATE_DIR) -> None:
    """Create `path` and its missing parents, each with `mode` whatever the umask; an existing
    directory is left as it is (the operator may have opened it on purpose)."""
    if path.is_dir():
        return
    if path.parent != path:
        make_dirs(path.parent, mode)
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        if not path.is_dir():
            raise
        return  # made meanwhile by another process
    os.chmod(path, mode)


def write_private(path: Path, data: bytes | str) -> None:
    """Replace `path` atomically with `data`, 0600 (an older, more open file included)."""
    if path.exists():
        owner_only(path)
    write_atomic(path, data, default_mode=PRIVATE_FILE)


def open_private(path: Path) -> BinaryIO:
    """`path` opened to append to, 0600: created so (never readable by others, not even for an
    instant), tightened when an older run left it more open."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & ~PRIVATE_FILE:
            os.fchmod(fd, mode & PRIVATE_FILE)
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise


def connect_private(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """An SQLite connection to `path` in autocommit mode (the caller opens its transactions),
    with the database and its companions 0600: created so before SQLite opens them, tightened
    when an older run left them open."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & ~PRIVATE_FILE:
            os.fchmod(fd, mode & PRIVATE_FILE)
    finally:
        os.close(fd)
    for suffix in SQLITE_COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            owner_only(path.with_name(path.name + suffix))
    return sqlite3.connect(path, check_same_thread=check_same_thread, isolation_level=None)
