"""Write a plan to disk safely: lock, check, back up, write atomically, validate, roll back.

The order matters:

1. an exclusive lock (``hookshift.lock`` in the backup directory), so two applies never
   interleave;
2. every file must still be what the plan was made from (else the plan is stale);
3. the real ``nginx -t`` must accept the *original*: a config that is already broken is not
   ours to touch, and its errors would be blamed on hookshift;
4. each file is copied to a fresh backup directory (with a manifest) before any write;
5. each file is written through a temp file in the same directory, fsync'd, given the
   original's mode and owner, and renamed over the original; the directory is fsync'd. A kill
   -9 at any moment leaves each file entirely old or entirely new;
6. the real ``nginx -t`` on the result; if it fails, every file is restored;
7. with ``reload``, ``nginx -s reload``; if that fails, or the running nginx does not take the
   new config (two-hop: its relay socket never appears), restore and reload again.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hookshift.durable import exclusive_lock, fsync_dir
from hookshift.errors import InputError, OperationError
from mirror.plan import MirrorPlan, relay_dir
from nginx import binary
from nginx.source import load_source, read_text, to_bytes


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

    @property
    def no_change(self) -> bool:
        return not self.changed


def default_backup_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "hookshift" / "backups"


def locked(backup_dir: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive, non-blocking lock: a second hookshift writing at once is refused."""
    lock = backup_dir / "hookshift.lock"
    return exclusive_lock(lock, f"another hookshift is changing the config (lock {lock})")


PAUSE_ENV = "HOOKSHIFT_PAUSE_AT"


def checkpoint(label: str) -> None:
    """Crash-test hook: with ``HOOKSHIFT_PAUSE_AT=label`` the process stops here and says so.

    Tests kill -9 a paused apply to show that every file is entirely old or entirely new at
    each step; without the variable this does nothing.
    """
    if os.environ.get(PAUSE_ENV) == label:
        os.write(2, f"hookshift: paused at {label}\n".encode())
        while True:
            time.sleep(3600)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: temp file in the same dir, fsync, same mode/owner, rename.

    The temp name is hidden and ends in ``.hookshift-tmp`` so no ``include *.conf`` can pick
    it up even for the instant it exists. A symlink (Debian's ``sites-enabled/x ->
    ../sites-available/x``) stays a symlink: the file it points to is replaced.
    """
    path = path.resolve()
    st = path.stat()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.hookshift-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        checkpoint(f"temp-written:{path.name}")
        os.chmod(tmp, st.st_mode & 0o7777)
        with contextlib.suppress(PermissionError):
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def remove_stale_temps(config: Path, edits: Sequence[Edit]) -> None:
    """Delete temp files a killed earlier run left beside any file of the config.

    Only called under the lock, so no other hookshift is writing them now.
    """
    try:
        files = list(load_source(config).texts)
    except InputError:
        files = []
    dirs = {p.resolve().parent for p in [*files, *(e.path for e in edits)]}
    for directory in dirs:
        for stale in directory.glob(".*.hookshift-tmp"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def backup(edits: Sequence[Edit], backup_dir: Path) -> Path:
    """Copy each file's current bytes into a new directory under `backup_dir`, with a manifest."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run = Path(tempfile.mkdtemp(prefix=f"{stamp}-", dir=backup_dir))
    manifest = {}
    for index, edit in enumerate(edits):
        target = run / f"{index:03d}-{edit.path.name}"
        target.write_bytes(to_bytes(edit.old))
        with open(target, "rb") as fh:
            os.fsync(fh.fileno())
        manifest[str(edit.path)] = target.name
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    fsync_dir(run)
    return run


def _restore(edits: Sequence[Edit]) -> None:
    for edit in edits:
        atomic_write(edit.path, to_bytes(edit.old))


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
) -> ApplyResult:
    """The safe write pipeline shared by apply and remove (see the module docstring).

    `took_effect`, polled for a few seconds after a reload, says whether the running nginx
    really uses the new config: ``nginx -s reload`` only sends a signal, and a master that
    cannot apply the new config (a socket it cannot bind) keeps the old one and only logs it.
    """
    edits = [e for e in edits if e.old != e.new]
    with locked(backup_dir):
        for edit in edits:
            if read_text(edit.path) != edit.old:
                raise OperationError(
                    f"{edit.path} changed since the plan was made; plan again and re-run"
                )
        if not edits:
            return ApplyResult((), None, False, "")
        remove_stale_temps(config, edits)
        if require_valid_original:
            before = binary.test_config(config, nginx_bin=nginx_bin, prefix=prefix)
            if not before.ok:
                raise InputError(
                    f"nginx -t fails on the original config, refusing to change it: {before.error}",
                    where=str(config),
                    fix="make `nginx -t` pass first",
                )
        run = backup(edits, backup_dir)
        checkpoint("backed-up")
        written: list[Edit] = []
        try:
            for edit in edits:
                atomic_write(edit.path, to_bytes(edit.new))
                written.append(edit)
                checkpoint(f"written:{edit.path.name}")
        except BaseException:
            _restore(written)
            raise
        after = binary.test_config(config, nginx_bin=nginx_bin, prefix=prefix)
        if not after.ok:
            _restore(edits)
            raise OperationError(f"nginx -t rejected the result, original restored: {after.error}")
        reloaded = False
        if reload:
            result = binary.reload(config, nginx_bin=nginx_bin, prefix=prefix)
            if not result.ok:
                _restore(edits)
                binary.reload(config, nginx_bin=nginx_bin, prefix=prefix)
                raise OperationError(f"nginx -s reload failed, original restored: {result.error}")
            if took_effect is not None and not _poll(took_effect, RELOAD_WAIT_S):
                _restore(edits)
                binary.reload(config, nginx_bin=nginx_bin, prefix=prefix)
                raise OperationError(
                    "nginx did not take the new config after reload (see its error log); "
                    "original restored"
                )
            reloaded = True
        return ApplyResult(tuple(e.path for e in edits), run, reloaded, after.output)


RELOAD_WAIT_S = 5.0


def _poll(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _check_relay_socket(plan: MirrorPlan) -> Callable[[], bool] | None:
    """Mirror: the relay socket's directory must exist (or its parent, when nginx creates it
    as hookshift's private one); after a reload the socket must."""
    if plan.mode != "mirror" or not plan.changes:
        return None
    socket_path = Path(plan.options.relay_socket)
    needed = socket_path.parent
    if relay_dir(str(socket_path)) is not None:
        needed = needed.parent
    if not needed.is_dir():
        raise InputError(
            f"the relay socket's directory does not exist: {needed}",
            fix="create it or pass --relay-socket in an existing directory nginx can write",
        )
    return socket_path.is_socket


def apply_plan(
    plan: MirrorPlan,
    *,
    nginx_bin: str = "nginx",
    backup_dir: Path | None = None,
    reload: bool = False,
    prefix: Path | None = None,
) -> ApplyResult:
    """Write `plan` (no-op when it has no changes, e.g. already applied)."""
    edits = [Edit(c.path, c.old_text, c.new_text) for c in plan.changes]
    relay_listening = _check_relay_socket(plan)
    return write_edits(
        edits,
        config=Path(os.path.abspath(plan.options.config)),
        nginx_bin=nginx_bin,
        backup_dir=backup_dir or default_backup_dir(),
        reload=reload,
        prefix=prefix,
        took_effect=relay_listening,
    )
