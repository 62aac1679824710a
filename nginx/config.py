"""Load an nginx configuration into an immutable tree with file:line on every directive.

crossplane parses (every include followed, comments kept); this module turns its payload into
`Directive` dataclasses and offers the *effective* view in which each ``include`` is replaced by
the directives of the files it pulled in, in place, as nginx sees them. The tree is for
understanding only: it is never written back (crossplane's ``build()`` reformats whole files).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crossplane  # type: ignore[import-untyped]
from crossplane.errors import NgxParserBaseException  # type: ignore[import-untyped]

from hookshift.errors import InputError


@dataclass(frozen=True)
class Directive:
    """One directive (or ``#`` comment) as written in one file."""

    name: str
    args: tuple[str, ...]
    file: Path
    line: int
    block: tuple[Directive, ...] | None = None
    includes: tuple[Path, ...] = ()
    comment: str | None = None
    # Offsets into the file's text (nginx.source); -1 when parsed by crossplane, which has none.
    start: int = -1
    end: int = -1
    open_brace: int = -1
    close_brace: int = -1

    @property
    def where(self) -> str:
        """``file:line``, the way every diagnostic names a place."""
        return f"{self.file}:{self.line}"

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


@dataclass(frozen=True)
class NginxConfig:
    """A parsed configuration: the main file and every file it includes."""

    main: Path
    files: dict[Path, tuple[Directive, ...]] = field(default_factory=dict)

    @property
    def top(self) -> tuple[Directive, ...]:
        return self.files[self.main]

    def expand(self, directives: tuple[Directive, ...] | list[Directive]) -> Iterator[Directive]:
        """The directives as nginx sees them: each ``include`` replaced by what it includes.

        Comments are skipped. The include directive itself is not yielded.
        """
        for d in directives:
            if d.is_comment:
                continue
            if d.name == "include" and d.includes:
                for path in d.includes:
                    yield from self.expand(self.files.get(path, ()))
            else:
                yield d

    def effective_children(self, block: Directive, name: str | None = None) -> list[Directive]:
        """`block`'s children with includes expanded, optionally only those named `name`."""
        return [d for d in self.expand(block.block or ()) if name is None or d.name == name]

    def http_blocks(self) -> list[Directive]:
        return [d for d in self.expand(self.top) if d.name == "http"]

    def servers(self) -> list[Directive]:
        """Every ``server`` in every ``http`` block, in file order."""
        return [s for http in self.http_blocks() for s in self.effective_children(http, "server")]

    def walk(self) -> Iterator[tuple[Directive, tuple[Directive, ...]]]:
        """Every directive with its enclosing blocks (outermost first), includes expanded."""

        def visit(
            ds: tuple[Directive, ...] | list[Directive], parents: tuple[Directive, ...]
        ) -> Iterator[tuple[Directive, tuple[Directive, ...]]]:
            for d in self.expand(ds):
                yield d, parents
                if d.block is not None:
                    yield from visit(d.block, (*parents, d))

        yield from visit(self.top, ())


def _convert(item: dict[str, Any], file: Path, file_paths: list[Path]) -> Directive:
    block = item.get("block")
    return Directive(
        name=item["directive"],
        args=tuple(item.get("args", ())),
        file=file,
        line=int(item["line"]),
        block=tuple(_convert(c, file, file_paths) for c in block) if block is not None else None,
        includes=tuple(file_paths[i] for i in item.get("includes", ())),
        comment=item.get("comment"),
    )


def load(path: str | os.PathLike[str]) -> NginxConfig:
    """Parse the configuration at `path` with every include.

    Raises `InputError` (one line with file:line) when a file is unreadable or malformed, or
    when an include names a file that does not exist.
    """
    main = Path(os.path.abspath(path))  # symlinks kept: nginx resolves includes beside -c
    if not main.is_file():
        raise InputError(
            "nginx config not found or not a file",
            where=str(path),
            fix="pass the main config with --config, e.g. /etc/nginx/nginx.conf",
        )
    try:
        payload = crossplane.parse(
            str(main),
            comments=True,
            catch_errors=False,
            check_ctx=False,
            check_args=False,
        )
    except NgxParserBaseException as exc:
        where = f"{exc.filename}:{exc.lineno}" if exc.lineno else str(exc.filename)
        raise InputError(
            f"nginx config does not parse: {exc.strerror}",
            where=where,
            fix="correct the config so that `nginx -t` accepts it, then run again",
        ) from None
    except OSError as exc:
        raise InputError(
            f"cannot read nginx config: {exc.strerror}",
            where=str(exc.filename or path),
            fix="check the path and its permissions",
        ) from None
    if payload["errors"]:
        first = payload["errors"][0]
        raise InputError(
            f"nginx config does not load: {first['error']}",
            where=f"{first['file']}:{first['line']}" if first.get("line") else first["file"],
            fix="correct the config (or create the missing include) so that `nginx -t` accepts it",
        )
    _check_includes(payload)
    file_paths = [Path(f["file"]) for f in payload["config"]]
    files = {
        p: tuple(_convert(item, p, file_paths) for item in f["parsed"])
        for p, f in zip(file_paths, payload["config"], strict=True)
    }
    return NginxConfig(main=main, files=files)


def _check_includes(payload: dict[str, Any]) -> None:
    """crossplane silently skips a non-glob include that names no file; nginx refuses it."""

    def visit(items: list[dict[str, Any]], file: str) -> None:
        for item in items:
            if item["directive"] == "include" and not item.get("includes"):
                target = item["args"][0] if item.get("args") else ""
                if not any(ch in target for ch in "*?["):
                    raise InputError(
                        f"include names a file that does not exist: {target}",
                        where=f"{file}:{item['line']}",
                        fix="create the file or remove the include",
                    )
            if "block" in item:
                visit(item["block"], file)

    for f in payload["config"]:
        visit(f["parsed"], f["file"])
