"""One change of stage, written so that a kill at any moment can be finished or undone.

The order of a transition (``advance`` or ``rollback``):

1. everything that can be checked without touching nginx is checked (the binary, the config,
   the settings the change needs), so bad input writes nothing at all;
2. the intent goes into the journal: a ``begin`` entry with the stages, the gates that allowed
   it, the sha256 of every nginx file before, the sha256 after where it is known in advance
   (a rollback returns to recorded bytes; a stage without hookshift's lines is the user's own
   bytes), and the sha256 of every file without hookshift's lines ("the user's bytes");
3. nginx's files are changed through the mirror engine;
4. the commit: edits the operator adopted (``--adopt-edits``), if any, and the ``advance`` or
   ``rollback`` entry, in one write. A command that fails before this point appends no adopt
   entry, so a failed ``--adopt-edits`` records nothing.

An intent that is the journal's last entry was interrupted (a running command holds the lock,
so a command that gets the lock and finds one knows its owner is gone). The next command
classifies nginx's files against it (`classify`): as after -> the commit is written; as before
-> an ``abort`` entry; only hookshift's lines differ (killed part-way) -> ``advance`` and
``rollback`` put the "before" bytes back through the engine's safe pipeline and abort, ``status``
says so; the user's bytes differ (edited by hand meanwhile) -> refused, naming the files, until
the operator adopts them. So a rerun never blames "changed outside the cut-over" for its own
interrupted transition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

from hookshift.cutover import journal, nginx_ops
from hookshift.cutover.settings import Settings
from hookshift.errors import InputError, OperationError
from hookshift.mirror.apply import checkpoint

Outcome = Literal["done", "undone", "part-way", "edited"]
Hashes = dict[str, str | None]


@dataclass(frozen=True)
class Intent:
    """What a ``begin`` entry promised: the change and the files before (and after)."""

    seq: int
    op: str  # "advance" | "rollback"
    from_stage: str
    to_stage: str
    before: Hashes
    after: Hashes | None  # None: the engine's output for to_stage, not known in advance
    user: Hashes
    reload: bool
    adopt: tuple[journal.FileChange, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "before": dict(self.before),
            "after": None if self.after is None else dict(self.after),
            "user": dict(self.user),
            "reload": self.reload,
            "adopt": [f.to_json() for f in self.adopt],
        }

    @classmethod
    def from_entry(cls, state: Path, entry: journal.Entry) -> Intent:
        raw = entry.evidence.get("intent")
        problem = _intent_problem(raw)
        if problem is not None or entry.from_stage is None:
            raise InputError(
                f"not a hookshift cut-over journal: the intent entry #{entry.seq} mangles a "
                f"field ({problem or 'from'})",
                where=f"{state}:{entry.seq + 1}",
                fix="pass the file written by `hookshift cutover init`",
            )
        assert isinstance(raw, Mapping)
        return cls(
            seq=entry.seq,
            op=raw["op"],
            from_stage=entry.from_stage,
            to_stage=entry.to_stage,
            before=dict(raw["before"]),
            after=None if raw["after"] is None else dict(raw["after"]),
            user=dict(raw["user"]),
            reload=raw["reload"],
            adopt=tuple(
                journal.FileChange(f["path"], f.get("sha256_before"), f.get("sha256_after"))
                for f in raw["adopt"]
            ),
        )


def _hashes_ok(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items()
    )


def _intent_problem(raw: Any) -> str | None:
    if not isinstance(raw, Mapping):
        return "intent"
    if raw.get("op") not in ("advance", "rollback"):
        return "op"
    for name in ("before", "user"):
        if not _hashes_ok(raw.get(name)):
            return name
    if raw.get("after") is not None and not _hashes_ok(raw.get("after")):
        return "after"
    if not isinstance(raw.get("reload"), bool):
        return "reload"
    adopt = raw.get("adopt")
    if not isinstance(adopt, list) or not all(
        isinstance(f, Mapping)
        and isinstance(f.get("path"), str)
        and _hashes_ok({k: f.get(k) for k in ("sha256_before", "sha256_after")})
        for f in adopt
    ):
        return "adopt"
    return None


def classify(
    intent: Intent, actual: Hashes, actual_user: Hashes, applied: Callable[[], bool]
) -> Outcome:
    """Where an interrupted transition left nginx's files (pure but for ``applied``).

    ``applied`` asks the engine whether the files are its output for the target; it is only
    called when the "after" hashes were not known in advance.
    """
    if intent.after is not None and actual == intent.after:
        return "done"
    if actual == intent.before:
        return "undone"
    if actual_user != intent.user:
        return "edited"
    if intent.after is None and applied():
        return "done"
    return "part-way"


def begin(
    current: journal.Journal,
    settings: Settings,
    *,
    op: str,
    target: str,
    reload: bool,
    after: Hashes | None,
    adopt: Sequence[journal.FileChange] = (),
    gates: Sequence[Mapping[str, Any]] = (),
    evidence: Mapping[str, Any] | None = None,
) -> tuple[journal.Journal, Intent]:
    """Write the intent (step 2); returns the journal with it and the intent."""
    state = current.path
    files = nginx_ops.config_files(settings.need("config", "to change nginx"))
    intent = Intent(
        seq=len(current.entries) + 1,
        op=op,
        from_stage=current.stage,
        to_stage=target,
        before=nginx_ops.hashes(state, files),
        after=after,
        user=nginx_ops.user_hashes(files),
        reload=reload,
        adopt=tuple(adopt),
    )
    entry = journal.next_entry(
        current,
        action="begin",
        to_stage=target,
        gates=gates,
        evidence={**(evidence or {}), "intent": intent.to_json()},
        note=f"{op} {current.stage} -> {target} begun",
    )
    updated = journal.append(current, entry)
    checkpoint("cutover:intent-written")
    return updated, intent


def commit(
    current: journal.Journal,
    intent: Intent,
    files: Sequence[journal.FileChange],
    evidence: Mapping[str, Any],
    note: str,
) -> journal.Journal:
    """Step 4: the adopted edits (if any) and the transition's entry, in one write."""
    begun = current.entries[intent.seq - 1]
    entries: list[journal.Entry] = []
    if intent.adopt:
        entries.append(
            journal.next_entry(
                current,
                action="adopt",
                to_stage=intent.from_stage,
                files=intent.adopt,
                note="nginx edits made outside the cut-over, adopted by the operator",
            )
        )
    inherited = {k: v for k, v in begun.evidence.items() if k != "intent"}
    entries.append(
        journal.next_entry(
            current,
            after=len(entries),
            action=intent.op,
            to_stage=intent.to_stage,
            gates=begun.gates,
            evidence={**inherited, **evidence, "intent": intent.seq},
            files=files,
            note=note,
        )
    )
    return journal.append(current, *entries)


def abort(current: journal.Journal, intent: Intent, why: str) -> journal.Journal:
    """An ``abort`` entry: the intent is void, nginx's files are as they were before it."""
    return journal.append(
        current,
        journal.next_entry(
            current,
            action="abort",
            to_stage=intent.from_stage,
            evidence={"intent": intent.seq},
            note=why,
        ),
    )


def _actual(state: Path, settings: Settings) -> tuple[Hashes, Hashes]:
    files = nginx_ops.config_files(settings.need("config", "to check nginx's files"))
    return nginx_ops.hashes(state, files), nginx_ops.user_hashes(files)


def undo(
    current: journal.Journal, intent: Intent, settings: Settings, error: Exception
) -> NoReturn:
    """After a failure in step 3: put the "before" bytes back if needed, abort, re-raise.

    When even that fails the intent stays open and the next command resolves it.
    """
    state = current.path
    why = error.line() if isinstance(error, InputError) else str(error)
    try:
        actual, _ = _actual(state, settings)
        if actual != intent.before:
            nginx_ops.restore(state, settings, intent.before, intent.reload)
            actual, _ = _actual(state, settings)
        if actual != intent.before:
            raise OperationError("the files differ from the recorded bytes after the restore")
        abort(current, intent, f"failed, nginx's files unchanged: {why}")
    except (InputError, OperationError, OSError) as exc:
        text = exc.line() if isinstance(exc, InputError) else str(exc)
        raise OperationError(
            f"{why}; then putting nginx's files back failed too ({text}): the next "
            "`hookshift cutover` command checks them against the journal again"
        ) from exc
    raise error


@dataclass(frozen=True)
class Resolution:
    """What became of an interrupted transition (``outcome`` None: there was none)."""

    journal: journal.Journal
    intent: Intent | None = None
    outcome: Outcome | None = None
    message: str = ""


def resolve(
    current: journal.Journal,
    settings: Settings,
    *,
    repair: bool,
    adopt: bool = False,
) -> Resolution:
    """Settle an intent left open by a killed command (see the module docstring).

    ``repair``: may put nginx's files back (advance, rollback) rather than only report
    (status). ``adopt``: the operator passed ``--adopt-edits``, so files edited meanwhile end
    the intent (aborted) and are adopted by the command's own transition.
    """
    pending = current.pending
    if pending is None:
        return Resolution(current)
    state = current.path
    intent = Intent.from_entry(state, pending)
    if repair:
        nginx_ops.settle_engine(settings)
    actual, actual_user = _actual(state, settings)
    outcome = classify(
        intent, actual, actual_user, lambda: nginx_ops.engine_applied(settings, intent.to_stage)
    )
    what = (
        f"the interrupted {intent.op} {intent.from_stage} -> {intent.to_stage} "
        f"(entry #{intent.seq})"
    )
    if outcome == "done":
        extra: dict[str, Any] = {}
        if intent.op == "rollback":  # as a rollback's own commit says it
            extra["byte_identical"] = None if intent.after is None else True
        files = nginx_ops.changes(intent.before, actual)
        done = commit(
            current,
            intent,
            files,
            extra,
            "completed: the command was interrupted after nginx's files had changed",
        )
        reload = " (it was run with --reload: reload nginx now)" if intent.reload else ""
        return Resolution(
            done, intent, outcome, f"{what} had changed nginx's files: recorded as done{reload}"
        )
    if outcome == "undone":
        done = abort(current, intent, "interrupted before nginx's files changed")
        return Resolution(
            done, intent, outcome, f"{what} had not changed nginx's files: recorded as aborted"
        )
    changed = ", ".join(
        sorted(p for p in set(actual) | set(intent.before) if actual.get(p) != intent.before.get(p))
    )
    if outcome == "edited":
        if adopt:
            done = abort(
                current,
                intent,
                "nginx's files were edited by hand after it was "
                "interrupted; the operator adopted them",
            )
            return Resolution(done, intent, outcome, f"{what} is void: the edits are adopted")
        raise InputError(
            f"{what} was interrupted and nginx's files were edited by hand since: {changed}",
            where=f"{state}:{intent.seq + 1}",
            fix="put the files back as they were (the mirror engine keeps backups), or pass "
            "--adopt-edits to record them as they are and go on",
        )
    if not repair:
        return Resolution(
            current,
            intent,
            outcome,
            f"{what} stopped part-way ({changed}): "
            "`hookshift cutover advance` or `rollback` puts them back first",
        )
    nginx_ops.restore(state, settings, intent.before, intent.reload)
    actual, _ = _actual(state, settings)
    if actual != intent.before:
        raise OperationError(f"{what} stopped part-way and its files could not be put back")
    done = abort(current, intent, "interrupted part-way; nginx's files put back as before")
    return Resolution(
        done,
        intent,
        outcome,
        f"{what} had stopped part-way: nginx's files are back as before it, recorded as aborted",
    )
