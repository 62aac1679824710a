"""The rehearsal's DNS server, queried with a real resolver library (dnspython) over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from hookshift.rehearsal.dns import Answer, DnsServer, Record, resolve, start_dns_process

STAGE = "abc123.execute-api.ap-northeast-2.amazonaws.com"
REGIONAL = "d-xyz789.execute-api.ap-northeast-2.amazonaws.com"
DOMAIN = "hooks.example.com"


def _resolver(port: int, timeout: float = 2.0) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


@pytest.fixture
def server() -> Iterator[DnsServer]:
    with DnsServer([f"{STAGE}=127.0.0.1", f"{DOMAIN}={REGIONAL}", f"{REGIONAL}=127.0.0.1"]) as dns:
        yield dns


def test_the_stage_host_resolves_to_loopback_over_udp(server: DnsServer) -> None:
    answer = _resolver(server.port).resolve(STAGE, "A")
    assert [r.address for r in answer] == ["127.0.0.1"]


def test_the_same_port_answers_over_tcp(server: DnsServer) -> None:
    answer = _resolver(server.port).resolve(STAGE, "A", tcp=True)
    assert [r.address for r in answer] == ["127.0.0.1"]


def test_names_are_case_insensitive_and_answers_are_authoritative(server: DnsServer) -> None:
    query = dns.message.make_query(STAGE.upper(), "A")
    reply = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=2)
    assert reply.flags & dns.flags.AA
    assert reply.rcode() == dns.rcode.NOERROR


def test_a_custom_domain_cname_is_followed_to_the_regional_name(server: DnsServer) -> None:
    answer = _resolver(server.port).resolve(DOMAIN, "A")
    assert [r.address for r in answer] == ["127.0.0.1"]
    assert answer.canonical_name.to_text(omit_final_dot=True) == REGIONAL
    cname = _resolver(server.port).resolve(DOMAIN, "CNAME")
    assert [r.target.to_text(omit_final_dot=True) for r in cname] == [REGIONAL]


def test_an_unknown_name_is_nxdomain(server: DnsServer) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):
        _resolver(server.port).resolve("nope.execute-api.ap-northeast-2.amazonaws.com", "A")


def test_a_known_name_without_aaaa_is_nodata_not_nxdomain(server: DnsServer) -> None:
    # nginx asks for A and AAAA; an NXDOMAIN here would poison the A answer
    with pytest.raises(dns.resolver.NoAnswer):
        _resolver(server.port).resolve(STAGE, "AAAA")


def test_blackhole_mode_never_answers_so_the_client_times_out(server: DnsServer) -> None:
    server.blackhole = True
    with pytest.raises(dns.exception.Timeout):
        _resolver(server.port, timeout=0.5).resolve(STAGE, "A")
    assert (STAGE, "blackholed") in server.queries
    server.blackhole = False
    assert [r.address for r in _resolver(server.port).resolve(STAGE, "A")] == ["127.0.0.1"]


def test_records_can_be_replaced_while_running(server: DnsServer) -> None:
    server.set_records([f"{STAGE}=127.0.0.2"])
    assert [r.address for r in _resolver(server.port).resolve(STAGE, "A")] == ["127.0.0.2"]
    with pytest.raises(dns.resolver.NXDOMAIN):
        _resolver(server.port).resolve(DOMAIN, "A")


def test_every_question_is_recorded(server: DnsServer) -> None:
    _resolver(server.port).resolve(STAGE, "A")
    assert (STAGE, "A") in server.queries


def test_record_specs_parse_to_a_aaaa_and_cname() -> None:
    assert Record.parse("X.Example.com.=127.0.0.1") == Record("x.example.com", "A", "127.0.0.1")
    assert Record.parse("x=::1") == Record("x", "AAAA", "::1")
    assert Record.parse("x=Target.example.") == Record("x", "CNAME", "target.example")
    assert Record.parse("x=CNAME:y") == Record("x", "CNAME", "y")
    with pytest.raises(ValueError, match="NAME=VALUE"):
        Record.parse("no-value")


def test_resolve_does_not_loop_on_a_cname_cycle() -> None:
    records = [Record("a", "CNAME", "b"), Record("b", "CNAME", "a")]
    answer = resolve(records, "a", "A")
    assert answer == Answer("NOERROR", (records[0], records[1]))


@pytest.mark.e2e
def test_the_server_runs_as_a_process_for_nginx(tmp_path: Path) -> None:
    process, port = start_dns_process(
        tmp_path, [f"{STAGE}=127.0.0.1", Record("alias", "CNAME", STAGE)]
    )
    try:
        assert [r.address for r in _resolver(port).resolve(STAGE, "A")] == ["127.0.0.1"]
        assert [r.address for r in _resolver(port).resolve("alias", "A", tcp=True)] == ["127.0.0.1"]
    finally:
        process.stop()
    assert not process.running()


@pytest.mark.e2e
def test_a_blackholed_process_is_ready_yet_silent(tmp_path: Path) -> None:
    process, port = start_dns_process(tmp_path, [f"{STAGE}=127.0.0.1"], blackhole=True)
    try:
        with pytest.raises(dns.exception.Timeout):
            _resolver(port, timeout=0.5).resolve(STAGE, "A")
    finally:
        process.stop()


@pytest.mark.e2e
def test_a_bad_record_on_the_command_line_is_one_line_and_exit_2() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "hookshift.rehearsal.dns", "--record", "no-value"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "NAME=VALUE" in result.stderr
