"""A configuration read from its text: every file's exact text and a tree with byte offsets.

Two readers, one shape (`SourceConfig`):

- `load_checked` (what a plan reads): crossplane is the parser of record for the structure;
  hookshift's byte lexer maps its statements to offsets, paired by order and checked for
  agreement, only in the files whose offsets are asked for (the ones an edit touches). Files
  crossplane cannot read byte-exactly (not UTF-8, or with carriage returns) take their
  statements from the lexer, after the same check. When crossplane cannot parse the config at
  all (its Lua support is partial: a ``[[ } ]]`` long string breaks it while nginx accepts it),
  the lexer reads everything and the result carries a warning; the real ``nginx -t`` at apply
  time is the judge.
- `load_source`: the lexer alone, on texts that need not be on disk (a config with hookshift's
  lines stripped, to make a second apply a no-op).

Includes are resolved the way nginx does: a relative path is relative to the directory of the
main configuration file, a glob matches files in sorted order (hidden files skipped), and every
file must be a regular file (a directory matched by a glob fails ``nginx -t`` too).
"""

from __future__ import annotations

import glob
import os
from array import array
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hookshift.errors import InputError
from hookshift.nginx import lexer, splice
from hookshift.nginx.config import (
    MAIN_FIX,
    Directive,
    NginxConfig,
    Offsets,
    check_include_cycles,
    from_payload,
    new_directive,
    parse_payload,
    paused_gc,
    read_config_file,
)
from hookshift.nginx.values import if_condition

GLOB_CHARS = "*?["
INCLUDE_FIX = "include regular files only, e.g. `include DIR/*.conf;` for the files of a directory"


def read_text(path: Path) -> str:
    """A file's bytes as text that round-trips exactly (undecodable bytes kept as surrogates)."""
    return from_bytes(path.read_bytes())


def from_bytes(data: bytes) -> str:
    """Bytes of a config file as text that round-trips exactly (see `read_text`)."""
    return data.decode("utf-8", "surrogateescape")


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class SourceConfig:
    """The texts of every file of a configuration and the positioned tree built from them."""

    config: NginxConfig
    texts: dict[Path, str]
    warnings: tuple[str, ...] = ()

    @property
    def main(self) -> Path:
        return self.config.main


def resolve_include(pattern: str, conf_dir: Path) -> tuple[Path, ...]:
    """The files an ``include`` pulls in, in nginx's order."""
    full = pattern if os.path.isabs(pattern) else str(conf_dir / pattern)
    if any(ch in full for ch in GLOB_CHARS):
        return tuple(Path(p) for p in sorted(glob.glob(full)))
    return (Path(full),)


def _read(path: Path, where: str, fix: str, included: bool = True) -> str:
    return read_config_file(path, where, fix, included).decode("utf-8", "surrogateescape")


def load_source(
    main: str | os.PathLike[str], texts: Mapping[Path, str] | None = None
) -> SourceConfig:
    """Read the configuration at `main` (texts from `texts` where given, else from disk)."""
    with paused_gc():
        return _load_source(main, texts)


def _load_source(main: str | os.PathLike[str], texts: Mapping[Path, str] | None) -> SourceConfig:
    # not resolve(): nginx takes relative includes from the -c path's own directory, even
    # when that path is a symlink into another directory
    main_path = Path(os.path.abspath(main))
    conf_dir = main_path.parent
    overrides = dict(texts or {})
    read: dict[Path, str] = {}
    files: dict[Path, tuple[Directive, ...]] = {}
    # files to read, with the place that pulled each in; a queue, not recursion, so that a
    # long chain of includes cannot exhaust the stack
    pending = deque([(main_path, str(main), MAIN_FIX)])  # (file, where it is named, fix)

    def include(st: lexer.Statement, file: Path) -> tuple[Path, ...]:
        if st.name != "include" or not st.args:
            return ()
        found = resolve_include(st.args[0], conf_dir)
        pending.extend((inc, f"{file}:{st.line}", INCLUDE_FIX) for inc in found)
        return found

    while pending:
        path, where, fix = pending.popleft()
        if path in files:
            continue
        if path in overrides:
            text = overrides[path]
        else:
            text = _read(path, where, fix, included=path != main_path or fix != MAIN_FIX)
        read[path] = text
        files[path] = _positioned(lexer.parse(text, str(path)), path, include)
    config = NginxConfig(main=main_path, files=files)
    check_include_cycles(config)
    return SourceConfig(config, read)


Includes = Callable[[lexer.Statement, Path], tuple[Path, ...]]


def _no_includes(st: lexer.Statement, file: Path) -> tuple[Path, ...]:
    return ()


def _positioned(
    statements: tuple[lexer.Statement, ...], file: Path, include: Includes = _no_includes
) -> tuple[Directive, ...]:
    """The lexer's statements as `Directive`s with offsets (pre-order `index` as crossplane's)."""
    counter = 0

    def convert(st: lexer.Statement) -> Directive:
        nonlocal counter
        index = counter
        counter += 1
        includes = include(st, file)
        block = tuple([convert(c) for c in st.block]) if st.block is not None else None
        located = Offsets(st.start, st.end, st.open_brace, st.close_brace)
        return new_directive(
            st.name, st.args, file, st.line, block, includes, None, index, located, None
        )

    return tuple([convert(st) for st in statements])


def preorder(directives: tuple[Directive, ...]) -> list[Directive]:
    """Statements in pre-order, comments left out (the order `Directive.index` counts)."""
    out: list[Directive] = []
    stack = list(reversed(directives))
    while stack:
        d = stack.pop()
        if d.is_comment:
            continue
        out.append(d)
        if d.block:
            stack.extend(reversed(d.block))
    return out


def _exact(text: str) -> bool:
    """Whether crossplane reads `text` byte-exactly: UTF-8 and no carriage return (it reads
    with universal newlines and replaces undecodable bytes)."""
    if "\r" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def comparable(
    name: str, args: tuple[str, ...], *, lexed: bool = False
) -> tuple[str, tuple[str, ...]]:
    """A statement as both readers must agree on it; `lexed`: read by the byte lexer.

    A Lua block's body is compared as part of the text, not as arguments (crossplane passes
    it as one). crossplane strips the parentheses of an ``if`` condition as nginx does (a
    word they leave empty dropped); the byte lexer keeps them, so only its words are stripped
    here: the condition's own parentheses, as in ``(bot|crawler))``, stay.
    """
    if name.endswith("_by_lua_block"):
        return name, ()
    if lexed and name == "if" and args:
        return name, if_condition(args)
    return name, args


def _as_crossplane_reads(value: str) -> str:
    """What crossplane makes of `value`: undecodable bytes replaced, newlines universal."""
    raw = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return raw.replace("\r\n", "\n").replace("\r", "\n")


class Read(Protocol):
    """What `check_agreement` compares of a statement: a `Directive` or a `lexer.Statement`."""

    @property
    def name(self) -> str: ...

    @property
    def args(self) -> tuple[str, ...]: ...

    @property
    def line(self) -> int: ...


def check_agreement(theirs: list[Directive], ours: list[Directive], text: str) -> None:
    """Refuse a file the two readers see differently: an edit placed by one of them could
    land somewhere the other (and maybe nginx) does not expect."""
    either = theirs or ours
    _check_agreement(theirs, ours, text, either[0].file if either else Path())


def _check_agreement(
    theirs: Sequence[Directive], ours: Sequence[Read], text: str, file: Path
) -> None:
    """`check_agreement` of crossplane's statements of `file` with the lexer's, which may be
    its bare `lexer.Statement`s."""
    exact = _exact(text)
    lines = exact or "\r" not in text.replace("\r\n", "\n")
    for cp, lx in zip(theirs, ours, strict=False):
        args = lx.args if exact else tuple(_as_crossplane_reads(a) for a in lx.args)
        if comparable(cp.name, cp.args) != comparable(
            _as_crossplane_reads(lx.name), args, lexed=True
        ) or (lines and cp.line != lx.line):
            raise InputError(
                f"hookshift reads `{lx.name}` (line {lx.line}) differently from crossplane "
                f"(`{cp.name}`, line {cp.line})",
                where=f"{file}:{lx.line}",
                fix="simplify the quoting or escapes of that statement, then run again",
            )
    if len(theirs) != len(ours):
        d = (theirs if len(theirs) > len(ours) else ours)[min(len(theirs), len(ours))]
        raise InputError(
            "hookshift and crossplane find a different number of statements in this file",
            where=f"{file}:{d.line}",
            fix="simplify the quoting or escapes of that statement, then run again",
        )


class _Locator:
    """Offsets for the statements of one file, lexed and checked the first time one is asked.

    They are kept as four integers a statement in one array (start, end, ``{``, ``}``): an
    edited file may be the whole configuration, and an `Offsets` object per statement would
    cost more memory than its text.
    """

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        self.tree: tuple[Directive, ...] = ()
        self._offsets: array[int] | None = None

    def __call__(self, d: Directive) -> Offsets:
        if self._offsets is None:
            with paused_gc(freeze=False):
                self._offsets = self._locate()
        i = 4 * d.index
        start, end, open_brace, close_brace = self._offsets[i : i + 4]
        return Offsets(start, end, open_brace, close_brace)

    def _locate(self) -> array[int]:
        ours = _statements_in_preorder(lexer.parse(self.text, str(self.path)))
        _check_agreement(preorder(self.tree), ours, self.text, self.path)
        offsets = array("q")
        for st in ours:
            offsets.extend((st.start, st.end, st.open_brace, st.close_brace))
        return offsets


def _statements_in_preorder(statements: tuple[lexer.Statement, ...]) -> list[lexer.Statement]:
    """The lexer's statements in the order `preorder` gives a file's `Directive`s."""
    out: list[lexer.Statement] = []
    stack = list(reversed(statements))
    while stack:
        st = stack.pop()
        out.append(st)
        if st.block:
            stack.extend(reversed(st.block))
    return out


def load_checked(main: str | os.PathLike[str]) -> SourceConfig:
    """The configuration at `main`: crossplane's structure, the lexer's offsets on demand."""
    with paused_gc():
        return _load_checked(main)


def _load_checked(main: str | os.PathLike[str]) -> SourceConfig:
    main_path = Path(os.path.abspath(main))
    try:
        payload = parse_payload(main_path, str(main))
    except InputError as crossplane_error:
        source = load_source(main)  # the lexer's own error, when it has one, names the place
        note = (
            f"crossplane cannot parse the config ({crossplane_error.line()}); "
            "planned with hookshift's lexer"
        )
        return SourceConfig(source.config, source.texts, (note,))
    paths = [Path(f["file"]) for f in payload["config"]]
    texts = {p: _read(p, str(p), INCLUDE_FIX, p != main_path) for p in paths}
    locators = {p: _Locator(p, texts[p]) for p in paths}
    config = from_payload(payload, main_path, dict(locators))
    conf_dir = main_path.parent
    files = dict(config.files)
    for path, tree in config.files.items():
        locators[path].tree = tree
        if not _exact(texts[path]):
            # crossplane's arguments are not the file's bytes here: take the lexer's statements
            exact = _positioned(
                lexer.parse(texts[path], str(path)),
                path,
                lambda st, _: (
                    resolve_include(st.args[0], conf_dir)
                    if st.name == "include" and st.args
                    else ()
                ),
            )
            check_agreement(preorder(tree), preorder(exact), texts[path])
            files[path] = exact
    return SourceConfig(NginxConfig(main=main_path, files=files), texts)


def load_stripped(
    main: str | os.PathLike[str], strip: Callable[[dict[Path, str]], dict[Path, str]]
) -> tuple[SourceConfig, SourceConfig]:
    """The config without hookshift's lines (`strip` takes them out of the texts), and the
    config as it is on disk.

    Planning works on the stripped texts (so a second apply of the same plan changes nothing);
    crossplane can only read what is on disk, so there the lexer reads the stripped texts,
    after every file on disk has been checked against crossplane.
    """
    on_disk = load_checked(main)
    if not any(splice.has_marks(t) for t in on_disk.texts.values()):
        return on_disk, on_disk
    for tree in on_disk.config.files.values():
        _ = [d.offsets for d in preorder(tree)[:1]]  # lexes the file, checked against crossplane
    source = load_source(main, strip(dict(on_disk.texts)))
    return SourceConfig(source.config, source.texts, on_disk.warnings), on_disk
