"""Files the verify commands write, checked before any work is done.

A report, a ledger or a metrics file written over one of the inputs destroys the evidence the
run was about (an archive segment holds messages `pull --delete` already took off the queue),
and one written where a source's glob would read it poisons every later run. A file is an
input when its resolved path (symlinks and relative paths followed) is a file a source reads
now, or one it would read: a name its glob matches, a segment name in its archive directory.
A missing directory is refused too: a mistyped path must not grow a tree of directories.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from hookshift.errors import InputError
from hookshift.verify.archive import INDEX_NAME
from hookshift.verify.sources import SourceSpec, resolve_files


def _real(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


def _same_file(a: Path, b: Path) -> bool:
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def _glob_matches(pattern: str, path: Path) -> bool:
    """Whether `glob.glob(pattern)` would list `path` (already resolved) once it exists."""
    parts = Path(os.path.abspath(pattern)).parts
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = _real(Path(*parts[:first]))
    try:
        rest = path.relative_to(base).parts
    except ValueError:
        return False
    wanted = parts[first:]
    return len(rest) == len(wanted) and all(
        fnmatch.fnmatchcase(name, part) for name, part in zip(rest, wanted, strict=True)
    )


def source_reads(spec: SourceSpec, path: Path) -> str | None:
    """Why `spec` reads the file at `path` ("reads": it is one of its files now; "would
    read": a later run would take it for one), or None."""
    if spec.kind == "sqs":
        return None
    real = _real(path)
    now = "reads" if path.exists() else "would read"
    if spec.kind == "archive":
        inside = _real(spec.target) == real.parent
        ours = real.suffix == ".jsonl" or real.name.startswith(INDEX_NAME)
        return now if inside and ours else None
    try:
        files = resolve_files(spec)
    except InputError:
        files = []  # nothing there yet: the pattern still says what it would read
    if any(_same_file(f, path) for f in files):
        return "reads"
    if glob.has_magic(spec.target):
        return "would read" if _glob_matches(spec.target, real) else None
    return now if _real(spec.target) == real else None


def check_output(
    path: Path,
    option: str,
    sources: Sequence[SourceSpec],
    files: Mapping[Path, str] | None = None,
    *,
    fix: str | None = None,
) -> None:
    """Refuse to write `path` (named by `option`) into a missing directory, or over one of
    the inputs: a file of `sources`, or one of `files` (an input that is no source, by the
    option that names it). `fix` says how to name another path (default: give `option`
    another one)."""
    parent = Path(os.path.abspath(path)).parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise InputError(
            f"directory {parent} {what}",
            where=f"{option} {path}",
            fix="create the directory first, or give a path in an existing one",
        )
    check_not_input(path, option, sources, files, fix=fix)


def check_not_input(
    path: Path,
    option: str,
    sources: Sequence[SourceSpec],
    files: Mapping[Path, str] | None = None,
    *,
    fix: str | None = None,
) -> None:
    """`check_output` without the directory's check (for a directory the command creates)."""
    where = f"{option} {path}"
    elsewhere = fix or f"give {option} a path outside the inputs"
    for other, named in (files or {}).items():
        if _same_file(path, other):
            raise InputError(
                f"is the same file as {named} {other}: writing it would spoil that file",
                where=where,
                fix=elsewhere,
            )
    for spec in sources:
        reads = source_reads(spec, path)
        if reads is not None:
            what = (
                f"is one of the inputs ({spec.label}): writing it would destroy what is read"
                if reads == "reads"
                else f"is a name the input {spec.label} matches: later runs would read it as data"
            )
            raise InputError(what, where=where, fix=elsewhere)
