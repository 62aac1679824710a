"""Writes that survive a crash, and locks that refuse a second writer.

Every part that persists something a later run depends on (the cut-over journal, verify's
archive and reports, rendered artifacts) writes it whole or not at all: a temp file in the same
directory, fsync, rename, then fsync of the directory so the rename itself is durable. A kill -9
at any moment leaves the old file or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from hookshift.errors import InputError, OperationError


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (POSIX needs the directory fsynced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


PRIVATE_DIR = 0o700


def make_private_dirs(path: Path, mode: int = PRIVATE_DIR) -> None:
    """Create `path` and each missing parent with `mode` whatever the umask (``mkdir -p``
    would give the parents 0777 less the umask: world-writable under ``umask 000``, where
    another user could plant what hookshift later trusts). An existing directory is left as
    it is."""
    if path.is_dir():
        return
    if path.parent != path:
        make_private_dirs(path.parent, mode)
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        if not path.is_dir():
            raise
        return  # made meanwhile by another process
    os.chmod(path, mode)


def foreign_hold(path: Path, levels: int | None = None) -> str | None:
    """Why another user could have put `path` (a file or directory) where it is, or could
    change it: it, a directory above it or a symlink on the way belongs to someone other than
    root and this user, or it or a directory above it is writable by others (group or world)
    without the sticky bit that keeps them from renaming what is not theirs. None when only
    root and this user could. OpenSSH's rule for ``authorized_keys`` (StrictModes). `levels`:
    how many directories above `path` are looked at (None: all of them)."""
    me = os.geteuid()
    written = Path(os.path.abspath(path))
    real = Path(os.path.realpath(path))
    chains = [(p, *p.parents)[: None if levels is None else levels + 1] for p in (written, real)]
    for current in dict.fromkeys(p for chain in chains for p in chain):
        try:
            info = current.lstat()
        except OSError:
            continue  # not made yet (or not reachable): nothing anyone put there
        if info.st_uid not in (0, me):
            return f"{current} belongs to another user (uid {info.st_uid})"
        if stat.S_ISLNK(info.st_mode):
            continue  # a link's own mode means nothing; where it leads is checked too
        loose = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if loose and not (stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX):
            mode = stat.S_IMODE(info.st_mode)
            return f"{current} may be written by other users (mode {mode:04o})"
    return None


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
            os.fchmod(handle.fileno(), mode)
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
    # not through a link: one planted at the lock's path would create or lock another file
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(lock_path, flags, mode)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise InputError(
            "is a link, not a lock file",
            where=str(lock_path),
            fix="remove the link if you did not put it there",
        ) from None
    with _flocked(fd, refusal):
        yield


@contextlib.contextmanager
def _flocked(fd: int, refusal: str) -> Iterator[None]:
    """Hold an exclusive, non-blocking flock on the open `fd` (closed on exit)."""
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OperationError(refusal) from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def directory_lock(directory: Path, refusal: str) -> Iterator[None]:
    """Hold an exclusive, non-blocking flock on `directory` itself; a second holder gets
    `refusal`.

    A directory's inode outlives every file renamed into it, so this locks a whole config
    tree no matter where each caller keeps its backups, and creates nothing in it.
    """
    with _flocked(os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), refusal):
        yield


TEMP_SUFFIX = ".hookshift-tmp"


class ReplacedError(OperationError):
    """The file to replace is not the one that was checked (a symlink or another file took
    its place meanwhile): nothing was written."""


def _open_dir(directory: Path) -> int:
    return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _same_file(dir_fd: int, name: str, expected: os.stat_result, path: Path) -> os.stat_result:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise ReplacedError(f"{path} disappeared during the change; nothing written") from None
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (
        expected.st_dev,
        expected.st_ino,
    ):
        raise ReplacedError(
            f"{path} was replaced (by a symlink or another file) during the change; "
            "nothing written to it"
        )
    if (st.st_size, st.st_mtime_ns) != (expected.st_size, expected.st_mtime_ns):
        # written in place (an editor that keeps the inode, `>>`): replacing it would lose that
        raise ReplacedError(
            f"{path} was changed by someone else during the change; nothing written to it"
        )
    return st


def write_exclusive(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Create `path` (it must not exist; a link there is not followed) holding `data`, fsynced.

    A partial file (disk full) is removed before the error goes up.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# Attributes a new file gets from the system, not from the file it replaces: copying them
# needs privileges a writer may lack, and the system sets them as it does for any new file.
_SYSTEM_SET = ("security.", "trusted.")


def _copy_xattrs(dir_fd: int, name: str, fd: int) -> None:
    """Give the open file `fd` the extended attributes of `name` (in `dir_fd`): its ACL
    (``system.posix_acl_access``, after the mode, whose group bits it then sets as they were)
    and ``user.*`` attributes. A rename puts a new inode in place, which has none of them: a
    deploy user granted access by ``setfacl`` would lose it. Nothing to copy on a file system
    without extended attributes."""
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        try:
            names = os.listxattr(src)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                return
            raise
        for attr in names:
            if attr.startswith(_SYSTEM_SET):
                continue
            os.setxattr(fd, attr, os.getxattr(src, attr))
    finally:
        os.close(src)


def replace_file(
    path: Path,
    data: bytes,
    *,
    expected: os.stat_result,
    before_rename: Callable[[], None] | None = None,
) -> os.stat_result:
    """Replace the regular file `path` (no symlink anywhere in it) with `data`, whole or not at
    all, keeping its owner and mode.

    The temp file gets an unpredictable hidden name ending in ``.hookshift-tmp`` (no
    ``include *.conf`` picks it up), is created exclusively without following links in the
    directory opened once, and gets its owner and mode through its descriptor: nothing
    planted at a path in the meantime can redirect a write, a chmod or the rename. `path`
    must still be the file `expected` describes, with its size and modification time (checked
    before the temp file is made and again just before the rename), else `ReplacedError`. A
    chown that fails is an error:
    a file silently taken over by the caller's user is not the user's config any more.
    Returns the new file's status (what the next replacement must find there).
    """
    dir_fd = _open_dir(path.parent)
    try:
        st = _same_file(dir_fd, path.name, expected, path)
        tmp = f".{path.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        try:
            try:
                _write_all(fd, data)
                os.fsync(fd)
                if (st.st_uid, st.st_gid) != (os.fstat(fd).st_uid, os.fstat(fd).st_gid):
                    os.fchown(fd, st.st_uid, st.st_gid)
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                _copy_xattrs(dir_fd, path.name, fd)
            finally:
                os.close(fd)
            if before_rename is not None:
                before_rename()
            _same_file(dir_fd, path.name, expected, path)
            os.rename(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)
        return os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
    finally:
        os.close(dir_fd)
