"""What doctor says happens at run time, shown on the real nginx with real HTTP on loopback.

Each test runs nginx (Debian's binary) in the foreground on a free loopback port, in front of a
small recording HTTP server, and checks both the behaviour and that doctor flags the config.
"""

from __future__ import annotations

import textwrap
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hookshift.doctor import diagnose_file
from hookshift.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port, wait_until
from tests.doctor.conftest import only

pytestmark = pytest.mark.e2e  # every test here starts a process

Seen = list[tuple[str, dict[str, str]]]


class _Recorder(BaseHTTPRequestHandler):
    seen: Seen

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[tuple[int, Seen]]:
    """A recording HTTP server on a free loopback port: (port, [(path, headers), ...])."""
    seen: Seen = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer((LOOPBACK, free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


RunNginx = Callable[[str], tuple[int, Path]]


@contextmanager
def nginx_serving(tmp_path: Path, nginx_bin: str, http: str) -> Iterator[tuple[int, Path]]:
    """nginx serving `http` (the http block's content, `{port}` in it filled in) from a
    config in `tmp_path`: (port, config), stopped by pid after."""
    port = free_port()
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"worker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log info;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n  access_log {tmp_path}/access.log;\n"
        f"  client_body_temp_path {tmp_path}/body;\n  proxy_temp_path {tmp_path}/proxy;\n"
        + textwrap.dedent(http).replace("{port}", str(port))
        + "\n}\n"
    )
    proc = ManagedProcess(
        "nginx",
        [nginx_bin, "-p", f"{tmp_path}/", "-c", str(config), "-g", "daemon off;"],
        tmp_path / "nginx.out",
    )
    proc.start(ready=lambda: wait_for_port(port))
    try:
        yield port, config
    finally:
        proc.stop()


@pytest.fixture
def run_nginx(tmp_path: Path, nginx_bin: str) -> Iterator[RunNginx]:
    """run_nginx(server_block_with_{port}) -> (port, config): nginx serving it, stopped after."""
    with ExitStack() as started:

        def start(server: str) -> tuple[int, Path]:
            return started.enter_context(nginx_serving(tmp_path, nginx_bin, server))

        yield start


def get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_location_proxy_set_header_drops_the_servers_as_doctor_says(
    run_nginx: RunNginx, backend: tuple[int, Seen]
) -> None:
    app_port, seen = backend
    port, config = run_nginx(
        f"""
        server {{
            listen 127.0.0.1:{{port}};
            proxy_set_header X-From-Server yes;
            location /kept {{ proxy_pass http://127.0.0.1:{app_port}; }}
            location /dropped {{
                proxy_set_header X-From-Location yes;
                proxy_pass http://127.0.0.1:{app_port};
            }}
        }}
        """
    )
    assert get(port, "/kept") == 200 and get(port, "/dropped") == 200
    headers = dict(seen)
    assert headers["/kept"].get("x-from-server") == "yes"
    assert "x-from-server" not in headers["/dropped"]
    finding = only(diagnose_file(config), "proxy-set-header-drops-inherited")
    assert "location /dropped" in finding.message and "x-from-server" in finding.message


def test_return_ends_the_request_before_the_mirror_as_doctor_says(
    run_nginx: RunNginx, backend: tuple[int, Seen]
) -> None:
    app_port, seen = backend
    port, config = run_nginx(
        f"""
        server {{
            listen 127.0.0.1:{{port}};
            location /answered {{ mirror /_m; return 200; }}
            location /proxied {{ mirror /_m; proxy_pass http://127.0.0.1:{app_port}; }}
            location = /_m {{ internal; proxy_pass http://127.0.0.1:{app_port}/copy$request_uri; }}
        }}
        """
    )
    assert get(port, "/answered") == 200
    assert get(port, "/proxied") == 200
    wait_until(lambda: "/copy/proxied" in {p for p, _ in seen}, "the copy of /proxied")
    assert "/copy/answered" not in {p for p, _ in seen}
    finding = only(diagnose_file(config), "mirror-never-runs")
    assert "location /answered" in finding.message


def test_error_page_into_a_mirroring_location_copies_twice_as_doctor_says(
    run_nginx: RunNginx, backend: tuple[int, Seen]
) -> None:
    app_port, seen = backend
    port, config = run_nginx(
        f"""
        server {{
            listen 127.0.0.1:{{port}};
            mirror /_m;
            location /static {{ root {{root}}; error_page 404 = /fallback; }}
            location /fallback {{ proxy_pass http://127.0.0.1:{app_port}; }}
            location = /_m {{ internal; proxy_pass http://127.0.0.1:{app_port}/copy$request_uri; }}
        }}
        """.replace("{root}", "/nonexistent-hookshift-root")
    )
    assert get(port, "/static/missing.html") == 200
    wait_until(lambda: len(seen) >= 3, "the fallback request and two copies")
    copies = [p for p, _ in seen if p == "/copy/static/missing.html"]
    assert len(copies) == 2
    assert only(diagnose_file(config), "mirror-twice-via-error-page")


def test_rewrite_last_leaves_before_the_mirror_break_stays_as_doctor_says(
    run_nginx: RunNginx, backend: tuple[int, Seen]
) -> None:
    app_port, seen = backend
    port, config = run_nginx(
        f"""
        server {{
            listen 127.0.0.1:{{port}};
            location /last {{ mirror /_m; rewrite ^ /app last; }}
            location /break {{
                mirror /_m;
                rewrite ^ /app break;
                proxy_pass http://127.0.0.1:{app_port};
            }}
            location /app {{ proxy_pass http://127.0.0.1:{app_port}; }}
            location = /_m {{ internal; proxy_pass http://127.0.0.1:{app_port}/copy$request_uri; }}
        }}
        """
    )
    assert get(port, "/last") == 200
    assert get(port, "/break") == 200
    wait_until(lambda: "/copy/break" in {p for p, _ in seen}, "the copy of /break")
    assert "/copy/last" not in {p for p, _ in seen}
    findings = [f for f in diagnose_file(config) if f.code == "mirror-never-runs"]
    assert len(findings) == 1 and "location /last" in findings[0].message


@pytest.mark.parametrize(
    ("location", "host", "code"),
    [
        (
            "proxy_pass https://abc123.execute-api.ap-northeast-2.amazonaws.com/dev$request_uri;",
            "abc123.execute-api",
            "proxy-pass-no-resolver",
        ),
        (
            "set $php php.internal.test:9000; fastcgi_temp_path fastcgi; fastcgi_pass $php;",
            "php.internal.test",
            "fastcgi-pass-no-resolver",
        ),
        (  # the scheme alone is a variable: the host is still resolved per request
            "proxy_pass $scheme://backend.internal.test;",
            "backend.internal.test",
            "proxy-pass-no-resolver",
        ),
    ],
)
def test_no_resolver_fails_at_run_time_as_doctor_says(
    run_nginx: RunNginx, location: str, host: str, code: str
) -> None:
    port, config = run_nginx(
        f"""
        server {{
            listen 127.0.0.1:{{port}};
            location /callback {{ {location} }}
        }}
        """
    )
    assert get(port, "/callback") == 502
    error_log = (config.parent / "error.log").read_text()
    assert f"no resolver defined to resolve {host}" in error_log
    assert only(diagnose_file(config), code)


def test_return_inside_if_skips_the_mirror_for_matching_requests_as_doctor_says(
    run_nginx: RunNginx, backend: tuple[int, Seen]
) -> None:
    app_port, seen = backend
    port, config = run_nginx(
        f"""
        server {{
            listen 127.0.0.1:{{port}};
            location /callback {{
                if ($arg_probe) {{ return 204; }}
                mirror /_m;
                proxy_pass http://127.0.0.1:{app_port};
            }}
            location = /_m {{ internal; proxy_pass http://127.0.0.1:{app_port}/copy$request_uri; }}
        }}
        """
    )
    assert get(port, "/callback?probe=1") == 204
    assert get(port, "/callback?n=2") == 200
    wait_until(lambda: "/copy/callback?n=2" in {p for p, _ in seen}, "the copy of n=2")
    assert not [p for p, _ in seen if "probe" in p]  # neither copied nor sent to the app
    finding = only(diagnose_file(config), "mirror-skipped-if")
    assert finding.severity.name == "INFO"
    assert "`if ($arg_probe)`" in finding.message and "`return 204`" in finding.message
    assert "mirror-never-runs" not in {f.code for f in diagnose_file(config)}


@pytest.mark.parametrize(
    ("server_level", "taken"),
    [
        ("if ($uri ~ ^/_) { return 403; }", "return 403"),
        ("rewrite ^/_m$ /elsewhere last;", "rewrite ^/_m$ /elsewhere last"),
        ("if ($request_uri ~ ^/_) { return 403; }", None),  # a copy keeps the callback's
    ],
)
def test_a_server_level_line_takes_the_mirror_copies_as_doctor_says(
    run_nginx: RunNginx, backend: tuple[int, Seen], server_level: str, taken: str | None
) -> None:
    app_port, seen = backend
    port, config = run_nginx(
        f"""
        server {{
            listen 127.0.0.1:{{port}};
            {server_level}
            location /callback {{ mirror /_m; proxy_pass http://127.0.0.1:{app_port}; }}
            location = /_m {{ internal; proxy_pass http://127.0.0.1:{app_port}/copy$request_uri; }}
            location = /elsewhere {{ return 204; }}
        }}
        """
    )
    assert get(port, "/callback") == 200
    assert get(port, "/callback?n=2") == 200
    wait_until(lambda: "/callback?n=2" in {p for p, _ in seen}, "the second callback")
    findings = [f for f in diagnose_file(config) if f.code == "mirror-copy-taken"]
    if taken is None:
        wait_until(lambda: "/copy/callback?n=2" in {p for p, _ in seen}, "the second copy")
        assert findings == []
    else:
        assert not [p for p, _ in seen if p.startswith("/copy")]
        (finding,) = findings
        assert f"`{taken}`" in finding.message and "`mirror /_m`" in finding.message


def test_a_server_level_return_handed_to_the_mirroring_location_as_doctor_says(
    run_nginx: RunNginx, backend: tuple[int, Seen]
) -> None:
    """error_page hands the callback on to the location that mirrors, so its mirror runs;
    the copy meets the same return and is handed to the app too (as the mirror's URI)."""
    app_port, seen = backend
    port, config = run_nginx(
        f"""
        server {{
            listen 127.0.0.1:{{port}};
            error_page 418 = @app;
            return 418;
            location @app {{ mirror /_m; proxy_pass http://127.0.0.1:{app_port}; }}
            location = /_m {{ internal; proxy_pass http://127.0.0.1:{app_port}/copy$request_uri; }}
        }}
        """
    )
    assert get(port, "/callback") == 200
    wait_until(lambda: len(seen) >= 2, "the callback and its copy")
    assert [p for p, _ in seen] == ["/callback", "/_m"]  # none went to /copy
    codes = {f.code for f in diagnose_file(config)}
    assert "mirror-never-runs" not in codes
    assert "mirror-copy-taken" in codes
