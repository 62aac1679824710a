"""nginx directive values, read once for every part: sizes, times, ``listen``, ``*_pass``
targets, ``resolver`` addresses and the files logs are written to."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hookshift.addresses import is_ip_address
from hookshift.errors import InputError

Family = Literal["inet", "inet6", "unix"]

PASS_DIRECTIVES = ("proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass")
"""The content handlers that hand a request to an app (the callback's receiver)."""

REQUEST_BUFFERING = (
    "proxy_request_buffering",
    "fastcgi_request_buffering",
    "uwsgi_request_buffering",
    "scgi_request_buffering",
)
"""What turns off reading a request's whole body before passing it on (``off``: streamed)."""


def if_condition(words: tuple[str, ...]) -> tuple[str, ...]:
    """The words of an ``if`` condition as nginx reads them from the statement's words: the
    first word's ``(`` and the last word's ``)`` taken off, and a word that leaves empty
    dropped (a ``""`` operand stays). crossplane's words come stripped already, and a
    condition nginx accepts then starts with a variable or a test: left as they are."""
    if not (words and words[0].startswith("(") and words[-1].endswith(")")):
        return words
    inner = list(words)
    inner[0] = inner[0][1:].lstrip()
    inner[-1] = inner[-1][:-1].rstrip()
    start = 0 if inner[0] else 1
    end = len(inner) - (0 if inner[-1] else 1)
    return tuple(inner[start:end])


def parse_size(text: str) -> int | None:
    """nginx size syntax: ``512``, ``16k``, ``1m``, ``1g`` -> bytes (None if unreadable)."""
    found = re.fullmatch(r"(\d+)([kKmMgG]?)", text.strip())
    if found is None:
        return None
    unit = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[found.group(2).lower()]
    return int(found.group(1)) * unit


_TIME_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000}


def parse_time(text: str) -> float | None:
    """nginx time (``500ms``, ``2s``, ``1m30s``, ``10``) in seconds; None when not a time."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|M|y)?", text)
    if not parts or "".join(n + (u or "") for n, u in parts) != text:
        return None
    total = 0.0
    for number, unit in parts:
        total += int(number) * (31536000 if unit == "y" else _TIME_UNITS.get(unit or "s", 1))
    return total


@dataclass(frozen=True)
class Socket:
    """A listening address: ``addr`` is ``*`` (every IPv4 address), ``[::]`` (every IPv6
    address), an address or name, or ``unix:/path``.

    IPv4 and IPv6 wildcards are different sockets: a request arrives on exactly one of them.
    """

    addr: str
    port: str

    def __str__(self) -> str:
        return self.addr if self.addr.startswith("unix:") else f"{self.addr}:{self.port}"

    @property
    def family(self) -> Family:
        if self.addr.startswith("unix:"):
            return "unix"
        return "inet6" if self.addr.startswith("[") else "inet"

    @property
    def wildcard(self) -> bool:
        return self.addr in ("*", "[::]")


@dataclass(frozen=True)
class Listen:
    """One ``listen`` line: the socket, ``default_server``, ``ipv6only=off`` (an IPv6
    wildcard that also takes the IPv4 connections of its port) and ``ssl``."""

    socket: Socket
    default: bool = False
    dual_stack: bool = False
    ssl: bool = False


def _normalise_addr(host: str) -> str:
    if host in ("", "*", "0.0.0.0"):
        return "*"
    if host.lower() == "localhost":
        # nginx resolves the name when it starts: it shares 127.0.0.1's socket (and [::1]'s
        # where the hosts file names it too, which a vendor's callback never reaches)
        return "127.0.0.1"
    if host.startswith("["):
        inner = host[1:-1]
        try:
            ip = ipaddress.IPv6Address(inner)
        except ValueError:
            return host
        return "[::]" if ip == ipaddress.IPv6Address("::") else f"[{ip.compressed}]"
    return host.lower()


def address_port(address: str, port: int) -> str:
    """An address and port as nginx's ``server`` and ``listen`` take them (IPv6 in brackets)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def parse_socket(text: str) -> Socket:
    """``80``, ``127.0.0.1:8080``, ``[::]:443``, ``localhost``, ``*:80``, ``unix:/run/x.sock``."""
    if text.startswith("unix:"):
        return Socket(text, "")
    if text.isdigit():
        return Socket("*", text)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return Socket(_normalise_addr(f"[{host}]"), rest.lstrip(":") or "80")
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return Socket(_normalise_addr(host), port)
    return Socket(_normalise_addr(text), "80")


def parse_listen(args: tuple[str, ...]) -> Listen:
    """A ``listen`` directive's arguments (``[::]:80 default_server ipv6only=off``)."""
    socket = parse_socket(args[0])
    default = any(a in ("default_server", "default") for a in args[1:])
    dual = socket.addr == "[::]" and "ipv6only=off" in args[1:]
    return Listen(socket, default, dual, "ssl" in args[1:])


@dataclass(frozen=True)
class ProxyTarget:
    """A ``proxy_pass`` argument taken apart the way nginx will use it.

    `host` is None when the host part itself comes from a variable (only known per request);
    `scheme` is the variable's text (``$scheme``) when the scheme comes from one, neither
    ``http`` nor ``https`` until a request is made.
    """

    scheme: str
    host: str | None
    port: int | None
    has_variables: bool

    @property
    def is_ip(self) -> bool:
        return self.host is not None and is_ip_address(self.host)


# Variables whose value starts with "/" or "?": a host literal right before them is complete.
_PATH_VARIABLES = ("request_uri", "uri", "document_uri", "is_args", "args", "query_string")
# the scheme may come from a variable (`$scheme://host`): the host is still known
_PROXY_RE = re.compile(r"^(?P<scheme>[a-zA-Z]+|\$\{?\w+\}?)://(?P<rest>.*)$")


def pass_url(name: str, arg: str) -> str:
    """A ``*_pass`` argument as a URL: fastcgi, scgi, uwsgi and grpc may leave out the scheme
    (``fastcgi_pass php:9000``), which parse_proxy_pass needs."""
    if name == "proxy_pass" or "://" in arg:
        return arg
    return f"{name.split('_', 1)[0]}://{arg}"


def parse_proxy_pass(arg: str) -> ProxyTarget | None:
    """Split a ``proxy_pass`` URL; None for forms that name no host (``unix:``, bare vars)."""
    m = _PROXY_RE.match(arg)
    if m is None:
        return None
    scheme, rest = m.group("scheme").lower(), m.group("rest")
    if rest.startswith("unix:"):
        return None
    has_variables = "$" in arg
    host_re = re.match(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d+))?", rest)
    if host_re is None:
        return ProxyTarget(scheme, None, None, has_variables)
    host, port = host_re.group(1), host_re.group(2)
    after = rest[host_re.end() :]
    if after.startswith("$"):
        var = re.match(r"^\$\{?(\w+)", after)
        if var is None or var.group(1) not in _PATH_VARIABLES:
            return ProxyTarget(scheme, None, None, has_variables)  # host continues in a variable
    elif after and after[0] not in "/?":
        return ProxyTarget(scheme, None, None, has_variables)
    return ProxyTarget(scheme, host.lower(), int(port) if port else None, has_variables)


RESOLVER_FIX = "pass an address and an optional port, e.g. --resolver 1.1.1.1 or 127.0.0.1:5353"


def parse_resolver(spec: str, flag: str = "--resolver") -> tuple[str, int]:
    """One DNS server as nginx's ``resolver`` takes it and a DNS query can use: an IPv4
    address or an IPv6 one in brackets, with an optional port (53 by default): ``1.1.1.1`` ->
    (1.1.1.1, 53), ``127.0.0.1:5353``, ``[::1]``, ``[::1]:53``.

    `InputError` (one line, naming `flag`) for anything else: nginx -t would refuse the
    config, and a DNS query to it cannot be sent.
    """
    host, port = spec, "53"
    if spec.startswith("["):
        host, closed, rest = spec[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            host = ""
        port = rest[1:] if rest else "53"
    elif spec.count(":") == 1:
        host, _, port = spec.partition(":")
    elif ":" in spec:
        raise InputError(
            f"{flag} {spec!r}: nginx takes an IPv6 resolver in brackets", fix=f"--resolver [{spec}]"
        )
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise InputError(
            f"{flag} {spec!r} is not an IP address with an optional port", fix=RESOLVER_FIX
        ) from None
    # nginx reads what is in brackets as IPv6 only, and takes no zone (fe80::1%eth0)
    if spec.startswith("[") and address.version == 4:
        raise InputError(
            f"{flag} {spec!r}: brackets are for an IPv6 address",
            fix=f"{flag} {host}" + (f":{port}" if port != "53" else ""),
        )
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise InputError(
            f"{flag} {spec!r}: nginx takes no zone (%{address.scope_id}) in a resolver address",
            fix=RESOLVER_FIX,
        )
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{flag} {spec!r}: the port must be 1-65535", fix=RESOLVER_FIX)
    return str(address), int(port)


def resolver_addresses(args: tuple[str, ...]) -> list[str]:
    """The addresses of a ``resolver`` line (parameters like ``valid=`` left out, ports too)."""
    found = []
    for arg in args:
        if "=" in arg:
            continue
        host = arg
        if host.startswith("["):
            host = host[1 : host.index("]")] if "]" in host else host[1:]
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        found.append(host)
    return found


# Log targets that are no file: syslog, and the error log's standard error and memory buffer.
_NOT_A_FILE = ("syslog:", "memory:")


def log_file(target: str, prefix: Path | None) -> Path | None:
    """The file nginx writes for the first argument of ``access_log`` or ``error_log``.

    nginx resolves a relative path under its prefix (``-p``, else the compiled ``--prefix``),
    not under the config's directory as it does for ``include``: `prefix` is that, and a
    relative path stays relative when it is None (nginx resolves one written beside it the
    same way). None for ``off`` and the targets that are not a file.
    """
    if target in ("off", "stderr") or target.startswith(_NOT_A_FILE):
        return None
    path = Path(target)
    if path.is_absolute() or prefix is None:
        return path
    return prefix / path
