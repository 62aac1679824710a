"""resolver lines: public resolvers (info, with the trade-off), valid=, ipv6=off."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trustme

from hookshift.doctor import Severity, diagnose_file
from hookshift.mirror.plan import make_plan
from hookshift.nginx.source import to_bytes
from tests.doctor.conftest import Diagnose, codes, only
from tests.mirror.helpers import copy_case
from tests.mirror.helpers import options as corpus_options

LOC = (
    "server {{ listen 8081; location / {{ {resolver}"
    " proxy_pass http://h.internal$request_uri; }} }}"
)


def test_public_resolvers_are_info_and_name_the_trade_off(diagnose_http: Diagnose) -> None:
    finding = only(
        diagnose_http(LOC.format(resolver="resolver 1.1.1.1 8.8.8.8:53 valid=10s ipv6=off;")),
        "resolver-public",
    )
    assert finding.severity is Severity.INFO
    assert "1.1.1.1 (Cloudflare)" in finding.message and "8.8.8.8 (Google)" in finding.message
    assert "spoofed" in finding.message and "trusted resolver" in finding.fix


def test_opendns_and_quad9_count_as_public(diagnose_http: Diagnose) -> None:
    text = LOC.format(resolver="resolver 208.67.222.222 9.9.9.9 valid=10s ipv6=off;")
    assert "resolver-public" in codes(diagnose_http(text))


def test_an_internal_resolver_is_not_public(diagnose_http: Diagnose) -> None:
    text = LOC.format(resolver="resolver 10.0.0.2 [fd00::2]:53 valid=10s ipv6=off;")
    assert codes(diagnose_http(text)) == set()


def test_resolver_without_valid_is_info(diagnose_http: Diagnose) -> None:
    text = LOC.format(resolver="resolver 10.0.0.2 ipv6=off;")
    finding = only(diagnose_http(text), "resolver-no-valid")
    assert finding.severity is Severity.INFO and "TTL" in finding.message


def test_resolver_without_ipv6_off_is_info(diagnose_http: Diagnose) -> None:
    text = LOC.format(resolver="resolver 10.0.0.2 valid=30s;")
    assert only(diagnose_http(text), "resolver-ipv6").severity is Severity.INFO


def test_hookshift_s_own_resolver_lines_are_not_flagged(diagnose_http: Diagnose) -> None:
    """hookshift marks each line it writes; its resolver (public by default, chosen with the
    user) is not the user's to fix. The same line without the mark is."""
    ours = "resolver 1.1.1.1 8.8.8.8;  # hookshift\n"
    assert codes(diagnose_http(LOC.format(resolver=ours))) == set()
    theirs = "resolver 1.1.1.1 8.8.8.8;\n"
    assert {"resolver-public", "resolver-no-valid", "resolver-ipv6"} <= codes(
        diagnose_http(LOC.format(resolver=theirs))
    )


def test_a_planned_mirror_with_default_resolvers_gets_no_resolver_finding(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    config = copy_case("crlf", tmp_path)
    options = corpus_options(config, "/kakao/result", ca_file)
    plan = make_plan(dataclasses.replace(options, stage_dns="runtime"), (1, 22, 1))
    assert any("resolver 1.1.1.1" in c.new_text for c in plan.changes)
    for change in plan.changes:
        change.path.write_bytes(to_bytes(change.new_text))
    assert not [f for f in diagnose_file(config) if f.code.startswith("resolver")]
