"""The matcher agrees with the real nginx: every location answers with its own line number and
nginx's answer must be the location `nginx.matching.match` chose."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookshift.nginx.matching import match
from hookshift.nginx.source import load_source
from hookshift.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port

pytestmark = pytest.mark.e2e  # every test here starts a process

SERVERS = """
    server {{ listen {addr} default_server; server_name _;
        location / {{ return 200 "$server_name:L3"; }} }}
    server {{ listen {addr}; server_name example.com *.example.com www.example.*;
        location / {{ return 200 "L5"; }}
        location = /exact {{ return 200 "L6"; }}
        location /exact {{ return 200 "L7"; }}
        location /api/ {{ return 200 "L8";
            location /api/v1/ {{ return 200 "L9"; }}
            location ~ ^/api/v1/cb$ {{ return 200 "L10"; }}
        }}
        location ^~ /static/ {{ return 200 "L12"; }}
        location ~ \\.png$ {{ return 200 "L13"; }}
        location ~* \\.JPG$ {{ return 200 "L14"; }}
        location ~ ^/exact {{ return 200 "L15"; }}
        location @named {{ return 200 "L16"; }}
    }}
    server {{ listen {addr}; server_name ~^api\\d+\\.example\\.net$ a.example.com;
        location / {{ return 200 "L19"; }}
        location /cb {{ return 200 "L20"; }} }}
"""

PREAMBLE_LINES = 5  # pid, error_log, events, http {, access_log

REQUESTS = [
    (host, uri)
    for host in (
        "example.com",
        "b.example.com",
        "www.example.org",
        "a.example.com",
        "api7.example.net",
        "unknown.test",
    )
    for uri in (
        "/",
        "/exact",
        "/exact/x",
        "/api/v1/cb",
        "/api/v1/x",
        "/api/v1/x.png",
        "/api/v2",
        "/static/a.png",
        "/a.JPG",
        "/a.jpg",
        "/cb",
        "/cbx",
    )
]


def _serving(nginx_bin: str, config: Path, port: int) -> Iterator[tuple[Path, int]]:
    """Run nginx on `config` (listening on `port`) while the caller yields; stop it by pid."""
    prefix = config.parent
    proc = ManagedProcess(
        name="nginx",
        argv=[nginx_bin, "-p", f"{prefix}/", "-c", str(config), "-g", "daemon off;"],
        log_path=prefix / "nginx.out",
    ).start(ready=lambda: wait_for_port(port))
    try:
        yield config, port
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def running(nginx_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    prefix = tmp_path_factory.mktemp("match")
    port = free_port()
    config = prefix / "nginx.conf"
    config.write_text(
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nevents {{}}\nhttp {{\n"
        f"    access_log off;\n{SERVERS.format(addr=f'{LOOPBACK}:{port}')}}}\n"
    )
    yield from _serving(nginx_bin, config, port)


def _ask(port: int, host: str, uri: str) -> str:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    conn.request("GET", uri, headers={"Host": host})
    return conn.getresponse().read().decode()


def test_every_request_goes_where_the_matcher_says(running: tuple[Path, int]) -> None:
    config_path, port = running
    config = load_source(config_path).config
    mismatches = []
    for host, uri in REQUESTS:
        chosen = match(config, uri, host=host, listen=f"{LOOPBACK}:{port}", for_app=False).location
        answer = _ask(port, host, uri)
        # "Ln" is the line within SERVERS; the file has PREAMBLE_LINES lines before it
        if not answer.endswith(f"L{chosen.line - PREAMBLE_LINES}"):
            mismatches.append((host, uri, answer, chosen.line - PREAMBLE_LINES))
    assert mismatches == [], mismatches


def _numbered(text: str) -> str:
    """Each `L?` becomes `L<line number in the file>`: every location answers its own line."""
    return "\n".join(line.replace("L?", f"L{n}") for n, line in enumerate(text.split("\n"), 1))


ROUTES = """user root;
pid {p}/nginx.pid;
error_log {p}/error.log;
events {{}}
http {{
    access_log off;
    root {p}/html;
    server {{ listen 127.0.0.1:{port} default_server; server_name v4;
        location / {{ return 200 "L?"; }}
        location /cb {{ return 200 "L?"; }}
    }}
    server {{ listen [::1]:{port} default_server; server_name v6;
        location / {{ return 200 "L?"; }}
        location /cb {{ return 200 "L?"; }}
    }}
    server {{ listen 127.0.0.1:{port}; listen [::1]:{port}; server_name routes.test;
        rewrite ^/v1/(.*)$ /$1 last;
        location / {{ try_files /nonexistent @app; }}
        location @app {{ return 200 "L?"; }}
        location /php/ {{ try_files $uri $uri/ /index.php?$query_string; }}
        location ~ \\.php$ {{ return 200 "L?"; }}
        location = /callback {{ return 200 "L?"; }}
        location ~ ^/[^/]+/callback$ {{ rewrite ^ /callback last; }}
        location /err/ {{ error_page 404 = @err; try_files $uri =404; }}
        location @err {{ return 200 "L?"; }}
        location /idx/ {{ index app.php; }}
        location /brk/ {{ rewrite ^ /callback break; try_files /nonexistent @brk; }}
        location @brk {{ return 200 "L?"; }}
        location /l/ {{ if (!-e $request_filename) {{ rewrite ^ /a.php last; }} return 200 "L?"; }}
        location /ret/ {{ error_page 418 = @err; return 418; }}
        location /p/ {{ if ($request_method = POST) {{ rewrite ^ /callback last; }} }}
        location /unk/ {{ if ($http_x_unset) {{ rewrite ^ /cb last; }} return 200 "L?"; }}
    }}
    server {{ listen localhost:{port}; server_name by-name.test;
        location / {{ return 200 "L?"; }}
    }}
    server {{ listen 127.0.0.1:{port}; server_name server-return.test;
        error_page 418 = @srv;
        if ($request_method = POST) {{ return 418; }}
        location / {{ return 200 "L?"; }}
        location @srv {{ return 200 "L?"; }}
    }}
    server {{ listen 127.0.0.1:{port}; server_name as-get.test;
        error_page 418 /elsewhere;
        if ($request_method = POST) {{ return 418; }}
        location / {{ return 200 "L?"; }}
    }}
    server {{ listen 127.0.0.1:{port}; server_name recursive.test;
        location / {{ recursive_error_pages on; error_page 404 = @one; return 404; }}
        location @one {{ error_page 404 = @two; return 404; }}
        location @two {{ return 200 "L?"; }}
    }}
}}
"""

ROUTE_REQUESTS = [
    ("127.0.0.1", "v4", "/cb"),
    ("127.0.0.1", "unknown.test", "/x"),
    ("::1", "v6", "/cb"),
    ("::1", "unknown.test", "/cb"),
    ("::1", "routes.test", "/callback"),
    ("127.0.0.1", "routes.test", "/hooks/cb"),
    ("127.0.0.1", "routes.test", "/php/cb"),
    ("127.0.0.1", "routes.test", "/callback"),
    ("127.0.0.1", "routes.test", "/tenant1/callback"),
    ("127.0.0.1", "routes.test", "/v1/tenant1/callback"),
    ("127.0.0.1", "routes.test", "/err/cb"),
    ("127.0.0.1", "routes.test", "/idx/"),
    ("127.0.0.1", "routes.test", "/brk/cb"),
    ("127.0.0.1", "routes.test", "/l/cb"),
    ("127.0.0.1", "routes.test", "/ret/cb"),
    ("127.0.0.1", "routes.test", "/p/cb"),
    ("127.0.0.1", "routes.test", "/unk/cb"),
    ("127.0.0.1", "by-name.test", "/cb"),
    ("127.0.0.1", "server-return.test", "/cb"),
    ("127.0.0.1", "as-get.test", "/cb"),
    ("127.0.0.1", "recursive.test", "/cb"),
]


@pytest.fixture(scope="module")
def routes(nginx_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    prefix = tmp_path_factory.mktemp("routes")
    (prefix / "html" / "idx").mkdir(parents=True)
    (prefix / "html" / "idx" / "app.php").write_text("")  # nginx's index checks the disk
    port = free_port()
    config = prefix / "nginx.conf"
    config.write_text(_numbered(ROUTES.format(p=prefix, port=port)))
    yield from _serving(nginx_bin, config, port)


def _post(addr: str, port: int, host: str, uri: str) -> str:
    conn = http.client.HTTPConnection(addr, port, timeout=5)
    conn.request("POST", uri, body=b'{"RESULT":"7000"}', headers={"Host": host})
    return conn.getresponse().read().decode()


def test_ipv6_sockets_and_internal_redirects_end_where_the_matcher_says(
    routes: tuple[Path, int],
) -> None:
    config_path, port = routes
    config = load_source(config_path).config
    mismatches = []
    for addr, host, uri in ROUTE_REQUESTS:
        listen = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
        chosen = match(config, uri, host=host, listen=listen, for_app=False).location
        answer = _post(addr, port, host, uri)
        if answer != f"L{chosen.line}":
            mismatches.append((addr, host, uri, answer, chosen.line))
    assert mismatches == [], mismatches


ESCAPED = ["/%65xact", "//exact", "/api/v2/../v1/cb", "/api/v1%2Fcb", "/api/./v1//cb", "/a%2eJPG"]


def test_escaped_and_unnormalised_paths_go_where_the_matcher_says(
    running: tuple[Path, int],
) -> None:
    """nginx decodes %XX, merges slashes and resolves dot segments before it selects."""
    config_path, port = running
    config = load_source(config_path).config
    mismatches = []
    for uri in ESCAPED:
        chosen = match(config, uri, host="example.com", listen=f"{LOOPBACK}:{port}", for_app=False)
        answer = _ask(port, "example.com", uri)
        if answer != f"L{chosen.location.line - PREAMBLE_LINES}":
            mismatches.append((uri, answer, chosen.location.line - PREAMBLE_LINES))
    assert mismatches == [], mismatches
