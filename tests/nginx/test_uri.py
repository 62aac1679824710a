"""The path nginx selects locations by, from the path a client sends (checked against nginx
1.22 and 1.31: each pair below is what its location matching saw)."""

from __future__ import annotations

import pytest

from hookshift.errors import InputError
from hookshift.nginx.uri import raw_path, request_uri_path


@pytest.mark.parametrize(
    ("sent", "seen"),
    [
        ("/callback", "/callback"),
        ("/", "/"),
        ("/a%2Fb", "/a/b"),
        ("/a%2fb", "/a/b"),
        ("/a%3Fb", "/a?b"),
        ("/a%23b", "/a#b"),
        ("/a%25b", "/a%b"),
        ("/a%2541", "/a%41"),
        ("/a%2Bb", "/a+b"),
        ("/%ED%95%9C", "/한"),
        ("//q", "/q"),
        ("/a//b", "/a/b"),
        ("/a%2F%2Fb", "/a/b"),
        ("/a/./q", "/a/q"),
        ("/a/../q", "/q"),
        ("/a/%2e%2e/q", "/q"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/q/", "/q/"),
        ("/a/..b", "/a/..b"),
    ],
)
def test_the_path_is_decoded_and_normalised_as_nginx_does(sent: str, seen: str) -> None:
    assert request_uri_path(sent) == seen


@pytest.mark.parametrize("sent", ["/%2e%2e/q", "/..", "/a/../..", "/a%zz", "/a%2", "/a%00b"])
def test_paths_nginx_answers_400_are_refused(sent: str) -> None:
    with pytest.raises(InputError, match="400 Bad Request"):
        request_uri_path(sent)


def test_a_leading_double_slash_stays_in_the_raw_path() -> None:
    assert raw_path("//callback?x=1") == "//callback"
    assert raw_path("/cb#frag") == "/cb"
