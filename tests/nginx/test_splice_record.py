"""Remove exactly what apply recorded; order multi-file writes by definition level."""

from __future__ import annotations

from hookshift.nginx import splice

SITE = "server {\n    listen 80;\n    location /cb {\n        proxy_pass http://app;\n    }\n}\n"
USER = "        proxy_set_header X-Team ops; # hookshift\n"


def _insert(text: str, block: str, lines: tuple[str, ...]) -> str:
    brace = text.index("{", text.index(block))
    return splice.insert(text, [splice.Insertion(brace, lines)])


def test_added_marks_are_the_inserted_lines_only() -> None:
    old = SITE.replace("        proxy_pass", USER + "        proxy_pass")
    new = _insert(old, "location", ("mirror /__hookshift_mirror;",))
    lines, splits = splice.added_marks(old, new)
    assert lines == ("        mirror /__hookshift_mirror;  # hookshift",) and splits == 0
    removal = splice.remove_recorded(new, lines, splits)
    assert removal.text == old
    assert removal.foreign == (5,) and removal.missing == () and removal.unmarked == ()


def test_split_lines_are_recorded_and_joined_back() -> None:
    old = "http { server { listen 80; } }\n"
    new = _insert(old, "server", ("location = /x { internal; }",))
    lines, splits = splice.added_marks(old, new)
    assert splits == 1
    assert splice.remove_recorded(new, lines, splits).text == old


def test_an_edited_line_and_a_lost_marker_are_reported_and_kept() -> None:
    new = _insert(SITE, "location", ("mirror /__hookshift_mirror;", "proxy_read_timeout 2s;"))
    lines, splits = splice.added_marks(SITE, new)
    edited = new.replace("mirror /__hookshift_mirror;  # hookshift", "mirror /__hookshift_mirror;")
    edited = edited.replace("proxy_read_timeout 2s;", "proxy_read_timeout 9s;")
    removal = splice.remove_recorded(edited, lines, splits)
    assert len(removal.missing) == 2
    assert removal.foreign == (5,)  # the edited line still carries the marker
    assert "mirror /__hookshift_mirror;" in removal.text
    assert removal.unmarked == (4,)


def test_definition_rank_orders_http_before_server_before_location() -> None:
    http = _insert("http {\n    include x;\n}\n", "http", ("log_format f $x;",))
    server = _insert(SITE, "server", ("location = /m { internal; }",))
    location = _insert(SITE, "location", ("mirror /m;",))
    assert [splice.definition_rank(t) for t in (http, server, location)] == [0, 1, 2]
    assert splice.definition_rank(SITE) == 1  # nothing marked
    assert splice.definition_rank("server {\n") == 1  # unreadable
