"""The mirror goes where nginx really hands the callback to the app, on routes that reach it
the long way: named locations behind try_files, error_page (in the location, at server level,
recursive), rewrites (last, break, without a flag, in an if on the request's URI), targets
built from $request_uri, the server's own try_files, nested locations and an app inside an
`if`. For each, the plan is applied, the real nginx serves a POST of the
callback, and the app must get it once and the stage one copy with the same bytes."""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from hookshift.mirror.apply import apply_plan
from hookshift.mirror.plan import MirrorOptions, MirrorPlan, make_plan
from hookshift.procs import LOOPBACK, wait_until
from hookshift.rehearsal.dns import DnsServer
from tests.mirror.servers import RecordingServer
from tests.mirror.test_functional import (
    SAMPLE,
    _options,
    _post_to,
    _start_nginx,
)
from tests.mirror.test_functional import app as app  # the fixtures, as there
from tests.mirror.test_functional import dns as dns
from tests.mirror.test_functional import port as port
from tests.mirror.test_functional import stage as stage

pytestmark = pytest.mark.e2e  # starts nginx, the app and the stage

APP = "proxy_pass http://127.0.0.1:{app};"
# (server-level lines, locations): each reaches the app for POST /callback by another road
ROUTES = {
    "try_files to a named location": (
        "",
        "location / {{ try_files /nonexistent @app; }} location @app {{ " + APP + " }}",
    ),
    "the static 404 handed on by error_page": (
        "",
        "location / {{ error_page 404 = @app; }} location @app {{ " + APP + " }}",
    ),
    "return 418 handed on by error_page": (
        "",
        "location / {{ error_page 418 = @app; return 418; }} location @app {{ " + APP + " }}",
    ),
    "a server-level return on the callback's URI handed on by error_page": (
        "error_page 418 = @app; if ($uri = /callback) {{ return 418; }}",
        "location / {{ return 404; }} location @app {{ " + APP + " }}",
    ),
    "past a server-level guard on the request's URI, which the copy keeps": (
        "if ($request_uri ~ ^/__) {{ return 403; }}",
        "location /callback {{ " + APP + " }}",
    ),
    "error_page twice, recursive": (
        "",
        "location / {{ recursive_error_pages on; error_page 404 = @one; return 404; }} "
        "location @one {{ error_page 404 = @app; return 404; }} "
        "location @app {{ " + APP + " }}",
    ),
    "rewrite last from a regex location": (
        "",
        "location ~ ^/call {{ rewrite ^/callback$ /app/cb last; }} location /app/ {{ "
        + APP
        + " }}",
    ),
    "rewrite in an if on the request's URI": (
        "",
        "location /callback {{ if ($request_uri ~ ^/callback) {{ rewrite ^ /x last; }} }} "
        "location = /x {{ " + APP + " }}",
    ),
    "rewrite break, then the app in the same location": (
        "",
        "location = /callback {{ rewrite ^ /hooks/in break; " + APP + " }}",
    ),
    "a nested regex location": (
        "",
        "location / {{ location ~ back$ {{ " + APP + " }} }}",
    ),
    "the app inside an if": (
        "",
        "location /callback {{ if ($request_method = POST) {{ " + APP + " }} }}",
    ),
    "the server's try_files, where no location takes the path": (
        "try_files /nonexistent @app;",
        "location ^~ /assets/ {{ return 404; }} location @app {{ " + APP + " }}",
    ),
    "an app location that takes only files on disk (the callback's script is one)": (
        "",
        "location /callback {{ try_files $uri =404; " + APP + " }}",
    ),
    "try_files to /index.php$request_uri (Nextcloud's current config)": (
        "",
        "location / {{ try_files $uri $uri/ /index.php$request_uri; }} "
        "location ~ \\.php(?:$|/) {{ " + APP + " }}",
    ),
    "a rewrite without a flag (Nextcloud's older config)": (
        "",
        "location / {{ rewrite ^ /index.php; }} location ~ \\.php$ {{ " + APP + " }}",
    ),
    "try_files $uri, then a named location": (
        "",
        "location ^~ /call {{ try_files $uri $uri/ @app; }} location @app {{ " + APP + " }}",
    ),
}


@dataclass(frozen=True)
class Bed:
    """A callback server's config in `prefix` (proxying to `app`, listening on `port`), the
    stage, its DNS server and CA, and the nginx binary."""

    prefix: Path
    nginx_bin: str
    app: RecordingServer
    stage: RecordingServer
    dns: DnsServer
    ca_file: Path
    port: int

    def options(self) -> MirrorOptions:
        """The bed's mirror options, as test_functional plans them."""
        return _options(self.prefix, self.stage.port, self.dns, self.ca_file)

    def apply(self, options: MirrorOptions) -> MirrorPlan:
        """Plan `options` for nginx 1.22's layout and apply it to the bed's config."""
        plan = make_plan(options, (1, 22, 1))
        apply_plan(
            plan, nginx_bin=self.nginx_bin, backup_dir=self.prefix / "bk", prefix=self.prefix
        )
        return plan


@pytest.fixture
def bed(
    tmp_path: Path,
    nginx_bin: str,
    app: RecordingServer,
    stage: RecordingServer,
    dns: DnsServer,
    ca_file: Path,
    port: int,
) -> Bed:
    return Bed(tmp_path, nginx_bin, app, stage, dns, ca_file, port)


@pytest.mark.parametrize("road", list(ROUTES))
def test_the_callback_is_copied_where_nginx_hands_it_to_the_app(road: str, bed: Bed) -> None:
    tmp_path, nginx_bin, app, stage, port = bed.prefix, bed.nginx_bin, bed.app, bed.stage, bed.port
    server_lines, locations = ROUTES[road]
    config = tmp_path / "nginx.conf"
    callback = f"location = /callback {{ proxy_pass http://127.0.0.1:{app.port}; }}"
    text = config.read_text()
    assert callback in text
    replaced = (server_lines + "\n        " + locations).format(app=app.port)
    config.write_text(text.replace(callback, replaced))
    (tmp_path / "html").mkdir(exist_ok=True)
    if "=404" in locations:
        (tmp_path / "html" / "callback").write_text("the callback's script")
    plan = bed.apply(bed.options())
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        assert _post_to(port, "/callback?src=vendor") == 200
        wait_until(lambda: len(stage.received) >= 1, f"the copy at the stage ({plan.route})")
        assert [r.body for r in app.received] == [SAMPLE]
        assert [(r.path, r.body) for r in stage.received] == [("/prod/callback?src=vendor", SAMPLE)]
    finally:
        nginx.stop()


def test_forward_mode_passes_a_server_level_guard_on_its_own_uri(bed: Bed) -> None:
    """Forward mode's `rewrite ... last` goes to location selection, past the server's own
    rewrites: a guard there on paths like hookshift's internal one does not stop it (the
    mirror's subrequest would be stopped, and mirror mode refuses such a config)."""
    tmp_path, nginx_bin, app, stage, port = bed.prefix, bed.nginx_bin, bed.app, bed.stage, bed.port
    config = tmp_path / "nginx.conf"
    text = config.read_text()
    config.write_text(
        text.replace(
            "server_name hooks.test;",
            "server_name hooks.test;\n        if ($uri ~ ^/__) { return 403; }",
        )
    )
    bed.apply(replace(bed.options(), mode="forward", timeout=None))
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        assert _post_to(port, "/callback?src=vendor") == 200
        assert app.received == []
        assert [(r.path, r.body) for r in stage.received] == [("/prod/callback?src=vendor", SAMPLE)]
    finally:
        nginx.stop()


def _post_raw(port: int, target: bytes) -> int:
    """POST with the request target as these bytes: a client that sends UTF-8 unescaped."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as conn:
        conn.sendall(
            b"POST " + target + b" HTTP/1.1\r\nHost: hooks.test\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(SAMPLE)).encode() + b"\r\n\r\n" + SAMPLE
        )
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize("given", ["/hooks/콜백", "/hooks/%ec%bd%9c%eb%b0%b1"])
def test_a_path_outside_ascii_is_copied_in_each_form_a_client_sends(given: str, bed: Bed) -> None:
    """Vendors' HTTP libraries send a Korean path escaped in upper or lower case, or as its
    UTF-8 bytes: the callback is copied and logged for parity in each form."""
    tmp_path, nginx_bin, app, stage, port = bed.prefix, bed.nginx_bin, bed.app, bed.stage, bed.port
    config = tmp_path / "nginx.conf"
    config.write_text(config.read_text().replace("location = /callback", "location /hooks/"))
    bed.apply(replace(bed.options(), path=given))
    sent = [b"/hooks/%EC%BD%9C%EB%B0%B1", b"/hooks/%ec%bd%9c%eb%b0%b1", "/hooks/콜백".encode()]
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        assert [_post_raw(port, target) for target in sent] == [200, 200, 200]
        assert _post_raw(port, b"/hooks/other") == 200  # served, neither copied nor logged
        wait_until(lambda: len(stage.received) >= 3, "a copy of each form at the stage")
        assert len(app.received) == 4
        assert sorted(r.path.encode("latin-1") for r in stage.received) == sorted(
            b"/prod" + target for target in sent
        )
        logged = (tmp_path / "parity.log").read_text().splitlines()
        assert len(logged) == 3
    finally:
        nginx.stop()


@pytest.mark.parametrize("level", ["server", "enclosing location"])
def test_a_mirror_the_callback_inherits_keeps_its_copy(level: str, bed: Bed) -> None:
    """A location with a `mirror` of its own drops the ones it inherits: with hookshift's line
    there, the user's audit mirror would silently stop getting callbacks; it gets each one as
    before, and the stage its copy."""
    tmp_path, nginx_bin, app, stage, port = bed.prefix, bed.nginx_bin, bed.app, bed.stage, bed.port
    audit = RecordingServer().start()
    config = tmp_path / "nginx.conf"
    callback = f"location = /callback {{ proxy_pass http://127.0.0.1:{app.port}; }}"
    audit_location = f"location = /audit {{ internal; proxy_pass http://127.0.0.1:{audit.port}; }}"
    if level == "server":
        replaced = f"mirror /audit; {callback} {audit_location}"
    else:
        replaced = f"location / {{ mirror /audit; {callback} }} {audit_location}"
    config.write_text(config.read_text().replace(callback, replaced))
    try:
        bed.apply(bed.options())
        nginx = _start_nginx(nginx_bin, tmp_path, port)
        try:
            assert _post_to(port, "/callback") == 200
            wait_until(lambda: len(stage.received) >= 1, "the copy at the stage")
            wait_until(lambda: len(audit.received) >= 1, "the user's own mirror's copy")
            assert [r.body for r in app.received] == [SAMPLE]
            assert [r.body for r in audit.received] == [SAMPLE]
        finally:
            nginx.stop()
    finally:
        audit.stop()


def test_http_level_body_files_and_subrequest_logging_stay_the_users(bed: Bed) -> None:
    """`client_body_in_file_only on` and `log_subrequest on` at http level are the user's for
    their own requests: the relay keeps no copy's body as a file (nothing would delete it) and
    the copy's hand-off adds no line to the user's access log."""
    tmp_path, nginx_bin, app, stage, port = bed.prefix, bed.nginx_bin, bed.app, bed.stage, bed.port
    config = tmp_path / "nginx.conf"
    text = config.read_text()
    config.write_text(
        text.replace(
            "http {\n", "http {\n    client_body_in_file_only on;\n    log_subrequest on;\n"
        )
    )
    bed.apply(bed.options())
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        assert _post_to(port, "/callback") == 200
        wait_until(lambda: len(stage.received) >= 1, "the copy at the stage")
        assert [r.body for r in app.received] == [SAMPLE]
    finally:
        nginx.stop()
    kept = [p for p in tmp_path.rglob("*") if p.is_file() and p.name.isdigit()]  # body files
    assert len(kept) == 1  # the callback's own body file, which the user asked nginx to keep
    logged = (tmp_path / "access.log").read_text().splitlines()
    assert len(logged) == 1 and "POST /callback " in logged[0]


def test_http_level_access_control_for_the_vendors_servers_leaves_the_relay_alone(
    bed: Bed,
) -> None:
    """A config that denies everyone and asks for a password at http level, and lets the
    vendor in per server: the relay servers (a private unix socket) turn both off for
    themselves, so the copy reaches the stage (before, the relay answered 403 to every copy)."""
    tmp_path, nginx_bin, stage, port = bed.prefix, bed.nginx_bin, bed.stage, bed.port
    (tmp_path / "htpasswd").write_text("ops:$apr1$3P8Tn6gS$ZyHJPLZ4b3Xf1JN4.9VYc.\n")
    config = tmp_path / "nginx.conf"
    text = config.read_text()
    http_level = "    deny all;\n    auth_basic admin;\n    auth_basic_user_file htpasswd;\n"
    vendor = "server_name hooks.test;\n        allow 127.0.0.1;\n        auth_basic off;"
    config.write_text(
        text.replace("http {\n", "http {\n" + http_level).replace("server_name hooks.test;", vendor)
    )
    plan = bed.apply(bed.options())
    assert not any("also applies to hookshift's relay" in w for w in plan.warnings)
    nginx = _start_nginx(nginx_bin, tmp_path, port)
    try:
        assert _post_to(port, "/callback") == 200
        wait_until(lambda: len(stage.received) >= 1, "the copy at the stage")
        assert [r.body for r in stage.received] == [SAMPLE]
    finally:
        nginx.stop()
