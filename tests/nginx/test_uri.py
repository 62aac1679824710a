"""The path nginx selects locations by, from the path a client sends (checked against nginx
1.22 and 1.31: each pair below is what its location matching saw)."""

from __future__ import annotations

import re

import pytest

from hookshift.errors import InputError
from hookshift.nginx.uri import raw_path, request_uri_path, request_uri_pattern, sent_path


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


@pytest.mark.parametrize(
    ("sent", "seen"),
    [
        ("/a//b", "/a//b"),
        ("//q", "//q"),
        ("/a%2F%2Fb", "/a//b"),
        ("/a/x//../b", "/a/x/b"),
        ("/a/x/..//b", "/a//b"),
        ("/a/.//b", "/a//b"),
        ("//..", "/"),
    ],
)
def test_without_merge_slashes_each_empty_segment_stays(sent: str, seen: str) -> None:
    assert request_uri_path(sent, merge_slashes=False) == seen


def test_the_path_is_sent_with_letters_outside_ascii_escaped() -> None:
    assert sent_path("/hooks/콜백") == "/hooks/%EC%BD%9C%EB%B0%B1"
    assert sent_path("/a%2fb/c d") == "/a%2fb/c%20d"  # an escape as given stays as given


@pytest.mark.parametrize("sent", ["/%2e%2e/q", "/..", "/a/../..", "/a%zz", "/a%2", "/a%00b"])
def test_paths_nginx_answers_400_are_refused(sent: str) -> None:
    with pytest.raises(InputError, match="400 Bad Request"):
        request_uri_path(sent)


def test_a_leading_double_slash_stays_in_the_raw_path() -> None:
    assert raw_path("//callback?x=1") == "//callback"
    assert raw_path("/cb#frag") == "/cb"


@pytest.mark.parametrize(
    "given", ["/hooks/콜백", "/hooks/%EC%BD%9C%EB%B0%B1", "/hooks/%ec%bd%9C%eb%b0%b1"]
)
def test_a_path_outside_ascii_matches_each_form_a_client_sends(given: str) -> None:
    pattern = re.compile(request_uri_pattern(given))
    for sent in ("/hooks/콜백", "/hooks/%EC%BD%9C%EB%B0%B1", "/hooks/%ec%bd%9c%eb%b0%b1"):
        assert pattern.fullmatch(sent), sent
    assert not pattern.fullmatch("/hooks/콜")


def test_an_ascii_path_matches_as_given_and_escapes_in_either_case() -> None:
    pattern = re.compile(request_uri_pattern("/pg/v1.0/a%2fb"))
    assert pattern.fullmatch("/pg/v1.0/a%2Fb") and pattern.fullmatch("/pg/v1.0/a%2fb")
    assert not pattern.fullmatch("/pg/v1x0/a%2fb")  # a dot is a dot
    assert request_uri_pattern("/bizppurio/callback") == "/bizppurio/callback"
