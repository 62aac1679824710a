"""Checks on the addresses and URLs a user gives: whether a host reaches this machine only,
and whether a text is an http(s) URL nginx, httpx and the AWS SDK can use.

They sit below every part (mirror, verify, cutover, apigw) so that none imports another for
them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from urllib.parse import urlsplit

import idna


def is_loopback(host: str) -> bool:
    """`host` (a name or an address, IPv6 without brackets) reaches this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_ip_address(host: str) -> bool:
    """`host` is an IPv4 or IPv6 address (brackets allowed), not a name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def dns_host(host: str) -> str:
    """`host` as DNS, TLS (SNI) and an HTTP ``Host`` header carry it: lowercase, letters outside
    ASCII as IDNA A-labels (``xn--...``, what API Gateway's custom domains and certificates
    hold), without the trailing dot of a fully qualified name (a Host or SNI with it matches
    no certificate). An address is returned as it is.

    ValueError, saying why, for a name no DNS can hold.
    """
    if is_ip_address(host):
        return host
    name = host[:-1] if host.endswith(".") else host
    with contextlib.suppress(idna.IDNAError):  # judged below, in the user's words
        name = idna.encode(name, uts46=True).decode("ascii")
    labels = name.lower().split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            "not a host name DNS can hold (dot-separated parts of letters, digits and inner "
            "hyphens, each at most 63 characters)"
        )
    return ".".join(labels)


def is_http_url(text: str) -> bool:
    """An http(s) URL with a host and, if it has one, a port that exists."""
    try:
        parts = urlsplit(text)  # an unclosed [IPv6 is a ValueError here
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError:
        return False
    return parts.scheme in ("https", "http") and bool(parts.hostname)
