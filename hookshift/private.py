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
import errno
import os
import sqlite3
import stat
from pathlib import Path
from typing import BinaryIO

from hookshift.durable import foreign_hold, make_private_dirs, write_atomic
from hookshift.errors import InputError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def owner_only(path: Path, most: int = PRIVATE_FILE) -> None:
    """Take from `path` every permission bit `most` does not allow (nothing is added), through
    a descriptor of `path` itself: a symlink there is refused, not followed (a chmod through a
    link planted there would reach any file, /etc/passwd included)."""
    fd = _open_own(path, os.O_RDONLY)
    try:
        _tighten(fd, most)
    finally:
        os.close(fd)


def _tighten(fd: int, most: int = PRIVATE_FILE) -> None:
    """Take from the open file `fd` every permission bit `most` does not allow."""
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & ~most:
        os.fchmod(fd, mode & most)


def _open_own(path: Path, flags: int, mode: int = PRIVATE_FILE) -> int:
    """`os.open` without following a symlink at `path` (never blocking on a FIFO): a link or
    anything but a regular file or directory is one line."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise _not_ours(path, "a symlink") from None
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind not in (stat.S_IFREG, stat.S_IFDIR):
        os.close(fd)
        raise _not_ours(path, "not a regular file")
    if flags & (os.O_WRONLY | os.O_RDWR):
        os.set_blocking(fd, True)
    return fd


def _not_ours(path: Path, what: str) -> InputError:
    return InputError(
        f"is {what}, not a file hookshift wrote: it is not followed nor changed",
        where=str(path),
        fix="remove it if you did not put it there",
    )


def make_dirs(path: Path, mode: int = PRIVATE_DIR) -> None:
    """Create `path` and its missing parents, each with `mode` whatever the umask; an existing
    directory is left as it is (the operator may have opened it on purpose), unless another
    user could put files or links in it, or swap it (`durable.foreign_hold`, for it and the
    directory above): what hookshift writes there holds callbacks, and it writes as whoever
    runs it."""
    make_private_dirs(path, mode)
    held = foreign_hold(path, levels=1)
    if held is not None:
        raise InputError(
            f"{held}: another user could put links or files of theirs among what hookshift "
            "writes there",
            where=str(path),
            fix="give a directory only you (or root) can write, or run as the user that owns it",
        )


def write_private(path: Path, data: bytes | str) -> None:
    """Replace `path` atomically with `data`, 0600 (an older, more open file included; a
    symlink there is refused, even one that leads nowhere)."""
    if os.path.lexists(path):
        owner_only(path)
    write_atomic(path, data, default_mode=PRIVATE_FILE)


def open_private(path: Path) -> BinaryIO:
    """`path` opened to append to, 0600: created so (never readable by others, not even for an
    instant), tightened when an older run left it more open."""
    fd = _open_own(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        _tighten(fd)
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise


def connect_private(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """An SQLite connection to `path` in autocommit mode (the caller opens its transactions),
    with the database and its companions 0600: created so before SQLite opens them, tightened
    when an older run left them open."""
    fd = _open_own(path, os.O_RDWR | os.O_CREAT)
    try:
        _tighten(fd)
    finally:
        os.close(fd)
    for suffix in SQLITE_COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            owner_only(path.with_name(path.name + suffix))
    return sqlite3.connect(path, check_same_thread=check_same_thread, isolation_level=None)
