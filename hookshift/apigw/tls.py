"""Certificates for the stage emulator, made on the fly with trustme, and its TLS contexts.

API Gateway's endpoints present a certificate for the stage host (``*.execute-api.REGION...``)
or for the custom domain (from ACM), chosen by the SNI server name; a client that sends no server
name is refused during the handshake. nginx meets all three: ``proxy_ssl_server_name on``, a CA
to verify against (``proxy_ssl_trusted_certificate``, the CA PEM written here) and the name to
verify (``proxy_ssl_name``). The emulator reproduces them, including deliberately bad
certificates (expired, about to expire, wrong names) for the probe tests.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import trustme

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"


@dataclass(frozen=True)
class CertSpec:
    """What a served certificate says: its SANs and validity (None: trustme's defaults)."""

    names: tuple[str, ...]
    not_before: datetime | None = None
    not_after: datetime | None = None


@dataclass(frozen=True)
class CertPaths:
    """PEM files: the CA (trust anchor for clients), the leaf chain, and the leaf's key."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path


def load_or_create_ca(directory: Path) -> trustme.CA:
    """The directory's CA, created on first use, so every certificate (and restart) shares it."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / CA_CERT, directory / CA_KEY
    if cert.exists() and key.exists():
        return trustme.CA.from_pem(cert.read_bytes(), key.read_bytes())
    ca = trustme.CA(organization_name="hookshift rehearsal CA")
    key.write_bytes(ca.private_key_pem.bytes())
    key.chmod(0o600)
    cert.write_bytes(ca.cert_pem.bytes())
    return ca


def _stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", name) or "cert"


def make_certs(
    directory: Path,
    names: Iterable[str],
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    stem: str | None = None,
) -> CertPaths:
    """Issue a certificate for ``names`` from the directory's CA; return the PEM paths.

    ``stem`` names the files (default: the first name), so a deliberately wrong certificate for
    a host can sit beside the right one.
    """
    directory = Path(directory)
    ca = load_or_create_ca(directory)
    names = tuple(names)
    if not names:
        raise ValueError("a certificate needs at least one name")
    leaf = ca.issue_cert(*names, not_before=not_before, not_after=not_after)
    base = _stem(stem or names[0])
    cert_pem, key_pem = directory / f"{base}.pem", directory / f"{base}-key.pem"
    cert_pem.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_pem.write_bytes(leaf.private_key_pem.bytes())
    key_pem.chmod(0o600)
    return CertPaths(ca_pem=directory / CA_CERT, cert_pem=cert_pem, key_pem=key_pem)


def server_context(paths: CertPaths) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # API Gateway's floor (TLS 1.0 policy aside)
    context.load_cert_chain(paths.cert_pem, paths.key_pem)
    return context


def sni_context(
    certs: Mapping[str, CertPaths],
    default_host: str,
    *,
    require_sni: bool = True,
    on_refusal: Callable[[str], None] | None = None,
) -> ssl.SSLContext:
    """A server context that presents the certificate for the SNI name, like API Gateway.

    No server name at all: the handshake fails with ``handshake_failure`` (nginx logs ``sslv3
    alert handshake failure``), as on AWS, unless ``require_sni`` is off. An unknown name gets
    ``default_host``'s certificate, which the client's verification then rejects.
    """
    contexts = {name.lower(): server_context(paths) for name, paths in certs.items()}
    main = contexts[default_host.lower()]

    def choose(
        sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext
    ) -> int | None:
        if name is None:
            if not require_sni:
                return None
            if on_refusal is not None:
                on_refusal("handshake refused: the client sent no server name (SNI)")
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        chosen = contexts.get(name.lower())
        if chosen is not None and chosen is not main:
            sock.context = chosen
        return None

    main.sni_callback = choose
    return main
