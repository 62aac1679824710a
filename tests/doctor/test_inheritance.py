"""The array-inheritance traps: access_log and proxy_set_header in a location."""

from __future__ import annotations

from pathlib import Path

from hookshift.doctor import Severity, diagnose_file
from tests.doctor.conftest import Diagnose, codes, line_of, only, write_config
from tests.doctor.samples import protected_mirror

SERVER = """
server {{
    listen 8081;
    access_log /var/log/nginx/site.log;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    location /callback {{
        {extra}
        proxy_pass http://127.0.0.1:9000;
    }}
}}
"""


def test_access_log_in_a_location_silences_the_inherited_one(tmp_path: Path) -> None:
    config = write_config(tmp_path, SERVER.format(extra="access_log /var/log/nginx/parity.log;"))
    finding = only(diagnose_file(config), "access-log-drops-inherited")
    assert finding.severity is Severity.WARNING
    assert finding.where == line_of(config, "parity.log")
    assert f"/var/log/nginx/site.log ({line_of(config, 'site.log')})" in finding.message


def test_access_log_redeclaring_the_inherited_one_is_fine(diagnose_http: Diagnose) -> None:
    extra = "access_log /var/log/nginx/parity.log; access_log /var/log/nginx/site.log;"
    assert "access-log-drops-inherited" not in codes(diagnose_http(SERVER.format(extra=extra)))


def test_access_log_off_is_deliberate(diagnose_http: Diagnose) -> None:
    assert "access-log-drops-inherited" not in codes(
        diagnose_http(SERVER.format(extra="access_log off;"))
    )


def test_access_log_from_http_level_is_also_inherited(diagnose_http: Diagnose) -> None:
    # the test harness puts an access_log at http level
    text = "server { listen 8081; location / { access_log /tmp/x.log; return 204; } }"
    assert "access-log-drops-inherited" in codes(diagnose_http(text))


def test_proxy_set_header_in_a_location_lists_the_dropped_headers(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, SERVER.format(extra="proxy_set_header X-Request-Id $request_id;")
    )
    finding = only(diagnose_file(config), "proxy-set-header-drops-inherited")
    assert finding.severity is Severity.WARNING
    assert finding.where == line_of(config, "X-Request-Id")
    assert "host (" in finding.message and "x-forwarded-for (" in finding.message


def test_proxy_set_header_redeclaring_all_is_fine(diagnose_http: Diagnose) -> None:
    extra = (
        "proxy_set_header Host $host; proxy_set_header X-Forwarded-For "
        "$proxy_add_x_forwarded_for; proxy_set_header X-Request-Id $request_id;"
    )
    assert "proxy-set-header-drops-inherited" not in codes(
        diagnose_http(SERVER.format(extra=extra))
    )


def test_nested_location_inherits_from_its_parent_location(diagnose_http: Diagnose) -> None:
    text = """
    server {
        listen 8081;
        location /api {
            proxy_set_header X-A 1;
            location /api/v2 { proxy_set_header X-B 2; proxy_pass http://127.0.0.1:9000; }
        }
    }
    """
    finding = only(diagnose_http(text), "proxy-set-header-drops-inherited")
    assert "x-a (" in finding.message


def test_dropping_headers_where_mirror_copies_are_handled_is_only_info(
    diagnose_http: Diagnose,
) -> None:
    """The mirror target and the local relay it proxies to (two-hop) set their own Host on
    purpose: the stage needs none of the app's headers."""
    text = "proxy_set_header X-Vendor $http_user_agent;\n" + protected_mirror(
        target_extra="proxy_set_header X-Request-Id $request_id;"
    )
    findings = [f for f in diagnose_http(text) if f.code == "proxy-set-header-drops-inherited"]
    assert len(findings) == 2  # the mirror target and the relay's location
    assert {f.severity for f in findings} == {Severity.INFO}


def test_access_log_in_an_if_block_silences_the_locations_logs(tmp_path: Path) -> None:
    """nginx runs an ``if`` in a location with settings of its own: its access_log replaces the
    location's (a parity log there misses every request for which the condition holds)."""
    text = """
    server {
        listen 8081;
        location /callback {
            access_log /var/log/nginx/parity.log;
            if ($http_x_debug) { access_log /var/log/nginx/debug.log; }
            proxy_pass http://127.0.0.1:9000;
        }
    }
    """
    config = write_config(tmp_path, text)
    findings = [f for f in diagnose_file(config) if f.code == "access-log-drops-inherited"]
    inside_if = [f for f in findings if f.where == line_of(config, "debug.log")]
    assert len(inside_if) == 1
    assert f"/var/log/nginx/parity.log ({line_of(config, 'parity.log')})" in inside_if[0].message
    assert "`if ($http_x_debug)`" in inside_if[0].message
    assert "`if` block" in inside_if[0].fix
