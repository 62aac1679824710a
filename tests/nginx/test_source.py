"""hookshift's text-based reading of a config agrees with crossplane's on every corpus config."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.nginx.config import NginxConfig, load
from hookshift.nginx.source import comparable, load_source
from tests.mirror.helpers import CORPUS, copy_case

CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "nginx.conf").exists())


def _flat(config: NginxConfig, *, lexed: bool) -> list[tuple[str, int, str, tuple[str, ...]]]:
    """Each statement as both readers must agree on it: nginx's tokens keep an ``if``'s
    parentheses (`($a` ... `b)`), crossplane strips them."""
    return [
        (str(d.file), d.line, *comparable(d.name, d.args, lexed=lexed)) for d, _ in config.walk()
    ]


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
    assert _flat(ours.config, lexed=True) == _flat(theirs, lexed=False)
    assert set(ours.texts) == set(theirs.files)


def test_offsets_point_at_the_braces(tmp_path: Path) -> None:
    config = copy_case("oneline", tmp_path)
    source = load_source(config)
    text = source.texts[source.main]
    for d, _ in source.config.walk():
        if d.block is not None:
            assert text[d.open_brace] == "{" and text[d.close_brace] == "}"
            assert text[d.start : d.start + len(d.name)] == d.name
