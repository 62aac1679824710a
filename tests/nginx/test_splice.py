"""Inserted lines are marked; removing them gives back the input byte for byte."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hookshift.nginx import lexer, splice

WORDS = st.sampled_from(["listen", "proxy_pass", "root", "return", "set", "'a b'", '"x;y"', "$v"])
SPACE = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\n\n", " # note\n", "\t# c {\r\n"])


@st.composite
def configs(draw: st.DrawFn, depth: int = 0) -> str:
    """Random but well-formed config text: statements and blocks, odd spacing, comments."""
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        parts.append(draw(SPACE))
        words = " ".join(draw(st.lists(WORDS, min_size=1, max_size=3)))
        if depth < 3 and draw(st.booleans()):
            parts.append(f"{words} {{{draw(SPACE)}{draw(configs(depth + 1))}{draw(SPACE)}}}")
        else:
            parts.append(f"{words};")
    parts.append(draw(st.sampled_from(["", "\n", "\r\n", " "])))
    return "".join(parts)


def _braces(text: str) -> list[int]:
    return [t.start for t in lexer.lex(text) if t.kind == "open"]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_remove_of_insert_is_identity(data: st.DataObject) -> None:
    text = data.draw(configs())
    braces = _braces(text)
    chosen = data.draw(st.lists(st.sampled_from(braces), unique=True)) if braces else []
    lines = data.draw(st.lists(st.sampled_from(["mirror /m;", "x {", "    y;", "}"]), min_size=1))
    inserted = splice.insert(text, [splice.Insertion(b, tuple(lines)) for b in chosen])
    assert splice.remove(inserted) == text
    if chosen:
        assert splice.has_marks(inserted)
        # the result still tokenizes to the same statements plus ours
        lexer.lex(inserted)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_remove_of_insert_after_statements_is_identity(data: st.DataObject) -> None:
    text = data.draw(configs())
    ends = [t.end for t in lexer.lex(text) if t.kind == "semi"]
    chosen = data.draw(st.lists(st.sampled_from(ends), unique=True)) if ends else []
    lines = data.draw(st.lists(st.sampled_from(["map $a $b {", "    default 0;", "}"]), min_size=1))
    inserted = splice.insert(text, [splice.Insertion(-1, tuple(lines), end) for end in chosen])
    assert splice.remove(inserted) == text
    lexer.lex(inserted)


def test_lines_after_a_statement_keep_its_indentation_or_split_its_line() -> None:
    text = "http {\n    map_hash_max_size 4096;\n    server { }\n}\n"
    end = text.index(";") + 1
    assert splice.insert(text, [splice.Insertion(-1, ("map $a $b {}",), end)]) == (
        "http {\n    map_hash_max_size 4096;\n    map $a $b {}  # hookshift\n    server { }\n}\n"
    )
    one_line = "http { map_hash_max_size 4096; server { } }\n"
    out = splice.insert(
        one_line, [splice.Insertion(-1, ("map $a $b {}",), one_line.index(";") + 1)]
    )
    assert out == (
        "http { map_hash_max_size 4096; # hookshift:split\nmap $a $b {}  # hookshift\n"
        " server { } }\n"
    )
    assert splice.remove(out) == one_line


def test_one_line_block_is_split_after_the_brace() -> None:
    text = "http { server { location /cb { proxy_pass http://app; } } }\n"
    brace = text.index("{", text.index("location"))
    out = splice.insert(text, [splice.Insertion(brace, ("mirror /m;",))])
    assert out == (
        "http { server { location /cb { # hookshift:split\n"
        "    mirror /m;  # hookshift\n"
        " proxy_pass http://app; } } }\n"
    )
    assert splice.remove(out) == text


def test_indentation_follows_the_neighbours_with_tabs() -> None:
    text = "http {\n\tserver {\n\t\tlisten 80;\n\t}\n}\n"
    brace = text.index("{", text.index("server"))
    out = splice.insert(text, [splice.Insertion(brace, ("location = /x {", "    internal;", "}"))])
    assert (
        "\t\tlocation = /x {  # hookshift\n\t\t\tinternal;  # hookshift\n\t\t}  # hookshift\n"
        in out
    )


def test_a_comment_after_the_brace_does_not_force_a_split() -> None:
    text = "server {  # main\r\n    listen 80;\r\n}\r\n"
    out = splice.insert(text, [splice.Insertion(text.index("{"), ("a;",))])
    assert out == "server {  # main\r\n    a;  # hookshift\r\n    listen 80;\r\n}\r\n"


def test_removal_leaves_unmarked_lines_alone() -> None:
    text = "a; # hookshift-like but not a marker\nb; # not hookshift\n"
    assert not splice.has_marks(text)
    assert splice.remove(text) == text
