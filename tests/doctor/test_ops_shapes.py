"""Shapes of an ops engineer's nginx config that doctor judged wrong, each shown on the real
nginx (both binaries) on loopback: what nginx does, then what doctor says of the same config.

- ``try_files $uri $uri/ @app`` beside a ``mirror``: try_files runs first in the phase the
  mirror runs in, so a callback (no file) leaves for ``@app`` uncopied;
- ``satisfy any`` with ``deny all`` and ``auth_basic``: a sender with credentials passes;
- a host variable that names a host:port another ``proxy_pass`` names without variables, or
  a ``geo`` that picks an ``upstream``: nginx needs no resolver for either;
- an allow-list at http level (a file dropped into conf.d) applies to the relay server too,
  which gets the copies from nginx itself over a unix socket.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookshift.doctor import Severity, diagnose_file
from hookshift.mirror.plan import MirrorOptions, make_plan
from hookshift.procs import LOOPBACK, wait_until
from tests.doctor.conftest import Diagnose, codes, line_of, only, write_config
from tests.doctor.samples import protected_mirror
from tests.doctor.test_hookshift_output import CALLBACK_SITE
from tests.doctor.test_runtime import get, nginx_serving
from tests.mirror.servers import RecordingServer

CALLBACK = "/bizppurio/callback"


@pytest.fixture
def app() -> Iterator[RecordingServer]:
    """The app and, under /copy/, the stage: one recording server on loopback."""
    server = RecordingServer().start()
    yield server
    server.stop()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose path fits a unix socket's 107 bytes (pytest's tmp_path may not), that
    nginx's workers (another user when the tests run as root) can enter."""
    path = Path(tempfile.mkdtemp(prefix="hs-doctor-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def post(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{port}{path}", data=b"MSGID=1&RESULT=4100", headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def paths(server: RecordingServer) -> list[str]:
    with server.lock:
        return [r.path for r in server.received]


@pytest.mark.e2e
def test_try_files_hands_the_callback_on_before_the_mirror_as_doctor_says(
    tmp_path: Path, each_nginx: str, app: RecordingServer
) -> None:
    http = f"""
        server {{
            listen 127.0.0.1:{{port}};
            root {tmp_path}/www;
            location /bizppurio/ {{
                mirror /_m;
                try_files $uri $uri/ @app;
            }}
            location /kakao/ {{
                try_files $uri $uri/ @kakao;
            }}
            location @app {{ proxy_pass http://127.0.0.1:{app.port}; }}
            location @kakao {{ mirror /_m; proxy_pass http://127.0.0.1:{app.port}; }}
            location = /_m {{ internal; proxy_pass http://127.0.0.1:{app.port}/copy$request_uri; }}
        }}
        """
    with nginx_serving(tmp_path, each_nginx, http) as (port, config):
        assert post(port, CALLBACK) == 200
        assert post(port, "/kakao/callback") == 200
        wait_until(lambda: "/copy/kakao/callback" in paths(app), "the copy of /kakao/callback")
        assert CALLBACK in paths(app)  # the app got it ...
        assert f"/copy{CALLBACK}" not in paths(app)  # ... and the mirror never ran
        found = diagnose_file(config)
    finding = only(found, "mirror-never-runs")
    assert finding.severity is Severity.ERROR
    assert finding.where == line_of(config, "try_files $uri $uri/ @app")
    assert "location @app" in finding.message and "location @app" in finding.fix


def test_try_files_into_a_location_that_mirrors_is_not_told(diagnose_http: Diagnose) -> None:
    """The copy is then made where the request lands: once, as wanted."""
    found = diagnose_http(
        """
        server {
            listen 127.0.0.1:8081;
            location / { mirror /_m; try_files $uri /index.php?$args; }
            location /static/ { mirror /_m; try_files $uri =404; }
            location ~ \\.php$ { mirror /_m; fastcgi_pass 127.0.0.1:9000; }
            location = /_m { internal; proxy_pass http://127.0.0.1:9001; }
        }
        """
    )
    assert "mirror-never-runs" not in codes(found)


@pytest.mark.e2e
def test_satisfy_any_lets_a_sender_with_credentials_past_deny_all_as_doctor_says(
    tmp_path: Path, each_nginx: str, app: RecordingServer, short_dir: Path
) -> None:
    htpasswd = short_dir / "htpasswd"
    htpasswd.write_text("vendor:{PLAIN}s3cret\n")
    htpasswd.chmod(0o644)
    http = f"""
        server {{
            listen 127.0.0.1:{{port}};
            location /bizppurio/ {{
                satisfy any;
                deny all;
                auth_basic "callbacks";
                auth_basic_user_file {htpasswd};
                mirror /_m;
                proxy_pass http://127.0.0.1:{app.port};
            }}
            location = /_m {{ internal; proxy_pass http://127.0.0.1:{app.port}/copy$request_uri; }}
        }}
        """
    token = base64.b64encode(b"vendor:s3cret").decode()
    with nginx_serving(tmp_path, each_nginx, http) as (port, config):
        assert post(port, CALLBACK) == 401
        assert post(port, CALLBACK, {"Authorization": f"Basic {token}"}) == 200
        wait_until(lambda: f"/copy{CALLBACK}" in paths(app), "the copy of the callback")
        found = diagnose_file(config)
    assert "mirror-never-runs" not in codes(found)
    assert only(found, "mirror-skipped-when-denied").severity is Severity.INFO
    auth = only(found, "mirror-skipped-by-auth-basic")
    assert auth.severity is Severity.INFO
    assert auth.where == line_of(config, 'auth_basic "callbacks"')


@pytest.mark.e2e
def test_a_variable_url_to_a_host_another_proxy_pass_names_needs_no_resolver(
    tmp_path: Path, each_nginx: str, app: RecordingServer
) -> None:
    """nginx makes an upstream of every proxy_pass without variables at load time (resolved
    then) and looks a variable URL's host and port up among them before asking a resolver;
    a `geo` choosing between `upstream` blocks needs none either."""
    http = f"""
        upstream blue {{ server 127.0.0.1:{app.port}; }}
        upstream green {{ server 127.0.0.1:{app.port}; }}
        geo $pool {{ default blue; 10.0.0.0/8 green; }}
        server {{
            listen 127.0.0.1:{{port}};
            location / {{ proxy_pass http://localhost:{app.port}; }}
            location /same/ {{ proxy_pass http://localhost:{app.port}$request_uri; }}
            location /geo/ {{ proxy_pass http://$pool; }}
            location /other/ {{ proxy_pass http://localhost:1$request_uri; }}
        }}
        """
    with nginx_serving(tmp_path, each_nginx, http) as (port, config):
        assert get(port, "/same/x") == 200
        assert get(port, "/geo/x") == 200
        assert get(port, "/other/x") == 502
        error_log = (tmp_path / "error.log").read_text()
        assert error_log.count("no resolver defined to resolve localhost") == 1
        found = diagnose_file(config)
    flagged = [f for f in found if f.code == "proxy-pass-no-resolver"]
    assert [f.where for f in flagged] == [line_of(config, "http://localhost:1$request_uri")]
    assert flagged[0].severity is Severity.ERROR


@pytest.mark.e2e
@pytest.mark.parametrize("allow_unix", [False, True], ids=["allow-list", "allow-list + unix:"])
def test_an_http_level_allow_list_refuses_the_relays_copies_as_doctor_says(
    tmp_path: Path, each_nginx: str, app: RecordingServer, short_dir: Path, allow_unix: bool
) -> None:
    """The vendor (here 127.0.0.1) passes the allow-list at the front; the relay gets each copy
    from nginx itself over a unix socket, where the same list applies, unless it allows
    ``unix:``."""
    sock = short_dir / "relay.sock"
    http = f"""
        allow 127.0.0.1;
        {"allow unix:;" if allow_unix else ""}
        deny all;
        server {{
            listen 127.0.0.1:{{port}};
            location = {CALLBACK} {{
                mirror /_m;
                proxy_pass http://127.0.0.1:{app.port};
            }}
            location = /_m {{
                internal;
                proxy_connect_timeout 1s; proxy_send_timeout 1s; proxy_read_timeout 1s;
                proxy_pass http://unix:{sock}:$request_uri;
            }}
        }}
        server {{
            listen unix:{sock};
            location = {CALLBACK} {{
                mirror /_stage;
                empty_gif;
                error_page 405 =204 @accepted;
            }}
            location @accepted {{ return 204; }}
            location = /_stage {{
                internal;
                proxy_pass http://127.0.0.1:{app.port}/copy$request_uri;
            }}
        }}
        """
    with nginx_serving(tmp_path, each_nginx, http) as (port, config):
        assert post(port, CALLBACK) == 200
        wait_until(lambda: CALLBACK in paths(app), "the callback at the app")
        access_log = tmp_path / "access.log"
        relay_line = wait_until(
            lambda: next(
                (ln for ln in access_log.read_text().splitlines() if ln.startswith("unix:")), ""
            ),
            "the relay's request in the access log",
        )
        relay_status = relay_line.split('"')[2].split()[0]
        if allow_unix:
            wait_until(lambda: f"/copy{CALLBACK}" in paths(app), "the copy at the stage")
            assert relay_status == "204"
        else:
            assert relay_status == "403"
            assert f"/copy{CALLBACK}" not in paths(app)
        found = diagnose_file(config)
    if allow_unix:
        assert "relay-refuses-copies" not in codes(found)
        return
    finding = only(found, "relay-refuses-copies")
    assert finding.severity is Severity.ERROR
    assert finding.where == line_of(config, "deny all;")
    assert "allow unix:;" in finding.fix
    # the relay's own mirror is not a callback's: the access findings are the front's only
    skipped = [f for f in found if f.code == "mirror-skipped-when-denied"]
    assert skipped and all("mirror /_m" in f.message for f in skipped)


def test_http_level_auth_and_limit_req_are_told_for_the_relay(diagnose_http: Diagnose) -> None:
    """Both gate the relay's copies as they gate the callbacks; the copies all come from one
    address there, so a per-client limit is shared by every sender."""
    found = diagnose_http(
        "limit_req_zone $binary_remote_addr zone=perip:1m rate=5r/s;\n"
        "limit_req zone=perip burst=10;\n"
        'auth_basic "internal";\nauth_basic_user_file /etc/nginx/htpasswd;\n' + protected_mirror()
    )
    relay = [f for f in found if f.code == "relay-refuses-copies"]
    assert {f.severity for f in relay} == {Severity.WARNING}
    assert any("limit_req zone=perip" in f.message for f in relay)
    assert any("auth_basic" in f.message and "auth_basic off;" in f.fix for f in relay)
    dry_run = diagnose_http(
        "limit_req_zone $binary_remote_addr zone=perip:1m rate=5r/s;\n"
        "limit_req zone=perip burst=10;\nlimit_req_dry_run on;\n" + protected_mirror()
    )
    assert "relay-refuses-copies" not in codes(dry_run)


@pytest.mark.e2e
def test_error_page_to_a_named_location_that_mirrors_copies_twice_as_doctor_says(
    tmp_path: Path, each_nginx: str, app: RecordingServer
) -> None:
    """An app that is down (a deploy) hands the callback to a fallback that mirrors too: nginx
    resets the mirror on the way into a named location as into any other."""
    http = f"""
        server {{
            listen 127.0.0.1:{{port}};
            location = {CALLBACK} {{
                mirror /_m;
                proxy_pass http://127.0.0.1:1;
                error_page 502 = @spare;
            }}
            location @spare {{ mirror /_m; proxy_pass http://127.0.0.1:{app.port}; }}
            location = /_m {{ internal; proxy_pass http://127.0.0.1:{app.port}/copy$request_uri; }}
        }}
        """
    with nginx_serving(tmp_path, each_nginx, http) as (port, config):
        assert post(port, CALLBACK) == 200
        wait_until(lambda: paths(app).count(f"/copy{CALLBACK}") == 2, "two copies")
        found = diagnose_file(config)
    finding = only(found, "mirror-twice-via-error-page")
    assert finding.where == line_of(config, "error_page 502 = @spare")
    assert "location @spare" in finding.message


@pytest.mark.e2e
def test_nginx_docs_mirror_location_sends_copies_without_body_as_doctor_says(
    tmp_path: Path, each_nginx: str, app: RecordingServer
) -> None:
    """The mirror location of nginx's own documentation (made to log requests) passes no
    body: copied as it is, the stage queues empty callbacks."""
    http = f"""
        server {{
            listen 127.0.0.1:{{port}};
            location = {CALLBACK} {{ mirror /mirror; proxy_pass http://127.0.0.1:{app.port}; }}
            location = /mirror {{
                internal;
                proxy_pass http://127.0.0.1:{app.port}/copy$request_uri;
                proxy_pass_request_body off;
                proxy_set_header Content-Length "";
                proxy_set_header X-Original-URI $request_uri;
            }}
        }}
        """
    with nginx_serving(tmp_path, each_nginx, http) as (port, config):
        assert post(port, CALLBACK) == 200
        wait_until(lambda: f"/copy{CALLBACK}" in paths(app), "the copy")
        with app.lock:
            bodies = {r.path: r.body for r in app.received}
        assert bodies[CALLBACK] == b"MSGID=1&RESULT=4100"
        assert bodies[f"/copy{CALLBACK}"] == b""
        found = diagnose_file(config)
    finding = only(found, "mirror-no-body")
    assert finding.severity is Severity.ERROR
    assert finding.where == line_of(config, "proxy_pass_request_body off")


@pytest.mark.e2e
def test_error_page_into_a_location_that_returns_copies_once_as_doctor_says(
    tmp_path: Path, each_nginx: str, app: RecordingServer
) -> None:
    """A fallback that answers with `return` does so in the rewrite phase, before its
    (inherited) mirror: the request is copied once, in the location it failed in."""
    http = f"""
        server {{
            listen 127.0.0.1:{{port}};
            mirror /_m;
            location = {CALLBACK} {{
                error_page 502 = /fallback;
                proxy_pass http://127.0.0.1:1;
            }}
            location /fallback {{ return 200; }}
            location /later {{ proxy_pass http://127.0.0.1:{app.port}; }}
            location = /_m {{ internal; proxy_pass http://127.0.0.1:{app.port}/copy$request_uri; }}
        }}
        """
    with nginx_serving(tmp_path, each_nginx, http) as (port, config):
        assert post(port, CALLBACK) == 200
        assert post(port, "/later") == 200
        wait_until(lambda: "/copy/later" in paths(app), "the copy of a later request")
        assert paths(app).count(f"/copy{CALLBACK}") == 1
        found = diagnose_file(config)
    assert "mirror-twice-via-error-page" not in codes(found)


@pytest.mark.e2e
def test_a_whole_url_in_a_variable_is_judged_by_its_value_as_nginx_uses_it(
    tmp_path: Path, each_nginx: str, app: RecordingServer
) -> None:
    """``set $stage https://HOST; proxy_pass $stage$request_uri;`` is how nginx is made to
    resolve a name per request: without a resolver every request fails, and doctor reads the
    host (and the scheme, for TLS) from the value."""
    http = f"""
        server {{
            listen 127.0.0.1:{{port}};
            location /named/ {{
                set $stage "http://stage.example.com";
                proxy_pass $stage$request_uri;
            }}
            location /ip/ {{
                set $stage "http://127.0.0.1:{app.port}";
                proxy_pass $stage$request_uri;
            }}
        }}
        """
    with nginx_serving(tmp_path, each_nginx, http) as (port, config):
        assert get(port, "/named/x") == 502
        assert get(port, "/ip/x") == 200
        error_log = (tmp_path / "error.log").read_text()
        assert "no resolver defined to resolve stage.example.com" in error_log
        found = diagnose_file(config)
    finding = only(found, "proxy-pass-no-resolver")
    assert finding.severity is Severity.ERROR
    assert finding.where == line_of(config, "proxy_pass $stage$request_uri")
    assert "no resolver defined to resolve stage.example.com" in finding.message


def test_a_stage_url_in_a_variable_gets_the_stage_checks(diagnose_http: Diagnose) -> None:
    found = diagnose_http(
        """
        upstream app { server 127.0.0.1:9000; }
        server {
            listen 127.0.0.1:8081;
            location /bizppurio/callback { mirror /m; proxy_pass http://app; }
            location = /m {
                internal;
                resolver 10.0.0.2 valid=10s ipv6=off;
                resolver_timeout 2s;
                set $stage "https://abc123.execute-api.ap-northeast-2.amazonaws.com";
                proxy_pass $stage/dev$request_uri;
            }
        }
        """
    )
    assert only(found, "proxy-ssl-no-sni").severity is Severity.ERROR
    assert {"proxy-ssl-no-verify", "mirror-forwards-credentials"} <= codes(found)
    assert "proxy-pass-no-resolver" not in codes(found)


def test_satisfy_any_leaves_the_relay_to_its_authentication(diagnose_http: Diagnose) -> None:
    """A copy carries the vendor's own headers: under `satisfy any` credentials that pass let it
    through the relay whatever `deny` says, so only the authentication is told."""
    found = diagnose_http(
        'satisfy any;\ndeny all;\nauth_basic "internal";\n'
        "auth_basic_user_file /etc/nginx/htpasswd;\n" + protected_mirror()
    )
    relay = [f for f in found if f.code == "relay-refuses-copies"]
    assert [f.severity for f in relay] == [Severity.WARNING]
    assert "auth_basic" in relay[0].message


def test_an_http_level_limit_conn_is_told_only_where_the_relay_inherits_it(
    tmp_path: Path,
) -> None:
    """hookshift's relay caps its copies with a `limit_conn` of its own, which replaces the
    inherited one; its stage hop has none, so a per-client cap at http level (one key, `unix:`,
    for every copy) caps the copies in flight to the stage."""
    config = write_config(
        tmp_path,
        "limit_conn_zone $binary_remote_addr zone=addr:1m;\nlimit_conn addr 10;\n" + CALLBACK_SITE,
    )
    plan = make_plan(
        MirrorOptions(
            config=config,
            path=CALLBACK,
            stage_url="https://abc123.execute-api.ap-northeast-2.amazonaws.com/dev",
            trusted_ca=Path("/etc/ssl/certs/ca-certificates.crt"),
            relay_socket=str(tmp_path / "relay.sock"),
        ),
        (1, 22, 1),
    )
    for change in plan.changes:
        change.path.write_text(change.new_text)
    finding = only(diagnose_file(config), "relay-refuses-copies")
    assert finding.where == line_of(config, "limit_conn addr 10")
    assert finding.message.count("location = /bizppurio/callback") == 1
    assert "limit_conn_dry_run on;" in finding.fix
