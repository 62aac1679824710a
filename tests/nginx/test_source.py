"""hookshift's text-based reading of a config agrees with crossplane's on every corpus config."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.nginx.config import NginxConfig, load
from hookshift.nginx.source import load_source
from tests.mirror.helpers import CORPUS, copy_case

CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "nginx.conf").exists())


def _flat(config: NginxConfig) -> list[tuple[str, int, str, tuple[str, ...]]]:
    out = []
    for d, _ in config.walk():
        args = () if d.name.endswith("_by_lua_block") else d.args
        if d.name == "if" and args:
            # nginx's tokens keep the parentheses (`($a` ... `b)`); crossplane strips them
            joined = " ".join(args)
            args = tuple(joined.removeprefix("(").removesuffix(")").strip().split(" "))
        out.append((str(d.file), d.line, d.name, args))
    return out


@pytest.mark.parametrize("case", CASES)
def test_lexer_tree_matches_crossplane(case: str, tmp_path: Path) -> None:
    config = copy_case(case, tmp_path)
    ours = load_source(config)
    if case == "lua":
        # crossplane's Lua lexer stops at a `}` inside a [[long string]]; nginx does not
        with pytest.raises(InputError, match="does not load"):
            load(config)
        return
    theirs = load(config)
    assert _flat(ours.config) == _flat(theirs)
    assert set(ours.texts) == set(theirs.files)


def test_offsets_point_at_the_braces(tmp_path: Path) -> None:
    config = copy_case("oneline", tmp_path)
    source = load_source(config)
    text = source.texts[source.main]
    for d, _ in source.config.walk():
        if d.block is not None:
            assert text[d.open_brace] == "{" and text[d.close_brace] == "}"
            assert text[d.start : d.start + len(d.name)] == d.name
