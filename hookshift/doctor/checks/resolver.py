"""Checks on ``resolver`` lines: whom nginx asks, and how long it keeps and waits for answers."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

from hookshift.doctor.findings import Finding, Severity
from hookshift.doctor.model import Index
from hookshift.nginx.config import Directive, NginxConfig
from hookshift.nginx.splice import MARK
from hookshift.nginx.values import resolver_addresses as parse_resolver_addresses

# Open resolvers run for the public; nginx queries them over plain UDP from the internet.
PUBLIC_RESOLVERS: dict[str, str] = {
    "1.1.1.1": "Cloudflare",
    "1.0.0.1": "Cloudflare",
    "2606:4700:4700::1111": "Cloudflare",
    "2606:4700:4700::1001": "Cloudflare",
    "8.8.8.8": "Google",
    "8.8.4.4": "Google",
    "2001:4860:4860::8888": "Google",
    "2001:4860:4860::8844": "Google",
    "9.9.9.9": "Quad9",
    "149.112.112.112": "Quad9",
    "2620:fe::fe": "Quad9",
    "208.67.222.222": "OpenDNS",
    "208.67.220.220": "OpenDNS",
    "208.67.222.220": "OpenDNS",
    "208.67.220.222": "OpenDNS",
    "4.2.2.1": "Level3",
    "4.2.2.2": "Level3",
    "64.6.64.6": "Verisign",
    "94.140.14.14": "AdGuard",
}


def resolver_addresses(d: Directive) -> list[str]:
    """The addresses of a ``resolver`` line (parameters like ``valid=`` left out, ports too)."""
    return parse_resolver_addresses(d.args)


def _public(address: str) -> str | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return PUBLIC_RESOLVERS.get(str(ip))


def _marked_lines(config: NginxConfig) -> set[tuple[Path, int]]:
    """(file, line) of every line ending in hookshift's ``# hookshift`` mark."""
    mark = MARK.lstrip("#").strip()
    marked: set[tuple[Path, int]] = set()

    def visit(ds: tuple[Directive, ...]) -> None:
        for d in ds:
            if d.is_comment and (d.comment or "").strip() == mark:
                marked.add((d.file, d.line))
            if d.block is not None:
                visit(d.block)

    for top in config.files.values():
        visit(top)
    return marked


def _resolvers(index: Index) -> Iterator[Directive]:
    """The user's ``resolver`` lines. hookshift's own (marked) ones are left out: `mirror plan`
    chose them with the user (``--resolver``), and without one says in an info line what its
    public default ones trade and which resolver of this host to pass instead."""
    marked = _marked_lines(index.config)
    for d, parents in index.config.walk():
        is_resolver = d.name == "resolver" and parents and parents[0].name == "http"
        if is_resolver and (d.file, d.line) not in marked:
            yield d


def public_resolver(index: Index) -> Iterator[Finding]:
    """Public resolvers resolve any public name but trade away the trust of internal DNS."""
    for d in _resolvers(index):
        public = [f"{a} ({_public(a)})" for a in resolver_addresses(d) if _public(a)]
        if not public:
            continue
        yield Finding(
            code="resolver-public",
            severity=Severity.INFO,
            where=d.where,
            message=(
                f"nginx asks public resolvers {', '.join(public)} over plain UDP: they resolve "
                "names the internal DNS may not (an execute-api host), but their "
                "answers cross the internet and can be spoofed, and they do not see private "
                "zones (a VPC endpoint or split-horizon name resolves differently)"
            ),
            fix="prefer a trusted resolver that resolves the host (the VPC resolver, "
            "169.254.169.253 or the VPC CIDR base +2 on AWS, or a local caching resolver); "
            "keep public ones only where none does, with proxy_ssl_verify on",
        )


def resolver_without_valid(index: Index) -> Iterator[Finding]:
    """Without ``valid=`` nginx keeps each answer for the record's TTL."""
    for d in _resolvers(index):
        if any(a.startswith("valid=") for a in d.args):
            continue
        yield Finding(
            code="resolver-no-valid",
            severity=Severity.INFO,
            where=d.where,
            message=(
                "`resolver` has no `valid=`: nginx keeps each answer for the record's TTL, "
                "so how fast it follows an address change is up to the DNS zone, not you"
            ),
            fix="add `valid=10s` (or the re-resolution interval you want) to the resolver line",
        )


def resolver_without_ipv6_off(index: Index) -> Iterator[Finding]:
    """nginx looks up AAAA too and connects to IPv6 addresses when it gets them."""
    for d in _resolvers(index):
        if any(a in ("ipv6=off", "ipv4=off") for a in d.args):
            continue
        yield Finding(
            code="resolver-ipv6",
            severity=Severity.INFO,
            where=d.where,
            message=(
                "`resolver` without `ipv6=off`: nginx also asks for AAAA records and tries the "
                "IPv6 addresses it gets; on a host that reaches the upstream over IPv4 only, "
                "those attempts fail (`Network is unreachable`) and cost a retry per request"
            ),
            fix="add `ipv6=off` when this host has no IPv6 route to the upstream",
        )
