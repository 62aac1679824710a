"""Checks on the addresses and URLs a user gives: whether a host reaches this machine only,
and whether a text is an http(s) URL nginx, httpx and the AWS SDK can use.

They sit below every part (mirror, verify, cutover, apigw) so that none imports another for
them.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


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


def is_http_url(text: str) -> bool:
    """An http(s) URL with a host and, if it has one, a port that exists."""
    try:
        parts = urlsplit(text)  # an unclosed [IPv6 is a ValueError here
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError:
        return False
    return parts.scheme in ("https", "http") and bool(parts.hostname)
