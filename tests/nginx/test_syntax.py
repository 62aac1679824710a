"""A `;` missing between two directives is found; statements spanning lines are not."""

from __future__ import annotations

import pytest

from hookshift.errors import InputError
from hookshift.nginx.syntax import check_statement_ends


@pytest.mark.parametrize(
    ("text", "line", "name"),
    [
        ("listen 80\nserver_name a.example;\n", 1, "server_name"),
        (
            "location / {\n  proxy_pass http://app\n  proxy_set_header Host $host;\n}\n",
            2,
            "proxy_set_header",
        ),
        ("server_name a\n  root /srv;\n", 1, "root"),
    ],
)
def test_a_directive_read_as_an_argument_is_named_at_the_line_missing_its_semicolon(
    text: str, line: int, name: str
) -> None:
    with pytest.raises(InputError) as caught:
        check_statement_ends(text, "site.conf")
    assert caught.value.where == f"site.conf:{line}"
    assert f"`{name}` as one of its arguments" in caught.value.what


@pytest.mark.parametrize(
    "text",
    [
        "log_format main '$remote_addr'\n    'root $status';\n",
        "listen 443 ssl\n    http2;\n",
        "proxy_pass\n    http://app;\n",
        "gzip_types text/plain\n    text/css;\n",
        "map $uri $x {\n  default 0;\n  /root 1;\n}\n",
        "content_by_lua_block {\n  ngx.say('x')\n  root = 1\n}\n",
    ],
)
def test_statements_that_span_lines_are_left_alone(text: str) -> None:
    check_statement_ends(text, "site.conf")
