"""Log files that hold callbacks, made before nginx opens them.

nginx's master process opens ``access_log`` files as root with mode 0644 when they do not exist,
so a parity log (every callback's body, phone numbers included) would be world-readable.
Debian gives nginx's logs ``www-data:adm`` and 0640 (``create 0640 www-data adm`` in
/etc/logrotate.d/nginx), so a file made that way beforehand is kept by nginx and by logrotate.
"""

from __future__ import annotations

import errno
import fnmatch
import grp
import os
import pwd
import re
import stat
from pathlib import Path

from hookshift.errors import InputError

LOG_USER = "www-data"
LOG_GROUP = "adm"
LOG_MODE = 0o640


def _id(lookup: str, name: str) -> int:
    try:
        return pwd.getpwnam(name).pw_uid if lookup == "user" else grp.getgrnam(name).gr_gid
    except KeyError:
        return -1  # unknown here: keep what the file gets (os.fchown leaves -1 alone)


def _cannot_open(path: Path, exc: OSError) -> InputError:
    denied = exc.errno in (errno.EACCES, errno.EPERM)
    return InputError(
        f"cannot open the log ({exc.strerror})",
        where=str(path),
        fix="run as a user that may write it (nginx's logs are root's), or choose another log path"
        if denied
        else "make it a regular file (not a symlink) or choose another log path",
    )


def precreate_log(
    path: Path, *, user: str = LOG_USER, group: str = LOG_GROUP, mode: int = LOG_MODE
) -> bool:
    """Make `path` an empty log owned by `user`:`group` with `mode`; True if it was made.

    An existing file keeps its owner and content but loses any permission beyond `mode` (a
    0644 log becomes 0640). A symlink or anything but a regular file is refused: root must not
    be led to change another file. So is a log that another user could read or replace: one
    they own (only root, `user` and whoever runs this may), one with a second name (a hard
    link, which keeps its own permissions' reach), or one in a directory anyone may write
    without the sticky bit (they could put their own file in its place before nginx reopens
    it).
    """
    _check_log_directory(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
        made = True
    except FileExistsError:
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise _cannot_open(path, exc) from None
        made = False
    except OSError as exc:
        raise _cannot_open(path, exc) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(
                "the log path is not a regular file",
                where=str(path),
                fix="choose another log path",
            )
        if not made:
            _check_existing_log(path, info, user)
        if made:
            if os.geteuid() == 0:
                os.fchown(fd, _id("user", user), _id("group", group))
            os.fchmod(fd, mode)  # whatever the umask
        elif stat.S_IMODE(info.st_mode) & ~mode:
            os.fchmod(fd, stat.S_IMODE(info.st_mode) & mode)
    finally:
        os.close(fd)
    return made


def _check_log_directory(path: Path) -> None:
    directory = path.parent
    try:
        info = os.stat(directory)
    except OSError:
        return  # said by the open that follows
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        raise InputError(
            f"the log's directory {directory} may be written by any user "
            f"(mode {stat.S_IMODE(info.st_mode):04o}): one could put a file of theirs in the "
            "log's place and read every callback nginx writes to it",
            where=str(path),
            fix="choose a log directory only root and nginx may write, e.g. /var/log/nginx",
        )


def _check_existing_log(path: Path, info: os.stat_result, user: str) -> None:
    allowed = {0, os.geteuid(), _id("user", user)}
    if info.st_uid not in allowed:
        raise InputError(
            f"the log file belongs to another user (uid {info.st_uid}), who could read every "
            "callback nginx writes to it",
            where=str(path),
            fix="remove it (hookshift makes the log anew, private to nginx) or choose another "
            "log path",
        )
    if info.st_nlink > 1:
        raise InputError(
            f"the log file has {info.st_nlink - 1} other name(s) (hard links): whoever made "
            "one could read every callback nginx writes to it",
            where=str(path),
            fix="remove it (hookshift makes the log anew, private to nginx) or choose another "
            "log path",
        )


LOGROTATE_DIR = Path("/etc/logrotate.d")


def rotation_keeps_private(log: Path, logrotate_dir: Path = LOGROTATE_DIR) -> bool:
    """Whether a logrotate rule rotates `log` so that the new file stays private: one whose
    path glob takes it and that ``copytruncate``s it (the file itself stays) or ``create``s the
    new one without any permission for others. Without such a rule, nginx opens the next log
    itself after a rotation, 0644."""
    try:
        files = sorted(p for p in logrotate_dir.iterdir() if p.is_file())
    except OSError:
        return False
    for rule in files:
        try:
            text = rule.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for paths, body in re.findall(r"([^{}]*?)\{([^{}]*)\}", text):
            globs = [p.strip("\"'") for p in paths.split() if p.startswith(("/", '"/', "'/"))]
            if not any(fnmatch.fnmatch(str(log), g) for g in globs):
                continue
            words = [line.split() for line in body.splitlines() if line.split()]
            if any(w[0] == "copytruncate" for w in words):
                return True
            create = [w for w in words if w[0] == "create"]
            mode = create[-1][1] if create and len(create[-1]) > 1 else None
            return mode is not None and mode.isdigit() and int(mode, 8) & 0o007 == 0
    return False


def rotation_warning(
    log: Path, logrotate_dir: Path = LOGROTATE_DIR, worker: tuple[str, str] | None = None
) -> str | None:
    """What to tell the user about rotating the parity log at `log` (None: it stays private).

    The rule it suggests creates the next log for nginx's workers: `worker` (the config's
    ``user`` and group), Debian's ``www-data adm`` when the config names www-data or no one (a
    rule naming a user or group the host lacks makes logrotate fail); and reopens nginx's
    logs as Debian's init script does there, else with ``nginx -s reopen``."""
    if rotation_keeps_private(log, logrotate_dir):
        return None
    debian = worker is None or worker[0] == "www-data"
    owner = "www-data adm" if debian or worker is None else " ".join(worker)
    reopen = "invoke-rc.d nginx rotate" if debian else "nginx -s reopen"
    return (
        f"no logrotate rule keeps {log} private when it is rotated: nginx then opens the next "
        "one itself, readable by every local user (0644), and it holds every callback's body. "
        f"Add one, e.g. /etc/logrotate.d/hookshift: `{log} {{ daily rotate 14 compress "
        f"delaycompress missingok notifempty create 0640 {owner} sharedscripts postrotate "
        f"{reopen} >/dev/null 2>&1 endscript }}` (one directive per line)"
    )
