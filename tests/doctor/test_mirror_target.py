"""The mirror target: internal, the stage's own Host, bounded timeouts, a circuit breaker."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from hookshift.doctor import Severity, diagnose_file
from tests.doctor.conftest import Diagnose, codes, line_of, nginx_t, only, write_config
from tests.doctor.samples import protected_mirror, seed_mirror

SEED_CODES = {
    "mirror-wrong-host",
    "proxy-ssl-no-sni",
    "proxy-ssl-no-verify",
    "mirror-slow-timeouts",
    "mirror-no-circuit-breaker",
    "mirror-resolver-timeout",
    "resolver-public",
}


def test_the_seeds_mirror_location_is_flagged_for_each_of_its_gaps(tmp_path: Path) -> None:
    config = write_config(tmp_path, seed_mirror())
    findings = diagnose_file(config)
    assert codes(findings) >= SEED_CODES
    assert any(f.severity is Severity.ERROR for f in findings)


def test_a_protected_mirror_has_no_warning_or_error(diagnose_http: Diagnose) -> None:
    findings = diagnose_http(protected_mirror())
    assert [f for f in findings if f.severity >= Severity.WARNING] == []


def test_mirror_target_without_internal_is_flagged(tmp_path: Path) -> None:
    config = write_config(tmp_path, protected_mirror().replace("internal;", "", 1))
    finding = only(diagnose_file(config), "mirror-target-not-internal")
    assert finding.where == line_of(config, "location = /_hookshift_mirror")
    assert "reachable from outside" in finding.message


def test_mirror_served_by_the_mirroring_location_itself_says_the_app_gets_it_twice(
    diagnose_http: Diagnose,
) -> None:
    config = """
    server {
        listen 8081;
        location / { mirror /copy; proxy_pass http://127.0.0.1:9000; }
    }
    """
    finding = only(diagnose_http(config), "mirror-target-not-internal")
    assert "twice" in finding.message


def test_host_inherited_from_the_server_into_the_mirror_target_is_an_error(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, seed_mirror())
    finding = only(diagnose_file(config), "mirror-wrong-host")
    assert finding.severity is Severity.ERROR
    assert line_of(config, "proxy_set_header Host $host") in finding.message
    assert "403" in finding.message


def test_host_set_to_the_stage_in_the_target_is_not_flagged(diagnose_http: Diagnose) -> None:
    stage_host = "proxy_set_header Host abc123.execute-api.ap-northeast-2.amazonaws.com;"
    findings = diagnose_http(seed_mirror(target_extra=stage_host))
    assert "mirror-wrong-host" not in codes(findings)


def test_host_dollar_host_set_in_the_target_itself_is_flagged_at_that_line(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, seed_mirror(target_extra="proxy_set_header Host $http_host;"))
    finding = only(diagnose_file(config), "mirror-wrong-host")
    assert finding.where == line_of(config, "proxy_set_header Host $http_host")


def test_default_timeouts_on_the_mirror_target_name_the_cost(diagnose_http: Diagnose) -> None:
    finding = only(diagnose_http(seed_mirror()), "mirror-slow-timeouts")
    assert "proxy_read_timeout unset (60 s)" in finding.message
    assert "waits too" in finding.message and "answering after 3 s" in finding.message
    assert "issue" not in finding.message and "req/s" not in finding.message


def test_long_explicit_timeouts_are_flagged_short_ones_are_not(diagnose_http: Diagnose) -> None:
    long_read = "proxy_connect_timeout 1s; proxy_send_timeout 1s; proxy_read_timeout 30s;"
    finding = only(diagnose_http(seed_mirror(target_extra=long_read)), "mirror-slow-timeouts")
    assert "proxy_read_timeout 30s" in finding.message
    assert "proxy_connect_timeout" not in finding.message
    short = "proxy_connect_timeout 1s; proxy_send_timeout 500ms; proxy_read_timeout 2s;"
    assert "mirror-slow-timeouts" not in codes(diagnose_http(seed_mirror(target_extra=short)))


def test_timeouts_inherited_from_the_server_count(diagnose_http: Diagnose) -> None:
    server = "proxy_connect_timeout 1s; proxy_send_timeout 1s; proxy_read_timeout 1s;"
    assert "mirror-slow-timeouts" not in codes(diagnose_http(seed_mirror(server_extra=server)))


def test_direct_proxy_to_the_stage_has_no_circuit_breaker(diagnose_http: Diagnose) -> None:
    finding = only(diagnose_http(seed_mirror()), "mirror-no-circuit-breaker")
    assert "max_fails and a fast-failing backup server" in finding.message
    assert "issue" not in finding.message and "req/s" not in finding.message


def test_upstream_without_backup_is_no_circuit_breaker(diagnose_http: Diagnose) -> None:
    config = protected_mirror().replace("server 127.0.0.1:18444 backup;", "")
    finding = only(diagnose_http(config), "mirror-no-circuit-breaker")
    assert "no backup server" in finding.message


def test_upstream_with_max_fails_0_on_every_primary_is_no_circuit_breaker(
    diagnose_http: Diagnose,
) -> None:
    config = protected_mirror().replace("max_fails=1", "max_fails=0")
    assert "mirror-no-circuit-breaker" in codes(diagnose_http(config))


def test_resolver_timeout_default_on_a_resolving_mirror_target_is_flagged(
    diagnose_http: Diagnose,
) -> None:
    assert "mirror-resolver-timeout" in codes(diagnose_http(seed_mirror()))
    bounded = seed_mirror(target_extra="resolver_timeout 2s;")
    assert "mirror-resolver-timeout" not in codes(diagnose_http(bounded))


@pytest.mark.e2e
def test_nginx_t_accepts_both_the_seed_and_the_protected_config(
    tmp_path: Path, nginx_bin: str
) -> None:
    """Doctor's findings are about run time: the real nginx -t passes both configs."""
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    for name, text in (
        ("seed", seed_mirror()),
        (
            "protected",
            protected_mirror(ca_file=str(ca), relay_dir=str(tmp_path / "hookshift")),
        ),
    ):
        directory = tmp_path / name
        directory.mkdir()
        config = write_config(directory, text)
        result = nginx_t(nginx_bin, config)
        assert result.returncode == 0, result.stderr
    assert any(f.severity is Severity.ERROR for f in diagnose_file(tmp_path / "seed/nginx.conf"))
    assert not [
        f
        for f in diagnose_file(tmp_path / "protected/nginx.conf")
        if f.severity >= Severity.WARNING
    ]
