"""Server and location choice follows nginx's rules; no match or ambiguity is an InputError."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.nginx.matching import match, parse_socket
from hookshift.nginx.source import load_source


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nginx.conf"
    path.write_text("events {}\nhttp {\n" + text + "\n}\n")
    return path


def _where(tmp_path: Path, text: str, path: str, **kw: str | None) -> int:
    config = load_source(_config(tmp_path, text)).config
    return match(config, path, for_app=False, **kw).location.line


SERVERS = """
server { listen 80 default_server; server_name _;
  location / { return 444; } }
server { listen 80; server_name example.com *.example.com www.example.*;
  location / { return 200; } }
server { listen 80; server_name ~^api\\d+\\.example\\.com$ ~^api;
  location / { return 201; } }
server { listen 80; server_name a.example.com;
  location / { return 202; } }
server { listen 127.0.0.1:80; server_name local;
  location / { return 203; } }
"""


@pytest.mark.parametrize(
    ("host", "listen", "line"),
    [
        ("a.example.com", "10.0.0.1:80", 11),  # exact beats leading wildcard
        ("b.example.com", "10.0.0.1:80", 7),  # leading wildcard
        ("www.example.org", "10.0.0.1:80", 7),  # trailing wildcard
        ("api7.example.net", "10.0.0.1:80", 9),  # regex (the wildcard classes miss)
        ("api7.example.com", "10.0.0.1:80", 7),  # leading wildcard beats a regex
        ("nothing.test", "10.0.0.1:80", 5),  # default_server
        (None, "10.0.0.1:80", 5),
        ("a.example.com", "127.0.0.1:80", 13),  # an explicit address wins over *:80
    ],
)
def test_server_choice(tmp_path: Path, host: str | None, listen: str, line: int) -> None:
    assert _where(tmp_path, SERVERS, "/cb", host=host, listen=listen) == line


LOCATIONS = """
server { listen 80;
  location / { }
  location = /exact { }
  location /exact { }
  location /api/ {
    location /api/v1/ { }
    location ~ ^/api/v1/cb$ { }
  }
  location ^~ /static/ { }
  location ~ \\.png$ { }
  location ~* \\.JPG$ { }
  location @named { }
}
"""


@pytest.mark.parametrize(
    ("uri", "line"),
    [
        ("/exact", 6),
        ("/exact/more", 7),
        ("/api/v1/cb", 10),  # nested regex beats nested prefix
        ("/api/v1/x", 9),
        ("/api/v1/x.png", 13),  # outer regex beats nested prefix
        ("/static/a.png", 12),  # ^~ stops regexes
        ("/a.jpg", 14),  # ~* is case-insensitive
        ("/other", 5),
        ("/cb?x=1", 5),  # query string ignored
    ],
)
def test_location_choice(tmp_path: Path, uri: str, line: int) -> None:
    assert _where(tmp_path, LOCATIONS, uri) == line


def test_no_matching_location_names_the_servers(tmp_path: Path) -> None:
    text = "server { listen 80; location = /a { } }"
    with pytest.raises(InputError, match=r"no location matches /b .*nginx.conf:3"):
        _where(tmp_path, text, "/b")


def test_different_servers_on_different_sockets_are_ambiguous(tmp_path: Path) -> None:
    text = "server { listen 80; location /cb { } }\nserver { listen 8080; location /cb { } }"
    with pytest.raises(InputError) as err:
        _where(tmp_path, text, "/cb")
    assert "nginx.conf:3" in str(err.value) and "nginx.conf:4" in str(err.value)
    assert "--listen" in str(err.value)
    assert _where(tmp_path, text, "/cb", listen="8080") == 4


def test_a_redirect_only_server_is_not_a_candidate(tmp_path: Path) -> None:
    text = (
        "server { listen 80; return 301 https://$host$request_uri; }\n"
        "server { listen 443; location = /cb { } }"
    )
    assert _where(tmp_path, text, "/cb") == 4


def test_nobody_listening_lists_the_sockets(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no server listens on 9999.*\*:80"):
        _where(tmp_path, "server { location / { } }", "/", listen="9999")


@pytest.mark.parametrize(
    ("text", "addr", "port"),
    [
        ("80", "*", "80"),
        ("[::]:443", "[::]", "443"),
        ("127.0.0.1", "127.0.0.1", "80"),
        ("unix:/run/x.sock", "unix:/run/x.sock", ""),
        ("localhost:8080", "127.0.0.1", "8080"),  # nginx resolves it when it starts
    ],
)
def test_listen_forms(text: str, addr: str, port: str) -> None:
    socket = parse_socket(text)
    assert (socket.addr, socket.port) == (addr, port)


@pytest.mark.parametrize(
    ("host", "fix"),
    [
        ("콜백.example.com", "--server-name xn--3h3bn46a.example.com"),
        ("Ärger.de", "--server-name xn--rger-koa.de"),
    ],
    ids=["korean", "umlaut"],
)
def test_a_server_name_outside_ascii_is_refused_with_its_xn_form(
    tmp_path: Path, host: str, fix: str
) -> None:
    """A client sends such a name in its IDNA form: nginx 1.31.5 answers 400 to it as typed,
    and 1.22 would only match a server_name spelled the same way."""
    with pytest.raises(InputError) as refused:
        _where(tmp_path, SERVERS, "/cb", host=host)
    assert refused.value.what.startswith(f"--server-name {host}: a client sends a name outside")
    assert refused.value.fix == fix


@pytest.mark.parametrize(
    ("tls_listen", "example"),
    [
        ("18443 ssl", "--listen 18443"),
        ("127.0.0.2:8443 ssl", "--listen 127.0.0.2:8443"),
        (None, "--listen 443"),
    ],
    ids=["wildcard", "address", "no-tls-server"],
)
def test_a_redirect_to_https_names_the_configs_own_https_socket(
    tmp_path: Path, tls_listen: str | None, example: str
) -> None:
    tls = (
        f"server {{ listen {tls_listen}; location = /cb {{ proxy_pass http://127.0.0.1:1; }} }}"
        if tls_listen
        else ""
    )
    text = f"server {{ listen 80; return 301 https://$host$request_uri; }}\n{tls}"
    with pytest.raises(InputError) as refused:
        _where(tmp_path, text, "/cb", listen="80")
    assert refused.value.fix is not None
    assert f"redirects to https: the https one, e.g. {example})" in refused.value.fix


def test_a_server_whose_every_name_an_earlier_one_took_receives_nothing(tmp_path: Path) -> None:
    # nginx -t: conflicting server name "hooks.example.com" on 0.0.0.0:80, ignored
    text = (
        "server { listen 80 default_server; server_name hooks.example.com;\n"
        "  location /cb { proxy_pass http://127.0.0.1:9001; } }\n"
        "server { listen 80; server_name hooks.example.com;\n"
        "  location /cb { proxy_pass http://127.0.0.1:9002; } }"
    )
    config = load_source(_config(tmp_path, text)).config
    assert match(config, "/cb").location.line == 4


def test_a_server_with_one_name_of_its_own_left_still_receives(tmp_path: Path) -> None:
    text = (
        "server { listen 80 default_server; server_name hooks.example.com;\n"
        "  location /cb { proxy_pass http://127.0.0.1:9001; } }\n"
        "server { listen 80; server_name hooks.example.com api.example.com;\n"
        "  location /cb { proxy_pass http://127.0.0.1:9002; } }"
    )
    config = load_source(_config(tmp_path, text)).config
    with pytest.raises(InputError, match="more than one server could receive") as err:
        match(config, "/cb")
    assert "nginx.conf:4" in str(err.value) and "nginx.conf:6" in str(err.value)
