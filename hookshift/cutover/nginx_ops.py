"""Every nginx change of the cut-over, made by the mirror engine (`hookshift.mirror`'s API).

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
decommissioned     hookshift's lines removed again: the user's config as it was
                   (the vendor calls the custom domain, so nginx sees no callbacks)
=================  ==========================================================

Crash tests stop a transition at a named point with ``HOOKSHIFT_PAUSE_AT`` (the mirror engine's
mechanism): ``cutover:LABEL`` for the cut-over's own points, ``remove:LABEL`` and
``apply:LABEL`` for the engine's points inside its remove or apply step (the same label, such as
``written:nginx.conf``, is reached by both; `mirror.apply.checkpoint_step` names the step).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hookshift import mirror
from hookshift.cutover import journal
from hookshift.cutover.settings import Settings
from hookshift.errors import HookshiftError, InputError, OperationError
from hookshift.mirror import check_prefix as check_prefix  # init's gates call it from here
from hookshift.mirror.apply import (
    check_relay_directory,
    checkpoint,
    checkpoint_step,
    missing_directories,
    recover,
)
from hookshift.mirror.plan import DEFAULT_RELAY_SOCKET
from hookshift.mirror.render import Mode
from hookshift.nginx import binary, shadow, splice
from hookshift.nginx.source import from_bytes, read_text, to_bytes
from hookshift.nginx.values import log_file


@dataclass(frozen=True)
class NginxShape:
    """What the mirror engine must have applied for a stage: nothing, a mirror or a forward."""

    mode: Mode | None  # None: hookshift's lines are out
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
    from hookshift.nginx.config import load

    return sorted(load(config).files)


def hashes(state: Path, files: Sequence[Path], *, keep: bool = True) -> dict[str, str | None]:
    """sha256 of each file, keeping its bytes in the journal's snapshot store (unless not
    ``keep``: a dry run writes nothing, not even a snapshot)."""
    result: dict[str, str | None] = {}
    for path in files:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            result[str(path)] = None
            continue
        digest = journal.store_snapshot(state, data) if keep else hashlib.sha256(data).hexdigest()
        result[str(path)] = digest
    return result


def _recorded_or_current(state: Path, path: str, digest: str) -> bytes | None:
    """The bytes the snapshot store keeps under ``digest``, else the file's own while it still
    has them (a dry run hashes the files without keeping them)."""
    data = journal.load_snapshot(state, digest)
    if data is None:
        try:
            current = Path(path).read_bytes()
        except OSError:
            return None
        data = current if hashlib.sha256(current).hexdigest() == digest else None
    return data


def changes(
    before: dict[str, str | None], after: dict[str, str | None]
) -> list[journal.FileChange]:
    """The files whose content differs, with both hashes."""
    return [
        journal.FileChange(path, before.get(path), after.get(path))
        for path in sorted(set(before) | set(after))
        if before.get(path) != after.get(path)
    ]


def only_hookshift_lines(state: Path, change: journal.FileChange) -> bool:
    """Whether `change` is ``hookshift mirror refresh`` rewriting the stage's address: one
    of hookshift's ``server ADDRESS`` lines swapped, every other byte as it was. Anything else
    (the mirror taken out or put in by hand, another line of hookshift's edited) is an edit
    made outside the cut-over."""
    if change.sha256_before is None or change.sha256_after is None:
        return False
    before = journal.load_snapshot(state, change.sha256_before)
    after = _recorded_or_current(state, change.path, change.sha256_after)
    if before is None or after is None:
        return False
    old, new = from_bytes(before), from_bytes(after)
    if splice.remove(old) != splice.remove(new):
        return False
    # refresh swaps the one `server ADDRESS ...` line of the stage's upstream; a mirror taken
    # out (or put in) by hand, or another of hookshift's lines edited, is the operator's
    ours_before, ours_after = splice.marked_lines(old), splice.marked_lines(new)
    if len(ours_before) != len(ours_after):
        return False
    swapped = [(a, b) for a, b in zip(ours_before, ours_after, strict=True) if a != b]
    return len(swapped) <= 1 and all(
        _STAGE_SERVER.match(a) and _STAGE_SERVER.match(b) for a, b in swapped
    )


_STAGE_SERVER = re.compile(r"\s*server\s+\S+")


def user_hashes(files: Sequence[Path]) -> dict[str, str | None]:
    """sha256 of each file without hookshift's lines: what the user wrote, whatever the stage.

    Also exactly what the engine's remove leaves, so it is the "after" of a change to a stage
    without hookshift's lines.
    """
    return {str(p): _sha256(splice.remove(t)) if (t := _text(p)) is not None else None
            for p in files}  # fmt: skip


def _text(path: Path) -> str | None:
    try:
        return read_text(path)
    except FileNotFoundError:
        return None


def _sha256(text: str) -> str:
    return hashlib.sha256(to_bytes(text)).hexdigest()


def check_binary(nginx_bin: str | None) -> str:
    """The nginx binary's path, checked to be an nginx before anything is written.

    Every change is validated with the real ``nginx -t``; a binary that is missing (a typo,
    or cron's PATH without /usr/sbin) found only after the first write would leave files
    unvalidated, so it is refused up front.
    """
    name = nginx_bin or "nginx"
    found = shutil.which(name)
    if found is None:
        where = "not on PATH" if os.sep not in name else "no such executable file"
        raise InputError(
            f"nginx binary not found: {name} ({where})",
            fix="pass --nginx-bin with the path of the nginx that serves the config, "
            "e.g. /usr/sbin/nginx",
        )
    try:
        binary.nginx_version(found)
    except (HookshiftError, subprocess.TimeoutExpired):  # its fix offers --nginx-version: not ours
        raise InputError(
            f"{found} does not answer `-v` like nginx", fix="pass --nginx-bin with nginx's path"
        ) from None
    return str(Path(found).absolute())


def prefix_of(settings: Settings) -> Path | None:
    """nginx's ``-p`` for every ``nginx -t`` and reload the engine runs (None: none)."""
    return Path(settings.nginx_prefix) if settings.nginx_prefix else None


def preflight(settings: Settings, target: str) -> None:
    """Everything a change to ``target`` is checked for before anything is written: bad input
    a dry run must refuse exactly as the change itself would, so that a dry run that passes
    promises a change that can be made.

    The engine plans ``target``'s shape offline (`check_engine_options`), on the config as it
    now is: the engine's remove before an apply only takes hookshift's lines out, and its plan
    already reads the config without them.
    """
    config = settings.need("config", "to change nginx")
    check_binary(settings.nginx_bin)
    check_prefix(settings.nginx_prefix)
    config_files(config)  # readable and parseable
    shape = SHAPES[target]
    if shape.mode is None:
        return
    if settings.relay_socket:
        check_relay_directory(settings.relay_socket)
    planned = check_engine_options(settings, shape)
    # what the engine's apply refuses before it writes (log directories nginx would not
    # create): refused here too, so that a dry run refuses it as the change would
    for problem in missing_directories(planned.plan, prefix_of(settings)):
        raise problem


def check_result(settings: Settings, target: str) -> str | None:
    """The real ``nginx -t`` on what the change to ``target`` would write, before anything is.

    `preflight` only asks the engine to plan offline; a plan nginx rejects (an upstream name
    that does not resolve with ``--stage-dns reload``, a CA bundle nginx cannot load) would
    otherwise be found by the change itself, after a dry run had passed and the gates had
    drained the queue. The config as it is now must pass, as the engine demands before it
    changes anything; the result is tested on copies (`nginx.shadow`), so none of the user's
    files is written, and nginx's message names them.

    Returns a note when the result could not be tested that way (the change still tests it in
    place, after its writes, and puts everything back if nginx refuses). Nothing to test when
    the stage's URL is not set yet: the gate that needs it asks for it.
    """
    shape = SHAPES[target]
    if shape.target is not None and getattr(settings, shape.target) is None:
        return None
    config = Path(settings.need("config", "to change nginx")).absolute()
    nginx_bin = settings.nginx_bin or "nginx"
    prefix = prefix_of(settings)
    now = binary.test_config(config, nginx_bin=nginx_bin, prefix=prefix)
    if not now.ok:
        raise InputError(
            "nginx -t fails on the config as it is now, refusing to change it: "
            f"{binary.without_stamp(now.error)}",
            where=str(config),
            fix="make `nginx -t` pass first",
        )
    texts, opened = _texts_of(settings, target, config, prefix)
    if not texts:
        return None
    # nginx -t opens (creates) the logs the result names: hookshift's new ones are taken away
    # again when it made them, so a dry run leaves no file behind (the change makes them
    # owner-only before nginx opens them, `mirror.apply`)
    new_logs = [log for log in opened if not log.exists()]
    current = {path: read_text(path) for path in texts}
    try:
        judged = shadow.judge(config, texts, current, nginx_bin=nginx_bin, prefix=prefix)
    finally:
        _remove_empty(new_logs)
    if judged.unavailable is not None:
        return _untested(judged.unavailable)
    if judged.original_rejected is not None:
        error = judged.original_rejected.error
        return _untested(f"nginx -t rejects a copy of the config as it is: {error}")
    if judged.rejected is None:
        return None
    raise InputError(
        "nginx -t rejects the config that "
        f"{target} would write: {binary.without_stamp(judged.rejected.error)}",
        where=str(config),
        fix="correct what nginx names (an option given to advance overrides the one recorded "
        "at init); nothing was changed",
    )


def _texts_of(
    settings: Settings, target: str, config: Path, prefix: Path | None
) -> tuple[dict[Path, str], list[Path]]:
    """Each file the change to ``target`` would write (by its real path) with its new text,
    and the files of hookshift's logs in it (which nginx -t opens).

    The engine's plan already reads the config without hookshift's lines, so its result is
    what the change's remove + apply writes; a stage without a mirror is the user's bytes.
    """
    shape = SHAPES[target]
    if shape.mode is None:
        texts = {p: t for p in config_files(str(config)) if (t := _text(p)) is not None}
        marked = {p: t for p, t in texts.items() if splice.has_marks(t)}
        return {Path(os.path.realpath(p)): splice.remove(t) for p, t in marked.items()}, []
    planned = mirror.plan(mirror_request(settings, shape)).plan
    base = prefix or planned.options.nginx_prefix
    named = [log for log in (planned.parity_log, planned.mirror_error_log) if log is not None]
    logs = [log_file(str(log), base) for log in named]
    opened = [log for log in logs if log is not None and log.is_absolute()]
    return {Path(os.path.realpath(c.path)): c.new_text for c in planned.changes}, opened


def _remove_empty(files: Sequence[Path]) -> None:
    """Remove each of ``files`` that is an empty regular file (one nginx -t just made)."""
    for path in files:
        with contextlib.suppress(OSError):
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_size == 0:
                path.unlink()


def _untested(why: str) -> str:
    return (
        f"the result was not tested with nginx -t before the change ({why}); the change "
        "tests it after writing and puts every file back if nginx refuses it"
    )


def engine_applied(settings: Settings, target: str) -> bool:
    """Whether nginx's files are exactly the mirror engine's output for ``target``'s shape.

    Asks the engine itself (its plan, which says "already applied" only when every file
    equals its result), so the answer cannot drift from what its apply writes.
    """
    shape = SHAPES[target]
    if shape.mode is None:
        files = config_files(settings.need("config", "to check nginx's files"))
        return not any(splice.has_marks(t) for p in files if (t := _text(p)) is not None)
    try:
        return mirror.plan(mirror_request(settings, shape)).already_applied
    except HookshiftError:
        return False


def _backup_dir(settings: Settings) -> Path | None:
    return Path(settings.backup_dir) if settings.backup_dir else None


def remove(settings: Settings, reload: bool) -> None:
    """The engine's remove: the user's bytes back (a no-op when nothing is applied)."""
    config = Path(settings.need("config", "to change nginx"))
    try:
        with checkpoint_step("remove"):
            mirror.remove(
                config,
                nginx_bin=settings.nginx_bin or "nginx",
                backup_dir=_backup_dir(settings),
                reload=reload,
                prefix=prefix_of(settings),
            )
    except HookshiftError as exc:
        raise OperationError(f"mirror remove failed: {exc.line()}") from None


def mirror_request(settings: Settings, shape: NginxShape) -> mirror.MirrorRequest:
    """The engine's request for a mirror or forward shape: every engine option the operator
    chose at init goes through, so each stage writes what they planned.

    No DNS check: the cut-over's probes check the names each stage needs, and say why.
    """
    assert shape.mode is not None and shape.target is not None

    def path(value: str | None) -> Path | None:
        return Path(value) if value else None

    return mirror.MirrorRequest(
        config=Path(settings.need("config", "to change nginx")),
        path=settings.need("path", "to find the callback location"),
        stage_url=settings.need(shape.target, f"for the {shape.mode} to target"),
        mode=shape.mode,
        server_name=settings.server_name,
        listen=settings.listen,
        resolvers=settings.resolvers,
        parity_log=path(settings.parity_log),
        trusted_ca=path(settings.ca_file),
        relay_socket=settings.relay_socket or DEFAULT_RELAY_SOCKET,
        stage_dns=settings.stage_dns,
        mirror_error_log=path(settings.mirror_error_log),
        nginx_bin=settings.nginx_bin or "nginx",
        nginx_prefix=prefix_of(settings),
        dns_check=False,
    )


#: What the engine plans toward when neither URL is set yet (the options are checked all the same)
STAND_IN_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"


def check_engine_options(settings: Settings, shape: NginxShape | None = None) -> mirror.PlanResult:
    """Refuse the mirror engine's options (listen, server name, resolvers, path, the URLs...)
    as ``hookshift mirror plan --no-dns-check`` would, before a journal records them or a
    change relies on them.

    The engine plans ``shape`` (by default the first stage that mirrors), offline, and the
    plan is thrown away: only its refusal counts. So the engine stays the one place that knows
    a valid option, and init and every advance take exactly what the stage's apply will take.
    Without the shape's URL yet it plans toward `STAND_IN_URL`: the URL is asked for by the
    gate that needs it, with the other gates, rather than as an error that hides them.
    Returns the plan, for what else it must find on this machine (`preflight`).
    """
    if shape is None:
        first = "domain_url" if settings.stage_url is None and settings.domain_url else "stage_url"
        shape = NginxShape("mirror", first)
    assert shape.target is not None
    if getattr(settings, shape.target) is None:
        settings = settings.override(**{shape.target: STAND_IN_URL})
    return mirror.plan(mirror_request(settings, shape))


def apply(settings: Settings, shape: NginxShape, reload: bool) -> None:
    """The engine's apply for a mirror or forward shape, toward its URL."""
    request = mirror_request(settings, shape)
    try:
        with checkpoint_step("apply"):
            mirror.apply(
                request, backup_dir=_backup_dir(settings), reload=reload, prefix=prefix_of(settings)
            )
    except HookshiftError as exc:
        raise OperationError(
            f"mirror apply ({shape.mode} -> {request.stage_url}) failed: {exc.line()}"
        ) from None


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
            checkpoint("cutover:removed")
        if new.mode is not None:
            try:
                apply(settings, new, reload)
            except OperationError:
                if old.mode is not None:  # put the stage we are in back, then report
                    restore(state, settings, before, reload)
                raise
    after = hashes(state, config_files(config))
    return changes(before, after)


def settle_engine(settings: Settings) -> tuple[str, ...]:
    """Let the mirror engine undo its own write that a kill interrupted, so that each of
    nginx's files is whole (the engine's "before" of that write) before the cut-over compares
    them with its journal; otherwise the two would each put back a different "before"."""
    return recover(Path(settings.need("config", "to check nginx's files")))


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
    config = Path(settings.need("config", "to change nginx"))
    texts: dict[Path, str] = {}
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
        texts[path] = data.decode("utf-8", "surrogateescape")
    if texts:
        mirror.write_back(
            config,
            texts,
            nginx_bin=settings.nginx_bin or "nginx",
            backup_dir=_backup_dir(settings),
            reload=reload,
            prefix=prefix_of(settings),
        )
    return [str(p) for p in texts]
