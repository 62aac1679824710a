"""Generated configs through every reader and `mirror plan`: nothing but a one-line InputError.

The configs mix what trips readers up: random nesting, quotes and escapes, ``${var}``, comments
in odd places, braces inside quotes and Lua strings, includes (missing, cyclic, globbed, of a
directory), stray braces and semicolons, bytes that are not UTF-8, CR and CRLF. Where both the
byte lexer and crossplane accept a config, they must read the same statements (names,
arguments, lines), and the offsets must point at the statements and braces they name.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hookshift.errors import InputError
from hookshift.mirror.plan import MirrorOptions, make_plan
from hookshift.nginx.config import Directive, NginxConfig, load
from hookshift.nginx.source import (
    SourceConfig,
    check_agreement,
    comparable,
    load_checked,
    load_source,
    preorder,
)
from tests.mirror.helpers import CORPUS, STAGE_URL, copy_case

T = TypeVar("T")

NAMES = st.sampled_from(
    ["listen", "server_name", "proxy_pass", "return", "set", "add_header", "root", "try_files"]
)
WORDS = st.one_of(
    st.sampled_from(
        [
            "80",
            "[::]:80",
            "default_server",
            "/callback",
            "http://127.0.0.1:9000",
            "$host",
            "${host}x",
            "a#b",
            "'a b'",
            '"x;y{}"',
            '"q\\"uote"',
            "'it\\'s'",
            "back\\\\slash",
            "tab\\tnl\\n",
            '""',
            "\\;",
            "~*\\.php$",
            "^~",
        ]
    ),
    st.text(alphabet="abc$/._-~*^=@", min_size=1, max_size=6),
)
SPACE = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\n\n", " # note\n", "\t# c { ' \"\n"])
LUA = st.sampled_from(
    [
        'ngx.say("}")',
        "local t = { a = 1 }",
        "-- } comment {\nngx.exit(200)",
        "local s = '{'",
        "",
    ]
)
GARBAGE = st.sampled_from(["{", "}", ";", '"', "'", "\\", "\xff\xfe", "\r", "$", "#", "${"])
BLOCKS = st.sampled_from(
    [
        "server",
        "location /",
        "location = /callback",
        "location ~ ^/x",
        "if ($a)",
        "events",
        "map $a $b",
    ]
)


@st.composite
def body(draw: st.DrawFn, depth: int = 0) -> str:
    """Statements, blocks, Lua blocks, includes and (sometimes) garbage."""
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        parts.append(draw(SPACE))
        kind = draw(st.sampled_from(["stmt"] * 4 + ["block"] * 2 + ["lua", "include", "garbage"]))
        if kind == "block" and depth < 4:
            head = draw(BLOCKS)
            parts.append(f"{head} {{{draw(SPACE)}{draw(body(depth + 1))}{draw(SPACE)}}}")
        elif kind == "lua":
            parts.append(f"content_by_lua_block {{ {draw(LUA)} }}")
        elif kind == "include":
            target = draw(
                st.sampled_from(["a.conf", "b.conf", "sites/*.conf", "missing.conf", "sites"])
            )
            parts.append(f"include {target};")
        elif kind == "garbage":
            parts.append(draw(GARBAGE))
        else:
            args = " ".join(draw(st.lists(WORDS, max_size=3)))
            # a map's or types' entries start with any word, escapes and quotes included
            parts.append(f"{draw(st.one_of(NAMES, NAMES, WORDS))} {args};")
    return "".join(parts)


@st.composite
def config_trees(draw: st.DrawFn) -> dict[str, str]:
    """A main config (usually with an http { server { ... } } around generated text) and the
    files its includes may name."""
    server = draw(body(2))
    callback = draw(st.integers(0, 3)) > 0
    location = "location = /callback { proxy_pass http://127.0.0.1:9000; }" if callback else ""
    main = (
        f"events {{}}\nhttp {{\n{draw(body(1))}\nserver {{\nlisten 80;\n{location}\n"
        f"{server}\n}}\n}}\n"
    )
    if draw(st.integers(0, 9)) == 0:
        main = draw(body())  # no structure promised at all
    files = {"nginx.conf": main}
    for name in draw(st.lists(st.sampled_from(["a.conf", "b.conf", "sites/x.conf"]), unique=True)):
        files[name] = draw(body(2))
    return files


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return root / "nginx.conf"


def _check_offsets(config: NginxConfig, texts: dict[Path, str]) -> None:
    for d, _ in config.walk():
        text = texts[d.file]
        written = text[d.start :]
        quoted = written[:1] in ("'", '"') and written[1:].startswith(d.name)
        assert written.startswith(d.name) or quoted or d.name != d.name.strip() or "\\" in text
        if d.block is not None:
            assert text[d.open_brace] == "{" and text[d.close_brace] == "}"


def _readers_agree(lexed: NginxConfig, parsed: NginxConfig, texts: dict[Path, str]) -> None:
    assert set(lexed.files) == set(parsed.files)
    for path, tree in parsed.files.items():
        check_agreement(preorder(tree), preorder(lexed.files[path]), texts[path])


def _offsets(config: NginxConfig) -> list[tuple[str, int, int, int, int, int]]:
    return [
        (str(d.file), d.line, d.start, d.end, d.open_brace, d.close_brace) for d, _ in config.walk()
    ]


def _outcome(fn: Callable[[], T]) -> T | InputError:
    """What `fn` returns, or the InputError it raises (anything else fails the test)."""
    try:
        return fn()
    except InputError as exc:
        assert "\n" not in exc.line(), exc.line()
        return exc


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(files=config_trees())
def test_generated_configs_give_a_result_or_one_input_error(files: dict[str, str]) -> None:
    root = Path(tempfile.mkdtemp(prefix="hookshift-fuzz-"))
    try:
        (root / "sites").mkdir()
        main = _write(root, files)
        lexed = _outcome(lambda: load_source(main))
        parsed = _outcome(lambda: load(main))
        checked = _outcome(lambda: load_checked(main))
        options = MirrorOptions(
            config=main, path="/callback", stage_url=STAGE_URL, parity_log=root / "p.log"
        )
        plan = _outcome(lambda: make_plan(options, (1, 22, 1)))
        refused = plan.what[:40] if isinstance(plan, InputError) else ""
        event(f"plan refused: {refused}" if refused else "plan made")
        if isinstance(lexed, SourceConfig):
            _check_offsets(lexed.config, lexed.texts)
        if isinstance(parsed, NginxConfig) and isinstance(lexed, SourceConfig):
            agreed = _outcome(lambda: _readers_agree(lexed.config, parsed, lexed.texts))
            event("both readers accept, " + ("agree" if agreed is None else "disagree"))
            if agreed is None:
                # crossplane's statements get exactly the lexer's offsets
                assert isinstance(checked, SourceConfig), checked
                assert _offsets(checked.config) == _offsets(lexed.config)
            else:
                # never paired wrongly: refused when the offsets are asked for
                assert isinstance(checked, InputError) or isinstance(
                    _outcome(lambda: _offsets(checked.config)), InputError
                )
    finally:
        shutil.rmtree(root)


CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "nginx.conf").exists())


@pytest.mark.parametrize("case", CASES)
def test_the_readers_agree_on_the_corpus(case: str, tmp_path: Path) -> None:
    config = copy_case(case, tmp_path)
    lexed = load_source(config)
    checked = load_checked(config)
    if case == "lua":
        # crossplane's Lua lexer stops at a `}` inside a [[long string]]; nginx does not
        assert checked.warnings and "crossplane cannot parse" in checked.warnings[0]
        return
    assert not checked.warnings
    _readers_agree(lexed.config, load(config), lexed.texts)
    # the offsets crossplane's statements get on demand are the lexer's own
    for (d, _), (e, _) in zip(checked.config.walk(), lexed.config.walk(), strict=True):
        assert comparable(d.name, d.args) == comparable(e.name, e.args, lexed=True)
        assert d.line == e.line
        assert (d.start, d.end, d.open_brace, d.close_brace) == (
            e.start,
            e.end,
            e.open_brace,
            e.close_brace,
        )


def test_a_statement_the_readers_read_differently_is_refused(tmp_path: Path) -> None:
    """crossplane counts an escaped newline before the word it starts; nginx does not."""
    site = tmp_path / "site.conf"
    site.write_text(
        "server {\n    listen 80;\n    \\\nroot /srv;\n"
        "    location = /callback { proxy_pass http://127.0.0.1:9000; }\n}\n"
    )
    config = tmp_path / "nginx.conf"
    config.write_text("events {}\nhttp { include site.conf; }\n")
    source = load_checked(config)
    location: Directive = next(d for d, _ in source.config.walk() if d.name == "location")
    with pytest.raises(InputError, match="differently from crossplane") as err:
        _ = location.open_brace
    assert err.value.where == f"{site}:3"


def test_what_crossplane_cannot_read_is_read_by_the_lexer_with_a_warning(tmp_path: Path) -> None:
    """``}`` does not end a word for nginx (``location /a}b`` is valid); crossplane splits it."""
    config = tmp_path / "nginx.conf"
    config.write_text(
        "events {}\nhttp {\n  server {\n    listen 80;\n    location /a}b { return 204; }\n"
        "    location = /callback { proxy_pass http://127.0.0.1:9000; }\n  }\n}\n"
    )
    source = load_checked(config)
    assert [w for w in source.warnings if "crossplane cannot parse" in w]
    locations = [d.args for d, _ in source.config.walk() if d.name == "location"]
    assert locations == [("/a}b",), ("=", "/callback")]
    plan = make_plan(
        MirrorOptions(config=config, path="/callback", stage_url=STAGE_URL), (1, 22, 1)
    )
    assert any("crossplane cannot parse" in w for w in plan.warnings)
