"""A small HTTPS client that connects to one address but speaks to a host name.

Tests, probes and the rehearsal talk to ``https://abc123.execute-api.REGION.amazonaws.com:PORT``
while the server is on 127.0.0.1: this client connects to ``connect_host`` and still sends the
URL's host as SNI and Host header and verifies the certificate against it, as nginx does with
a resolver, ``proxy_ssl_server_name on`` and ``proxy_ssl_verify on``. ``sni=False`` leaves the
server name out of the handshake, as nginx does by default.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_host: str,
        context: ssl.SSLContext,
        sni: bool,
        timeout: float,
    ) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._connect_host = connect_host
        self._ssl_context = context
        self._sni = sni

    def connect(self) -> None:
        raw = socket.create_connection((self._connect_host, self.port), self.timeout)
        try:
            self.sock = self._ssl_context.wrap_socket(
                raw, server_hostname=self.host if self._sni else None
            )
        except BaseException:
            raw.close()
            raise


def request(
    method: str,
    url: str,
    body: bytes | str = b"",
    headers: Mapping[str, str] | None = None,
    *,
    cafile: Path | None = None,
    connect_host: str = "127.0.0.1",
    sni: bool = True,
    verify: bool = True,
    timeout: float = 10.0,
) -> HttpResponse:
    """Send one request over HTTPS to ``connect_host``, naming the URL's host (SNI, Host)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{url!r} is not an https URL")
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if not verify or not sni:
        context.check_hostname = False  # without SNI there is no name to check against
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    connection = _PinnedHTTPSConnection(
        parts.hostname,
        parts.port or 443,
        connect_host=connect_host,
        context=context,
        sni=sni,
        timeout=timeout,
    )
    payload = body.encode("utf-8") if isinstance(body, str) else body
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request(method, target, body=payload, headers=dict(headers or {}))
        response = connection.getresponse()
        return HttpResponse(response.status, tuple(response.getheaders()), response.read())
    finally:
        connection.close()


def post(
    url: str, body: bytes | str, headers: Mapping[str, str] | None = None, **kw: object
) -> HttpResponse:
    """``request("POST", ...)``; a JSON Content-Type unless ``headers`` says otherwise."""
    merged = {"Content-Type": "application/json", **(headers or {})}
    return request("POST", url, body, merged, **kw)  # type: ignore[arg-type]
