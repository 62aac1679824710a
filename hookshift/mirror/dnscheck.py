"""Ask each configured resolver for the stage host, from this machine, before writing.

A hand-made mirror fails at run time with ``could not be resolved (110: Operation timed
out)``: the resolver nginx was given could not answer for the execute-api host, and
``nginx -t`` cannot know. A real DNS query (UDP, like nginx's resolver) to each resolver tells
the user now, naming the resolver that does not answer or answers with nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from hookshift.errors import InputError
from hookshift.nginx.values import parse_resolver

DEFAULT_TIMEOUT = 2.0
RESOLV_CONF = Path("/etc/resolv.conf")


@dataclass(frozen=True)
class ResolverCheck:
    resolver: str
    ok: bool
    detail: str
    addresses: tuple[str, ...] = ()


def check_resolver(spec: str, host: str, timeout: float = DEFAULT_TIMEOUT) -> ResolverCheck:
    """Query `spec` for `host`'s A record (what nginx asks with ``ipv6=off``)."""
    addr, port = parse_resolver(spec)
    query = dns.message.make_query(host, dns.rdatatype.A)
    try:
        answer = dns.query.udp(query, addr, port=port, timeout=timeout)
    except dns.exception.Timeout:
        return ResolverCheck(spec, False, f"did not answer within {timeout:g}s")
    except OSError as exc:
        return ResolverCheck(spec, False, f"cannot be queried: {exc.strerror or exc}")
    rcode = answer.rcode()
    if rcode != dns.rcode.NOERROR:
        return ResolverCheck(spec, False, f"answered {dns.rcode.to_text(rcode)} for {host}")
    addresses = [
        item.to_text()
        for rrset in answer.answer
        if rrset.rdtype == dns.rdatatype.A
        for item in rrset
    ]
    if not addresses:
        return ResolverCheck(spec, False, f"gave no address for {host}")
    return ResolverCheck(spec, True, ", ".join(addresses), tuple(addresses))


@dataclass(frozen=True)
class StageLookup:
    """What the resolvers said of the stage's host: its addresses, and a warning for each
    resolver that would leave nginx unable to resolve it."""

    addresses: tuple[str, ...]
    warnings: tuple[str, ...]


def look_up_stage(
    resolvers: tuple[str, ...], host: str, timeout: float = DEFAULT_TIMEOUT
) -> StageLookup:
    """Ask every resolver for `host`, as nginx's resolver would; the addresses are those of
    every resolver that answered, sorted (nginx asks them in turn)."""
    try:
        ipaddress.ip_address(host)
        return StageLookup((host,), ())  # nginx does not resolve an address
    except ValueError:
        pass
    warnings = []
    found: set[str] = set()
    for spec in resolvers:
        result = check_resolver(spec, host, timeout)
        found.update(result.addresses)
        if not result.ok:
            warnings.append(
                f"resolver {spec} {result.detail}: nginx would log '{host} could not be "
                "resolved' and drop the mirror copy (pass a resolver that answers with "
                "--resolver, or --no-dns-check when planning offline)"
            )
    return StageLookup(tuple(sorted(found, key=ipaddress.ip_address)), tuple(warnings))


def dns_warnings(
    resolvers: tuple[str, ...], host: str, timeout: float = DEFAULT_TIMEOUT
) -> list[str]:
    """One warning per resolver that would leave nginx unable to resolve `host`."""
    return list(look_up_stage(resolvers, host, timeout).warnings)


def host_resolver(resolv_conf: Path = RESOLV_CONF) -> str | None:
    """The first ``nameserver`` of `resolv_conf` that nginx's ``resolver`` can take (this
    host's resolver: the VPC's on an EC2 instance, systemd-resolved's 127.0.0.53, ...), as
    ``--resolver`` takes it; None when there is none (an IPv6 address with a zone is not one)
    or the file cannot be read."""
    try:
        text = resolv_conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "nameserver":
            continue
        address = words[1]
        spec = f"[{address}]" if ":" in address else address
        try:
            parse_resolver(spec)  # refuses an IPv6 address with a zone too, as nginx does
        except InputError:
            continue
        return spec
    return None
