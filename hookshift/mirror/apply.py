"""Write a plan to disk safely: lock, check, back up, record, write in order, validate, commit.

The order matters:

1. an exclusive lock on the config tree (`mirror.state`), so two writers never interleave,
   whatever backup directories they were given;
2. a change that a killed earlier run left unfinished is undone first (from its intent
   record and backup), so every run starts from files that are entirely the user's;
3. every file must still be what the plan was made from (else the plan is stale);
4. everything that can fail is checked before the first write: the nginx binary runs, the
   real ``nginx -t`` accepts the *original* (apply: a config that is already broken is not
   ours to touch), each file is a regular file whose owner and mode hookshift can keep
   (a read-only file is refused: someone protected it), its directory is writable, and the
   real ``nginx -t`` accepts the *result*, run on copies of the changed files beside the main
   file (`nginx.shadow`): a result nginx rejects is refused with no file of the user's
   written, and a kill during that check (seconds on a big config) leaves them as they
   were. When the copies cannot be made, the check after the writes (8) decides alone, and
   the user is told;
5. each file is copied to a fresh backup directory (with a manifest), fsynced;
6. the intent (which files go from which bytes to which) is recorded durably;
7. the files are written one by one in the given order, each atomically (`replace_file`):
   apply puts http-level definitions (``log_format``, ``map``, ``upstream``) before the
   server and location lines that use them, remove takes uses out before definitions, so a
   kill -9 between two files leaves a config ``nginx -t`` accepts;
8. the real ``nginx -t`` on the result in place, the final word (something may differ from
   the copies: a file changed meanwhile); on any failure from the first write on, every file
   written is restored, the intent cleared and the now useless backup removed;
9. with ``reload``, ``nginx -s reload``; if that fails, or the running nginx does not take the
   new config (apply: the relay's socket never appears; remove: it never goes), or the run is
   interrupted once the signal is sent, restore and reload again;
10. commit: the record of the lines apply wrote is updated and the intent cleared, in one
    atomic write.

With ``reload`` and nothing to change, nginx is reloaded on the config as it is (after
``nginx -t``): the run leaves nginx on what is on disk, whatever an interrupted run left.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hookshift.durable import (
    TEMP_SUFFIX,
    fsync_dir,
    make_private_dirs,
    replace_file,
    write_exclusive,
)
from hookshift.errors import InputError, OperationError
from hookshift.logfile import precreate_log
from hookshift.mirror.plan import MirrorPlan, relay_dir
from hookshift.mirror.state import (
    ConfigState,
    FileRecord,
    Intent,
    IntentFile,
    Saved,
    same_file_keys,
    state_root,
)
from hookshift.nginx import binary, shadow, splice
from hookshift.nginx.source import GLOB_CHARS, load_source, preorder, read_text, to_bytes
from hookshift.nginx.values import log_file


@dataclass(frozen=True)
class Edit:
    """One file's change: from `old` to `new` (both full texts)."""

    path: Path
    old: str
    new: str


@dataclass(frozen=True)
class ApplyResult:
    changed: tuple[Path, ...]
    backup_dir: Path | None
    reloaded: bool
    nginx_output: str
    notes: tuple[str, ...] = ()  # warnings for the user (an undone interrupted run, ...)

    @property
    def no_change(self) -> bool:
        return not self.changed


def default_backup_dir() -> Path:
    return state_root() / "backups"


PAUSE_ENV = "HOOKSHIFT_PAUSE_AT"
CHECKPOINT_LOG_ENV = "HOOKSHIFT_CHECKPOINT_LOG"


_STEP: contextvars.ContextVar[str | None] = contextvars.ContextVar("checkpoint_step", default=None)


@contextlib.contextmanager
def checkpoint_step(step: str) -> Iterator[None]:
    """Name the checkpoints reached inside as ``STEP:LABEL``.

    A caller that runs apply or remove as one step of its own work (the cut-over: ``apply``,
    ``remove``) lets a crash test pause inside that step alone, although both steps pass
    the same labels (``written:nginx.conf``).
    """
    token = _STEP.set(step)
    try:
        yield
    finally:
        _STEP.reset(token)


def checkpoint(label: str) -> None:
    """Crash-test hook: with ``HOOKSHIFT_PAUSE_AT=label`` the process stops here and says so.

    Tests kill -9 a paused run at each checkpoint to show that the config is valid and
    recoverable at every step (``HOOKSHIFT_CHECKPOINT_LOG=FILE`` lists the checkpoints a run
    passes, so the test finds all of them); without the variables this does nothing. Inside
    `checkpoint_step` the label is prefixed with the step's name.
    """
    step = _STEP.get()
    name = f"{step}:{label}" if step else label
    log = os.environ.get(CHECKPOINT_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")
    if os.environ.get(PAUSE_ENV) == name:
        os.write(2, f"hookshift: paused at {name}\n".encode())
        while True:
            time.sleep(3600)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class _Target:
    """An edit with the real file it changes (symlinks resolved once) and that file's status."""

    edit: Edit
    real: Path
    stat: os.stat_result


def keep_problem(st: os.stat_result, euid: int, groups: set[int]) -> tuple[str, str] | None:
    """Why a file with status `st` cannot be replaced keeping its owner and mode (what, fix).

    A caller that is not root can give a new file only its own uid and one of its groups:
    anything else would silently hand the user's config to the caller.
    """
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file", "point --config at the real nginx config"
    if not st.st_mode & stat.S_IWUSR:
        return (
            f"is read-only (mode {stat.S_IMODE(st.st_mode):04o}): hookshift does not replace a "
            "file someone protected",
            "make it writable (chmod u+w) if it is meant to change, then run again",
        )
    if euid != 0 and st.st_uid != euid:
        return (
            f"is owned by uid {st.st_uid}; running as uid {euid}, hookshift could not keep "
            "its owner",
            "run as root (or as its owner)",
        )
    if euid != 0 and st.st_gid not in groups:
        return (
            f"belongs to gid {st.st_gid}, not a group of uid {euid}: hookshift could not keep "
            "its group",
            "run as root",
        )
    return None


# Linux inode flags (``chattr``): FS_IOC_GETFLAGS is _IOR('f', 1, long).
_FS_IOC_GETFLAGS = (2 << 30) | (struct.calcsize("l") << 16) | (ord("f") << 8) | 1
_IMMUTABLE_FL = 0x10
_APPEND_FL = 0x20


def _inode_flags(path: Path) -> int:
    """`path`'s ``chattr`` flags (0 where the file system or the platform has none)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        found = fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(8))
    except OSError:
        return 0
    finally:
        os.close(fd)
    return int.from_bytes(found[:4], sys.byteorder)


def attribute_problem(real: Path) -> tuple[str, str] | None:
    """Why the file `real` cannot be replaced whatever its mode says (what, fix): it or its
    directory is immutable or append-only (``chattr +i``, ``+a``). A rename onto such a file,
    or in such a directory, fails even for root, and only once the backup is made and other
    files are written; someone set it to keep the file as it is."""
    for path in (real, real.parent):
        flags = _inode_flags(path)
        if not flags & (_IMMUTABLE_FL | _APPEND_FL):
            continue
        what, letter = ("immutable", "i") if flags & _IMMUTABLE_FL else ("append-only", "a")
        subject = "is" if path == real else f"is in {path}, which is"
        return (
            f"{subject} {what} (chattr +{letter}): no one can replace it there, root included, "
            "and hookshift does not change a file someone protected",
            f"if it is meant to change, run `chattr -{letter} {path}`, run again, then "
            f"`chattr +{letter} {path}`",
        )
    return None


def _targets(edits: Sequence[Edit]) -> list[_Target]:
    euid = os.geteuid()
    groups = {os.getegid(), *os.getgroups()}
    targets: list[_Target] = []
    for edit in edits:
        real = Path(os.path.realpath(edit.path))
        st = os.lstat(real)
        problem = keep_problem(st, euid, groups) or attribute_problem(real)
        if problem is not None:
            raise InputError(f"{real} {problem[0]}", where=str(edit.path), fix=problem[1])
        if not os.access(real.parent, os.W_OK | os.X_OK):
            raise InputError(
                f"cannot write in {real.parent} (permission denied or read-only)",
                where=str(edit.path),
                fix="run as a user who may change nginx's config (root)",
            )
        targets.append(_Target(edit, real, st))
    return targets


def remove_stale_temps(config: Path, edits: Sequence[Edit]) -> None:
    """Delete temp files a killed earlier run left beside any file of the config.

    Only called under the lock, so no other hookshift is writing them now.
    """
    try:
        files = list(load_source(config).texts)
    except InputError:
        files = []
    dirs = {Path(os.path.realpath(p)).parent for p in [*files, *(e.path for e in edits)]}
    dirs.add(Path(os.path.abspath(config)).parent)  # the copies of `nginx.shadow` (a link's dir)
    for directory in dirs:
        for stale in directory.glob(f".*{TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def backup(targets: Sequence[_Target], backup_dir: Path) -> tuple[Path, tuple[Path, ...]]:
    """Copy each file's current bytes into a new directory under `backup_dir`, with a manifest;
    the directory and each file's copy.

    Whole or absent: on a full disk the partial directory is removed and the user told.
    """
    try:
        make_private_dirs(backup_dir)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        run = Path(tempfile.mkdtemp(prefix=f"{stamp}-", dir=backup_dir))
    except OSError as exc:
        raise _backup_error(backup_dir, exc) from None
    try:
        manifest = {}
        copies = tuple(run / f"{i:03d}-{t.real.name}" for i, t in enumerate(targets))
        for target, copy in zip(targets, copies, strict=True):
            write_exclusive(copy, to_bytes(target.edit.old))
            manifest[str(target.edit.path)] = copy.name
        write_exclusive(run / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
        fsync_dir(run)
        fsync_dir(backup_dir)
    except OSError as exc:
        shutil.rmtree(run, ignore_errors=True)
        raise _backup_error(backup_dir, exc) from None
    return run, copies


def _backup_error(backup_dir: Path, exc: OSError) -> InputError:
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return InputError(
        f"cannot write the backup in {backup_dir}: {exc.strerror}; nothing changed",
        fix="free space there or pass --backup-dir DIR on a writable disk"
        if full
        else "pass --backup-dir DIR in a directory you may write",
    )


def _path_parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _glob_matches(pattern: list[str], path: list[str]) -> bool:
    """Whether the glob `pattern` matches `path` (both as components), as nginx's glob(3)
    does: ``*`` stays within a component and does not match a leading dot."""
    return len(pattern) == len(path) and all(
        fnmatch.fnmatchcase(part, glob) and (not part.startswith(".") or glob.startswith("."))
        for part, glob in zip(path, pattern, strict=True)
    )


def backup_dir_included(config: Path, backup_dir: Path) -> str | None:
    """The ``include`` (`file:line` and pattern) whose glob would match what a backup puts
    under `backup_dir`: a directory hookshift creates for it, the run's directory, or a
    file in that; None when none does.

    nginx reads every file and directory an include glob matches, and fails on a directory
    (``pread() ... Is a directory``): a backup directory made where ``include conf.d/*;``
    looks would break ``nginx -t`` on the user's own config, and stay after the run.
    """
    base = Path(os.path.abspath(backup_dir))
    run = base / time.strftime("%Y%m%dT%H%M%SZ-probe", time.gmtime())  # as `backup` names it
    made = [p for p in (base, *base.parents) if not p.exists()]
    made += [run, run / "manifest.json", run / "000-nginx.conf"]
    try:
        source = load_source(config)
    except InputError:
        return None  # the checks before this one say what is wrong with the config
    conf_dir = source.main.parent
    for tree in source.config.files.values():
        for d in preorder(tree):
            if d.name != "include" or not d.args or not any(c in d.args[0] for c in GLOB_CHARS):
                continue  # one file, which exists: nothing hookshift makes is it
            full = d.args[0] if os.path.isabs(d.args[0]) else str(conf_dir / d.args[0])
            pattern = _path_parts(os.path.normpath(full))
            if any(_glob_matches(pattern, _path_parts(str(p))) for p in made):
                return f"`include {d.args[0]};` at {d.where}"
    return None


def check_backup_dir(backup_dir: Path, config: Path | None = None) -> None:
    """Refuse a backup directory that cannot take a backup, or that the config of `config`
    would read (`backup_dir_included`), before anything is shown or written (the backup itself
    comes after the plan is shown)."""
    included = None if config is None else backup_dir_included(config, backup_dir)
    if included is not None:
        raise InputError(
            f"the backup directory {backup_dir} is where {included} reads: nginx would read "
            "the backups as config (a directory there fails nginx -t); nothing changed",
            fix="pass --backup-dir DIR outside the directories the config includes from "
            f"(the default, {default_backup_dir()}, is)",
        )
    try:
        make_private_dirs(backup_dir)
        os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=backup_dir))
    except OSError as exc:
        raise _backup_error(backup_dir, exc) from None


def recover_locked(state: ConfigState) -> tuple[str, ...]:
    """Undo the change a killed run left unfinished: each file back to its bytes before it,
    and no temp file of its left beside them.

    Safe to repeat (a file already back is skipped); a file that is neither the before nor
    the after of that change was edited since, and is not ours to overwrite.
    """
    saved = state.load()
    intent = saved.intent
    if intent is None:
        return ()
    restored = 0
    for item in reversed(intent.files):
        path = Path(item.path)
        try:
            current: str | None = _sha256(path.read_bytes())
        except FileNotFoundError:
            current = None
        if current == item.old:
            continue
        if current != item.new:
            raise OperationError(
                f"{path} changed after an interrupted hookshift {intent.op}; its bytes from "
                f"before that run are in {item.backup}: put the file right by hand, then "
                f"delete {state.file}"
            )
        try:
            original = Path(item.backup).read_bytes()
        except OSError as exc:
            raise OperationError(
                f"cannot undo an interrupted hookshift {intent.op}: backup {item.backup}: "
                f"{exc.strerror}"
            ) from None
        if _sha256(original) != item.old:
            raise OperationError(f"the backup {item.backup} does not hold {path}'s old bytes")
        replace_file(path, original, expected=os.lstat(path))
        restored += 1
    state.save(Saved(saved.records, None))
    remove_stale_temps(state.config, [])  # a temp file the killed run was about to rename
    running = (
        "; it was reloading nginx, which may still run that change: reload it (--reload)"
        if intent.reload
        else ""
    )
    return (
        f"an interrupted hookshift {intent.op} was undone first "
        f"({restored} file(s) put back as they were){running}",
    )


def recover(config: Path) -> tuple[str, ...]:
    """Undo an unfinished change of `config` left by a killed run (before planning on it)."""
    state = ConfigState.of(Path(os.path.abspath(config)))
    if not state.config.is_file():
        return ()  # planning says what is wrong with the path
    with state.locked():
        return recover_locked(state)


def pending_change(config: Path) -> str | None:
    """What a killed run left unfinished in `config`, said for the user (None: nothing)."""
    state = ConfigState.of(Path(os.path.abspath(config)))
    try:
        intent = state.load().intent if state.config.is_file() else None
    except InputError:
        return None  # another user's state (root's): only they can apply, and they are told
    if intent is None:
        return None
    return f"an interrupted hookshift {intent.op} left {len(intent.files)} file(s) unfinished"


class _Failed(Exception):
    """A check after the writes failed (`what`, nginx's `detail`): restore, then report."""

    def __init__(
        self,
        what: str,
        detail: str | None,
        reload_after_restore: bool = False,
        fix: str | None = None,
    ) -> None:
        text = f"{what}, original restored: {detail}" if detail else f"{what}, original restored"
        super().__init__(f"{text} (fix: {fix})" if fix else text)
        self.reload_after_restore = reload_after_restore


@dataclass
class _Writer:
    """The files written so far (with their new status), so they can be put back, and
    whether nginx was sent a reload (then it may run them: it is reloaded after)."""

    written: list[tuple[_Target, os.stat_result]]
    reload_sent: bool = False

    def write(self, target: _Target) -> None:
        name = target.real.name
        try:
            new_stat = replace_file(
                target.real,
                to_bytes(target.edit.new),
                expected=target.stat,
                before_rename=lambda: checkpoint(f"temp-written:{name}"),
            )
        except OSError as exc:
            raise InputError(
                f"cannot write the nginx config: {exc.strerror}",
                where=str(target.edit.path),
                fix="free space on that disk, or run as a user who may change it",
            ) from None
        self.written.append((target, new_stat))
        checkpoint(f"written:{name}")

    def restore(self) -> None:
        for target, current in reversed(self.written):
            replace_file(target.real, to_bytes(target.edit.old), expected=current)
        self.written.clear()


def write_edits(
    edits: Sequence[Edit],
    *,
    config: Path,
    nginx_bin: str,
    backup_dir: Path,
    reload: bool,
    require_valid_original: bool = True,
    prefix: Path | None = None,
    took_effect: Callable[[], bool] | None = None,
    records: Mapping[str, FileRecord | None] | None = None,
    op: str = "change",
    ready: Callable[[], None] | None = None,
) -> ApplyResult:
    """The safe write pipeline shared by apply, remove and the cut-over (see the module
    docstring). Files are written in the order of `edits`; each prefix must be a config
    ``nginx -t`` accepts.

    `ready` runs once every check has passed, before the first byte is backed up or written
    (a CLI shows the diff there: a refusal shows none, and an error in `ready` changes
    nothing).

    `took_effect`, polled for a few seconds after a reload, says whether the running nginx
    really uses the new config: ``nginx -s reload`` only sends a signal, and a master that
    cannot apply the new config (a socket it cannot bind) keeps the old one and only logs it.
    `records` (keyed by the edit's path; None deletes) replace the record of the lines
    hookshift wrote, at commit.
    """
    state = ConfigState.of(config)
    with state.locked():
        notes = recover_locked(state)
        return write_locked(
            state,
            edits,
            config=config,
            nginx_bin=nginx_bin,
            backup_dir=backup_dir,
            reload=reload,
            require_valid_original=require_valid_original,
            prefix=prefix,
            took_effect=took_effect,
            records=records,
            op=op,
            notes=notes,
            ready=ready,
        )


def write_locked(
    state: ConfigState,
    edits: Sequence[Edit],
    *,
    config: Path,
    nginx_bin: str,
    backup_dir: Path,
    reload: bool,
    require_valid_original: bool,
    prefix: Path | None,
    took_effect: Callable[[], bool] | None,
    records: Mapping[str, FileRecord | None] | None,
    op: str,
    notes: tuple[str, ...],
    ready: Callable[[], None] | None = None,
) -> ApplyResult:
    """`write_edits` for a caller that holds ``state.locked()`` and has recovered.

    Every edit's file must still hold its `old` text, an edit that changes nothing included
    (a plan that found the change made already: another run may have undone it since).
    """
    _check_unchanged(edits)
    edits = [e for e in edits if e.old != e.new]
    binary.nginx_version(nginx_bin)  # the binary runs, for every operation
    if not edits:
        _commit(state, records)
        # asked to reload, nginx runs what is on disk after it, changed or not (an interrupted
        # run's reload may have left it on another config)
        return ApplyResult((), None, reload and _reload_as_is(config, nginx_bin, prefix), "", notes)
    remove_stale_temps(config, edits)
    before = binary.test_config(config, nginx_bin=nginx_bin, prefix=prefix)
    if require_valid_original and not before.ok:
        raise InputError(
            f"nginx -t fails on the original config, refusing to change it: {before.error}",
            where=str(config),
            fix="make `nginx -t` pass first",
        )
    targets = _targets(edits)
    notes += tuple(_hard_link_note(t) for t in targets if t.stat.st_nlink > 1)
    if before.ok:  # else the copies would fail as the original does, telling nothing
        notes += _check_result_before_writing(config, targets, nginx_bin, prefix)
    # nginx -t takes seconds on a big config: an edit made meanwhile in place (same file) is
    # caught here, and one made after this by the size and time the writes check
    _check_unchanged(edits)
    check_backup_dir(backup_dir, config)
    if ready is not None:
        ready()
    checkpoint("checked")
    run, copies = backup(targets, backup_dir)
    checkpoint("backed-up")
    saved = state.load()
    intent = Intent(
        op,
        reload=reload,
        files=tuple(
            IntentFile(
                str(t.real),
                str(copy),
                _sha256(to_bytes(t.edit.old)),
                _sha256(to_bytes(t.edit.new)),
            )
            for t, copy in zip(targets, copies, strict=True)
        ),
    )
    try:
        state.save(Saved(saved.records, intent))
    except OSError as exc:
        shutil.rmtree(run, ignore_errors=True)
        raise InputError(
            f"cannot record the change in {state.directory}: {exc.strerror}; nothing changed",
            fix="free space there",
        ) from None
    checkpoint("intent-recorded")
    writer = _Writer([])
    try:
        after, reloaded = _write_and_check(
            writer, targets, config, nginx_bin, prefix, reload, took_effect
        )
    except BaseException as exc:
        _undo(state, saved, writer, run, exc, config, nginx_bin, prefix)
        raise _user_error(exc) from None
    try:
        _commit(state, records)
    except OSError as exc:
        # the files are written and checked; only hookshift's record of them is missing
        raise OperationError(
            f"the change is in place and nginx -t passes, but hookshift could not record it in "
            f"{state.directory} ({exc.strerror}): free space there, then run the same command "
            "again, which puts the files back first and then makes the change again"
        ) from None
    checkpoint("committed")
    return ApplyResult(tuple(t.edit.path for t in targets), run, reloaded, after.output, notes)


def _hard_link_note(target: _Target) -> str:
    """A file with other names keeps them on its old bytes: the change is a new file renamed
    into place (the only write a kill cannot tear), which a hard link does not follow."""
    others = target.stat.st_nlink - 1
    return (
        f"{target.edit.path} had {others} other name(s) (hard links): they keep the text from "
        "before this change, and only this path has it (nginx reads this path); make the "
        "other name a symlink if it should follow"
    )


def _check_unchanged(edits: Sequence[Edit]) -> None:
    for edit in edits:
        if read_text(edit.path) != edit.old:
            raise OperationError(
                f"{edit.path} changed since the plan was made; plan again and re-run"
            )


def _check_result_before_writing(
    config: Path, targets: Sequence[_Target], nginx_bin: str, prefix: Path | None
) -> tuple[str, ...]:
    """``nginx -t`` on the result before any file is written (`nginx.shadow.judge`): a result
    it rejects is refused, every file untouched. A note for the user when the check could not
    be made; the check in place after the writes then decides alone, as it always does."""
    judged = shadow.judge(
        config,
        {t.real: t.edit.new for t in targets},
        {t.real: t.edit.old for t in targets},
        nginx_bin=nginx_bin,
        prefix=prefix,
        before_test=lambda: checkpoint("copies-written"),
    )
    if judged.unavailable is not None:
        return (_unchecked_note(judged.unavailable),)
    if judged.original_rejected is not None:
        error = judged.original_rejected.error
        why = f"nginx -t rejects hookshift's copy of the original config too: {error}"
        return (_unchecked_note(why),)
    if judged.rejected is None:
        return ()
    said = f": {judged.rejected.error}" if judged.rejected.error else ""
    raise OperationError(f"nginx -t rejected the result, nothing changed{said}")


def _unchecked_note(why: str) -> str:
    return (
        f"nginx -t could not check the result before it was written ({why}); it checked the "
        "files once written, as the last check always does"
    )


def _write_and_check(
    writer: _Writer,
    targets: Sequence[_Target],
    config: Path,
    nginx_bin: str,
    prefix: Path | None,
    reload: bool,
    took_effect: Callable[[], bool] | None,
) -> tuple[binary.TestResult, bool]:
    for target in targets:
        writer.write(target)
    after = binary.test_config(config, nginx_bin=nginx_bin, prefix=prefix)
    if not after.ok:
        raise _Failed("nginx -t rejected the result", after.error)
    checkpoint("tested")
    if not reload:
        return after, False
    writer.reload_sent = True  # from here an interruption may leave nginx on the new config
    result = binary.reload(config, nginx_bin=nginx_bin, prefix=prefix)
    if not result.ok:
        raise _Failed(
            "nginx -s reload failed",
            binary.without_stamp(result.error),
            True,
            binary.reload_fix(result.error),
        )
    if took_effect is not None and not _poll(took_effect, RELOAD_WAIT_S):
        raise _Failed(
            "nginx did not take the new config after reload (see its error log)", None, True
        )
    return after, True


def _undo(
    state: ConfigState,
    saved: Saved,
    writer: _Writer,
    run: Path,
    exc: BaseException,
    config: Path,
    nginx_bin: str,
    prefix: Path | None,
) -> None:
    """Put every written file back, clear the intent and drop the backup; if putting back
    fails, keep both so the next run finishes the job, and say so."""
    try:
        writer.restore()
        state.save(Saved(saved.records, None))
    except OSError as restore_exc:
        raise OperationError(
            f"{_user_error(exc)}; putting the original back failed too "
            f"({restore_exc.strerror}): run hookshift again to finish restoring "
            f"(originals in {run})"
        ) from None
    shutil.rmtree(run, ignore_errors=True)
    if writer.reload_sent or (isinstance(exc, _Failed) and exc.reload_after_restore):
        binary.reload(config, nginx_bin=nginx_bin, prefix=prefix)


def _reload_as_is(config: Path, nginx_bin: str, prefix: Path | None) -> bool:
    """Reload nginx on the config as it is on disk, after ``nginx -t`` passes on it."""
    checked = binary.test_config(config, nginx_bin=nginx_bin, prefix=prefix)
    if not checked.ok:
        raise OperationError(f"nginx -t fails on the config, not reloaded: {checked.error}")
    result = binary.reload(config, nginx_bin=nginx_bin, prefix=prefix)
    if not result.ok:
        fix = binary.reload_fix(result.error)
        said = f"nginx -s reload failed: {binary.without_stamp(result.error)}"
        raise OperationError(f"{said} (fix: {fix})" if fix else said)
    return True


def _user_error(exc: BaseException) -> BaseException:
    """The one-line error for a failure after the first write (the original is back)."""
    if isinstance(exc, _Failed):
        return OperationError(str(exc))
    if isinstance(exc, InputError):
        return InputError(f"{exc.what}; original restored", where=exc.where, fix=exc.fix)
    if isinstance(exc, OperationError):
        return OperationError(f"{exc}; original restored")
    if isinstance(exc, OSError):
        where = exc.filename if isinstance(exc.filename, str) else None
        return InputError(
            f"cannot write the nginx config: {exc.strerror}; original restored",
            where=where,
            fix="free space on that disk, or run as a user who may change it",
        )
    return exc


def _commit(state: ConfigState, records: Mapping[str, FileRecord | None] | None) -> None:
    saved = state.load()
    merged = dict(saved.records)
    for path, record in (records or {}).items():
        for other in same_file_keys(merged, path):
            del merged[other]  # the same file named another way: this record replaces it
        if record is None:
            merged.pop(path, None)
        else:
            merged[path] = record
    if merged != saved.records or saved.intent is not None:
        state.save(Saved(merged, None))


RELOAD_WAIT_S = 5.0


def _poll(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def relay_directory_problem(relay_socket: str) -> InputError | None:
    """Why nginx could not bind the relay socket: its directory does not exist, or its parent
    when nginx creates it as hookshift's private one (None: it can)."""
    needed = Path(relay_socket).parent
    if relay_dir(relay_socket) is not None:
        needed = needed.parent
    if needed.is_dir():
        return None
    return InputError(
        f"the relay socket's directory does not exist: {needed}",
        fix="create it or pass --relay-socket in an existing directory nginx can write",
    )


def check_relay_directory(relay_socket: str) -> None:
    """The relay socket's directory must exist, or its parent when nginx creates it as
    hookshift's private one (``nginx -t`` binds the socket, so this is checked before any
    write)."""
    problem = relay_directory_problem(relay_socket)
    if problem is not None:
        raise problem


@dataclass(frozen=True)
class _Log:
    """One of hookshift's logs: the file nginx opens, and who put it there."""

    name: str  # "the parity log"
    path: Path  # as the plan writes it into the config
    option: str  # the option that moves it
    given: Path | None = None  # the value of `option` it comes from; None: hookshift's default


def _logs(plan: MirrorPlan) -> list[_Log]:
    options = plan.options
    parity_given = options.parity_log if isinstance(options.parity_log, Path) else None
    logs = []
    if plan.parity_log is not None:
        logs.append(_Log("the parity log", plan.parity_log, "--parity-log", parity_given))
    error = plan.mirror_error_log
    if error is not None and options.mirror_error_log is not None:
        logs.append(
            _Log("the relay's error log", error, "--mirror-error-log", options.mirror_error_log)
        )
    elif error is not None and parity_given is not None:  # beside the parity log given
        logs.append(_Log("the relay's error log", error, "--parity-log", parity_given))
    elif error is not None:
        logs.append(_Log("the relay's error log", error, "--mirror-error-log"))
    return logs


def _and(words: Sequence[str]) -> str:
    return " and ".join(dict.fromkeys(words))


def _log_directory_problem(
    plan: MirrorPlan, directory: Path, logs: list[_Log], *, compiled_prefix: bool = False
) -> InputError:
    """The refusal of hookshift's `logs` in `directory`, which does not exist, naming the
    option each came from, or hookshift's default place. `compiled_prefix`: a relative path was
    resolved under nginx's compiled prefix, for want of a ``-p``: the likelier mistake is then
    a missing --nginx-prefix."""
    named: dict[str, list[str]] = {}  # an option as given -> the logs it places, its own first
    for log in logs:
        if log.given is not None:
            named.setdefault(f"{log.option} {log.given}", []).append(log.name)
    subjects = [
        f"{option} (and {_and(names[1:])} beside it)" if names[1:] else option
        for option, names in named.items()
    ]
    defaults = [log.name for log in logs if log.given is None]
    if defaults:
        place = plan.default_log_place or f"in {directory}"
        subjects.append(f"{_and(defaults)}, placed by default {place}")
    fix = f"create it, or pass {_and([log.option for log in logs])} in a directory that exists"
    if compiled_prefix:
        fix = (
            "pass --nginx-prefix DIR if nginx is started with -p DIR (a relative log path "
            f"resolves under it; without it, under nginx's compiled prefix), or {fix}"
        )
    return InputError(
        f"the directory {directory} does not exist, and nginx does not create log directories",
        where=_and(subjects),
        fix=fix,
    )


def log_directory_problems(plan: MirrorPlan, prefix: Path | None = None) -> list[InputError]:
    """A problem for each directory of hookshift's logs (the parity log, the relay's error log)
    that does not exist: nginx opens both at ``nginx -t`` and creates no directory for them.

    A relative path is resolved under `prefix` (nginx's ``-p``), else under the plan's
    prefix; it is not checked when neither is known, nor is a path holding a variable.
    """
    base = prefix or plan.options.nginx_prefix
    by_directory: dict[Path, list[_Log]] = {}
    relative: set[Path] = set()  # directories reached from a relative path
    for log in _logs(plan):
        file = log_file(str(log.path), base)
        if file is None or not file.is_absolute() or "$" in str(file):
            continue
        by_directory.setdefault(file.parent, []).append(log)
        if not log.path.is_absolute() or (log.given is None and plan.default_log_relative):
            relative.add(file.parent)
    return [
        _log_directory_problem(
            plan, directory, logs, compiled_prefix=prefix is None and directory in relative
        )
        for directory, logs in by_directory.items()
        if not directory.is_dir()
    ]


def missing_directories(plan: MirrorPlan, prefix: Path | None = None) -> list[InputError]:
    """What the plan's lines need that does not exist on this machine, each said as its
    refusal: the relay socket's directory (but hookshift's own, which nginx creates) and the
    directories of hookshift's logs. ``nginx -t`` would fail on the result.

    One place for both commands: apply refuses the first before anything is shown or written;
    plan says each in a warning, in the same words (a plan may be made on another machine
    than the one it is applied on). A plan that changes nothing needs nothing.
    """
    if not plan.changes:
        return []
    problems = []
    if plan.mode == "mirror":
        relay = relay_directory_problem(plan.options.relay_socket)
        if relay is not None:
            problems.append(relay)
    return [*problems, *log_directory_problems(plan, prefix)]


def _check_relay_socket(plan: MirrorPlan) -> Callable[[], bool] | None:
    """Mirror: after a reload the relay's socket must appear."""
    if plan.mode != "mirror" or not plan.changes:
        return None
    return Path(plan.options.relay_socket).is_socket


def apply_plan(
    plan: MirrorPlan,
    *,
    nginx_bin: str = "nginx",
    backup_dir: Path | None = None,
    reload: bool = False,
    prefix: Path | None = None,
    ready: Callable[[], None] | None = None,
) -> ApplyResult:
    """Write `plan` (no-op when it has no changes, e.g. already applied); `ready` as for
    `write_edits`.

    Files whose new lines sit at http level (definitions) are written before those whose
    lines use them, and apply records which lines it added to each file for remove.
    """
    edits = sorted(
        (Edit(c.path, c.old_text, c.new_text) for c in plan.changes),
        key=lambda e: splice.definition_rank(e.new, str(e.path)),
    ) or [Edit(path, text, text) for path, text in plan.applied_texts]
    records = {
        str(c.path): FileRecord(*splice.added_marks(c.user_text, c.new_text)) for c in plan.changes
    }
    missing = missing_directories(plan, prefix)
    if missing:
        raise missing[0]
    relay_listening = _check_relay_socket(plan)
    parity_log = _parity_log_path(plan, prefix)
    made_log = parity_log is not None and precreate_log(parity_log)
    try:
        return write_edits(
            edits,
            config=Path(os.path.abspath(plan.options.config)),
            nginx_bin=nginx_bin,
            backup_dir=backup_dir or default_backup_dir(),
            reload=reload,
            prefix=prefix,
            took_effect=relay_listening,
            records=records,
            op="apply",
            ready=ready,
        )
    except BaseException:
        # a reload may have reached nginx, which then holds the log open: it stays
        if made_log and parity_log is not None and not reload:
            with contextlib.suppress(OSError):
                if parity_log.stat().st_size == 0:
                    parity_log.unlink()
        raise


def _parity_log_path(plan: MirrorPlan, prefix: Path | None) -> Path | None:
    """Where nginx will open the parity log, when this apply adds it and its directory exists.

    It is made before nginx opens it (``nginx -t`` already does): nginx would create it 0644,
    readable by every local user, and it holds every callback's body.
    """
    log = plan.parity_log
    if log is None or not plan.changes:
        return None
    if not log.is_absolute():
        if prefix is None:
            return None
        log = prefix / log
    return log if log.parent.is_dir() else None
