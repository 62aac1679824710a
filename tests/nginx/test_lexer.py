"""The lexer gives exact offsets and follows nginx's quoting, escapes, comments and Lua blocks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.nginx import lexer


def test_one_line_block_braces_have_exact_offsets() -> None:
    text = "location /cb { proxy_pass http://app; }"
    (loc,) = lexer.parse(text)
    assert text[loc.open_brace] == "{" and loc.open_brace == 13
    assert text[loc.close_brace] == "}" and loc.close_brace == len(text) - 1
    assert loc.block is not None and loc.block[0].args == ("http://app",)


def test_quotes_escapes_and_comments() -> None:
    text = 'log_format x \'a "b" ;{}\' "c\\"d";  # trailing { comment\nset $a "x#y";\n'
    st1, st2 = lexer.parse(text)
    assert st1.args == ("x", 'a "b" ;{}', 'c"d')
    assert st2.args == ("$a", "x#y") and st2.line == 2


def test_variables_with_braces_stay_one_word() -> None:
    (st,) = lexer.parse("return 200 ${host}x;")
    assert st.args == ("200", "${host}x")


def test_lua_block_braces_in_strings_and_comments_do_not_count() -> None:
    text = (
        'http { init_by_lua_block {\n  local s = "}" -- } {\n  local l = [[ } ]]\n}\n'
        "server { listen 80; } }\n"
    )
    (http,) = lexer.parse(text)
    assert http.block is not None
    assert [d.name for d in http.block] == ["init_by_lua_block", "server"]
    assert http.block[1].line == 5


def test_crlf_lines_are_counted() -> None:
    statements = lexer.parse("a 1;\r\nb {\r\n  c 2;\r\n}\r\n")
    assert [(s.name, s.line) for s in statements] == [("a", 1), ("b", 2)]


@pytest.mark.parametrize(
    ("text", "line"),
    [("http {\n  listen 80\n}\n", 2), ("a;\n}\n", 2), ("http {\n a;\n", 3), ('a "x;\n', 1)],
)
def test_malformed_text_is_an_input_error_with_a_line(text: str, line: int | None) -> None:
    with pytest.raises(InputError) as err:
        lexer.parse(text, "f.conf")
    assert err.value.where == (f"f.conf:{line}" if line else "f.conf")


@pytest.mark.e2e  # runs nginx -t
@pytest.mark.parametrize(
    "token",
    [
        # nginx's exact limit moves by a byte or two with where the token sits in its
        # 4096-byte read buffer; these are clear of that
        "#" + "x" * 4000,
        "#" + "x" * 4200,
        "#" + "콜" * 1300,  # 3901 bytes
        "#" + "콜" * 1400,  # 4201 bytes in 1401 characters
        '"' + "x" * 4000 + '"',
        '"' + "x" * 4200 + '"',
        "x" * 4000,
        "x" * 4200,
    ],
)
def test_a_token_is_too_long_exactly_where_nginx_says_so(
    token: str, tmp_path: Path, nginx_bin: str
) -> None:
    text = f"events {{}}\nhttp {{ log_format x {token}\n; }}\n"
    config = tmp_path / "nginx.conf"
    config.write_text(text)
    checked = subprocess.run(
        [nginx_bin, "-t", "-p", str(tmp_path), "-c", str(config), "-g", f"pid {tmp_path}/p;"],
        capture_output=True,
        text=True,
        check=False,
    )
    refused_by_nginx = "too long parameter" in checked.stderr
    try:
        lexer.parse(text, "f.conf")
        refused = False
    except InputError as err:
        assert "too long parameter" in err.line() and err.where == "f.conf:2"
        refused = True
    assert refused == refused_by_nginx, checked.stderr
