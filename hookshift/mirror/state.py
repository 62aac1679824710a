"""What hookshift keeps about one nginx config between runs: its lock, an unfinished change,
and the lines apply wrote.

* The lock: one per config tree, an flock on the directory holding the main config (its real
  path). Whoever runs hookshift and wherever they keep backups, two writers of one config
  meet there.
* The intent: recorded durably before the first config file changes and cleared once the
  change is complete. A run killed in between leaves it, and the next run puts every file
  back to the bytes it had (from the backup) before doing anything else.
* The record: the marked lines apply added to each file, so remove takes out exactly those
  and leaves a user's own ``... # hookshift`` lines alone.

They live in ``<state dir>/configs/<hash of the main config's real path>/state.json``; the
state dir is ``$HOOKSHIFT_STATE_DIR``, else ``$XDG_STATE_HOME/hookshift``, else
``~/.local/state/hookshift`` (where the default backups go too).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hookshift.durable import directory_lock, foreign_hold, make_private_dirs, write_atomic
from hookshift.errors import InputError
from hookshift.nginx import splice

STATE_ENV = "HOOKSHIFT_STATE_DIR"


def state_root() -> Path:
    explicit = os.environ.get(STATE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hookshift"


@dataclass(frozen=True)
class FileRecord:
    """The marked lines (no line ending) apply added to one file, and the lines it split."""

    lines: tuple[str, ...]
    splits: int


def record_for(records: Mapping[str, FileRecord], path: Path | str) -> FileRecord | None:
    """The record of the file at `path`: kept under that path, else under another path of
    the same file.

    A record is keyed by the path the config's includes give its file, from the main config
    as it was named. The same config named through a symlinked directory (``/etc/nginx`` a link
    to ``/srv/nginx``), or by its real path, gives its files other paths: remove, refresh and
    a second apply must find what apply recorded however the config is named now.
    """
    found = records.get(str(path))
    if found is not None:
        return found
    real = os.path.realpath(path)
    return next((rec for key, rec in records.items() if os.path.realpath(key) == real), None)


def same_file_keys(records: Mapping[str, object], path: Path | str) -> list[str]:
    """The keys of `records` other than `path` that name the same file (see `record_for`)."""
    real = os.path.realpath(path)
    return [key for key in records if key != str(path) and os.path.realpath(key) == real]


def without_ours(text: str, record: FileRecord | None, legacy: bool) -> splice.Removal:
    """`text` without the lines hookshift added to it.

    With a record (`legacy` False), exactly the recorded lines. A config applied by an
    earlier hookshift has no record (`legacy` True): then every marked line goes, as that
    version did, but only in a file that shows hookshift's own names (every group of lines
    apply inserts names its ``__hookshift_`` location or ``hookshift_`` log format or
    upstream), so a file holding only a user's ``... # hookshift`` lines is left alone.
    """
    if legacy:
        ours = any(
            "hookshift" in line.rstrip().removesuffix(splice.MARK)
            for line in text.splitlines()
            if line.rstrip().endswith(splice.MARK)
        )
        return splice.Removal(splice.remove(text) if ours else text, (), (), ())
    return splice.remove_recorded(
        text, record.lines if record else (), record.splits if record else 0
    )


@dataclass(frozen=True)
class IntentFile:
    """One file of an unfinished change, in write order: its bytes before (`old`, kept at
    `backup`) and after (`new`), as sha256."""

    path: str
    backup: str
    old: str
    new: str


@dataclass(frozen=True)
class Intent:
    op: str
    files: tuple[IntentFile, ...]
    reload: bool = False  # nginx was to be reloaded: undone, it may run the change meanwhile


@dataclass(frozen=True)
class Saved:
    records: dict[str, FileRecord]
    intent: Intent | None


def _records(data: Any) -> dict[str, FileRecord]:
    """The state file's records, each checked to be strings and a count (ValueError if not)."""
    records: dict[str, FileRecord] = {}
    for path, rec in dict(data.get("records", {})).items():
        lines, splits = rec["lines"], rec["splits"]
        if not (isinstance(lines, list) and all(isinstance(x, str) for x in lines)):
            raise ValueError("lines")
        if not isinstance(splits, int) or isinstance(splits, bool):
            raise ValueError("splits")
        records[str(path)] = FileRecord(tuple(lines), splits)
    return records


def _intent(data: Any) -> Intent | None:
    raw = data.get("intent")
    if raw is None:
        return None
    files = tuple(IntentFile(**f) for f in raw["files"])
    fields = (raw["op"], *(v for f in files for v in vars(f).values()))
    reload = raw.get("reload", False)
    if not all(isinstance(v, str) for v in fields) or not isinstance(reload, bool):
        raise ValueError("intent")
    return Intent(raw["op"], files, reload)


@dataclass(frozen=True)
class ConfigState:
    """The state of the config whose main file's real path is `config`."""

    config: Path
    directory: Path

    @classmethod
    def of(cls, config: Path, root: Path | None = None) -> ConfigState:
        """The state of `config` kept under `root` (default: `state_root`, this hookshift's)."""
        real = Path(os.path.realpath(config))
        key = hashlib.sha256(str(real).encode("utf-8", "surrogateescape")).hexdigest()[:16]
        return cls(real, (root or state_root()) / "configs" / key)

    @property
    def file(self) -> Path:
        return self.directory / "state.json"

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """An exclusive, non-blocking lock on the config tree: a second writer is refused."""
        if not self.config.is_file():
            raise InputError(
                "cannot read nginx config file: no such file",
                where=str(self.config),
                fix="check the path given to --config",
            )
        return directory_lock(
            self.config.parent,
            f"another hookshift is changing the nginx config in {self.config.parent}; "
            "wait for it to finish",
        )

    def load(self) -> Saved:
        """The saved state; `InputError` when the file is not what hookshift writes (an edit
        by hand, a disk that lost part of it): acting on a damaged record could take out
        lines that are not hookshift's. Also when another user could have written or replaced
        it (`durable.foreign_hold`): an unfinished change recorded there names files and
        backups that the next run writes back, as whoever runs it."""
        held = foreign_hold(self.file) if os.path.lexists(self.file) else None
        if held is not None:
            raise InputError(
                f"hookshift's state for {self.config} cannot be trusted: {held}, so what it "
                "records could be another user's",
                where=str(self.file),
                fix="make the state dir and the directories above it writable by you only "
                f"(chown, chmod go-w), or set {STATE_ENV} to a directory only you can write",
            )
        try:
            data = json.loads(self.file.read_bytes())
            return Saved(_records(data), _intent(data))
        except FileNotFoundError:
            return Saved({}, None)
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror})"
        except (ValueError, TypeError, KeyError, AttributeError):
            problem = "is damaged: it is not what hookshift writes"
        raise InputError(
            f"hookshift's state for {self.config} {problem}",
            where=str(self.file),
            fix="restore it, or move it away if no hookshift change is pending",
        )

    def save(self, saved: Saved) -> None:
        """Write `saved` durably; with nothing to keep, the state file goes away."""
        if not saved.records and saved.intent is None:
            with contextlib.suppress(FileNotFoundError):
                self.file.unlink()
            return
        data: dict[str, Any] = {
            "config": str(self.config),
            "records": {
                path: {"lines": list(rec.lines), "splits": rec.splits}
                for path, rec in sorted(saved.records.items())
            },
            "intent": None
            if saved.intent is None
            else {
                "op": saved.intent.op,
                "files": [vars(f) for f in saved.intent.files],
                "reload": saved.intent.reload,
            },
        }
        make_private_dirs(self.directory)
        held = foreign_hold(self.directory)
        if held is not None:
            raise InputError(
                f"hookshift will not keep its state for {self.config} there: {held}, so another "
                "user could replace what it records",
                where=str(self.directory),
                fix=f"set {STATE_ENV} to a directory only you can write",
            )
        write_atomic(self.file, json.dumps(data, indent=2) + "\n", default_mode=0o600)
