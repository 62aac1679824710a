"""Shapes of production configs doctor judged wrong, shown on the real nginx on loopback.

``proxy_pass https://NAME`` to an ``upstream NAME`` block: the TLS name is NAME itself unless
``proxy_ssl_name`` says otherwise. A host variable ``set`` to a name needs a resolver on every
request, not only on some."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from hookshift.doctor import Severity, diagnose_file
from tests.doctor.conftest import Diagnose, codes, line_of, only
from tests.doctor.test_runtime import get, nginx_serving
from tests.mirror.servers import RecordingServer

HOST = "api.example.com"


@pytest.fixture
def tls_upstream(ca: trustme.CA) -> Iterator[RecordingServer]:
    """A TLS server on loopback holding a certificate for HOST, recording the SNI it gets."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(HOST).configure_cert(ctx)
    server = RecordingServer(tls=ctx).start()
    yield server
    server.stop()


def _http(upstream_port: int, ca_file: Path, http_level: str) -> str:
    """TLS settings at http level (where a production config often keeps them), one upstream."""
    return f"""
        {http_level}
        proxy_ssl_trusted_certificate {ca_file};
        upstream backend {{ server 127.0.0.1:{upstream_port}; }}
        server {{
            listen 127.0.0.1:{{port}};
            location /api/ {{ proxy_pass https://backend; }}
        }}
        """


POOL_MAP = "map $http_x_pool $pool { default backend; canary backend; }"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("target", "at_http"),
    [("backend", ""), ("$pool", POOL_MAP)],
    ids=["the block named", "a map choosing the block"],
)
def test_verify_against_the_upstream_block_name_fails_every_request_as_doctor_says(
    tmp_path: Path,
    each_nginx: str,
    tls_upstream: RecordingServer,
    ca_file: Path,
    target: str,
    at_http: str,
) -> None:
    """The TLS name is the block's name, whether the URL names the block or a variable (a
    `map` choosing the pool per request) holds it."""
    verify = f"{at_http}\nproxy_ssl_verify on; proxy_ssl_server_name on;"
    http = _http(tls_upstream.port, ca_file, verify)
    http = http.replace("proxy_pass https://backend;", f"proxy_pass https://{target};")
    with nginx_serving(tmp_path, each_nginx, http) as (port, config):
        assert get(port, "/api/x") == 502
        assert tls_upstream.sni == ["backend"]
        error_log = (tmp_path / "error.log").read_text()
        assert 'upstream SSL certificate does not match "backend"' in error_log
        finding = only(diagnose_file(config), "proxy-ssl-name-is-upstream")
        assert finding.severity is Severity.ERROR
        assert finding.where == line_of(config, f"proxy_pass https://{target}")
        assert "proxy_ssl_name" in finding.fix
        assert '"backend"' in finding.message


@pytest.mark.e2e
def test_proxy_ssl_name_at_http_level_covers_the_upstream_as_doctor_says(
    tmp_path: Path, each_nginx: str, tls_upstream: RecordingServer, ca_file: Path
) -> None:
    http = _http(
        tls_upstream.port,
        ca_file,
        f"proxy_ssl_verify on; proxy_ssl_server_name on; proxy_ssl_name {HOST};",
    )
    with nginx_serving(tmp_path, each_nginx, http) as (port, config):
        assert get(port, "/api/x") == 200
        assert tls_upstream.sni == [HOST]
        assert "proxy-ssl-name-is-upstream" not in codes(diagnose_file(config))


@pytest.mark.e2e
def test_sni_only_sends_the_upstream_block_name_as_doctor_says(
    tmp_path: Path, each_nginx: str, tls_upstream: RecordingServer, ca_file: Path
) -> None:
    http = _http(tls_upstream.port, ca_file, "proxy_ssl_server_name on;")
    with nginx_serving(tmp_path, each_nginx, http) as (port, config):
        assert get(port, "/api/x") == 200  # nothing is verified: the wrong name goes unnoticed
        assert tls_upstream.sni == ["backend"]
        finding = only(diagnose_file(config), "proxy-ssl-name-is-upstream")
        assert finding.severity is Severity.WARNING
        assert 'SNI "backend"' in finding.message


def test_the_verify_fix_names_proxy_ssl_name_for_an_upstream_block(
    diagnose_http: Diagnose,
) -> None:
    """Following the fix for an unverified upstream block as written must not break it: without
    proxy_ssl_name, `proxy_ssl_verify on` checks the certificate against the block's name."""
    found = diagnose_http(
        """
        proxy_ssl_server_name on;
        upstream backend { server 127.0.0.1:9443; }
        server { listen 127.0.0.1:8081; location / { proxy_pass https://backend; } }
        """
    )
    fix = only(found, "proxy-ssl-no-verify").fix
    assert "proxy_ssl_name" in fix
    assert "proxy_ssl_server_name" not in fix  # already on at http level


def test_a_host_name_is_verified_against_itself(diagnose_http: Diagnose) -> None:
    """A host that names no upstream block is its own TLS name, which is right."""
    found = diagnose_http(
        f"""
        proxy_ssl_verify on;
        proxy_ssl_server_name on;
        upstream backend {{ server 127.0.0.1:9443; }}
        server {{
            listen 127.0.0.1:8081;
            location / {{ proxy_pass https://{HOST}; }}
        }}
        """
    )
    assert "proxy-ssl-name-is-upstream" not in codes(found)


@pytest.mark.e2e
def test_a_host_variable_set_to_a_name_fails_every_request_as_doctor_says(
    tmp_path: Path, each_nginx: str
) -> None:
    http = f"""
        server {{
            listen 127.0.0.1:{{port}};
            location /api/ {{
                set $stage {HOST};
                proxy_pass http://$stage/x;
            }}
        }}
        """
    with nginx_serving(tmp_path, each_nginx, http) as (port, config):
        assert get(port, "/api/x") == 502
        error_log = (tmp_path / "error.log").read_text()
        assert f"no resolver defined to resolve {HOST}" in error_log
        finding = only(diagnose_file(config), "proxy-pass-no-resolver")
        assert finding.severity is Severity.ERROR
        assert f"no resolver defined to resolve {HOST}" in finding.message


def test_a_host_variable_mapped_to_names_and_upstreams_stays_a_warning(
    diagnose_http: Diagnose,
) -> None:
    """Only the requests that get the name fail there, so it is not every request."""
    found = diagnose_http(
        """
        upstream blue { server 127.0.0.1:9001; }
        map $cookie_slot $pool { default blue; green green.internal; }
        server { listen 8081; location / { proxy_pass http://$pool; } }
        """
    )
    assert only(found, "proxy-pass-no-resolver").severity is Severity.WARNING
