"""The DNS check asks each resolver for real and names the ones that would fail nginx."""

from __future__ import annotations

from hookshift.mirror.dnscheck import check_resolver, dns_warnings
from hookshift.nginx.values import parse_resolver
from hookshift.procs import free_port_pair
from hookshift.rehearsal.dns import DnsServer

HOST = "abc123.execute-api.ap-northeast-2.amazonaws.com"


def test_a_resolver_that_answers_gives_no_warning() -> None:
    with DnsServer([f"{HOST}=127.0.0.1"]) as dns:
        assert check_resolver(dns.address, HOST).detail == "127.0.0.1"
        assert dns_warnings((dns.address,), HOST) == []


def test_a_resolver_that_never_answers_is_named() -> None:
    with (
        DnsServer([f"{HOST}=127.0.0.1"], blackhole=True) as dead,
        DnsServer([f"{HOST}=127.0.0.1"]) as alive,
    ):
        warnings = dns_warnings((dead.address, alive.address), HOST, timeout=0.5)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"resolver {dead.address} did not answer")
    assert "could not be resolved" in warnings[0]


def test_a_resolver_without_the_name_is_named() -> None:
    with DnsServer(["other.example=127.0.0.1"]) as dns:
        (warning,) = dns_warnings((dns.address,), HOST)
    assert f"resolver {dns.address} answered NXDOMAIN" in warning


def test_nothing_listening_is_a_warning_too() -> None:
    port = free_port_pair()
    (warning,) = dns_warnings((f"127.0.0.1:{port}",), HOST, timeout=0.5)
    assert f"127.0.0.1:{port}" in warning


def test_an_address_needs_no_resolver() -> None:
    assert dns_warnings(("127.0.0.1:1",), "127.0.0.1") == []


def test_resolver_forms() -> None:
    assert parse_resolver("1.1.1.1") == ("1.1.1.1", 53)
    assert parse_resolver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_resolver("[::1]:53") == ("::1", 53)
    assert parse_resolver("[::1]") == ("::1", 53)
