"""proxy_pass checks: run-time DNS (`no resolver defined`) and TLS toward https hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift.doctor import Severity, diagnose_file
from tests.doctor.conftest import Diagnose, codes, line_of, nginx_t, only, write_config

STAGE = "abc123.execute-api.ap-northeast-2.amazonaws.com"

NO_RESOLVER = f"""
server {{
    listen 127.0.0.1:8081;
    location /callback {{
        proxy_pass https://{STAGE}/dev$request_uri;
    }}
}}
"""


@pytest.mark.e2e
def test_variable_proxy_pass_without_resolver_passes_nginx_t_but_doctor_flags_it(
    tmp_path: Path, nginx_bin: str
) -> None:
    config = write_config(tmp_path, NO_RESOLVER)
    result = nginx_t(nginx_bin, config)
    assert result.returncode == 0, result.stderr  # nginx -t accepts it: the trap
    finding = only(diagnose_file(config), "proxy-pass-no-resolver")
    assert finding.severity is Severity.ERROR
    assert finding.where == line_of(config, "proxy_pass https://")
    assert f"no resolver defined to resolve {STAGE}" in finding.message


def test_resolver_inherited_from_server_or_http_satisfies_the_proxy(
    diagnose_http: Diagnose,
) -> None:
    server_level = NO_RESOLVER.replace("listen 127.0.0.1:8081;", "listen 8081; resolver 10.0.0.2;")
    assert "proxy-pass-no-resolver" not in codes(diagnose_http(server_level))
    http_level = "resolver 10.0.0.2 valid=10s;\n" + NO_RESOLVER
    assert "proxy-pass-no-resolver" not in codes(diagnose_http(http_level))


def test_resolver_in_a_sibling_location_does_not_count(diagnose_http: Diagnose) -> None:
    config = NO_RESOLVER.replace(
        "    location /callback {",
        "    location /other { resolver 10.0.0.2; }\n    location /callback {",
    )
    assert "proxy-pass-no-resolver" in codes(diagnose_http(config))


def test_static_proxy_pass_ip_literal_and_upstream_names_need_no_resolver(
    diagnose_http: Diagnose,
) -> None:
    config = """
    upstream app { server 127.0.0.1:9000; }
    server {
        listen 8081;
        location /a { proxy_pass http://127.0.0.1:9000$request_uri; }
        location /b { proxy_pass http://app$request_uri; }
        location /c { proxy_pass http://backend.internal:9000; }
    }
    """
    assert "proxy-pass-no-resolver" not in codes(diagnose_http(config))


def test_host_from_a_variable_without_resolver_is_a_warning(diagnose_http: Diagnose) -> None:
    config = "server { listen 8081; location / { proxy_pass http://$backend; } }"
    finding = only(diagnose_http(config), "proxy-pass-no-resolver")
    assert finding.severity is Severity.WARNING


def test_https_to_api_gateway_without_sni_is_an_error(diagnose_http: Diagnose) -> None:
    finding = only(diagnose_http(NO_RESOLVER), "proxy-ssl-no-sni")
    assert finding.severity is Severity.ERROR
    assert "SNI" in finding.message


def test_https_to_another_host_without_sni_is_a_warning(diagnose_http: Diagnose) -> None:
    config = "server { listen 8081; location / { proxy_pass https://backend.internal:8443; } }"
    assert only(diagnose_http(config), "proxy-ssl-no-sni").severity is Severity.WARNING


def test_https_to_an_ip_address_needs_no_sni(diagnose_http: Diagnose) -> None:
    config = "server { listen 8081; location / { proxy_pass https://10.1.2.3:8443; } }"
    assert "proxy-ssl-no-sni" not in codes(diagnose_http(config))


def test_sni_on_at_server_level_is_inherited(diagnose_http: Diagnose) -> None:
    config = NO_RESOLVER.replace("listen 127.0.0.1:8081;", "listen 8081; proxy_ssl_server_name on;")
    assert "proxy-ssl-no-sni" not in codes(diagnose_http(config))


def test_sni_explicitly_off_points_at_the_off_line(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        NO_RESOLVER.replace(
            "proxy_pass https", "proxy_ssl_server_name off;\n        proxy_pass https"
        ),
    )
    finding = only(diagnose_file(config), "proxy-ssl-no-sni")
    assert finding.where == line_of(config, "proxy_ssl_server_name off")


def test_proxy_ssl_verify_default_and_off_are_flagged_on_is_not(diagnose_http: Diagnose) -> None:
    assert "proxy-ssl-no-verify" in codes(diagnose_http(NO_RESOLVER))
    off = NO_RESOLVER.replace("proxy_pass https", "proxy_ssl_verify off;\n        proxy_pass https")
    assert "proxy-ssl-no-verify" in codes(diagnose_http(off))
    on = NO_RESOLVER.replace("proxy_pass https", "proxy_ssl_verify on;\n        proxy_pass https")
    assert "proxy-ssl-no-verify" not in codes(diagnose_http(on))


@pytest.mark.parametrize("host", ["127.0.0.1:8443", "[::1]:8443", "localhost:8443"])
def test_an_unverified_loopback_upstream_is_not_flagged(diagnose_http: Diagnose, host: str) -> None:
    """Nothing sits between nginx and a loopback address to answer in its place."""
    config = f"server {{ listen 8081; location / {{ proxy_pass https://{host}; }} }}"
    assert "proxy-ssl-no-verify" not in codes(diagnose_http(config))


def test_the_verify_fix_for_an_address_does_not_ask_for_sni(diagnose_http: Diagnose) -> None:
    config = "server { listen 8081; location / { proxy_pass https://203.0.113.7:8443; } }"
    finding = only(diagnose_http(config), "proxy-ssl-no-verify")
    assert "proxy_ssl_verify on" in finding.fix and "proxy_ssl_server_name" not in finding.fix


def test_plain_http_proxies_get_no_tls_findings(diagnose_http: Diagnose) -> None:
    config = "server { listen 8081; location / { proxy_pass http://127.0.0.1:9000; } }"
    assert not codes(diagnose_http(config)) & {"proxy-ssl-no-sni", "proxy-ssl-no-verify"}


def test_host_variable_set_to_an_ip_needs_no_resolver(diagnose_http: Diagnose) -> None:
    config = """
    server {
        listen 8081;
        set $backend "127.0.0.1:9007";
        location / { proxy_pass http://$backend; }
    }
    """
    assert "proxy-pass-no-resolver" not in codes(diagnose_http(config))


def test_host_variable_mapped_to_upstreams_needs_no_resolver_unless_one_is_a_name(
    diagnose_http: Diagnose,
) -> None:
    config = """
    upstream blue { server 127.0.0.1:9001; }
    upstream green { server 127.0.0.1:9002; }
    map $cookie_slot $pool { default blue; green green; }
    server { listen 8081; location / { proxy_pass http://$pool; } }
    """
    assert "proxy-pass-no-resolver" not in codes(diagnose_http(config))
    by_name = config.replace("green green;", "green green.internal;")
    assert "proxy-pass-no-resolver" in codes(diagnose_http(by_name))


def test_fastcgi_uwsgi_scgi_and_grpc_pass_need_a_resolver_for_variable_hosts_too(
    diagnose_http: Diagnose,
) -> None:
    config = """
    upstream php { server 127.0.0.1:9000; }
    server {
        listen 8081;
        location /a { set $b php1.internal:9000; fastcgi_pass $b; }
        location /b { grpc_pass grpc://$host:50051; }
        location /c { uwsgi_pass uwsgi://$http_x_app; }
        location /d { set $b php; fastcgi_pass $b; }
        location /e { set $b 10.0.0.7:9000; scgi_pass $b; }
        location /f { fastcgi_pass unix:/run/php/php-fpm.sock; }
        location /g { resolver 10.0.0.2; set $b php.internal:9000; fastcgi_pass $b; }
        location /h { fastcgi_pass php.internal:9000; }
        location /i { set $b php.internal:9000; fastcgi_pass $b; }
    }
    """
    found = {f.code: f for f in diagnose_http(config) if f.code.endswith("-no-resolver")}
    flagged = sorted(f.where for f in diagnose_http(config) if f.code.endswith("-no-resolver"))
    assert set(found) == {"fastcgi-pass-no-resolver", "grpc-pass-no-resolver",
                          "uwsgi-pass-no-resolver"}  # fmt: skip
    # /a, /b, /c; not: an upstream name, an IP, a socket, a resolver in scope, and /i, whose
    # host and port /h names without variables (nginx made that an upstream at load time)
    assert len(flagged) == 3
    assert "`fastcgi_pass $b`" in found["fastcgi-pass-no-resolver"].message
