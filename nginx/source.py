"""A configuration read from its text: every file's exact text and a tree with byte offsets.

`nginx.config.load` (crossplane) is the judge of whether a configuration parses; this module
builds the same `NginxConfig` shape from the *text* (our lexer), so a plan can be made on text
that is not on disk (a config with hookshift's lines stripped, to make a second apply a no-op)
and every directive knows the exact offsets of its braces for byte-preserving edits.

Includes are resolved the way nginx does: a relative path is relative to the directory of the
main configuration file, a glob matches files in sorted order (hidden files skipped).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hookshift.errors import InputError
from nginx import lexer
from nginx.config import Directive, NginxConfig

GLOB_CHARS = "*?["


def read_text(path: Path) -> str:
    """A file's bytes as text that round-trips exactly (undecodable bytes kept as surrogates)."""
    return path.read_bytes().decode("utf-8", "surrogateescape")


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class SourceConfig:
    """The texts of every file of a configuration and the positioned tree built from them."""

    config: NginxConfig
    texts: dict[Path, str]

    @property
    def main(self) -> Path:
        return self.config.main


def resolve_include(pattern: str, conf_dir: Path) -> tuple[Path, ...]:
    """The files an ``include`` pulls in, in nginx's order."""
    full = pattern if os.path.isabs(pattern) else str(conf_dir / pattern)
    if any(ch in full for ch in GLOB_CHARS):
        return tuple(Path(p) for p in sorted(glob.glob(full)) if Path(p).is_file())
    return (Path(full),)


def load_source(
    main: str | os.PathLike[str], texts: Mapping[Path, str] | None = None
) -> SourceConfig:
    """Read the configuration at `main` (texts from `texts` where given, else from disk)."""
    # not resolve(): nginx takes relative includes from the -c path's own directory, even
    # when that path is a symlink into another directory
    main_path = Path(os.path.abspath(main))
    conf_dir = main_path.parent
    overrides = dict(texts or {})
    read: dict[Path, str] = {}
    files: dict[Path, tuple[Directive, ...]] = {}

    def text_of(path: Path, where: str) -> str:
        if path in overrides:
            return overrides[path]
        try:
            return read_text(path)
        except OSError as exc:
            raise InputError(
                f"cannot read nginx config file: {exc.strerror}",
                where=where,
                fix="check the path and its permissions",
            ) from None

    def convert(st: lexer.Statement, file: Path) -> Directive:
        includes: tuple[Path, ...] = ()
        if st.name == "include" and st.args:
            includes = resolve_include(st.args[0], conf_dir)
            for inc in includes:
                if not any(ch in st.args[0] for ch in GLOB_CHARS) and not (
                    inc in overrides or inc.is_file()
                ):
                    raise InputError(
                        f"include names a file that does not exist: {st.args[0]}",
                        where=f"{file}:{st.line}",
                        fix="create the file or remove the include",
                    )
                visit(inc, f"{file}:{st.line}")
        return Directive(
            name=st.name,
            args=st.args,
            file=file,
            line=st.line,
            block=tuple(convert(c, file) for c in st.block) if st.block is not None else None,
            includes=includes,
            start=st.start,
            end=st.end,
            open_brace=st.open_brace,
            close_brace=st.close_brace,
        )

    def visit(path: Path, where: str) -> None:
        if path in files:
            return
        text = text_of(path, where)
        read[path] = text
        files[path] = ()  # guards include cycles
        files[path] = tuple(convert(st, path) for st in lexer.parse(text, str(path)))

    visit(main_path, str(main))
    return SourceConfig(NginxConfig(main=main_path, files=files), read)
