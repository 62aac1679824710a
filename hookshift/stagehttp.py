"""Reaching a stage by its name through a resolver the user names: DNS asked of that resolver, a
TLS handshake and a POST to the address it gave, with the name kept for SNI, the certificate
check and the ``Host`` header.

A stage behind a private resolver or CA is reached the way the vendor's side will reach it only
if the name is looked up there and the certificate is checked against that CA. Two parts need
this: the cut-over's probe (which observes each step for a diagnosis) and ``verify heal`` (which
sends the replays and must stop at once when the stage cannot be reached). Both import it from
here, below every part, so that neither imports the other.

Nothing here decides or prints: a lookup returns what the resolver said (`Answer`), a failed
connection raises with the reason in the user's words (`plain_words`: no OpenSSL source positions
such as ``_ssl.c:989``, no exception names), and the caller says what it means for its command.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from hookshift.addresses import dns_host, is_ip_address
from hookshift.errors import InputError

if TYPE_CHECKING:
    import httpx

# where OpenSSL's messages name its own source ("(_ssl.c:1006)", "_ssl.c:989: "), and the
# system's error number before its words ("[Errno 111] Connection refused", as httpx passes it on)
_NOT_WORDS = re.compile(r"\s*\(_ssl\.c:\d+\)|_ssl\.c:\d+:\s*|\[Errno -?\d+\]\s*")
# getaddrinfo's answers that mean the name does not exist (rather than that asking failed)
_NO_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


# OpenSSL's reasons whose code alone sends the reader to the wrong place, with what they mean
# for a stage; the code stays in the words, so it can still be searched for
_TLS_REASONS = {
    reason: "no TLS version both sides accept: the server offers only versions older than "
    f"TLS 1.2, which this machine refuses ({reason})"
    for reason in (
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
        "WRONG_SSL_VERSION",
    )
} | {
    "WRONG_VERSION_NUMBER": "the answer is not TLS: something other than HTTPS (plain HTTP?) "
    "listens there (WRONG_VERSION_NUMBER)",
}


def plain_words(exc: BaseException) -> str:
    """What went wrong, in words: OpenSSL's reason, or the system's, without source positions."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return _TLS_REASONS.get(str(exc.reason), str(exc.reason))
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return _NOT_WORDS.sub("", text).strip() or "no reason given"


def check_ca_file(ca_file: str) -> Path:
    """The CA bundle, checked before anything is sent: a file holding PEM certificates.

    A missing or wrong bundle would otherwise surface in the middle of the TLS step, where it
    reads like a network or handshake failure and sends the user to the wrong place.
    """
    where = f"--ca-file {ca_file}"
    fix = "pass the PEM bundle of the CA that signed the server's certificate"
    path = Path(ca_file)
    if not path.exists():
        raise InputError("not found", where=where, fix=fix)
    if not path.is_file():  # a directory, or a FIFO whose read would block
        raise InputError("not a file", where=where, fix=fix)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror})", where=where, fix=fix) from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise InputError("no PEM certificate in it", where=where, fix=fix)
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError:
        raise InputError(
            "its PEM certificates cannot be read (cut short or damaged?)", where=where, fix=fix
        ) from None
    return path


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificates verified against `ca_file` (a private CA), else the system's CAs."""
    return ssl.create_default_context(cafile=ca_file)


# --------------------------------------------------------------------------- names

# what a resolver's refusal to give an answer means, for the codes that are not about the name
_RCODE_WORDS = {
    "SERVFAIL": "could not resolve it (the name's DNS servers failed or did not answer, or "
    "DNSSEC validation failed)",
    "REFUSED": "refuses to answer it (it is not a resolver this machine may use, or not for "
    "this name)",
}
#: What a reply that is no DNS answer to the question means (a port where another service
#: listens, such as an echo or a syslog server, or a resolver that mangles its replies)
NOT_DNS = "its reply is not a DNS answer to the question: is a DNS server listening there?"


@dataclass(frozen=True)
class Answer:
    """What was said for a host: ``rcode`` is NOERROR, NXDOMAIN, NODATA, TIMEOUT or ERROR (or
    another DNS code such as SERVFAIL), ``resolver`` who was asked, as the user knows it.

    ``source`` is ``system`` when this machine answered itself (its hosts file, getaddrinfo)
    rather than a DNS server; ``local_addresses`` is what this machine's own lookup gives for a
    name the system's DNS server does not know (a hosts-file entry).
    """

    rcode: str
    chain: tuple[str, ...] = ()  # CNAME targets in order
    addresses: tuple[str, ...] = ()
    resolver: str = "system resolver"
    error: str = ""
    source: str = "dns"  # "dns" | "system"
    local_addresses: tuple[str, ...] = ()


def is_local_name(host: str) -> bool:
    """``localhost`` and ``*.localhost``: names this machine answers itself (RFC 6761)."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def _getaddrinfo(host: str) -> tuple[tuple[str, ...], socket.gaierror | None]:
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return (), exc
    except (OSError, UnicodeError):
        return (), None
    v4 = [str(a[4][0]) for a in found if a[0] == socket.AF_INET]
    v6 = [str(a[4][0]) for a in found if a[0] == socket.AF_INET6]
    return tuple(dict.fromkeys(v4 + v6)), None


def system_addresses(host: str) -> tuple[str, ...]:
    """What this machine resolves ``host`` to (its hosts file first, as every program's
    getaddrinfo does), IPv4 first; empty when it does not."""
    return _getaddrinfo(host)[0]


def system_lookup(host: str) -> Answer:
    """``host`` looked up this machine's way (hosts file, then its DNS), as any program on it
    would connect: the lookup a sender uses when no resolver is named."""
    label = "this machine's resolver"
    if is_ip_address(host):
        return Answer("NOERROR", (), (host.strip("[]"),), "literal address")
    addresses, error = _getaddrinfo(host)
    if addresses:
        return Answer("NOERROR", (), addresses, label, source="system")
    if error is not None and error.errno in _NO_NAME:
        return Answer("NXDOMAIN", resolver=label, error=plain_words(error), source="system")
    words = plain_words(error) if error is not None else "not a name it can look up"
    return Answer("ERROR", resolver=label, error=words, source="system")


def resolve(host: str, resolver: tuple[str, int] | None, timeout: float = 3.0) -> Answer:
    """Ask `resolver` (the system's first DNS server when None) for ``host``'s A records, or its
    AAAA records when it has no A; collect the CNAME chain and the addresses.

    An address needs no DNS, and ``localhost`` is asked of this machine, as every program on it
    would: no DNS server knows it. A name the system's DNS server does not know is also looked
    up the system's way (``local_addresses``), so a caller can say when only this machine's
    hosts file has it.
    """
    import dns.exception
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdatatype
    import dns.resolver

    label = authority(*resolver) if resolver else "system resolver"  # [::1]:53, not ::1:53
    if is_ip_address(host):
        return Answer("NOERROR", (), (host.strip("[]"),), "literal address")
    if is_local_name(host):
        mine = system_addresses(host)
        if mine:
            return Answer("NOERROR", (), mine, "this machine", source="system")
        error = "this machine does not resolve it (no entry in its hosts file)"
        return Answer("ERROR", resolver="this machine", error=error, source="system")
    system_asked = resolver is None
    if resolver is None:
        try:
            system = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            return Answer("ERROR", resolver=label, error="no system resolver configured")
        server = (system.nameservers[0], system.port) if system.nameservers else ("", 53)
        resolver = (str(server[0]), int(server[1]))
    # A first; AAAA only when the name has no A: an IPv6-only stage is reached at all, and a
    # stage with both over IPv4, which every network on the way carries
    try:
        name = dns.name.from_text(host)
    except dns.exception.DNSException:  # an empty label, one over 63 octets
        return Answer("ERROR", resolver=label, error="not a name DNS can hold")
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        query = dns.message.make_query(name, rdtype)
        try:
            reply, _ = dns.query.udp_with_fallback(  # TCP when the answer is truncated
                query, resolver[0], port=resolver[1], timeout=timeout
            )
        except dns.exception.Timeout:
            return Answer("TIMEOUT", resolver=label)
        except OSError as exc:
            return Answer("ERROR", resolver=label, error=plain_words(exc))
        except dns.exception.DNSException:  # cut short, malformed, or not a reply to the query
            return Answer("ERROR", resolver=label, error=NOT_DNS)
        rcode = dns.rcode.to_text(reply.rcode())
        chain: list[str] = []
        addresses: list[str] = []
        for rrset in reply.answer:
            for item in rrset:
                if rrset.rdtype == dns.rdatatype.CNAME:
                    chain.append(str(item.target).rstrip(".").lower())
                elif rrset.rdtype == rdtype:
                    addresses.append(str(item.address))
        if rcode == "NOERROR" and not addresses:
            rcode = "NODATA"
        if rcode != "NODATA":
            break
    said = _RCODE_WORDS.get(rcode, "")
    if said:
        return Answer(rcode, tuple(chain), tuple(addresses), label, error=f"{label} {said}")
    local: tuple[str, ...] = ()
    if system_asked and rcode in ("NXDOMAIN", "NODATA"):
        local = system_addresses(host)
    return Answer(rcode, tuple(chain), tuple(addresses), label, local_addresses=local)


# --------------------------------------------------------------------------- connections


class NoConnection(Exception):
    """The TCP connection itself failed (refused, unreachable, or no answer in time)."""


class Silent(Exception):
    """TCP connected, and the TLS handshake got no answer in time."""


def connect(address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``address:port``, waiting at most ``timeout`` (`NoConnection`)."""
    try:
        return socket.create_connection((address.strip("[]"), port), timeout=timeout)
    except TimeoutError:
        raise NoConnection(f"no answer within {timeout:g} s") from None
    except OSError as exc:
        raise NoConnection(plain_words(exc)) from None


def handshake(
    address: str, port: int, server_name: str | None, context: ssl.SSLContext, timeout: float
) -> bytes:
    """One TLS handshake; the TCP connect and the handshake each wait at most ``timeout``.
    Returns the server's certificate (DER); a refused certificate raises ssl's own error."""
    with connect(address, port, timeout) as raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=server_name)
        except TimeoutError:  # connected, and the peer said nothing within the timeout
            raise Silent(f"no answer within {timeout:g} s") from None
        with tls:
            return tls.getpeercert(binary_form=True) or b""


def wire_name(host: str) -> str:
    """`host` as the Host header and SNI carry it: a name with letters outside ASCII as its
    IDNA A-label (``xn--...``; httpx and ssl would fail to encode it), others as given but for
    the trailing dot of a fully qualified name (a Host or SNI with it matches no certificate)."""
    if host.isascii():
        return host.removesuffix(".")
    try:
        return dns_host(host)
    except ValueError:
        return host  # the caller's own check says what is wrong with it


def authority(host: str, port: int | None) -> str:
    """``host[:port]`` for a URL or a Host header (an IPv6 address in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port else shown


class StageUnreachable(Exception):
    """A request got no answer. ``delivered`` is False when no connection was made (the stage
    cannot have it), True when the request may have reached the stage before the answer was
    lost (a read timeout, a connection closed mid-answer)."""

    def __init__(self, words: str, *, delivered: bool) -> None:
        super().__init__(words)
        self.words = words
        self.delivered = delivered


def _as_bytes(headers: Mapping[str, str | bytes]) -> dict[bytes, bytes]:
    """Headers as httpx sends them unchanged: text encodes as ASCII (a name, a URL's host),
    bytes stay as given (a value outside ASCII, as its UTF-8)."""
    return {
        name.encode("ascii"): value if isinstance(value, bytes) else value.encode("ascii")
        for name, value in headers.items()
    }


#: The environment variables that send an HTTP client through a proxy (curl's and httpx's
#: names, in both cases)
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
#: The most of an answer's body that is read: a stage's answer (API Gateway's error, SQS's
#: reply) is a few hundred bytes, and a body without end must not fill memory
ANSWER_LIMIT = 64 * 1024


def ignored_proxies() -> tuple[str, ...]:
    """The proxy variables set in this environment, which `StageClient` does not use (named,
    so that the caller can say so)."""
    found: list[str] = []
    for name in PROXY_VARIABLES:
        found += [v for v in (name, name.lower()) if os.environ.get(v, "").strip()]
    return tuple(found)


class StageClient:
    """POSTs to one stage URL at one address (None: wherever this machine resolves the name),
    keeping connections open between requests.

    The URL's host stays the ``Host`` header, the TLS server name (SNI) and the name the
    certificate must hold, so a stage reached through another resolver's address answers and
    is checked exactly as it would be by name. Redirects are not followed: a 3xx must not carry
    a body somewhere nobody checked.

    The connection is direct whatever proxy the environment names (``HTTPS_PROXY`` and the
    others, `ignored_proxies`): nginx and the vendor reach the stage directly, so an answer
    through a proxy would say whether the proxy took the request, not the stage; and the
    address looked up at the resolver given is the one connected to. An answer's body is read
    up to `ANSWER_LIMIT` bytes and for at most ``timeout`` seconds once its status came.
    """

    def __init__(
        self,
        url: str,
        address: str | None = None,
        *,
        ca_file: str | None = None,
        timeout: float = 10.0,
        user_agent: str = "hookshift",
    ) -> None:
        import httpx

        parts = urlsplit(url)
        host = wire_name(parts.hostname or "")
        https = parts.scheme == "https"
        self.timeout = timeout
        netloc = authority(address or host, parts.port)
        self._scheme_netloc = (parts.scheme, netloc)
        self._target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        self._headers = {"Host": authority(host, parts.port), "User-Agent": user_agent}
        self._extensions: dict[str, Any] = {"sni_hostname": host} if https else {}
        verify: Any = tls_context(ca_file) if https else False
        self._client = httpx.Client(
            verify=verify, timeout=timeout, follow_redirects=False, trust_env=False
        )

    def post(
        self, body: bytes, headers: Mapping[str, str | bytes], *, path: str | None = None
    ) -> httpx.Response:
        """POST `body` with `headers` to the URL's path, or to `path` (a request target: path
        and query, on the same stage); `StageUnreachable` when no answer came. A header value
        outside ASCII is given as bytes (its UTF-8): as text it could not be sent at all."""
        import httpx

        target = self._target
        if path is not None:
            where, _, query = path.partition("?")
            target = urlunsplit((*self._scheme_netloc, where or "/", query, ""))
        request = self._client.build_request(
            "POST",
            target,
            content=body,
            headers=_as_bytes({**self._headers, **headers}),
            extensions=self._extensions,
        )
        try:
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise StageUnreachable(
                f"no answer within {self.timeout:g} s",
                delivered=not isinstance(exc, httpx.ConnectTimeout),
            ) from None
        except httpx.HTTPError as exc:
            raise StageUnreachable(
                plain_words(exc), delivered=not isinstance(exc, httpx.ConnectError)
            ) from None
        try:
            content = self._read_body(response)
        finally:
            response.close()  # a body not read to its end closes the connection with it
        # the status and headers as they came, with the body read (already decoded)
        kept = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(response.status_code, headers=kept, content=content, request=request)

    def _read_body(self, response: httpx.Response) -> bytes:
        """At most `ANSWER_LIMIT` bytes of the body, for at most ``timeout`` seconds. The
        status is the stage's answer: a body cut short, or one that stalls, leaves what came."""
        import httpx

        deadline = time.monotonic() + self.timeout
        content = bytearray()
        try:
            for chunk in response.iter_bytes():
                content += chunk
                if len(content) >= ANSWER_LIMIT or time.monotonic() > deadline:
                    break
        except httpx.HTTPError:  # the connection closed or stalled part-way through the body
            pass
        return bytes(content[:ANSWER_LIMIT])

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> StageClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
