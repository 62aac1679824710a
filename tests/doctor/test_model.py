"""The pure model under the checks: proxy_pass parsing, nginx times, location selection."""

from __future__ import annotations

from hookshift.doctor.model import build_index, parse_proxy_pass, parse_time
from hookshift.nginx.config import load
from hookshift.nginx.locations import find_location
from tests.doctor.conftest import write_config


def test_proxy_pass_host_literal_before_a_path_variable() -> None:
    t = parse_proxy_pass("https://abc.execute-api.ap-northeast-2.amazonaws.com/dev$request_uri")
    assert t is not None
    assert (t.scheme, t.host, t.port, t.has_variables) == (
        "https",
        "abc.execute-api.ap-northeast-2.amazonaws.com",
        None,
        True,
    )
    assert parse_proxy_pass("http://app$request_uri").host == "app"  # type: ignore[union-attr]


def test_proxy_pass_host_from_a_variable_is_unknown() -> None:
    assert parse_proxy_pass("http://$backend").host is None  # type: ignore[union-attr]
    assert parse_proxy_pass("http://api$env.example.com/").host is None  # type: ignore[union-attr]


def test_proxy_pass_ports_ips_and_unix_sockets() -> None:
    t = parse_proxy_pass("http://127.0.0.1:9000/x")
    assert t is not None and t.port == 9000 and t.is_ip
    t6 = parse_proxy_pass("http://[::1]:9000")
    assert t6 is not None and t6.is_ip
    assert parse_proxy_pass("http://unix:/run/app.sock") is None


def test_nginx_times() -> None:
    assert parse_time("500ms") == 0.5
    assert parse_time("2s") == 2
    assert parse_time("10") == 10
    assert parse_time("1m30s") == 90
    assert parse_time("soon") is None


def test_location_selection_follows_nginx(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = """
    server {
        listen 8081;
        location / { return 204; }
        location /static/ { return 204; }
        location ^~ /static/keep/ { return 204; }
        location ~ \\.php$ { return 204; }
        location = /exact { return 204; }
        location /api/ {
            location ~ /api/v[0-9]+/ { return 204; }
        }
    }
    """
    server = build_index(load(write_config(tmp_path, text))).servers[0]

    def chosen(uri: str) -> str:
        loc = server.match(uri)
        assert loc is not None
        return " ".join(loc.directive.args)

    assert chosen("/exact") == "= /exact"
    assert chosen("/exact/more") == "/"
    assert chosen("/static/a.php") == "~ \\.php$"  # regex beats a plain prefix
    assert chosen("/static/keep/a.php") == "^~ /static/keep/"  # ^~ stops the regex search
    assert chosen("/static/a.css") == "/static/"
    assert chosen("/api/v2/x") == "~ /api/v[0-9]+/"  # nested regex
    assert chosen("/api/x") == "/api/"


def test_doctor_and_mirror_choose_the_same_location(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Locations nested in a regex location are searched (nginx does); a named location is
    never chosen and keeps its `@` the way hand-offs name it."""
    text = """
    server {
        listen 8081;
        location / { return 204; }
        location ~ ^/hooks/ {
            location ~ /cb$ { return 204; }
        }
        location @app { return 204; }
    }
    """
    config = load(write_config(tmp_path, text))
    server = build_index(config).servers[0]
    loc = server.match("/hooks/cb")
    assert loc is not None and " ".join(loc.directive.args) == "~ /cb$"
    for uri in ("/hooks/cb", "/hooks/x", "/app", "/"):
        found = find_location(server.directive, uri, config)
        assert found is not None
        assert server.match(uri) is not None
        assert server.match(uri).directive is found[0]  # type: ignore[union-attr]
    named = [loc for loc in server.all_locations() if loc.modifier == "@"]
    assert [loc.pattern for loc in named] == ["@app"]


def test_index_inherits_by_nginx_rules(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """allow/deny are one list (the location's allow drops the server's deny all); a location
    with an add_header of its own keeps the inherited ones under add_header_inherit merge."""
    text = """
    server {
        listen 8081;
        deny all;
        add_header_inherit merge;
        add_header X-Server 1;
        location /open { allow 127.0.0.1; add_header X-Open 1; }
        location /closed { }
    }
    """
    index = build_index(load(write_config(tmp_path, text)))
    open_, closed = (loc.chain for loc in index.servers[0].all_locations())
    assert index.effective(open_, "deny") == ()
    assert [d.args for d in index.effective(closed, "deny")] == [("all",)]
    assert [d.args[0] for d in index.effective(open_, "add_header")] == ["X-Open", "X-Server"]
