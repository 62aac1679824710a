"""The cut-over state file: an append-only journal of every transition.

WHY a journal and not a "current stage" field: a cut-over runs for days, by several people, and
each step changes production nginx. Afterwards someone must be able to answer "who moved to the
custom domain, on what evidence, and which files did that touch". So the file records every
transition with its time, the evidence its gate used, and every file it changed with the sha256
before and after; the current stage is simply the target of the last entry that moved or held it.

Format: JSON Lines. Line 1 is a header (``{"format": "hookshift-cutover-journal", "version": 2,
...}``), every further line one entry. Appending rewrites the whole file through a temp file +
fsync + rename, so a crash leaves the old journal or the new one, never half a line, and the old
bytes are always an exact prefix of the new (checked before every write: append-only).

A transition is written in two steps, so a kill at any moment leaves a journal that says what
was going on: a ``begin`` entry (the intent: from, to, the files' sha256 before and, where known
in advance, after) before nginx is touched, then the ``advance``/``rollback`` entry (the commit)
once it is done, or an ``abort`` entry when it was undone. An intent without either is resolved
by the next command (`cutover.transition`).

The chain: in a version 2 journal every entry carries ``chain``, the sha256 of the previous
entry's ``chain`` (the header's own sha256 for the first entry), a newline, and the entry's JSON
without the ``chain`` field. An entry edited after it was written no longer matches its chain
value, and an entry whose chain value was recomputed breaks the next one's; either is reported as
one line naming the file and line. What a chain cannot show, and this one does not claim to: that
entries were cut off the end, or that someone recomputed every value after an edit.

Version 1 journals (written before the chain) are read and appended to as they are, without a
chain; a chain value in one of them, or an entry without one in a version 2 journal, is refused.
So a chain always starts at the header: it cannot begin mid-way, after entries nothing vouches for.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hookshift.cutover.settings import settings_problem
from hookshift.durable import exclusive_lock, foreign_hold, make_private_dirs, write_atomic
from hookshift.errors import InputError, OperationError
from hookshift.private import PRIVATE_DIR, PRIVATE_FILE, owner_only

FORMAT = "hookshift-cutover-journal"
VERSION = 2  # chained; version 1 journals are still read (see the module docstring)
LEGACY_VERSION = 1

#: Entries that move or hold the stage; ``begin`` (an intent) and ``abort`` do neither.
TRANSITIONS = ("init", "advance", "rollback", "adopt")
ACTIONS = (*TRANSITIONS, "begin", "abort")


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
    """One line: ``init`` (to baseline), ``advance``, ``rollback``, ``adopt`` (edits made outside
    the cut-over, recorded), ``begin`` (the intent of a transition) or ``abort`` (one undone)."""

    seq: int
    time: str  # ISO 8601, UTC
    action: str
    from_stage: str | None
    to_stage: str
    gates: tuple[dict[str, Any], ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    files: tuple[FileChange, ...] = ()
    note: str = ""
    chain: str | None = None  # set when appended to a chained journal

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
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
        if self.chain is not None:
            data["chain"] = self.chain
        return data

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
    header_chain: str | None = None  # the chain's start (None: a version 1 journal)

    @property
    def chained(self) -> bool:
        return self.header_chain is not None

    @property
    def stage(self) -> str:
        """The stage nginx is in: an intent (``begin``) not yet committed does not count."""
        for entry in reversed(self.entries):
            if entry.action != "begin":
                return entry.to_stage
        raise AssertionError("a journal starts with its init entry")  # read() checks this

    @property
    def last(self) -> Entry:
        return self.entries[-1]

    @property
    def pending(self) -> Entry | None:
        """The intent of a transition that was begun and neither committed nor aborted."""
        return self.last if self.last.action == "begin" else None

    def entered(self, stage: str) -> Entry | None:
        """The most recent entry that moved *into* ``stage`` (None if never).

        ``adopt`` entries stay in a stage rather than enter it, ``begin`` and ``abort`` entries
        move nothing, so none of them count.
        """
        for entry in reversed(self.entries):
            if entry.to_stage == stage and entry.action in ("init", "advance", "rollback"):
                return entry
        return None

    def files_now(self) -> dict[str, str | None]:
        """The sha256 of every nginx file as the journal says it is now (after its last entry);
        anything else on disk was edited outside the cut-over."""
        files: dict[str, str | None] = {}
        for entry in self.entries:
            if entry.action == "init":
                files = dict(entry.evidence.get("files", {}))
            for change in entry.files:
                files[change.path] = change.sha256_after
        return files

    def files_in(self, stage: str) -> dict[str, str | None]:
        """The sha256 of every nginx file as it was when ``stage`` was last reached (empty if
        never): what a rollback to it must give back byte for byte."""
        files: dict[str, str | None] = {}
        state_of: dict[str, dict[str, str | None]] = {}
        for entry in self.entries:
            if entry.action in ("begin", "abort"):  # an intent, or one undone: no stage's files
                continue
            if entry.action == "init":
                files = dict(entry.evidence.get("files", {}))
            for change in entry.files:
                files[change.path] = change.sha256_after
            state_of[entry.to_stage] = dict(files)
        return state_of.get(stage, {})

    def adopted_since(self, stage: str) -> int | None:
        """The seq of the first ``adopt`` entry after ``stage`` was last entered (None if none):
        from there on the recorded bytes of ``stage`` predate the operator's own edits."""
        entered = self.entered(stage)
        for entry in self.entries:
            if entry.action == "adopt" and (entered is None or entry.seq > entered.seq):
                return entry.seq
        return None


def write_problem(path: Path) -> InputError | None:
    """Why a command must not write the journal at `path` (None when it may).

    A symlink there is not followed: the journal is replaced through a temp file and a
    rename, which would put a regular file in the link's place, and the journal the link led
    to would silently stop being written. Following it instead would let whoever could plant
    the link send root's writes elsewhere, and the lock beside the link would not be the lock
    beside the journal. So the journal is written only at its own path.

    A journal another user could write or replace (it, or its directory, is theirs, or open to
    others without the sticky bit: `durable.foreign_hold`, OpenSSH's StrictModes rule) is
    refused too: its header names the nginx binary hookshift runs and the files it rewrites,
    as whoever runs it, root included.
    """
    if path.is_symlink():
        return InputError(
            f"the cut-over journal is a symlink (to {os.readlink(path)}): hookshift writes a "
            "journal only at its own path, never through a link",
            where=str(path),
            fix=f"if you made the link, pass --state {os.path.realpath(path)}; "
            "else remove the link",
        )
    held = foreign_hold(path, levels=1)
    if held is not None:
        return InputError(
            f"{held}: another user could replace the cut-over journal, and with it the nginx "
            "binary hookshift runs and the files it rewrites",
            where=str(path),
            fix="keep the journal in a directory only you (or root) can write (chown, "
            "chmod go-w), or run as the user that owns it",
        )
    return None


def check_writable(path: Path) -> None:
    """Refuse, before anything is done, a journal a command must not write (`write_problem`)."""
    problem = write_problem(path)
    if problem is not None:
        raise problem


class LockUnavailable(InputError):
    """The lock file beside the journal cannot be opened (nothing has begun); ``why`` says
    so in a few words, for a command that goes on without the lock (status)."""

    def __init__(self, refusal: InputError, why: str) -> None:
        super().__init__(refusal.what, where=refusal.where, fix=refusal.fix)
        self.why = why


def lock_path(path: Path) -> Path:
    """``STATE.lock``, beside the journal; once made it stays (see `locked`)."""
    return path.with_name(path.name + ".lock")


def locked(path: Path) -> contextlib.AbstractContextManager[None]:
    """Hold ``STATE.lock`` for a whole transition, so two operators cannot run one at once.

    Non-blocking: the second command is refused at once rather than waiting behind a parity
    run, and it re-reads the journal when it is run again. The lock file is never removed:
    a command that unlinked it while another had it open would let a third lock a new file
    beside the held one.
    """
    lock = lock_path(path)
    refusal = (
        f"{path}: another `hookshift cutover` command is running on this journal "
        f"({lock} is locked); wait for it and run again"
    )
    return _opened(exclusive_lock(lock, refusal, mode=0o644), lock)


@contextlib.contextmanager
def _opened(lock: contextlib.AbstractContextManager[None], where: Path) -> Iterator[None]:
    """`lock` held, a lock file that cannot be opened (the journal's directory belongs to
    another user, a directory sits at its path) being bad input said in one line: the
    command has not begun, and nothing was written."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(lock)
        except OSError as exc:
            raise LockUnavailable(cannot_write(where, exc), _why(exc)) from None
        except InputError as exc:  # a link at the lock's path
            raise LockUnavailable(exc, exc.what) from None
        yield


class Unwritable(InputError):
    """The journal, its lock or its snapshot store could not be written; what was there is
    as it was (every write is whole or not at all)."""


def cannot_write(path: Path, exc: OSError) -> Unwritable:
    """A file beside the journal (its lock, its snapshots, itself) that cannot be written."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space on that disk (df -h), or keep the journal on another one"
    elif exc.errno == errno.EROFS:
        fix = "keep the journal on a disk mounted read-write, or remount it"
    else:
        fix = (
            "run as the user who owns the journal's directory (or make it writable), or "
            "remove what is in the way there"
        )
    return Unwritable(
        f"cannot write beside the cut-over journal: {_why(exc)}",
        where=str(exc.filename or path),
        fix=fix,
    )


def _write(path: Path, data: bytes, *, default_mode: int = 0o644) -> None:
    """`write_atomic`, its failure (a full disk, a read-only one) one line naming `path`."""
    try:
        write_atomic(path, data, default_mode=default_mode)
    except OSError as exc:
        if exc.errno is None:  # not the system's refusal: no words for the user to act on
            raise
        exc.filename = None  # the temp file's name would mean nothing to the user
        raise cannot_write(path, exc) from None


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):  # mkdir's words for the same thing
        return "a file stands where a directory must be"
    return exc.strerror or str(exc)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _bad(path: Path, line: int, what: str, fix: str | None = None) -> InputError:
    return InputError(
        f"not a hookshift cut-over journal: {what}",
        where=f"{path}:{line}",
        fix=fix or "pass the file written by `hookshift cutover init`, or init a new --state file",
    )


def _text_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _entry_problem(raw: Mapping[str, Any]) -> str | None:
    """What is wrong with the types of an entry's fields (None when nothing is)."""
    from hookshift.cutover.stages import STAGES

    if not isinstance(raw.get("seq"), int) or isinstance(raw.get("seq"), bool):
        return "seq is not a whole number"
    if not isinstance(raw.get("time"), str):
        return "time is not text"
    if raw.get("action") not in ACTIONS:
        return f"action {raw.get('action')!r} is not one of {', '.join(ACTIONS)}"
    if raw.get("to") not in STAGES:
        return f"stage {raw.get('to')!r} is not one of {', '.join(STAGES)}"
    if raw.get("from") is not None and raw.get("from") not in STAGES:
        return f"stage {raw.get('from')!r} is not one of {', '.join(STAGES)}"
    gates = raw.get("gates", [])
    if not isinstance(gates, list) or not all(isinstance(g, dict) for g in gates):
        return "gates is not a list of objects"
    if not isinstance(raw.get("evidence", {}), dict):
        return "evidence is not an object"
    files = raw.get("files", [])
    if not isinstance(files, list) or not all(
        isinstance(f, dict)
        and isinstance(f.get("path"), str)
        and _text_or_null(f.get("sha256_before"))
        and _text_or_null(f.get("sha256_after"))
        for f in files
    ):
        return "files is not a list of {path, sha256_before, sha256_after}"
    if not isinstance(raw.get("note", ""), str):
        return "note is not text"
    if not _text_or_null(raw.get("chain")):
        return "chain is not text"
    return None


def _entry_from_json(path: Path, line: int, raw: Any) -> Entry:
    if not isinstance(raw, dict):
        raise _bad(path, line, "entry is not a JSON object")
    missing = [name for name in ("seq", "time", "action", "to") if name not in raw]
    if missing:
        raise _bad(path, line, f"entry lacks a field ({', '.join(missing)})")
    problem = _entry_problem(raw)
    if problem is not None:
        raise _bad(path, line, f"entry mangles a field ({problem})")
    try:
        datetime.fromisoformat(raw["time"])
    except ValueError:
        raise _bad(path, line, f"entry time {raw['time']!r} is not an ISO 8601 time") from None
    return Entry(
        seq=raw["seq"],
        time=raw["time"],
        action=raw["action"],
        from_stage=raw.get("from"),
        to_stage=raw["to"],
        gates=tuple(raw.get("gates", [])),
        evidence=dict(raw.get("evidence", {})),
        files=tuple(
            FileChange(f["path"], f.get("sha256_before"), f.get("sha256_after"))
            for f in raw.get("files", [])
        ),
        note=raw.get("note", ""),
        chain=raw.get("chain"),
    )


def _canonical(obj: Mapping[str, Any]) -> bytes:
    """An entry's JSON as it is written (key order kept), the chain value left out."""
    return json.dumps(
        {k: v for k, v in obj.items() if k != "chain"}, ensure_ascii=False, sort_keys=False
    ).encode("utf-8")


def chain_value(previous: str, obj: Mapping[str, Any]) -> str:
    """The chain value of an entry: covers the entry and, through ``previous``, all before it."""
    return hashlib.sha256(previous.encode("ascii") + b"\n" + _canonical(obj)).hexdigest()


def header_value(header: Mapping[str, Any]) -> str:
    """Where the chain starts: the header's own sha256 (so its settings are covered too)."""
    return hashlib.sha256(_canonical(header)).hexdigest()


def _check_chain(path: Path, header: Mapping[str, Any], raws: Sequence[Any]) -> str | None:
    """Verify every entry's chain value; return the chain's start (None for version 1)."""
    if header.get("version") == LEGACY_VERSION:
        for number, raw in enumerate(raws, start=2):
            if "chain" in raw:
                raise _bad(
                    path, number, "a chain value in a version 1 journal (they have no chain)"
                )
        return None
    start = header_value(header)
    previous = start
    for number, raw in enumerate(raws, start=2):
        recorded = raw.get("chain")
        if recorded is None:
            raise _bad(
                path,
                number,
                "entry has no chain value (every entry of a version 2 journal has one)",
            )
        if recorded != chain_value(previous, raw) and number == 2:
            # the first entry's chain starts from the header's own hash: which of the two
            # was changed, nothing recorded can tell, and the header (the settings) is the
            # one edited by hand more often
            raise InputError(
                "the header (line 1, with the settings) or the init entry (line 2) was changed "
                "after it was written: they no longer match line 2's chain value",
                where=f"{path}:1",
                fix="put the journal back as it was written (it is only ever appended to; "
                "pass one-off settings as options instead), or start a new journal with "
                "`hookshift cutover init`",
            )
        if recorded != chain_value(previous, raw):
            raise InputError(
                "this entry was changed after it was written: its content (or an earlier line) "
                "no longer matches its chain value",
                where=f"{path}:{number}",
                fix="put the journal back as it was written (it is only ever appended to), or "
                "start a new journal with `hookshift cutover init`",
            )
        previous = recorded
    return start


def read(path: Path) -> Journal:
    """Read a journal back; anything that is not one is a single-line `InputError` (exit 2)."""
    with contextlib.suppress(OSError):
        if path.exists() and not path.is_file():  # a FIFO would block the read forever
            raise InputError(
                "state file is not a regular file",
                where=str(path),
                fix="pass the file written by `hookshift cutover init`",
            )
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
    except UnicodeDecodeError as exc:
        raise _bad(path, data.count(b"\n", 0, exc.start) + 1, "not UTF-8 text") from None
    crlf = text.find("\r\n")
    if crlf != -1:
        # hookshift writes LF only; CRLF means an editor (or a checkout with autocrlf) saved
        # the file again. Its entries may still read the same, but appends would mix line
        # ends, and what was saved is no longer the bytes hookshift wrote: say so, and how
        # to put them back (the chain hashes the entries' content, so it holds again after)
        raise _bad(
            path,
            text.count("\n", 0, crlf) + 1,
            "CRLF line ends (hookshift writes LF only: the file was saved again by another "
            "program)",
            f"put the line ends back, e.g. sed -i 's/\\r$//' {path}, then run the command "
            "again (the chain is checked on the content, which CRLF did not change)",
        )
    if text and not text.endswith("\n"):
        raise _bad(path, text.count("\n") + 1, "last line is incomplete (file truncated?)")
    # not splitlines(): JSON text may hold U+2028 and other line breaks inside strings
    lines = text.split("\n")[:-1] if text else []
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
    version = header.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise InputError(
            f"the cut-over journal is version {version}, written by a newer hookshift; this "
            f"one reads versions {LEGACY_VERSION} and {VERSION}",
            where=f"{path}:1",
            fix="run the hookshift that wrote it (upgrade this one); an older one must not "
            "append to it",
        )
    if version not in (LEGACY_VERSION, VERSION):
        raise _bad(path, 1, f"journal version {version!r}, expected {VERSION}")
    settings = header.get("settings", {})
    problem = settings_problem(settings)
    if problem is not None:
        raise _bad(
            path,
            1,
            problem,
            "put the header's settings back as `hookshift cutover init` wrote "
            "them (an object; pass one-off values as options instead), or init a new --state file",
        )
    entries = tuple(_entry_from_json(path, n, raw) for n, raw in enumerate(parsed[1:], start=2))
    if not entries:
        raise _bad(path, 2, "no entries (init writes the first one)")
    for expected, entry in enumerate(entries, start=1):
        if entry.seq != expected:
            raise _bad(path, expected + 1, f"entry seq {entry.seq}, expected {expected}")
    if entries[0].action != "init":
        raise _bad(path, 2, "the first entry is not the init entry")
    start = _check_chain(path, header, parsed[1:])
    return Journal(path=path, settings=dict(settings), entries=entries, header_chain=start)


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
    first = _chained(header_value(header), first)
    check_writable(path)
    _write(path, _line(header) + _line(first.to_json()))
    return read(path)


def _chained(previous: str, entry: Entry) -> Entry:
    bare = replace(entry, chain=None)
    return replace(bare, chain=chain_value(previous, bare.to_json()))


def append(journal: Journal, *entries: Entry) -> Journal:
    """Append entries in one write; the file on disk must still be the journal we read.

    Several entries go in one write when they only make sense together (edits adopted and the
    intent of the transition that builds on them): a command that fails before that write
    leaves the journal exactly as it found it.
    """
    path = journal.path
    check_writable(path)  # the commands refuse it first; never write through a link here
    current = path.read_bytes()
    on_disk = read(path)
    if on_disk.entries != journal.entries:
        raise OperationError(
            f"{path}: the journal changed since it was read ({len(on_disk.entries)} entries, "
            f"expected {len(journal.entries)}); another cutover command ran? retry"
        )
    new = current
    previous = journal.last.chain
    for number, entry in enumerate(entries, start=len(journal.entries) + 1):
        if entry.seq != number:
            raise OperationError(f"{path}: entry seq {entry.seq} does not follow the journal")
        if journal.chained:
            assert previous is not None  # read() verified the chain
            entry = _chained(previous, entry)
            previous = entry.chain
        new += _line(entry.to_json())
    assert new.startswith(current)  # append-only by construction
    _write(path, new)
    return read(path)


def next_entry(
    journal: Journal | None,
    *,
    after: int = 0,
    action: str,
    to_stage: str,
    gates: Sequence[Mapping[str, Any]] = (),
    evidence: Mapping[str, Any] | None = None,
    files: Sequence[FileChange] = (),
    note: str = "",
    time: str | None = None,
) -> Entry:
    """Build the entry that follows ``journal`` (or the first one when it is None).

    ``after``: how many entries will be appended before this one in the same write.
    """
    return Entry(
        seq=(1 if journal is None else len(journal.entries) + 1) + after,
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
    """Keep ``data`` under its sha256 (written atomically, once) and return the hash.

    The store is its owner's only (0700, files 0600): an nginx file may be readable by root
    alone (credentials in a ``proxy_set_header``, an ``auth_basic_user_file``'s neighbours), and
    a copy here must not widen who can read it. A store made more open by an older hookshift is
    closed on the next write.
    """
    digest = hashlib.sha256(data).hexdigest()
    store = snapshot_dir(state)
    try:
        make_private_dirs(store)
    except OSError as exc:
        raise cannot_write(store, exc) from None
    owner_only(store, PRIVATE_DIR)
    target = store / digest
    if not target.exists():
        _write(target, data, default_mode=PRIVATE_FILE)
    return digest


def load_snapshot(state: Path, digest: str) -> bytes | None:
    """The bytes stored under ``digest``, verified; None when absent."""
    try:
        data = (snapshot_dir(state) / digest).read_bytes()
    except FileNotFoundError:
        return None
    return data if hashlib.sha256(data).hexdigest() == digest else None
