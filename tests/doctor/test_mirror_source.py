"""Mirroring locations: does the copy happen at all, once, and with its body?"""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift.doctor import Severity, diagnose_file
from tests.doctor.conftest import Diagnose, codes, line_of, only, write_config
from tests.doctor.samples import protected_mirror


def test_return_in_the_mirroring_location_means_the_mirror_never_runs(tmp_path: Path) -> None:
    config = write_config(tmp_path, protected_mirror(callback_extra="return 200 ok;"))
    finding = only(diagnose_file(config), "mirror-never-runs")
    assert finding.severity is Severity.ERROR
    assert finding.where == line_of(config, "return 200 ok;")


def test_return_at_server_level_means_no_location_mirrors(tmp_path: Path) -> None:
    text = protected_mirror().replace(
        "server_name callback.example.com;", "server_name callback.example.com;\n    return 404;"
    )
    config = write_config(tmp_path, text)
    finding = only(diagnose_file(config), "mirror-never-runs")
    assert finding.where == line_of(config, "return 404;")


def test_rewrite_last_elsewhere_skips_the_mirror_break_does_not(diagnose_http: Diagnose) -> None:
    last = protected_mirror(callback_extra="rewrite ^/bizppurio/(.*)$ /v2/$1 last;")
    finding = only(diagnose_http(last), "mirror-never-runs")
    assert finding.severity is Severity.WARNING
    assert "another location" in finding.message
    redirect = protected_mirror(callback_extra="rewrite ^ https://new.example.com permanent;")
    assert "mirror-never-runs" in codes(diagnose_http(redirect))
    # break keeps the request in this location, so the mirror still runs
    brk = protected_mirror(callback_extra="rewrite ^/bizppurio/(.*)$ /$1 break;")
    assert "mirror-never-runs" not in codes(diagnose_http(brk))


def test_deny_all_means_the_mirror_never_runs(diagnose_http: Diagnose) -> None:
    finding = only(diagnose_http(protected_mirror(callback_extra="deny all;")), "mirror-never-runs")
    assert finding.severity is Severity.ERROR
    assert "403" in finding.message


def test_allow_list_then_deny_all_only_skips_refused_requests(diagnose_http: Diagnose) -> None:
    findings = diagnose_http(protected_mirror(callback_extra="allow 203.0.113.0/24; deny all;"))
    assert "mirror-never-runs" not in codes(findings)
    assert only(findings, "mirror-skipped-when-denied").severity is Severity.INFO


def test_deny_all_inherited_from_the_server_counts(diagnose_http: Diagnose) -> None:
    text = protected_mirror().replace(
        "server_name callback.example.com;", "server_name callback.example.com;\n    deny all;"
    )
    assert "mirror-never-runs" in codes(diagnose_http(text))


def test_an_allow_in_the_location_replaces_the_servers_deny_all(diagnose_http: Diagnose) -> None:
    text = protected_mirror(callback_extra="allow 203.0.113.0/24;").replace(
        "server_name callback.example.com;", "server_name callback.example.com;\n    deny all;"
    )
    assert "mirror-never-runs" not in codes(diagnose_http(text))


def test_limit_req_and_auth_request_are_reported_as_info(tmp_path: Path) -> None:
    text = "limit_req_zone $binary_remote_addr zone=cb:1m rate=10r/s;\n" + protected_mirror(
        callback_extra="limit_req zone=cb; auth_request /auth;"
    )
    config = write_config(tmp_path, text)
    findings = diagnose_file(config)
    limit = only(findings, "mirror-skipped-by-limit-req")
    assert limit.severity is Severity.INFO and "503" in limit.message
    assert limit.where == line_of(config, "limit_req zone=cb")
    assert only(findings, "mirror-skipped-by-auth-request").severity is Severity.INFO


def test_a_plain_mirroring_location_has_no_skip_findings(diagnose_http: Diagnose) -> None:
    found = codes(diagnose_http(protected_mirror()))
    assert not {c for c in found if c.startswith("mirror-skipped") or c == "mirror-never-runs"}


def test_mirror_request_body_off_sends_empty_copies(diagnose_http: Diagnose) -> None:
    text = protected_mirror().replace("mirror_request_body on;", "mirror_request_body off;")
    assert only(diagnose_http(text), "mirror-no-body").severity is Severity.ERROR


def test_proxy_request_buffering_off_with_mirror_is_a_warning(tmp_path: Path) -> None:
    config = write_config(tmp_path, protected_mirror(callback_extra="proxy_request_buffering off;"))
    finding = only(diagnose_file(config), "mirror-request-buffering-off")
    assert finding.where == line_of(config, "proxy_request_buffering off")


def test_proxy_request_buffering_off_without_mirror_is_fine(diagnose_http: Diagnose) -> None:
    text = (
        "server { listen 8081; location / { proxy_request_buffering off;"
        " proxy_pass http://127.0.0.1:9000; } }"
    )
    assert "mirror-request-buffering-off" not in codes(diagnose_http(text))


def test_mirror_to_a_uri_no_location_serves_is_an_error(tmp_path: Path) -> None:
    text = """
    server {
        listen 8081;
        location = /callback { mirror /missing; proxy_pass http://127.0.0.1:9000; }
        location = /_hookshift_mirror { internal; return 204; }
    }
    """
    config = write_config(tmp_path, text)
    finding = only(diagnose_file(config), "mirror-target-missing")
    assert finding.severity is Severity.ERROR
    assert finding.where == line_of(config, "mirror /missing")


def test_mirror_target_found_through_nginx_location_rules(diagnose_http: Diagnose) -> None:
    # served by the regex location, not missing
    text = """
    server {
        listen 8081;
        location = /callback { mirror /_m/stage; proxy_pass http://127.0.0.1:9000; }
        location ~ ^/_m/ { internal; return 204; }
    }
    """
    assert "mirror-target-missing" not in codes(diagnose_http(text))


def test_the_same_mirror_twice_in_a_location_duplicates_copies(diagnose_http: Diagnose) -> None:
    text = protected_mirror(callback_extra="mirror /_hookshift_mirror;")
    assert "mirror-duplicate" in codes(diagnose_http(text))


def test_server_level_mirror_lists_inheriting_and_overriding_locations(tmp_path: Path) -> None:
    text = """
    server {
        listen 8081;
        mirror /_m;
        location / { proxy_pass http://127.0.0.1:9000; }
        location /callback { mirror /_m2; proxy_pass http://127.0.0.1:9000; }
        location = /_m { internal; return 204; }
        location = /_m2 { internal; return 204; }
    }
    """
    config = write_config(tmp_path, text)
    finding = only(diagnose_file(config), "mirror-server-level")
    assert finding.where == line_of(config, "mirror /_m;")
    assert line_of(config, "location / {") in finding.message
    assert "location /callback" in finding.message and "replaces" in finding.message
    assert "error_page" in finding.message


def test_location_level_mirror_is_not_a_server_level_finding(diagnose_http: Diagnose) -> None:
    assert "mirror-server-level" not in codes(diagnose_http(protected_mirror()))


def test_error_page_into_a_location_that_mirrors_too_copies_twice(tmp_path: Path) -> None:
    text = """
    server {
        listen 8081;
        mirror /_m;
        location /callback { error_page 502 = /fallback; proxy_pass http://127.0.0.1:9000; }
        location /fallback { proxy_pass http://127.0.0.1:9001; }
        location = /_m { internal; return 204; }
    }
    """
    config = write_config(tmp_path, text)
    finding = only(diagnose_file(config), "mirror-twice-via-error-page")
    assert finding.where == line_of(config, "error_page 502")


def test_error_page_into_a_location_with_mirror_off_is_fine(diagnose_http: Diagnose) -> None:
    text = """
    server {
        listen 8081;
        location /callback {
            mirror /_m;
            error_page 502 = /fallback;
            proxy_pass http://127.0.0.1:9000;
        }
        location /fallback { return 200; }
        location = /_m { internal; return 204; }
    }
    """
    assert "mirror-twice-via-error-page" not in codes(diagnose_http(text))


@pytest.mark.parametrize(
    ("hand_on", "never_run"),
    [
        ("error_page 404 = @app;", ["location /app"]),
        # a URI goes through the server's rewrites again: the same return answers it
        ("error_page 404 = /app;", ["location /app", "location @app"]),
    ],
)
def test_a_server_level_return_lets_the_mirror_run_only_where_error_page_hands_it_on(
    diagnose_http: Diagnose, hand_on: str, never_run: list[str]
) -> None:
    text = f"""
    server {{
        listen 127.0.0.1:8081;
        {hand_on}
        return 404;
        location /app {{ mirror /_m; proxy_pass http://127.0.0.1:9000; }}
        location @app {{ mirror /_m; proxy_pass http://127.0.0.1:9000; }}
        location = /_m {{ internal; proxy_pass http://127.0.0.1:9001; }}
    }}
    """
    findings = [f for f in diagnose_http(text) if f.code == "mirror-never-runs"]
    named = [
        label
        for label in ("location /app", "location @app")
        for f in findings
        if label in f.message
    ]
    assert named == never_run


def test_a_server_level_guard_on_the_mirror_uri_takes_every_copy(tmp_path: Path) -> None:
    text = protected_mirror().replace(
        "server_name callback.example.com;",
        "server_name callback.example.com;\n    if ($uri ~ ^/_) { return 403; }",
    )
    config = write_config(tmp_path, text)
    finding = only(diagnose_file(config), "mirror-copy-taken")
    assert finding.severity is Severity.ERROR
    assert finding.where == line_of(config, "return 403;")


@pytest.mark.parametrize(
    "name", ["proxy_request_buffering", "fastcgi_request_buffering", "uwsgi_request_buffering"]
)
def test_every_kind_of_streamed_body_is_told_under_a_mirror(tmp_path: Path, name: str) -> None:
    config = write_config(tmp_path, protected_mirror(callback_extra=f"{name} off;"))
    finding = only(diagnose_file(config), "mirror-request-buffering-off")
    assert f"`{name} off`" in finding.message and finding.where == line_of(config, name)
