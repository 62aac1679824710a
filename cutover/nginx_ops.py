"""Every nginx change of the cut-over, made by the mirror engine (``hookshift mirror``).

The cut-over never writes an nginx file itself: the mirror engine takes the lock, backs the
files up, writes them atomically, runs the real ``nginx -t`` (and reloads with ``--reload``) and
restores the backups when anything fails. This module only decides *which* engine operation a
stage needs, runs it, and measures what it did: the sha256 of every config file before and
after (for the journal), with the bytes kept in the journal's snapshot store so a rollback can
prove that each file is byte-identical to the stage it returns to.

What each stage looks like in nginx:

=================  ==========================================================
baseline           the user's config, untouched
mirror-stage       mirror of the callback location -> the stage URL
mirror-domain      mirror -> the custom domain
vendor-switched    the location forwards (proxies) to the custom domain
decommissioned     hookshift's lines removed again (nginx gets no callbacks)
=================  ==========================================================
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cutover import journal
from cutover.settings import Settings
from hookshift.errors import OperationError


@dataclass(frozen=True)
class NginxShape:
    """What the mirror engine must have applied for a stage: nothing, a mirror or a forward."""

    mode: str | None  # None | "mirror" | "forward"
    target: str | None  # "stage_url" | "domain_url"


SHAPES: dict[str, NginxShape] = {
    "baseline": NginxShape(None, None),
    "mirror-stage": NginxShape("mirror", "stage_url"),
    "mirror-domain": NginxShape("mirror", "domain_url"),
    "vendor-switched": NginxShape("forward", "domain_url"),
    "decommissioned": NginxShape(None, None),
}


def config_files(config: str) -> list[Path]:
    """The main config and every file it includes (what the engine may change)."""
    from nginx.config import load

    return sorted(load(config).files)


def hashes(state: Path, files: Sequence[Path]) -> dict[str, str | None]:
    """sha256 of each file, keeping its bytes in the journal's snapshot store."""
    result: dict[str, str | None] = {}
    for path in files:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            result[str(path)] = None
            continue
        result[str(path)] = journal.store_snapshot(state, data)
    return result


def changes(
    before: dict[str, str | None], after: dict[str, str | None]
) -> list[journal.FileChange]:
    """The files whose content differs, with both hashes."""
    return [
        journal.FileChange(path, before.get(path), after.get(path))
        for path in sorted(set(before) | set(after))
        if before.get(path) != after.get(path)
    ]


def _hookshift(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookshift", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _engine_args(settings: Settings, reload: bool) -> list[str]:
    args: list[str] = []
    if settings.nginx_bin:
        args += ["--nginx-bin", settings.nginx_bin]
    if settings.backup_dir:
        args += ["--backup-dir", settings.backup_dir]
    if reload:
        args.append("--reload")
    return args


def remove(settings: Settings, reload: bool) -> None:
    """``hookshift mirror remove``: the user's bytes back (a no-op when nothing is applied)."""
    config = settings.need("config", "to change nginx")
    done = _hookshift(["mirror", "remove", "--config", config, *_engine_args(settings, reload)])
    if done.returncode != 0:
        raise OperationError(f"mirror remove failed: {_tail(done)}")


def apply_args(settings: Settings, shape: NginxShape) -> list[str]:
    """The ``hookshift mirror apply`` arguments for a mirror or forward shape: every engine
    option the operator chose at init goes through, so each stage writes what they planned."""
    assert shape.mode is not None and shape.target is not None
    config = settings.need("config", "to change nginx")
    path = settings.need("path", "to find the callback location")
    url = settings.need(shape.target, f"for the {shape.mode} to target")
    args = ["mirror", "apply", "--config", config, "--path", path, "--stage-url", url]
    args += ["--mode", shape.mode]
    for resolver in settings.resolvers:
        args += ["--resolver", resolver]
    optional = {
        "--parity-log": settings.parity_log,
        "--trusted-ca": settings.ca_file,
        "--relay-socket": settings.relay_socket,
        "--stage-dns": settings.stage_dns,
        "--mirror-error-log": settings.mirror_error_log,
        "--server-name": settings.server_name,
        "--listen": settings.listen,
    }
    for flag, value in optional.items():
        if value:
            args += [flag, value]
    return args


def apply(settings: Settings, shape: NginxShape, reload: bool) -> None:
    """``hookshift mirror apply`` for a mirror or forward shape, toward its URL."""
    args = apply_args(settings, shape)
    url = args[args.index("--stage-url") + 1]
    done = _hookshift([*args, *_engine_args(settings, reload)])
    if done.returncode != 0:
        raise OperationError(f"mirror apply ({shape.mode} -> {url}) failed: {_tail(done)}")


def realize(
    state: Path, settings: Settings, current: str, target: str, reload: bool
) -> list[journal.FileChange]:
    """Bring nginx from ``current``'s shape to ``target``'s; return the files that changed.

    A change of target or mode is remove + apply: the engine's remove restores the user's
    bytes exactly, so the apply always starts from the original config and its output is the
    same for the same stage (which is what makes rollback byte-identical).
    """
    config = settings.need("config", "to change nginx")
    files = config_files(config)
    before = hashes(state, files)
    old, new = SHAPES[current], SHAPES[target]
    if old != new:
        if old.mode is not None:
            remove(settings, reload=reload and new.mode is None)
        if new.mode is not None:
            try:
                apply(settings, new, reload)
            except OperationError:
                if old.mode is not None:  # put the stage we are in back, then report
                    restore(state, settings, before, reload)
                raise
    after = hashes(state, config_files(config))
    return changes(before, after)


def restore(
    state: Path, settings: Settings, expected: dict[str, str | None], reload: bool
) -> list[str]:
    """Write back the recorded bytes of every file that differs from ``expected``.

    Goes through the mirror engine's safe write pipeline (lock, backup, ``nginx -t`` before and
    after, atomic write, optional reload). Used when a stage's change failed half-way (remove
    done, apply refused), and by rollback when the engine's output for a stage no longer matches
    the bytes recorded then (hookshift upgraded in the middle of a cut-over, say). Returns the
    paths written.
    """
    from mirror.apply import Edit, default_backup_dir, write_edits
    from nginx.source import read_text

    config = Path(settings.need("config", "to change nginx"))
    edits: list[Edit] = []
    for name, digest in sorted(expected.items()):
        path = Path(name)
        if digest is None or not path.exists() or journal.sha256_file(path) == digest:
            continue
        data = journal.load_snapshot(state, digest)
        if data is None:
            raise OperationError(
                f"{path}: the bytes recorded for this stage (sha256 {digest[:12]}) are not in "
                f"{journal.snapshot_dir(state)}; restore the file from the mirror engine's backups"
            )
        edits.append(Edit(path, read_text(path), data.decode("utf-8", "surrogateescape")))
    if edits:
        write_edits(
            edits,
            config=config,
            nginx_bin=settings.nginx_bin or "nginx",
            backup_dir=Path(settings.backup_dir) if settings.backup_dir else default_backup_dir(),
            reload=reload,
        )
    return [str(e.path) for e in edits]


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    text = (done.stderr or done.stdout or "").strip().splitlines()
    return text[-1] if text else f"exit {done.returncode}"
