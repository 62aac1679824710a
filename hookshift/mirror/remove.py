"""Take hookshift's lines out of every file of a config: the exact inverse of apply.

Apply records the marked lines it added to each file (`mirror.state`); remove takes out
exactly those and joins back the lines apply split (`nginx.splice.remove_recorded`), so each
file comes back byte-identical to what it was before apply, and a user's own line that
happens to end in ``# hookshift`` stays. What does not match the record is said, one line
each: a marked line hookshift did not write, a line it wrote that was edited or deleted, one
that lost its marker. A config applied by an earlier hookshift has no record: then every line
ending in ``# hookshift`` goes, as that version did, with a warning.

Uses go before definitions (location and server lines first, the http level last), so a kill
-9 between two files leaves a config ``nginx -t`` accepts. The same safe pipeline as apply
writes it (lock, backup, atomic write, ``nginx -t``, restore on failure, optional reload).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hookshift.errors import InputError
from hookshift.mirror.apply import (
    ApplyResult,
    Edit,
    default_backup_dir,
    recover_locked,
    write_locked,
)
from hookshift.mirror.state import ConfigState, FileRecord, record_for, without_ours
from hookshift.nginx import splice
from hookshift.nginx.source import load_source

LEGACY_NOTE = (
    "no record of the lines hookshift added to this config (applied by an earlier "
    "hookshift): removing every line that ends in `# hookshift`"
)


@dataclass(frozen=True)
class Removal:
    """The edits that take hookshift's lines out (uses first), and what to tell the user."""

    edits: tuple[Edit, ...]
    notes: tuple[str, ...]


def plan_removal(config_path: Path, records: Mapping[str, FileRecord]) -> Removal:
    """What remove would change in the config at `config_path`, given apply's `records`."""
    source = load_source(config_path)
    edits: list[Edit] = []
    notes: list[str] = []
    seen: set[str] = set()
    for path, text in sorted(source.texts.items()):
        real = os.path.realpath(path)
        if real in seen:
            continue  # one file included by two paths: taken out once
        seen.add(real)
        result = without_ours(text, record_for(records, path), legacy=not records)
        # a line is named as ours without its marker only if it names hookshift's own
        # locations, upstreams or log format: a bare `}` or `proxy_pass ...;` is anyone's
        lines = text.splitlines()
        unmarked = tuple(n for n in result.unmarked if "hookshift" in lines[n - 1])
        result = dataclasses.replace(result, unmarked=unmarked)
        if splice.has_marks(text) or unmarked:  # else: nothing of ours left to name
            notes += _mismatches(path, result)
        left = splice.stranded(text, result.removed)
        if left is not None:
            raise InputError(
                f"`{lines[left - 1].strip()}` sits inside a block hookshift added, but is not "
                "what hookshift wrote: removing the block would leave it outside, where it "
                "applies to the whole enclosing block (an edited `return` would answer every "
                "request there)",
                where=f"{path}:{left}",
                fix="put back the line hookshift wrote (the backup from apply has it) or delete "
                "this one, then run remove again",
            )
        if result.text != text:
            edits.append(Edit(path, text, result.text))
    if edits and not records:
        notes.insert(0, LEGACY_NOTE)
    edits.sort(key=lambda e: splice.definition_rank(e.old, str(e.path)), reverse=True)
    return Removal(tuple(edits), tuple(notes))


_UNIX_LISTEN = re.compile(r"\s*listen\s+unix:(\S+?);")


def _removed_sockets(edits: tuple[Edit, ...]) -> tuple[str, ...]:
    """The unix sockets of hookshift's relay that the edits take out (and that exist now)."""
    found = []
    for edit in edits:
        kept = set(splice.marked_lines(edit.new))
        for line in splice.marked_lines(edit.old):
            m = _UNIX_LISTEN.match(line)
            if m and line not in kept and os.path.exists(m.group(1)):
                found.append(m.group(1))
    return tuple(found)


def _mismatches(path: Path, result: splice.Removal) -> list[str]:
    notes = [
        f"{path}:{n}: ends in `# hookshift` but hookshift did not add it: left in place"
        for n in result.foreign
    ]
    notes += [
        f"{path}: a line hookshift added was edited or deleted, so it is not removed: "
        f"`{line.strip()}`"
        for line in result.missing
    ]
    notes += [
        f"{path}:{n}: a line hookshift added lost its `# hookshift` marker: left in place, "
        "delete it by hand if the mirror should go"
        for n in result.unmarked
    ]
    return notes


def remove_marked(
    config_path: Path,
    *,
    nginx_bin: str = "nginx",
    backup_dir: Path | None = None,
    reload: bool = False,
    prefix: Path | None = None,
) -> ApplyResult:
    """Remove hookshift's lines from the config at `config_path` (no-op when there is none)."""
    config = Path(os.path.abspath(config_path))  # as nginx -c sees it (symlinks kept)
    state = ConfigState.of(config)
    with state.locked():
        recovered = recover_locked(state)
        saved = state.load()
        removal = plan_removal(config, saved.records)
        sockets = _removed_sockets(removal.edits)
        return write_locked(
            state,
            removal.edits,
            config=config,
            nginx_bin=nginx_bin,
            backup_dir=backup_dir or default_backup_dir(),
            reload=reload,
            require_valid_original=False,
            prefix=prefix,
            # nginx deletes a unix socket it stops listening on: gone, the reload took effect
            took_effect=(lambda: not any(os.path.exists(p) for p in sockets)) if sockets else None,
            records=dict.fromkeys(saved.records),
            op="remove",
            notes=(*recovered, *removal.notes),
        )
