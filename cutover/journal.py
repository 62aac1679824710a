"""The cut-over state file: an append-only journal of every transition.

WHY a journal and not a "current stage" field: a cut-over runs for days, by several people, and
each step changes production nginx. Afterwards someone must be able to answer "who moved to the
custom domain, on what evidence, and which files did that touch". So the file records every
transition with its time, the evidence its gate used, and every file it changed with the sha256
before and after; the current stage is simply the target of the last entry.

Format: JSON Lines. Line 1 is a header (``{"format": "hookshift-cutover-journal", "version": 1,
...}``), every further line one entry. Appending rewrites the whole file through a temp file +
fsync + rename, so a crash leaves the old journal or the new one, never half a line, and the old
bytes are always an exact prefix of the new (checked before every write: append-only).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hookshift.durable import exclusive_lock, write_atomic
from hookshift.errors import InputError, OperationError

FORMAT = "hookshift-cutover-journal"
VERSION = 1


def sha256_file(path: Path) -> str | None:
    """The file's sha256 (hex), or None when it does not exist."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class FileChange:
    """One file a transition touched, identified by content before and after."""

    path: str
    sha256_before: str | None
    sha256_after: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256_before": self.sha256_before,
            "sha256_after": self.sha256_after,
        }


@dataclass(frozen=True)
class Entry:
    """One transition: ``init`` (to baseline), ``advance`` or ``rollback``."""

    seq: int
    time: str  # ISO 8601, UTC
    action: str
    from_stage: str | None
    to_stage: str
    gates: tuple[dict[str, Any], ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    files: tuple[FileChange, ...] = ()
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "action": self.action,
            "from": self.from_stage,
            "to": self.to_stage,
            "gates": list(self.gates),
            "evidence": dict(self.evidence),
            "files": [f.to_json() for f in self.files],
            "note": self.note,
        }

    @property
    def timestamp(self) -> float:
        """Epoch seconds of the entry's time."""
        return datetime.fromisoformat(self.time).timestamp()


@dataclass(frozen=True)
class Journal:
    """The header (settings chosen at ``init``) and the entries in order."""

    path: Path
    settings: Mapping[str, Any]
    entries: tuple[Entry, ...]

    @property
    def stage(self) -> str:
        return self.entries[-1].to_stage

    @property
    def last(self) -> Entry:
        return self.entries[-1]

    def entered(self, stage: str) -> Entry | None:
        """The most recent entry that moved *into* ``stage`` (None if never).

        ``adopt`` entries stay in a stage rather than enter it, so they do not count.
        """
        for entry in reversed(self.entries):
            if entry.to_stage == stage and entry.action != "adopt":
                return entry
        return None


def locked(path: Path) -> contextlib.AbstractContextManager[None]:
    """Hold ``STATE.lock`` for a whole transition, so two operators cannot run one at once.

    Non-blocking: the second command is refused at once rather than waiting behind a parity
    run, and it re-reads the journal when it is run again.
    """
    lock_path = path.with_name(path.name + ".lock")
    refusal = (
        f"{path}: another `hookshift cutover` command is running on this journal "
        f"({lock_path} is locked); wait for it and run again"
    )
    return exclusive_lock(lock_path, refusal, mode=0o644)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _bad(path: Path, line: int, what: str) -> InputError:
    return InputError(
        f"not a hookshift cut-over journal: {what}",
        where=f"{path}:{line}",
        fix="pass the file written by `hookshift cutover init`, or init a new --state file",
    )


def _entry_from_json(path: Path, line: int, raw: Any) -> Entry:
    if not isinstance(raw, dict):
        raise _bad(path, line, "entry is not a JSON object")
    try:
        files = tuple(
            FileChange(str(f["path"]), f.get("sha256_before"), f.get("sha256_after"))
            for f in raw.get("files", [])
        )
        entry = Entry(
            seq=int(raw["seq"]),
            time=str(raw["time"]),
            action=str(raw["action"]),
            from_stage=raw.get("from"),
            to_stage=str(raw["to"]),
            gates=tuple(raw.get("gates", [])),
            evidence=dict(raw.get("evidence", {})),
            files=files,
            note=str(raw.get("note", "")),
        )
        datetime.fromisoformat(entry.time)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, line, f"entry lacks or mangles a field ({exc})") from None
    return entry


def read(path: Path) -> Journal:
    """Read a journal back; anything that is not one is a single-line `InputError` (exit 2)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(
            "state file does not exist",
            where=str(path),
            fix="run `hookshift cutover init --state FILE ...` first",
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read state file ({exc.strerror})", where=str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(path, 1, "not UTF-8 text") from None
    if text and not text.endswith("\n"):
        raise _bad(path, text.count("\n") + 1, "last line is incomplete (file truncated?)")
    lines = text.splitlines()
    if not lines:
        raise _bad(path, 1, "file is empty")
    parsed: list[Any] = []
    for number, line in enumerate(lines, start=1):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise _bad(path, number, f"invalid JSON ({exc.msg})") from None
    header = parsed[0]
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _bad(path, 1, f"first line is not a {FORMAT} header")
    if header.get("version") != VERSION:
        raise _bad(path, 1, f"journal version {header.get('version')!r}, expected {VERSION}")
    entries = tuple(_entry_from_json(path, n, raw) for n, raw in enumerate(parsed[1:], start=2))
    if not entries:
        raise _bad(path, 2, "no entries (init writes the first one)")
    for expected, entry in enumerate(entries, start=1):
        if entry.seq != expected:
            raise _bad(path, expected + 1, f"entry seq {entry.seq}, expected {expected}")
    return Journal(path=path, settings=dict(header.get("settings", {})), entries=entries)


def _line(obj: Mapping[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def create(path: Path, settings: Mapping[str, Any], first: Entry) -> Journal:
    """Write a new journal (header + the ``init`` entry); refuses to overwrite an existing one."""
    if path.exists():
        raise InputError(
            "state file already exists",
            where=str(path),
            fix="use `hookshift cutover status` on it, or choose another --state path",
        )
    header = {
        "format": FORMAT,
        "version": VERSION,
        "created": first.time,
        "settings": dict(settings),
    }
    write_atomic(path, _line(header) + _line(first.to_json()))
    return read(path)


def append(journal: Journal, entry: Entry) -> Journal:
    """Append one entry; the file on disk must still be the journal we read (append-only)."""
    path = journal.path
    current = path.read_bytes()
    on_disk = read(path)
    if len(on_disk.entries) != len(journal.entries):
        raise OperationError(
            f"{path}: the journal changed since it was read ({len(on_disk.entries)} entries, "
            f"expected {len(journal.entries)}); another cutover command ran? retry"
        )
    if entry.seq != len(journal.entries) + 1:
        raise OperationError(f"{path}: entry seq {entry.seq} does not follow the journal")
    new = current + _line(entry.to_json())
    assert new.startswith(current)  # append-only by construction
    write_atomic(path, new)
    return read(path)


def next_entry(
    journal: Journal | None,
    *,
    action: str,
    to_stage: str,
    gates: Sequence[Mapping[str, Any]] = (),
    evidence: Mapping[str, Any] | None = None,
    files: Sequence[FileChange] = (),
    note: str = "",
    time: str | None = None,
) -> Entry:
    """Build the entry that follows ``journal`` (or the first one when it is None)."""
    return Entry(
        seq=1 if journal is None else len(journal.entries) + 1,
        time=time or now_iso(),
        action=action,
        from_stage=None if journal is None else journal.stage,
        to_stage=to_stage,
        gates=tuple(dict(g) for g in gates),
        evidence=dict(evidence or {}),
        files=tuple(files),
        note=note,
    )


def snapshot_dir(state: Path) -> Path:
    """Where the nginx file contents named by the journal's sha256s are kept (beside the state).

    The journal names files by hash; the bytes live here, content-addressed, so a rollback can
    prove (and if ever needed, restore) that a file is byte-identical to an earlier stage.
    """
    return state.with_name(state.name + ".snapshots")


def store_snapshot(state: Path, data: bytes) -> str:
    """Keep ``data`` under its sha256 (written atomically, once) and return the hash."""
    digest = hashlib.sha256(data).hexdigest()
    target = snapshot_dir(state) / digest
    if not target.exists():
        write_atomic(target, data)
    return digest


def load_snapshot(state: Path, digest: str) -> bytes | None:
    """The bytes stored under ``digest``, verified; None when absent."""
    try:
        data = (snapshot_dir(state) / digest).read_bytes()
    except FileNotFoundError:
        return None
    return data if hashlib.sha256(data).hexdigest() == digest else None
