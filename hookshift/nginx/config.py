"""Load an nginx configuration into an immutable tree with file:line on every directive.

crossplane parses (every include followed, comments kept); this module turns its payload into
`Directive` dataclasses and offers the *effective* view in which each ``include`` is replaced by
the directives of the files it pulled in, in place, as nginx sees them. The tree is for
understanding only: it is never written back (crossplane's ``build()`` reformats whole files).

crossplane has no byte offsets; a `Directive` built from its payload gets them on demand from a
locator (`nginx.source` pairs it with hookshift's byte lexer), so a big configuration is lexed
only in the files that are edited.
"""

from __future__ import annotations

import errno
import gc
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from sys import intern
from typing import Any

import crossplane  # type: ignore[import-untyped]
import crossplane.parser  # type: ignore[import-untyped]
from crossplane.errors import (  # type: ignore[import-untyped]
    NgxParserBaseException,
    NgxParserSyntaxError,
)

from hookshift.errors import InputError
from hookshift.nginx import lexer


@dataclass(frozen=True, slots=True)
class Offsets:
    """Where a statement sits in its file's text: `start` is the offset of its first word,
    `end` one past its ``;`` or ``}``; the braces' offsets are -1 without a block.

    Slotted: a file read by hookshift's lexer has one for each of its statements."""

    start: int
    end: int
    open_brace: int = -1
    close_brace: int = -1


UNKNOWN = Offsets(-1, -1)


class _Offset:
    """A read-only attribute of a `Directive` that is one of its `Offsets`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, directive: Directive, owner: type | None = None) -> int:
        value: int = getattr(directive.offsets, self.name)
        return value


@dataclass(frozen=True, slots=True)
class Directive:
    """One directive (or ``#`` comment) as written in one file.

    Slotted: a big configuration has hundreds of thousands of statements, and an instance
    dictionary would take more memory than the statement's own fields.
    """

    name: str
    args: tuple[str, ...]
    file: Path
    line: int
    block: tuple[Directive, ...] | None = None
    includes: tuple[Path, ...] = ()
    comment: str | None = None
    # position among its file's statements in pre-order, comments left out: how a statement
    # of crossplane's tree is paired with the byte lexer's
    index: int = -1
    located: Offsets | None = field(default=None, compare=False, repr=False)
    locator: Callable[[Directive], Offsets] | None = field(default=None, compare=False, repr=False)

    @property
    def offsets(self) -> Offsets:
        """Offsets into the file's text (`nginx.source`); all -1 when nothing can tell."""
        if self.located is not None:
            return self.located
        if self.locator is not None:
            return self.locator(self)
        return UNKNOWN

    start = _Offset()
    end = _Offset()
    open_brace = _Offset()
    close_brace = _Offset()

    @property
    def where(self) -> str:
        """``file:line``, the way every diagnostic names a place."""
        return f"{self.file}:{self.line}"

    @property
    def text(self) -> str:
        """``name arg ...`` (no block, no ``;``), the way messages quote a directive."""
        return " ".join((self.name, *self.args))

    @property
    def is_block(self) -> bool:
        return self.block is not None

    @property
    def is_comment(self) -> bool:
        return self.name == "#"

    def children(self, name: str | None = None) -> list[Directive]:
        """Direct children of a block (comments left out), optionally only those named `name`."""
        return [
            d for d in (self.block or ()) if not d.is_comment and (name is None or d.name == name)
        ]


Walked = list[tuple[Directive, tuple[Directive, ...]]]


@dataclass(frozen=True)
class NginxConfig:
    """A parsed configuration: the main file and every file it includes.

    The effective children of each block and the walk are computed once and kept: matching
    and planning ask for them per server, and a big configuration has tens of thousands.
    Loops, not recursion, so a deep nesting or a long chain of includes cannot exhaust the
    stack (include cycles are refused when loading).
    """

    main: Path
    files: dict[Path, tuple[Directive, ...]] = field(default_factory=dict)
    _children: dict[int, list[Directive]] = field(default_factory=dict, compare=False, repr=False)
    _walked: list[Walked] = field(default_factory=list, compare=False, repr=False)

    @property
    def top(self) -> tuple[Directive, ...]:
        return self.files[self.main]

    def _expanded(self, directives: tuple[Directive, ...] | list[Directive]) -> list[Directive]:
        out: list[Directive] = []
        for d in directives:  # most blocks include nothing: one plain pass
            if d.includes and d.name == "include":
                return self._expanded_includes(directives)
            if d.name != "#":
                out.append(d)
        return out

    def _expanded_includes(
        self, directives: tuple[Directive, ...] | list[Directive]
    ) -> list[Directive]:
        out: list[Directive] = []
        files = self.files
        stack: list[Iterator[Directive]] = [iter(directives)]
        while stack:
            for d in stack[-1]:
                name = d.name
                if name == "#":
                    continue
                if name == "include" and d.includes:
                    stack.append(iter([x for p in d.includes for x in files.get(p, ())]))
                    break
                out.append(d)
            else:
                stack.pop()
        return out

    def _all_children(self, block: Directive) -> list[Directive]:
        found = self._children.get(id(block))
        if found is None:
            found = self._children[id(block)] = self._expanded(block.block or ())
        return found

    def effective_children(self, block: Directive, name: str | None = None) -> list[Directive]:
        """`block`'s children with includes expanded, optionally only those named `name`."""
        children = self._all_children(block)
        if name is None:
            return list(children)
        return [d for d in children if d.name == name]

    def http_blocks(self) -> list[Directive]:
        return [d for d in self._expanded(self.top) if d.name == "http"]

    def servers(self) -> list[Directive]:
        """Every ``server`` in every ``http`` block, in file order."""
        return [s for http in self.http_blocks() for s in self.effective_children(http, "server")]

    def upstream(self, name: str) -> Directive | None:
        """The ``upstream NAME { ... }`` block, if the config has one (nginx refuses two)."""
        return next(
            (
                d
                for d, _ in self.walk()
                if d.name == "upstream" and d.args[:1] == (name,) and d.is_block
            ),
            None,
        )

    def walk(self) -> Iterator[tuple[Directive, tuple[Directive, ...]]]:
        """Every directive with its enclosing blocks (outermost first), includes expanded."""
        if not self._walked:
            with paused_gc():
                self._walked.append(self._walk())
        return iter(self._walked[0])

    def worker_user(self) -> tuple[str, str] | None:
        """The user and group nginx's workers run as, as ``user USER [GROUP]`` in the main
        context says (the group defaults to the user's name); None when the config does not
        say (nginx then takes its built-in default)."""
        for d, parents in self.walk():
            if d.name == "user" and not parents and d.args:
                return d.args[0], d.args[1] if len(d.args) > 1 else d.args[0]
        return None

    def written_in(self, block: Directive, target: Directive) -> Directive | None:
        """The statement of `block`, as written in its own file, that is `target` or the
        ``include`` that brings `target` in (through any depth of includes); None when
        `target` is not among `block`'s children."""
        for child in block.block or ():
            if child is target:
                return child
            if (
                child.name == "include"
                and child.includes
                and any(d is target for d in self._expanded_includes([child]))
            ):
                return child
        return None

    def homes(self, block: Directive) -> list[tuple[Directive, ...]]:
        """The enclosing blocks of each place `block` sits: more than one when its file is
        included more than once (a snippet of locations shared by several servers). A line
        written into it applies in every one of them."""
        return [parents for d, parents in self.walk() if d is block]

    def _walk(self) -> Walked:
        out: Walked = []
        stack: list[tuple[Iterator[Directive], tuple[Directive, ...]]] = [
            (iter(self._expanded(self.top)), ())
        ]
        while stack:
            children, parents = stack[-1]
            for d in children:
                out.append((d, parents))
                if d.block is not None:
                    stack.append((iter(self._all_children(d)), (*parents, d)))
                    break
            else:
                stack.pop()
        return out


MAIN_FIX = "pass the main config with --config, e.g. /etc/nginx/nginx.conf"
NOT_TEXT_FIX = "pass nginx's main config, a text file, with --config (e.g. /etc/nginx/nginx.conf)"


def _special_file_error(path: Path, mode: int) -> str | None:
    """Why nginx cannot read `path` as a config file, judged from its mode (None: it can)."""
    if stat.S_ISDIR(mode):
        return "is a directory"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a FIFO, socket or device)"
    return None


# Bytes no text config holds: C0 controls but tab, newline, vertical tab, form feed and carriage
# return, and DEL. Bytes from 0x80 up are left alone: UTF-8, Latin-1 or EUC-KR comments use them.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
# How much of a file is looked at for control characters, and the share of them that makes it
# binary: random bytes have one in nine, a text config none (a stray escape at most).
_SNIFF_BYTES = 1 << 16
_CONTROL_SHARE = 20  # one byte in 20


def _binary_error(data: bytes) -> str | None:
    """Why `data` is not the text of a config (None: it may be).

    A NUL byte anywhere (binary data, or text saved as UTF-16), or control characters in more
    than one byte in 20 of the first 64 KiB. nginx reads such a file as words and reports an
    unknown directive or an unclosed block somewhere inside it, which sends the user looking
    for a typo in a file that was never a config. Both tests run at C speed, so a big config
    costs a scan for a NUL and one of 64 KiB.
    """
    if b"\0" in data:
        return "it holds NUL bytes"
    head = data[:_SNIFF_BYTES]
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if controls * _CONTROL_SHARE > len(head):
        return f"{controls} of its first {len(head)} bytes are control characters"
    return None


def read_config_file(path: Path, where: str, fix: str = MAIN_FIX, included: bool = False) -> bytes:
    """The bytes of config file `path`, or `InputError` naming `where` (for an included file,
    the include's file:line, and the message names the file).

    Opened without blocking and checked to be a regular file before a byte is read: a FIFO
    given as a config would otherwise wait forever for a writer. A file that is not text
    (`_binary_error`) is refused here, the one place every reader gets a config's bytes from.
    """
    subject = f"included file {path}" if included else "nginx config file"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            problem = _special_file_error(path, os.fstat(fd).st_mode)
            if problem is not None:
                raise InputError(f"{subject} {problem}", where=where, fix=fix)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
    except FileNotFoundError:
        what = f"include names a file that does not exist: {path}" if included else None
        raise InputError(
            what or "cannot read nginx config file: not found",
            where=where,
            fix="create the file or remove the include" if included else fix,
        ) from None
    except OSError as exc:
        raise InputError(
            f"cannot read {subject}: {exc.strerror}",
            where=where,
            fix="check the path and its permissions",
        ) from None
    binary = _binary_error(data)
    if binary is not None:
        raise InputError(
            f"{subject} is not text: {binary} (a binary file, or text saved as UTF-16)",
            where=where,
            fix="include only nginx config files (text)" if included else NOT_TEXT_FIX,
        )
    if data.lstrip().startswith(b"-----BEGIN "):
        # nginx would read its base64 as a directive without ';' and say only that
        raise InputError(
            f"{subject} is a PEM file (a certificate or a key), not an nginx config",
            where=where,
            fix="include only nginx config files" if included else NOT_TEXT_FIX,
        )
    return data


def _refuse_special(path: str) -> None:
    """Raise `OSError` for a path crossplane must not open (a directory, FIFO, device)."""
    problem = _special_file_error(Path(path), os.stat(path).st_mode)
    if problem is not None:
        raise OSError(errno.EINVAL, f"the file {problem}", path)


_crossplane_lex = crossplane.parser.lex


def _checked_lex(filename: str) -> Any:
    """crossplane's lexer on a file read first through `read_config_file`: a file that is no
    regular file or no text stops there, as an `OSError` whose place (the include that named
    it) `parse_payload` finds with the byte reader."""
    try:
        data = read_config_file(Path(filename), filename, included=True)
    except InputError as exc:
        raise OSError(errno.EINVAL, exc.what, filename) from None
    # crossplane builds a comment one character at a time: a token nginx would refuse as too
    # long would take it quadratic time
    lexer.check_token_lengths(data.decode("utf-8", "surrogateescape"), filename)
    return _strict(_crossplane_lex(filename), filename)


def _strict(tokens: Iterator[tuple[str, int, bool]], filename: str) -> Iterator[Any]:
    """crossplane's tokens, refusing the statements nginx refuses and crossplane takes.

    crossplane ends a statement at ``}`` as well as at ``;``: ``listen 80 }`` is accepted, the
    block then closes one brace later, and the tree is silently wrong.
    """
    words = 0
    line = 1
    for token, line, quoted in tokens:
        if token.startswith(lexer.BOM):
            raise NgxParserSyntaxError(f"{lexer.BOM_ERROR}; {lexer.BOM_FIX}", filename, line)
        if not quoted and token in ("{", "}", ";"):
            if token == "}" and words:
                raise NgxParserSyntaxError('unexpected "}" (a ";" is missing)', filename, line)
            if token != "}" and not words:
                raise NgxParserSyntaxError(f'unexpected "{token}"', filename, line)
            words = 0
        elif quoted or not token.startswith("#"):
            words += 1
        yield token, line, quoted
    if words:
        raise NgxParserSyntaxError('unexpected end of file, expecting ";"', filename, line)


def _checked_open(file: str, *args: Any, **kwargs: Any) -> Any:
    _refuse_special(file)
    return open(file, *args, **kwargs)


# crossplane opens every included file itself (`open` to test an explicit include, `lex` to
# read one); a FIFO there would block it forever, so both look at the file's type first.
crossplane.parser.lex = _checked_lex
crossplane.parser.open = _checked_open


def parse_payload(main: Path, where: str) -> dict[str, Any]:
    """crossplane's payload for the configuration at `main` (its Lua extension on), or
    `InputError` (one line with file:line) when a file is unreadable or malformed.

    The payload comes back detached from crossplane (`_detached`), so it is freed as soon as
    the caller drops it.
    """
    read_config_file(main, where)  # a clear error (and no FIFO opened) before crossplane
    try:
        payload = _detached(
            crossplane.parse(
                str(main), comments=True, catch_errors=False, check_ctx=False, check_args=False
            )
        )
    except NgxParserBaseException as exc:
        at = f"{exc.filename}:{exc.lineno}" if exc.lineno else str(exc.filename)
        raise InputError(
            f"nginx config does not parse: {exc.strerror}",
            where=at,
            fix="correct the config so that `nginx -t` accepts it, then run again",
        ) from None
    except OSError as exc:
        # crossplane does not say which include led to the file; the byte reader does
        from hookshift.nginx.source import load_source

        load_source(main)
        raise InputError(
            f"cannot read nginx config: {exc.strerror}",
            where=str(exc.filename or main),
            fix="check the path and its permissions",
        ) from None
    except (RecursionError, UnicodeError, ValueError) as exc:
        raise InputError(
            f"nginx config does not parse: {type(exc).__name__}",
            where=str(main),
            fix="correct the config so that `nginx -t` accepts it, then run again",
        ) from None
    if payload["errors"]:
        first = payload["errors"][0]
        error = re.sub(r"^\[Errno \d+\] ", "", str(first["error"]))
        raise InputError(
            f"nginx config does not load: {error}",
            where=f"{first['file']}:{first['line']}" if first.get("line") else first["file"],
            fix="correct the config (or create the missing include) so that `nginx -t` accepts it",
        )
    return payload


def _detached(payload: dict[str, Any]) -> dict[str, Any]:
    """A dict holding `payload`'s entries, which are taken out of it.

    ``crossplane.parse`` builds the payload inside a recursive closure that refers to it, a
    reference cycle: only the cyclic collector frees it, and `paused_gc` freezes whatever
    exists when a loader ends, so the whole payload (every statement as dicts and lists)
    would stay in memory for the rest of the process. Emptying crossplane's own dict leaves
    the cycle holding nothing of size.
    """
    detached = dict(payload)
    payload.clear()
    return detached


Locate = Callable[[Directive], Offsets]


def new_directive(
    name: str,
    args: tuple[str, ...],
    file: Path,
    line: int,
    block: tuple[Directive, ...] | None,
    includes: tuple[Path, ...],
    comment: str | None,
    index: int,
    located: Offsets | None,
    locator: Locate | None,
) -> Directive:
    """`Directive(...)` for the loaders, which build one per statement of a configuration
    (hundreds of thousands in a big one): a frozen dataclass's ``__init__`` sets each field
    through ``object.__setattr__``; the slots' own descriptors fill the instance at a third
    of that cost."""
    d = object.__new__(Directive)
    _set_name(d, name)
    _set_args(d, args)
    _set_file(d, file)
    _set_line(d, line)
    _set_block(d, block)
    _set_includes(d, includes)
    _set_comment(d, comment)
    _set_index(d, index)
    _set_located(d, located)
    _set_locator(d, locator)
    return d


def _slot_setter(name: str) -> Callable[[Directive, Any], None]:
    """The ``__set__`` of `Directive`'s slot `name`, which writes past the frozen check."""
    setter: Callable[[Directive, Any], None] = vars(Directive)[name].__set__
    return setter


_set_name = _slot_setter("name")
_set_args = _slot_setter("args")
_set_file = _slot_setter("file")
_set_line = _slot_setter("line")
_set_block = _slot_setter("block")
_set_includes = _slot_setter("includes")
_set_comment = _slot_setter("comment")
_set_index = _slot_setter("index")
_set_located = _slot_setter("located")
_set_locator = _slot_setter("locator")


@contextmanager
def paused_gc(freeze: bool = True) -> Iterator[None]:
    """Building a big tree allocates hundreds of thousands of objects and no cycles; the cyclic
    collector would scan the growing heap again and again meanwhile, and scan the finished
    tree a few more times afterwards as it ages (together a third of a plan's time).

    So the collector waits, and what exists at the end is frozen (`gc.freeze`: left out of
    later collections). Frozen objects are still freed by reference counting when dropped;
    only a reference cycle that dies later would wait for `gc.unfreeze`, and the tree has none.
    Without `freeze` the collector only waits: for work in the middle of a command that
    builds big temporaries and keeps little, where freezing would also keep whatever garbage
    cycles the command has made so far.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()


def from_payload(
    payload: dict[str, Any], main: Path, locators: dict[Path, Locate] | None = None
) -> NginxConfig:
    """The tree of crossplane's `payload`; `locators` give each file's offsets on demand.

    The payload is consumed: each file's statements are taken out of it once converted, so
    the payload and the tree of a big configuration are never both whole in memory. Names
    and arguments are interned: crossplane makes a new string of every word, and a big
    configuration repeats the same few (``proxy_set_header``, ``Host``, ``$host``) in every
    server.

    Refuses what crossplane lets through and nginx does not: an include of a missing file,
    include cycles, blocks nested deeper than `lexer.MAX_DEPTH`.
    """
    file_paths = [Path(f["file"]) for f in payload["config"]]
    files: dict[Path, tuple[Directive, ...]] = {}
    for path, f in zip(file_paths, payload["config"], strict=True):
        parsed: list[dict[str, Any]] = f.pop("parsed")
        locate = (locators or {}).get(path)
        counter = 0

        def convert(
            item: dict[str, Any], depth: int, path: Path = path, locate: Locate | None = locate
        ) -> Directive:
            nonlocal counter
            name: str = item["directive"]
            if name == "#":
                return new_directive(
                    name, (), path, item["line"], None, (), item.get("comment"), -1, None, None
                )
            index = counter
            counter += 1
            if "\\" in name:
                name = lexer.unescape(name)
            name = intern(name)
            args = tuple(map(intern, item["args"]))
            if "\\" in "".join(args) and not name.endswith("_by_lua_block"):
                # crossplane keeps escapes such as \n; nginx reads them as the character
                args = tuple(lexer.unescape(a) for a in args)
            includes: tuple[Path, ...] = ()
            if name == "include":
                includes = tuple(file_paths[i] for i in item.get("includes", ()))
                if not includes:
                    _missing_include(args, f"{path}:{item['line']}")
            block = item.get("block")
            if block is not None:
                if depth >= lexer.MAX_DEPTH:
                    raise lexer.too_deep(f"{path}:{item['line']}")
                block = tuple([convert(c, depth + 1) for c in block])
            return new_directive(
                name, args, path, item["line"], block, includes, None, index, None, locate
            )

        files[path] = tuple([convert(item, 0) for item in parsed])
    config = NginxConfig(main=main, files=files)
    check_include_cycles(config)
    return config


def _missing_include(args: tuple[str, ...], where: str) -> None:
    """crossplane silently skips a non-glob include that names no file; nginx refuses it."""
    target = args[0] if args else ""
    if not any(ch in target for ch in "*?["):
        raise InputError(
            f"include names a file that does not exist: {target}",
            where=where,
            fix="create the file or remove the include",
        )


def load(path: str | os.PathLike[str]) -> NginxConfig:
    """Parse the configuration at `path` with every include.

    Raises `InputError` (one line with file:line) when a file is unreadable or malformed, when
    an include names a file that does not exist, or when includes form a cycle.
    """
    main = Path(os.path.abspath(path))  # symlinks kept: nginx resolves includes beside -c
    with paused_gc():
        return from_payload(parse_payload(main, str(path)), main)


SERVES_HTTP_FIX = (
    "pass nginx's main config (the one with `events {` and `http {`) with --config, e.g. "
    "/etc/nginx/nginx.conf"
)


def check_serves_http(config: NginxConfig) -> None:
    """Refuse a config in which nginx serves no HTTP request: no ``server`` inside ``http {}``.

    An empty file, or one without ``http`` (only a ``stream`` proxy, a file of maps), has no
    callback to mirror and nothing for doctor to judge: a plan would find no location and
    doctor no fault, a clean bill for a file ``nginx -t`` refuses or that is not the config the
    callbacks reach. Every command that reasons about the HTTP side asks this first, so they
    refuse such a file with the same line.
    """
    if config.servers():
        return
    if not any(not d.is_comment for tree in config.files.values() for d in tree):
        raise InputError(
            "the config holds no directives (the file is empty or only comments)",
            where=str(config.main),
            fix=SERVES_HTTP_FIX,
        )
    if not any(d.name == "http" and not parents for d, parents in config.walk()):
        # a stream proxy or a file of maps: nginx serves no HTTP with it at all
        raise InputError(
            "the config has no http { } block: nginx serves no HTTP request with it",
            where=str(config.main),
            fix="pass the main config of the nginx that receives the callbacks (one with "
            "`http {`), e.g. /etc/nginx/nginx.conf",
        )
    raise InputError(
        "the config has no server block inside http { }",
        where=str(config.main),
        fix=SERVES_HTTP_FIX,
    )


def check_include_cycles(config: NginxConfig) -> None:
    """Refuse includes that lead back to a file being included: nginx would recurse forever."""
    edges: dict[Path, list[Directive]] = {}
    for path, directives in config.files.items():
        stack = list(directives)
        found = edges.setdefault(path, [])
        while stack:
            d = stack.pop()
            if d.includes:
                found.append(d)
            if d.block:
                stack.extend(d.block)
        found.sort(key=lambda d: d.line)
    # depth-first, without recursion: a long chain of includes must not exhaust the stack
    done: set[Path] = set()
    chain: list[Path] = [config.main]
    on_chain = {config.main}
    todo: list[Iterator[tuple[Directive, Path]]] = [
        iter([(d, t) for d in edges.get(config.main, []) for t in d.includes])
    ]
    while todo:
        step = next(todo[-1], None)
        if step is None:
            todo.pop()
            done.add(chain[-1])
            on_chain.discard(chain.pop())
            continue
        d, target = step
        if target in on_chain:
            loop = " -> ".join(p.name for p in chain[chain.index(target) :])
            raise InputError(
                f"include cycle: {loop} -> {target.name}",
                where=d.where,
                fix="remove the include that leads back to a file already included",
            )
        if target not in done:
            chain.append(target)
            on_chain.add(target)
            todo.append(iter([(e, t) for e in edges.get(target, []) for t in e.includes]))
