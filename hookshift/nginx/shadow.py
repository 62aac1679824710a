"""``nginx -t`` on a config's result before any of its files is written.

The result's files are written as hidden copies beside the main file, the ``include``
statements that lead to them are pointed at the copies, and the real nginx runs ``-t`` on the
copy of the main file. A result nginx rejects is then refused with every file of the user
untouched; a kill during that ``nginx -t`` (seconds on a big config) leaves the user's
config as it was.

Why beside the main file: nginx takes every relative path of the configuration kind
(``include``, ``ssl_certificate``, ``auth_basic_user_file``, a ``geo`` include, whatever a
module resolves with the conf prefix) from the directory of the ``-c`` file, and every other
relative path (logs, ``pid``, ``root``, temp paths) from ``-p``; nothing from the directory of
an included file. With the copy of the main file in that same directory and the same ``-p``,
every path resolves to the file it resolves to in place, whichever module reads it; only the
names of the copied files differ, and those are put back into nginx's output as the user's.

Only what leads to a change is copied: each file that changes and each file whose
``include`` pulls one in, up to the main file. Such an ``include`` is replaced, on its own
line, by one ``include`` per file it matches (a glob expanded in nginx's order), the copies
standing in where they belong; lines keep their numbers, so nginx's ``file:line`` is the
user's once the name is put back.

The includes are found from each file's tokens (``include`` and one argument, wherever it
stands), not from a full parse: a big config takes seconds to parse, and a file without the
word ``include`` is not even split into tokens. A brace left open by the result does not stop
this reading; nginx, run on the copies, says what is wrong, in its own words.

The copies are hidden (no glob of an ``include`` matches a leading dot unless it asks for
one) and named like hookshift's temp files, so a copy a killed run leaves is removed by the
next run with the others. When the copies cannot be made, `ShadowUnavailable` says why, and
the caller checks in place instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hookshift.durable import TEMP_SUFFIX
from hookshift.errors import InputError
from hookshift.nginx import binary, lexer
from hookshift.nginx.source import GLOB_CHARS, from_bytes, resolve_include, to_bytes

SHADOW_PREFIX = ".hookshift-check-"


class ShadowUnavailable(Exception):
    """The result cannot be checked before it is written: why, in the user's words."""


@dataclass(frozen=True)
class _Include:
    """One ``include`` statement: where it is in its file's text, and the files it pulls in
    (in nginx's order)."""

    start: int
    end: int
    files: tuple[Path, ...]


@dataclass(frozen=True)
class _File:
    text: str  # the result's
    includes: tuple[_Include, ...]


def check_result(
    config: Path,
    texts: Mapping[Path, str],
    *,
    nginx_bin: str,
    prefix: Path | None,
    before_test: Callable[[], None] | None = None,
) -> binary.TestResult:
    """``nginx -t`` on the config whose main file is `config` (as given to ``-c``), with each
    file in `texts` holding that text instead of what is on disk (a key may be any path of
    the file: its real path, or a link to it). nginx's output names the user's files.

    `before_test` runs once the copies are written, before nginx starts (a crash test stops
    there). Raises `ShadowUnavailable` when the copies cannot be made.
    """
    main = Path(os.path.abspath(config))
    by_real = {_real(path): text for path, text in texts.items()}
    files = _result_files(main, by_real)
    names = _copy_names(main, files, by_real)
    copies = {copy: _copy_text(files[path], names) for path, copy in names.items()}
    written: list[Path] = []
    try:
        for copy, text in copies.items():
            try:
                _write_new(copy, to_bytes(text), written)
            except OSError as exc:
                raise ShadowUnavailable(
                    f"cannot write a copy of the config in {copy.parent}: {exc.strerror}"
                ) from None
        if before_test is not None:
            before_test()
        result = binary.test_config(names[main], nginx_bin=nginx_bin, prefix=prefix)
    finally:
        for copy in written:
            with contextlib.suppress(FileNotFoundError):
                copy.unlink()
    return _in_users_words(result, {str(copy): str(path) for path, copy in names.items()})


@dataclass(frozen=True)
class Judgement:
    """What ``nginx -t`` on copies says of a change (`judge`): `rejected`, nginx's verdict
    on the result when the copies are to be believed; else, when the check could not be made,
    `unavailable` (why no copies) or `original_rejected` (nginx rejects the copies of the
    files as they are too). All None: the result passes."""

    rejected: binary.TestResult | None = None
    unavailable: str | None = None
    original_rejected: binary.TestResult | None = None


def judge(
    config: Path,
    result: Mapping[Path, str],
    original: Mapping[Path, str],
    *,
    nginx_bin: str,
    prefix: Path | None,
    before_test: Callable[[], None] | None = None,
) -> Judgement:
    """``nginx -t`` on copies holding `result`, and, when nginx rejects them, on the same
    copies holding `original` (the files' texts as they are).

    A copy could behave unlike the file it stands for (a module reading a path beside the file
    that names it): a rejection is the result's only when the original's copies pass, else
    the copies are not trusted and the caller checks in place."""
    try:
        tested = check_result(
            config, result, nginx_bin=nginx_bin, prefix=prefix, before_test=before_test
        )
        if tested.ok:
            return Judgement()
        before = check_result(
            config, original, nginx_bin=nginx_bin, prefix=prefix, before_test=before_test
        )
    except ShadowUnavailable as exc:
        return Judgement(unavailable=str(exc))
    return Judgement(original_rejected=before) if not before.ok else Judgement(rejected=tested)


def _write_new(path: Path, data: bytes, written: list[Path]) -> None:
    """Create `path` (a link planted there is not followed) holding `data`, readable by this
    user only (a config may hold secrets); it joins `written` before its first byte, so a
    partial copy is removed too. Not fsynced: a copy that a crash loses was never needed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    written.append(path)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _result_files(main: Path, texts: Mapping[Path, str]) -> dict[Path, _File]:
    """Every file of the result, as nginx names it (the path its include gives), from the
    main file down; `texts` by real path. A queue, not recursion: a long chain of includes
    cannot exhaust the stack.

    A file that cannot be read is left out: the original passed ``nginx -t``, so it is one
    the result names anew, and nginx says what is wrong with it.
    """
    conf_dir = main.parent
    files: dict[Path, _File] = {}
    pending = deque([main])
    while pending:
        path = pending.popleft()
        if path in files:
            continue
        real = _real(path)
        if real in texts:
            text = texts[real]
        else:
            try:
                text = from_bytes(path.read_bytes())
            except OSError:
                continue
        files[path] = _File(text, _includes(path, text, conf_dir))
        pending.extend(f for inc in files[path].includes for f in inc.files)
    reached = {_real(path) for path in files}
    missing = [str(real) for real in texts if real not in reached]
    if missing:
        raise ShadowUnavailable(f"the config does not include {missing[0]}")
    return files


def _includes(path: Path, text: str, conf_dir: Path) -> tuple[_Include, ...]:
    """The include statements of `text` (`path`'s), found from its tokens."""
    if "include" not in text:
        return ()
    found = []
    words: list[tuple[str, int]] = []  # the statement so far: each word and where it starts
    try:
        for kind, word, start, end, _ in lexer.scan(text, str(path)):
            if kind == "word":
                words.append((word, start))
            elif kind != "comment":  # a comment inside a statement does not end it
                if kind == "semi" and len(words) == 2 and words[0][0] == "include":
                    files = resolve_include(words[1][0], conf_dir)
                    found.append(_Include(words[0][1], end, files))
                words = []
    except InputError as exc:
        raise ShadowUnavailable(f"hookshift cannot read the result: {exc.line()}") from None
    return tuple(found)


def _copy_names(
    main: Path, files: Mapping[Path, _File], texts: Mapping[Path, str]
) -> dict[Path, Path]:
    """Each file to copy -> its copy's path, beside the main file.

    A file is copied when it is given a text (`texts`, by real path; the same as on disk
    too: a check of the original is made on the same copies) or when one of its includes
    pulls in a file copied; the main file always is (nginx is pointed at its copy). Walked up
    from the files given.
    """
    included_by: dict[Path, set[Path]] = {}
    for path, file in files.items():
        for inc in file.includes:
            for pulled in inc.files:
                included_by.setdefault(pulled, set()).add(path)
    pending = [path for path in files if _real(path) in texts]
    copied = {main, *pending}
    while pending:
        for parent in included_by.get(pending.pop(), ()):
            if parent not in copied:
                copied.add(parent)
                pending.append(parent)
    return {
        path: main.parent / f"{SHADOW_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
        for path in sorted(copied)
    }


def _copy_text(file: _File, names: Mapping[Path, Path]) -> str:
    """The text of a file's copy: its text in the result, each include that pulls in a copied
    file spelled out file by file on the same lines."""
    text = file.text
    for inc in sorted(file.includes, key=lambda i: i.start, reverse=True):
        if any(f in names for f in inc.files):
            spelled = " ".join(f"include {_quoted(names.get(f, f))};" for f in inc.files)
            lines = "\n" * text.count("\n", inc.start, inc.end)
            text = text[: inc.start] + spelled + lines + text[inc.end :]
    return text


def _quoted(path: Path) -> str:
    """`path` as one ``include`` argument nginx reads back as exactly that file."""
    name = str(path)
    if any(ch in name for ch in GLOB_CHARS):
        # nginx would take it as a pattern, which may match nothing and silently pass
        raise ShadowUnavailable(f"the path {name} holds a glob character (* ? [)")
    if "\n" in name or "\r" in name:
        raise ShadowUnavailable(f"the path {name!r} holds a line break")
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _in_users_words(result: binary.TestResult, names: Mapping[str, str]) -> binary.TestResult:
    """`result` with each copy's path replaced by the user's file it stands for."""

    def put_back(text: str) -> str:
        for copy, user in names.items():
            text = text.replace(copy, user)
        return text

    error = None if result.error is None else put_back(result.error)
    return binary.TestResult(result.ok, put_back(result.output), error)
