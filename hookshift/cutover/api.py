"""The cut-over as Python calls: `init`, `status`, `advance` and `rollback` over a journal.

Each call does what the ``hookshift cutover`` command of the same name does and returns a
dataclass saying what happened; nothing here prints. What a person should hear while it runs
(an interrupted transition settled, edits adopted) goes to the ``notice(level, text)`` callback
and is kept in the result's ``notes``. Bad input raises `hookshift.errors.InputError` before
anything is written; a step that fails at run time raises `OperationError`. A gate that is not
met is not an error: `advance` returns the check with ``passed`` False and changes nothing.

The order of one advance (the runbook as a program): settle a transition a killed command left
open, refuse nginx edits made outside the cut-over (unless adopted), check everything the change
needs, gather the evidence (`cutover.gather`), ask the pure gates (`cutover.stages`), then write
the intent, change nginx through the mirror engine and commit (`cutover.transition`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hookshift.cutover import journal, nginx_ops, probe, report, stages, transition
from hookshift.cutover.gather import gather
from hookshift.cutover.journal import Entry, FileChange, Journal
from hookshift.cutover.settings import Settings
from hookshift.errors import InputError, OperationError
from hookshift.mirror.api import main_config
from hookshift.mirror.apply import checkpoint

Notice = Callable[[str, str], None]
"""``notice(level, text)``: level is ``info``, ``warning`` or ``ok``."""

#: Settings that name files: recorded absolute, so the journal works from any directory.
FILE_SETTINGS = (
    "config",
    "nginx_prefix",
    "parity_log",
    "nginx_log",
    "ca_file",
    "backup_dir",
    "archive",
    "mirror_error_log",
    "watch_state",
)
SETTING_NAMES = tuple(f.name for f in fields(Settings))


class _Notes:
    """Passes each notice on and keeps it for the result."""

    def __init__(self, notice: Notice | None) -> None:
        self.notice = notice
        self.kept: list[tuple[str, str]] = []

    def __call__(self, level: str, text: str) -> None:
        self.kept.append((level, text))
        if self.notice is not None:
            self.notice(level, text)


# ---------------------------------------------------------------------------------------------
# What each call returns.


@dataclass(frozen=True)
class InitResult:
    """A journal started at baseline: its settings (as recorded) and the nginx files hashed."""

    state_path: Path
    settings: Settings
    files: tuple[str, ...]
    notes: tuple[tuple[str, str], ...] = ()

    @property
    def stage(self) -> str:
        return "baseline"

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "state": str(self.state_path),
            "files": list(self.files),
            "settings": self.settings.to_json(),
        }


@dataclass(frozen=True)
class OpenTransition:
    """A transition begun and neither committed nor aborted (its command is gone or running)."""

    seq: int
    from_stage: str
    to_stage: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "from": self.from_stage, "to": self.to_stage}


@dataclass(frozen=True)
class StatusResult:
    """The journal as it stands, and what the next advance needs."""

    journal: Journal
    open_transition: OpenTransition | None
    notes: tuple[tuple[str, str], ...] = ()

    @property
    def stage(self) -> str:
        return self.journal.stage

    @property
    def summary(self) -> str:
        return stages.STAGE_SUMMARY[self.stage]

    @property
    def entered(self) -> Entry | None:
        return self.journal.entered(self.stage)

    @property
    def next_stage(self) -> str | None:
        return stages.next_stage(self.stage)

    @property
    def needs(self) -> tuple[str, ...]:
        """The evidence the next advance gathers (the fields of `stages.Evidence`)."""
        return stages.needed_evidence(self.stage)

    @property
    def gates(self) -> tuple[str, ...]:
        """The gates of the next advance, by the names it reports them under."""
        queue = str(self.journal.settings.get("queue") or "")
        return stages.gate_names(self.stage, sqs_queue=queue.startswith("sqs:"))

    @property
    def last_advance(self) -> Entry | None:
        return next((e for e in reversed(self.journal.entries) if e.action == "advance"), None)

    def to_json(self) -> dict[str, Any]:
        entered = self.entered
        return {
            "stage": self.stage,
            "open_transition": self.open_transition.to_json() if self.open_transition else None,
            "summary": self.summary,
            "entered": entered.time if entered else None,
            "next": self.next_stage,
            "needs": list(self.needs),
            "gates": list(self.gates),
            "settings": dict(self.journal.settings),
            "history": [e.to_json() for e in self.journal.entries],
        }


@dataclass(frozen=True)
class Settled:
    """Resolving a transition a killed command left open already did what was asked."""

    stage: str
    outcome: transition.Outcome

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "interrupted": self.outcome, "changed": False}


@dataclass(frozen=True)
class AdvanceResult:
    """An advance: the gates' check and, when they passed (and not a dry run), the change.

    ``settled`` is set instead of ``check`` when re-running an interrupted advance finished it.
    """

    from_stage: str
    to_stage: str | None
    settings: Settings
    check: stages.TransitionCheck | None = None
    detail: Mapping[str, Any] | None = None  # the probes' diagnosis, for the report
    dry_run: bool = False
    files: tuple[FileChange, ...] = ()
    report: Path | None = None  # the final report, written when decommissioned
    settled: Settled | None = None
    notes: tuple[tuple[str, str], ...] = ()

    @property
    def passed(self) -> bool:
        return self.check is not None and self.check.passed

    @property
    def gates(self) -> tuple[stages.GateResult, ...]:
        """Every gate of the transition with its reason (none when ``settled``)."""
        return self.check.results if self.check is not None else ()

    @property
    def advanced(self) -> bool:
        """nginx moved to ``to_stage`` (by this call or by settling the interrupted one)."""
        if self.settled is not None:
            return self.settled.outcome == "done"
        return self.passed and not self.dry_run

    @property
    def vendor_url(self) -> str | None:
        """The URL to register at the vendor, once the advance reached vendor-switched."""
        if not self.advanced or self.to_stage != "vendor-switched":
            return None
        return self.settings.callback_url(self.settings.domain_url)

    def to_json(self) -> dict[str, Any]:
        if self.settled is not None:
            return self.settled.to_json()
        assert self.check is not None
        data: dict[str, Any] = {
            "from": self.check.from_stage,
            "to": self.check.to_stage,
            "passed": self.check.passed,
            "gates": [r.to_json() for r in self.check.results],
        }
        if not self.advanced:
            return {**data, "detail": dict(self.detail or {}), "dry_run": self.dry_run}
        data["files"] = [f.to_json() for f in self.files]
        if self.to_stage == "vendor-switched":
            data["vendor_url"] = self.vendor_url
        if self.report is not None:
            data["report"] = str(self.report)
        return data


@dataclass(frozen=True)
class RollbackResult:
    """A rollback: the files it put back, and whether they equal the recorded bytes.

    ``byte_identical`` is None when edits adopted since the stage was entered make the recorded
    bytes no measure, False (with the files in ``differ``) only on a `NotByteIdentical`;
    ``reminder`` says what nginx cannot undo (the vendor's registration).
    """

    from_stage: str
    to_stage: str
    files: tuple[FileChange, ...] = ()
    checked: int = 0
    byte_identical: bool | None = True
    reminder: str | None = None
    settled: Settled | None = None
    notes: tuple[tuple[str, str], ...] = ()
    differ: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        if self.settled is not None:
            return self.settled.to_json()
        return {
            "from": self.from_stage,
            "to": self.to_stage,
            # after adopted edits the recorded bytes are no measure, so the answer is null
            # (the notes say which edits)
            "byte_identical": self.byte_identical,
            "differ": list(self.differ),
            "files": [f.to_json() for f in self.files],
        }


class NotByteIdentical(OperationError):
    """A rollback went back to its stage, and the journal records it, but nginx's files differ
    from the bytes recorded for that stage. ``result`` is what it did (``byte_identical``
    False, the files in ``differ``): like a gate's verdict, a script reads it as data."""

    def __init__(self, message: str, result: RollbackResult) -> None:
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------------------------------------------
# The calls.


def absolute(values: Mapping[str, Any]) -> dict[str, Any]:
    """File settings among ``values`` made absolute, so the journal works from any directory."""
    out = dict(values)
    for name in FILE_SETTINGS:
        if out.get(name):
            out[name] = str(Path(out[name]).absolute())
    log = out.get("execution_log")
    if log and not str(log).startswith("cloudwatch:"):
        out["execution_log"] = str(Path(log).absolute())
    kind, colon, target = str(out.get("queue") or "").partition(":")
    if colon and target and kind in ("archive", "jsonl"):  # sqs: names a URL, not a file
        out["queue"] = f"{kind}:{Path(target).absolute()}"
    return out


def init(state_path: Path, settings: Settings, *, notice: Notice | None = None) -> InitResult:
    """Start a cut-over journal at baseline, recording the settings and the nginx files' bytes.

    Needs ``config`` and ``path``; the nginx binary is recorded as a full path (a later run from
    cron, whose PATH lacks /usr/sbin, uses the same nginx). A site file (``sites-enabled/hooks``)
    is recorded as the main config that includes it, found as ``hookshift mirror`` finds it:
    every stage hashes and changes the main config's files, and the journal cannot be corrected
    once written. Every setting a later stage uses is checked first, the mirror engine's by the
    engine itself (`nginx_ops.check_engine_options`): a typo found on Thursday's advance would
    stop a cut-over that Monday's init accepted.
    """
    state_path = Path(state_path)  # a str is taken as a path too
    notes = _Notes(notice)
    journal.check_writable(state_path)
    settings = settings.override(**absolute({n: getattr(settings, n) for n in SETTING_NAMES}))
    settings.need("config", "to record the nginx files of the baseline")
    settings.need("path", "to know the callback location")
    check_settings(settings, SETTING_NAMES)
    settings = settings.override(nginx_bin=nginx_ops.check_binary(settings.nginx_bin))
    settings = _main_config(settings, notes)
    config = settings.need("config", "to record the nginx files of the baseline")
    nginx_ops.check_prefix(settings.nginx_prefix)
    nginx_ops.check_engine_options(settings)
    if state_path.exists():
        journal.read(state_path)  # a foreign file is reported as such
        raise InputError(
            "state file already exists",
            where=str(state_path),
            fix="use `hookshift cutover status` on it, or choose another --state path",
        )
    store = journal.snapshot_dir(state_path)
    fresh = not os.path.lexists(store)
    try:
        try:
            files = nginx_ops.hashes(state_path, nginx_ops.config_files(config))
            first = journal.next_entry(
                None,
                action="init",
                to_stage="baseline",
                evidence={"files": files},
                note="cut-over started",
            )
            journal.create(state_path, settings.to_json(), first)
        except OSError as exc:  # the journal's directory: another user's, or not a directory
            raise journal.cannot_write(state_path, exc) from None
    except journal.Unwritable:  # a full disk: the snapshots kept so far go with the journal
        if fresh:
            shutil.rmtree(store, ignore_errors=True)
        raise
    return InitResult(state_path, settings, tuple(files), tuple(notes.kept))


def check_settings(settings: Settings, names: Collection[str]) -> None:
    """Refuse, as bad input, what is wrong with the settings ``names`` before anything uses
    them: init checks every one it records, advance and rollback each one an option overrides
    (the same option must be refused in the same words wherever it is given, and the mirror
    engine's message, which knows only its own option names, would name another option)."""
    for name in ("stage_url", "domain_url"):
        url = getattr(settings, name)
        option = f"--{name.replace('_', '-')}"
        if name not in names or url is None:
            continue
        if not url.startswith("https://"):
            raise InputError(
                f"{option} {url!r} is not an https URL",
                fix="API Gateway is HTTPS only: https://ID.execute-api.REGION.amazonaws.com/STAGE"
                " or https://your.custom.domain",
            )
        probe.check_url(url, option)
    if "path" in names and settings.path and not settings.path.startswith("/"):
        raise InputError(f"--path {settings.path!r} does not start with /", fix="e.g. /callback")
    # each probe's --timeout: a probe cannot wait no time
    if "probe_timeout" in names and settings.probe_timeout <= 0:
        raise InputError(
            f"not a number of seconds above 0: {settings.probe_timeout:g}",
            where="--probe-timeout",
            fix="e.g. --probe-timeout 10",
        )
    # the queue is read at every gate: a typo must not wait for the first
    queue_given = any(n in names for n in ("queue", "endpoint_url", "region"))
    if queue_given and settings.queue is not None:
        spec = probe.QueueSpec.parse(
            settings.queue, endpoint_url=settings.endpoint_url, region=settings.region
        )
        probe.check_queue_path(spec)
    if "execution_log" in names and settings.execution_log is not None:
        probe.check_execution_log(settings.execution_log)
    if "ca_file" in names and settings.ca_file is not None:
        probe.check_ca_file(settings.ca_file)


def status(state_path: Path, *, notice: Notice | None = None) -> StatusResult:
    """The journal's stage and history; a transition a killed command left open is settled
    when that needs no change to nginx (else it is reported as open).

    Settling writes to the journal, so it is left to a command that may: status is what an
    auditor with read access runs, and when the journal must not be written (a symlink,
    another user's: `journal.write_problem`) or its lock cannot be taken (a read-only
    directory), the open transition is shown as it stands, with why it was not settled.
    """
    state_path = Path(state_path)  # a str is taken as a path too
    notes = _Notes(notice)
    current = journal.read(state_path)
    if current.pending is not None:
        current = _settle_for_status(state_path, current, notes)
    pending = current.pending
    opened = None
    if pending is not None and pending.from_stage is not None:
        opened = OpenTransition(pending.seq, pending.from_stage, pending.to_stage)
    return StatusResult(current, opened, tuple(notes.kept))


def _settle_for_status(state_path: Path, current: Journal, notes: _Notes) -> Journal:
    """`current` with its open transition settled when that is safe and needs no change to
    nginx; as read, with a note saying why, when it is not."""
    unwritable = journal.write_problem(state_path)
    if unwritable is not None:
        notes("info", f"the open transition is shown as it stands, not settled: {unwritable.what}")
        return current
    try:
        with journal.locked(state_path):
            settings = Settings.from_json(current.settings)
            return _resolve(journal.read(state_path), settings, notes, repair=False).journal
    except journal.LockUnavailable as exc:  # a read-only user or directory
        notes(
            "info",
            f"the open transition is shown as it stands, not settled: its lock {exc.where} "
            f"cannot be taken ({exc.why})",
        )
        return current
    except journal.Unwritable as exc:  # a full disk: the journal is as it was
        notes("info", f"the open transition is shown as it stands, not settled: {exc.what}")
        return journal.read(state_path)
    except OperationError:  # the lock is held: the transition is running right now
        notes("info", "a transition is running now (another command holds the journal)")
        return journal.read(state_path)


def advance(
    state_path: Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    reload: bool = False,
    dry_run: bool = False,
    adopt_edits: bool = False,
    dedup_confirmed: bool = False,
    notice: Notice | None = None,
) -> AdvanceResult:
    """Check the gates out of the current stage and, when all pass, move nginx to the next.

    ``overrides`` replace recorded settings for this run (by `Settings` field name; None values
    are ignored). ``dry_run`` runs every check the change would run before its first write
    (the nginx binary, edits made outside the cut-over, the mirror engine's plan of the next
    stage, the real ``nginx -t`` on the config now and on copies of what the change would
    write), gathers the evidence and checks the gates, but changes neither nginx nor the
    journal: a dry run that passes promises an advance that passes the same checks. Its
    evidence is gathered for real, so with ``--archive`` the parity and drain gates move
    messages from the SQS queue into the archive as an advance's do.
    ``adopt_edits`` records nginx edits made outside the cut-over and goes on; without it they
    are refused.

    A dry run leaves no lock file behind: when none exists, no command has ever held the lock,
    so there is no transition to settle and none to wait for; it then runs without one, and
    refuses (rather than settles) a transition that begins meanwhile.
    """
    state_path = Path(state_path)  # a str is taken as a path too
    journal.read(state_path)  # a missing or foreign file is reported before any lock file
    journal.check_writable(state_path)  # a dry run may settle (write) as the advance does
    held = not dry_run or journal.lock_path(state_path).exists()
    with journal.locked(state_path) if held else contextlib.nullcontext():
        return _advance(
            state_path,
            _overrides(overrides),
            reload=reload,
            dry_run=dry_run,
            adopt_edits=adopt_edits,
            dedup_confirmed=dedup_confirmed,
            notes=_Notes(notice),
            settle=held,
        )


def rollback(
    state_path: Path,
    *,
    config: str | None = None,
    nginx_bin: str | None = None,
    nginx_prefix: str | None = None,
    reload: bool = False,
    adopt_edits: bool = False,
    notice: Notice | None = None,
) -> RollbackResult:
    """Go back one stage; nginx's files come back byte-identical to that stage's (raises
    `NotByteIdentical`, an `OperationError` naming the files, when they do not).

    ``config``, ``nginx_bin`` and ``nginx_prefix`` override the settings recorded at init for
    this run, as advance's options do (nginx moved, or was started with another ``-p``).
    """
    state_path = Path(state_path)  # a str is taken as a path too
    journal.read(state_path)
    journal.check_writable(state_path)
    with journal.locked(state_path):
        return _rollback(
            state_path,
            {"config": config, "nginx_bin": nginx_bin, "nginx_prefix": nginx_prefix},
            reload=reload,
            adopt_edits=adopt_edits,
            notes=_Notes(notice),
        )


# ---------------------------------------------------------------------------------------------
# The steps.


def _overrides(values: Mapping[str, Any] | None) -> dict[str, Any]:
    given = dict(values or {})
    unknown = sorted(set(given) - set(SETTING_NAMES))
    if unknown:
        raise InputError(
            f"unknown cut-over setting(s): {', '.join(unknown)}",
            fix=f"use the names of the settings: {', '.join(SETTING_NAMES)}",
        )
    return given


def _load(
    state_path: Path, overrides: Mapping[str, Any], notes: _Notes
) -> tuple[Journal, Settings]:
    current = journal.read(state_path)
    settings = Settings.from_json(current.settings).override(**absolute(overrides))
    check_settings(settings, {name for name, value in overrides.items() if value not in (None, ())})
    if overrides.get("config"):
        settings = _main_config(settings, notes)
        recorded = current.settings.get("config")
        if isinstance(recorded, str) and _same_file(recorded, settings.config):
            # the recorded file by another name (a symlinked directory, ``..``): the journal
            # knows its files by the recorded names, and another name for one of them would
            # read as an edit made outside the cut-over
            settings = settings.override(config=recorded)
    return current, settings


def _same_file(a: str, b: str | None) -> bool:
    return b is not None and os.path.realpath(a) == os.path.realpath(b)


def _main_config(settings: Settings, notes: _Notes) -> Settings:
    """``config`` as the main config: a site file leads to the main config including it (the
    mirror engine's rule, `hookshift.mirror.api.main_config`), said in a note; a site file no
    main config includes is refused."""
    given = Path(settings.need("config", "to find the nginx files"))
    main, located = main_config(given, settings.nginx_bin or "nginx")
    for line in located:
        notes(line.level, line.text)
    return settings.override(config=str(main.absolute()))


def _resolve(
    current: Journal,
    settings: Settings,
    notes: _Notes,
    *,
    repair: bool,
    adopt: bool = False,
) -> transition.Resolution:
    """Settle a transition a killed command left open, saying what became of it."""
    resolution = transition.resolve(current, settings, repair=repair, adopt=adopt)
    if resolution.message:
        level = "warning" if resolution.outcome == "part-way" and not repair else "info"
        notes(level, resolution.message)
    return resolution


def _settled(resolution: transition.Resolution, op: str) -> Settled | None:
    """Whether resolving an interrupted transition already did what this command asks.

    Run again, the interrupted command finishes (completed: done; undone: it is redone). The
    opposite command, run to take the interrupted one back, stops at the stage that one
    started from: it does not go a stage further.
    """
    if resolution.intent is None or resolution.outcome is None:
        return None
    same = resolution.intent.op == op
    settled = resolution.outcome == "done" if same else resolution.outcome != "done"
    return Settled(resolution.journal.stage, resolution.outcome) if settled else None


def _advance(
    state_path: Path,
    overrides: Mapping[str, Any],
    *,
    reload: bool,
    dry_run: bool,
    adopt_edits: bool,
    dedup_confirmed: bool,
    notes: _Notes,
    settle: bool = True,
) -> AdvanceResult:
    current, settings = _load(state_path, overrides, notes)
    if stages.next_stage(current.stage) is None and current.pending is None:
        raise InputError(f"the cut-over is already {current.stage}: there is no next stage")
    if not settle and current.pending is not None:  # begun since the unlocked dry run started
        raise OperationError(
            f"{state_path}: a transition is running now (another command holds the journal); "
            "run the dry run again when it is done"
        )
    nginx_ops.check_binary(settings.nginx_bin)
    resolution = _resolve(
        current, settings, notes, repair=not dry_run, adopt=adopt_edits and not dry_run
    )
    current = resolution.journal
    settled = None if dry_run else _settled(resolution, "advance")
    if settled is not None:
        return AdvanceResult(
            current.stage, current.stage, settings, settled=settled, notes=tuple(notes.kept)
        )
    if current.pending is not None:  # a dry run leaves nginx's files as they are
        raise InputError(
            "a transition that was interrupted part-way is still open",
            fix="run `hookshift cutover advance` (without --dry-run) or `rollback` to put "
            "nginx's files back first",
        )
    stage = current.stage
    target = stages.next_stage(stage)
    if target is None:
        raise InputError(f"the cut-over is already {stage}: there is no next stage")
    # from here to the intent, a dry run checks what the change checks: edits it would adopt
    # (recorded only with its intent), then the change itself, the engine's plan included
    adopted = _drift(state_path, current, settings, adopt_edits, keep=not dry_run)
    nginx_ops.preflight(settings, target)
    untested = nginx_ops.check_result(settings, target)
    if untested is not None:
        notes("warning", untested)
    entered = current.entered(stage)
    evidence, detail = gather(
        current,
        settings,
        dedup_confirmed=dedup_confirmed,
        progress=lambda text: notes("info", text),
    )
    check = stages.check_transition(
        stage,
        evidence,
        entered_at=entered.timestamp if entered else time.time(),
        thresholds=settings.thresholds,
    )
    if check.passed and nginx_ops.SHAPES[target].mode is not None:
        nginx_ops.mirror_request(settings, nginx_ops.SHAPES[target])  # its settings are all set
    if not check.passed or dry_run:
        return AdvanceResult(
            stage, target, settings, check, detail, dry_run, notes=tuple(notes.kept)
        )
    begun, intent = transition.begin(
        current,
        settings,
        op="advance",
        target=target,
        reload=reload,
        after=_after_without_marks(settings, target),
        adopt=adopted,
        gates=[r.to_json() for r in check.results],
        evidence={**evidence.to_json(), "detail": detail},
    )
    try:
        nginx_ops.realize(state_path, settings, stage, target, reload)
        checkpoint("cutover:nginx-changed")
    except (InputError, OperationError, OSError) as exc:
        transition.undo(begun, intent, settings, exc)
    with _recording(stage, target):
        actual = _hashes_now(state_path, settings)
        files = nginx_ops.changes(intent.before, actual)
        updated = transition.commit(begun, intent, files, {}, f"reload={'yes' if reload else 'no'}")
    final = report.write(state_path, updated) if target == "decommissioned" else None
    return AdvanceResult(
        stage,
        target,
        settings,
        check,
        detail,
        files=tuple(files),
        report=final,
        notes=tuple(notes.kept),
    )


def _rollback(
    state_path: Path,
    overrides: Mapping[str, Any],
    *,
    reload: bool,
    adopt_edits: bool,
    notes: _Notes,
) -> RollbackResult:
    current, settings = _load(state_path, overrides, notes)
    nginx_ops.check_binary(settings.nginx_bin)
    resolution = _resolve(current, settings, notes, repair=True, adopt=adopt_edits)
    current = resolution.journal
    settled = _settled(resolution, "rollback")
    if settled is not None:
        return RollbackResult(
            current.stage, current.stage, settled=settled, notes=tuple(notes.kept)
        )
    stage = current.stage
    target = stages.previous_stage(stage)
    if target is None:
        raise InputError("the cut-over is at baseline: there is nothing to roll back")
    adopting = _drift(state_path, current, settings, adopt_edits)
    nginx_ops.preflight(settings, target)
    expected = current.files_in(target)
    # edits adopted now are recorded right after the intent (seq + 2), with the commit
    adopted = current.adopted_since(target) or (current.last.seq + 2 if adopting else None)
    after = expected if not adopted else _after_without_marks(settings, target)
    begun, intent = transition.begin(
        current,
        settings,
        op="rollback",
        target=target,
        reload=reload,
        after=after,
        adopt=adopting,
    )
    restored: list[str] = []
    try:
        nginx_ops.realize(state_path, settings, stage, target, reload)
        checkpoint("cutover:nginx-changed")
        if not adopted:
            # the engine reproduces a stage's bytes; if it no longer does (hookshift upgraded
            # during the cut-over), the bytes recorded for that stage are written back through it
            restored = nginx_ops.restore(state_path, settings, expected, reload)
            checkpoint("cutover:restored")
    except (InputError, OperationError, OSError) as exc:
        transition.undo(begun, intent, settings, exc)
    with _recording(stage, target):
        actual = _hashes_now(state_path, settings)
    files = nginx_ops.changes(intent.before, actual)
    differ = sorted(p for p in set(expected) | set(actual) if expected.get(p) != actual.get(p))
    if adopted:  # the recorded bytes predate edits the operator adopted: not comparable
        notes(
            "warning",
            f"edits adopted since {target} was entered (entry #{adopted}): the files "
            "are the engine's output for that stage with those edits, not the recorded bytes",
        )
        differ = []
    with _recording(stage, target):
        transition.commit(
            begun,
            intent,
            files,
            {
                "byte_identical": None if adopted else not differ,
                "differ": differ,
                "restored_from_snapshot": restored,
            },
            f"reload={'yes' if reload else 'no'}",
        )
    reminder = None
    if stage == "vendor-switched":
        reminder = (
            "nginx proxies to the app again, but the vendor may still call the custom domain: "
            f"register the nginx URL (path {settings.path}) at the vendor again if you are "
            "abandoning the switch, and keep the consumer's deduplication on meanwhile"
        )
    result = RollbackResult(
        stage,
        target,
        tuple(files),
        checked=len(expected),
        byte_identical=None if adopted else not differ,
        reminder=reminder,
        notes=tuple(notes.kept),
        differ=tuple(differ),
    )
    if differ:
        raise NotByteIdentical(
            f"rolled back to {target}, but {len(differ)} file(s) differ from that stage: "
            f"{', '.join(differ)}",
            result,
        )
    return result


@contextlib.contextmanager
def _recording(stage: str, target: str) -> Iterator[None]:
    """Record a change nginx has already had: a journal that cannot be written now (a full
    disk) is not bad input with nothing done, so it says what was done and what settles it."""
    try:
        yield
    except journal.Unwritable as exc:
        raise OperationError(
            f"nginx's files were changed ({stage} -> {target}), but the journal could not "
            f"record it: {exc.line()}; once it can be written, the next `hookshift cutover` "
            "command finds the open transition and records what nginx's files show"
        ) from None


def _drift(
    state_path: Path, current: Journal, settings: Settings, adopt: bool, *, keep: bool = True
) -> list[FileChange]:
    """The nginx edits someone made since the journal's last entry, refused unless adopted.

    hookshift's remove + apply would carry such an edit along, and a rollback would undo it
    without anyone deciding so. With ``adopt_edits`` the edits are returned, to be recorded
    as an ``adopt`` entry together with the transition that builds on them (a command that
    fails records nothing). A change of hookshift's own lines only (``hookshift mirror
    refresh`` moving the relay to the stage's new address) is adopted without asking: it is
    part of the stage, and no byte of the user's changed. Not ``keep``: the files' bytes now
    are not kept in the snapshot store (a dry run, which records nothing).
    """
    now = _hashes_now(state_path, settings, keep=keep)
    changed = nginx_ops.changes(current.files_now(), now)
    theirs = [c for c in changed if not nginx_ops.only_hookshift_lines(state_path, c)]
    if theirs and not adopt:
        names = ", ".join(c.path for c in theirs)
        raise InputError(
            f"nginx file(s) changed outside the cut-over since entry #{current.last.seq} "
            f"({current.stage}): {names}",
            fix=f"{_how_to_see(state_path, theirs[0])}undo the edit, or pass --adopt-edits to "
            "record it in the journal and go on",
        )
    return changed


def _how_to_see(state_path: Path, change: FileChange) -> str:
    """The command that shows an edit made outside the cut-over: the journal keeps the bytes
    it recorded, and the operator must see what changed before undoing or adopting it."""
    if change.sha256_before is None:
        return ""
    recorded = journal.snapshot_dir(state_path) / change.sha256_before
    if not recorded.is_file():
        return ""
    return f"`diff {recorded} {change.path}` shows the edit; "


def _hashes_now(
    state_path: Path, settings: Settings, *, keep: bool = True
) -> dict[str, str | None]:
    files = nginx_ops.config_files(settings.need("config", "to check the nginx files"))
    return nginx_ops.hashes(state_path, files, keep=keep)


def _after_without_marks(settings: Settings, target: str) -> dict[str, str | None] | None:
    """The files after a change to a stage without hookshift's lines: the user's own bytes.

    None for a stage with a mirror or forward, whose bytes only the engine knows.
    """
    if nginx_ops.SHAPES[target].mode is not None:
        return None
    files = nginx_ops.config_files(settings.need("config", "to change nginx"))
    return nginx_ops.user_hashes(files)
