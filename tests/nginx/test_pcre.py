"""nginx's PCRE semantics in Python's engine: an option set in the middle of a pattern
(checked against nginx 1.22 and 1.31 in test_rare_routes_vs_nginx)."""

from __future__ import annotations

import pytest

from hookshift.errors import InputError
from hookshift.nginx.pcre import compile_or_refuse, compile_pcre


@pytest.mark.parametrize(
    ("pattern", "caseless", "matching", "not_matching"),
    [
        ("^/a(?i)b$", False, ["/ab", "/aB"], ["/Ab"]),
        # the option holds in the group's later alternatives too (PCRE's rule)
        ("^/x(?i)y$|^/q$", False, ["/xY", "/Q"], ["/XY"]),
        ("^/m((?i)n|o)p$", False, ["/mNp", "/mOp"], ["/mnP"]),
        ("^/a(?i)b(?-i)c$|^/d$", False, ["/aBc", "/d"], ["/aBC", "/D"]),
        ("^/r(?-i)s(?i)t$", True, ["/RsT"], ["/rSt"]),
        # a bracket expression and an escaped parenthesis are not options
        ("^/[(?i)]z(?i)z$", False, ["/(zZ", "/izz"], ["/(Zz"]),
        (r"^/\(?i\)(?i)z$", False, ["/(i)Z", "/i)z"], ["/(I)z"]),
        ("^/(?<v>v[0-9])(?i)/cb$", False, ["/v1/CB"], ["/V1/cb"]),
        ("^/(?:a|(?i)b)c$", False, ["/ac", "/Bc"], ["/aC", "/Ac"]),
        ("^/(?i)ab$", False, ["/AB"], ["/x"]),
    ],
)
def test_an_option_in_the_middle_holds_where_pcre_holds_it(
    pattern: str, caseless: bool, matching: list[str], not_matching: list[str]
) -> None:
    regex = compile_pcre(pattern, caseless)
    assert [text for text in matching if regex.search(text) is None] == []
    assert [text for text in not_matching if regex.search(text) is not None] == []


def test_the_groups_are_numbered_as_written() -> None:
    found = compile_pcre("^/(a)(?i)(b)|(c)").search("/aB")
    assert found is not None and (found.group(1), found.group(2)) == ("a", "B")


@pytest.mark.parametrize("pattern", ["^/a(?x)b", "^/a(?U)b", "^/a(?-)b", "^/a(?i)(b"])
def test_an_option_python_cannot_scope_is_refused_in_one_line(pattern: str) -> None:
    with pytest.raises(InputError) as refused:
        compile_or_refuse(pattern, False, f"location ~ {pattern}", "nginx.conf:3", "fix it")
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith("nginx.conf:3: cannot evaluate the regex of location")
