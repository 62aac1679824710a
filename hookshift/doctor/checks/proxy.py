"""Checks on every ``proxy_pass``: DNS at run time and TLS toward https hosts.

These fail only at request time, so ``nginx -t`` accepts them; behind a ``mirror`` they fail
silently (a mirror subrequest's error reaches only the error log).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hookshift.addresses import is_loopback
from hookshift.doctor.findings import Finding, Severity
from hookshift.doctor.model import (
    Chain,
    Index,
    ProxyTarget,
    is_aws_host,
    parse_proxy_pass,
    pass_target,
    pass_url,
    variable_values,
)
from hookshift.nginx.config import Directive


def proxy_pass_without_resolver(index: Index) -> Iterator[Finding]:
    """A ``proxy_pass`` (or fastcgi/uwsgi/scgi/grpc_pass) with variables resolves its host per
    request, through ``resolver`` only.

    nginx does not use /etc/hosts or the system resolver then; without a ``resolver`` in scope
    every request fails with ``no resolver defined to resolve HOST`` and a
    502, and ``nginx -t`` says nothing because nothing is resolved at load time.
    """
    for d, chain in index.upstream_passes:
        url = pass_url(d.name, d.args[0])
        target = pass_target(index, d, chain)
        if target is None or not target.has_variables or target.is_ip:
            continue
        if index.resolved_at_load(target) or index.value(chain, "resolver") is not None:
            continue
        code = d.name.replace("_", "-") + "-no-resolver"
        shown = f"`{d.name} {d.args[0]}`"
        if target.host is None:
            names = _variable_host_names(index, url, chain)
            if names == []:
                continue
            if names:
                yield _every_request_unresolved(d, names)
                continue
            yield Finding(
                code=code,
                severity=Severity.WARNING,
                where=d.where,
                message=(
                    f"{shown} takes its host from a variable and no `resolver` "
                    "is in scope (http/server/location): unless the value is always an IP "
                    "address or an `upstream` name, each request fails at run time with `no "
                    "resolver defined to resolve ...` and a 502; `nginx -t` does not catch this"
                ),
                fix="add `resolver ADDR valid=10s ipv6=off;` and `resolver_timeout 2s;` to "
                f"this location (or its server/http block), or point {d.name} to an `upstream`",
            )
        else:
            yield Finding(
                code=code,
                severity=Severity.ERROR,
                where=d.where,
                message=(
                    f"{shown} has variables, so nginx resolves {target.host} "
                    "per request, and no `resolver` is in scope (http/server/location): every "
                    f"request fails at run time with `no resolver defined to resolve "
                    f"{target.host}` and a 502 (for a mirror: every copy is lost, silently); "
                    "`nginx -t` passes because nothing is resolved at load time"
                ),
                fix="add `resolver ADDR valid=10s ipv6=off;` and `resolver_timeout 2s;` to "
                "this location (or its server/http block), with a resolver that answers for "
                f"{target.host}",
            )


def _variable_host_names(index: Index, arg: str, chain: Chain) -> list[str] | None:
    """The host names nginx must resolve for a variable host (from ``set`` in scope or a
    ``map``), when every value it can take is known: [] when each is an IP address or an
    upstream name (nginx resolves nothing then); the names when each value is one, so every
    request needs DNS; None when some value is unknown or only some are names."""
    values = _variable_values(index, arg, chain)
    if not values:
        return None
    names: list[str] = []
    scheme = arg.split("://", 1)[0]
    for value in values:
        if "$" in value:
            return None
        probe = parse_proxy_pass(f"{scheme}://{value}")
        if probe is None or probe.host is None:
            return None
        if not (probe.is_ip or index.resolved_at_load(probe)):
            names.append(probe.host)
    if names and len(names) < len(values):
        return None  # only the requests that get a name fail: the hedged warning says so
    return list(dict.fromkeys(names))


def _variable_values(index: Index, arg: str, chain: Chain) -> list[str]:
    """Every value the host variable of `arg` (``SCHEME://$var...``) is given (`variable_values`);
    empty when the host is no variable or nothing gives it one."""
    m = re.match(r"^[a-zA-Z]+://\$\{?(\w+)\}?", arg)
    return [] if m is None else variable_values(index, "$" + m.group(1), chain)


def _every_request_unresolved(d: Directive, names: list[str]) -> Finding:
    """A variable host that is always a name, with no resolver: nginx never resolves it."""
    return Finding(
        code=d.name.replace("_", "-") + "-no-resolver",
        severity=Severity.ERROR,
        where=d.where,
        message=(
            f"`{d.name} {d.args[0]}` takes its host from a variable that is always a name "
            f"({', '.join(names)}), so nginx resolves it per request, and no `resolver` is in "
            "scope (http/server/location): every request fails at run time with `no resolver "
            f"defined to resolve {names[0]}` and a 502; `nginx -t` passes because nothing is "
            "resolved at load time"
        ),
        fix="add `resolver ADDR valid=10s ipv6=off;` and `resolver_timeout 2s;` to this "
        f"location (or its server/http block), with a resolver that answers for {names[0]}",
    )


def _https_targets(index: Index) -> Iterator[tuple[str, str, ProxyTarget, Chain]]:
    for d, chain in index.proxy_passes:
        target = pass_target(index, d, chain)
        if target is not None and target.scheme == "https":
            yield d.where, d.args[0], target, chain


def https_without_sni(index: Index) -> Iterator[Finding]:
    """nginx sends no SNI to an https upstream unless ``proxy_ssl_server_name on``.

    API Gateway (and CloudFront, and most shared TLS front ends) pick the certificate and the
    API by SNI: without it the handshake fails and every request is a 502.
    """
    for where, arg, target, chain in _https_targets(index):
        setting = index.value(chain, "proxy_ssl_server_name")
        if setting is not None and setting.args[:1] == ("on",):
            continue
        if target.is_ip and index.value(chain, "proxy_ssl_name") is None:
            continue  # no SNI exists for an IP address
        aws = is_aws_host(target.host)
        host = target.host or "the upstream"
        yield Finding(
            code="proxy-ssl-no-sni",
            severity=Severity.ERROR if aws else Severity.WARNING,
            where=setting.where if setting is not None else where,
            message=(
                f"`proxy_pass {arg}` opens TLS without SNI (`proxy_ssl_server_name` is "
                f"{'off' if setting is not None else 'off by default'}): "
                + (
                    "API Gateway needs SNI to find the API, so the TLS handshake fails and "
                    "every request gets a 502"
                    if aws
                    else f"a server that hosts several names, as most TLS front ends do, "
                    f"may present the wrong certificate or refuse the handshake for {host}"
                )
            ),
            fix="add `proxy_ssl_server_name on;` (and `proxy_ssl_name HOST;` when proxying "
            "to an upstream or a variable host) next to the proxy_pass",
        )


def https_without_verify(index: Index) -> Iterator[Finding]:
    """``proxy_ssl_verify`` is off by default: any certificate is accepted. Not told of a
    loopback address: the requests never leave the host, so no one on the way can answer."""
    for where, arg, target, chain in _https_targets(index):
        setting = index.value(chain, "proxy_ssl_verify")
        if setting is not None and setting.args[:1] == ("on",):
            continue
        if target.host is not None and is_loopback(target.host.strip("[]")):
            continue
        sni = _sni_fix(index, arg, target, chain)
        yield Finding(
            code="proxy-ssl-no-verify",
            severity=Severity.WARNING,
            where=setting.where if setting is not None else where,
            message=(
                f"`proxy_pass {arg}` accepts any certificate (`proxy_ssl_verify` is "
                f"{'off' if setting is not None else 'off by default'}): anyone who can "
                "answer for that address (DNS spoofing, a hostile network) receives the "
                "requests, callbacks included, and nginx never notices"
            ),
            fix="add `proxy_ssl_verify on;`, `proxy_ssl_trusted_certificate "
            f"/etc/ssl/certs/ca-certificates.crt;`{sni}",
        )


def _upstream_tls_names(index: Index, arg: str, target: ProxyTarget, chain: Chain) -> list[str]:
    """The ``upstream`` blocks whose names nginx takes as the TLS name (``$proxy_host``) for
    `arg`, when no ``proxy_ssl_name`` is in scope: the block named in the URL, or, for a host
    variable, the blocks every value it is given names (a `map` choosing a pool per request).
    Empty when the name is set, or some value is not a block (its host is then the name)."""
    if index.value(chain, "proxy_ssl_name") is not None:
        return []
    if target.host is not None:
        return [target.host] if index.upstream_for(target) is not None else []
    values = _variable_values(index, arg, chain)
    probes = [parse_proxy_pass("https://" + v) for v in values if "$" not in v]
    blocks = [
        p.host for p in probes if p is not None and p.host and index.upstream_for(p) is not None
    ]
    return list(dict.fromkeys(blocks)) if values and len(blocks) == len(values) else []


def _sni_fix(index: Index, arg: str, target: ProxyTarget, chain: Chain) -> str:
    """What to add beside ``proxy_ssl_verify on`` so the certificate is checked against the
    right name: verifying against an upstream block's name fails every request."""
    parts = []
    if _upstream_tls_names(index, arg, target, chain):
        parts.append("`proxy_ssl_name HOST;` (the name on the upstream's certificate)")
    setting = index.value(chain, "proxy_ssl_server_name")
    if not target.is_ip and (setting is None or setting.args[:1] != ("on",)):
        parts.append("`proxy_ssl_server_name on;`")
    return "".join(f" and {part}" for part in parts)


def https_upstream_block_name(index: Index) -> Iterator[Finding]:
    """``proxy_pass https://NAME`` to an ``upstream NAME`` block without ``proxy_ssl_name``:
    nginx uses NAME itself as the TLS name.

    With ``proxy_ssl_verify on`` the certificate is checked against NAME, which no certificate
    carries: every request is a 502 (``upstream SSL certificate does not match "NAME"``).
    With only ``proxy_ssl_server_name on``, NAME is what the server is told in SNI, so a server
    that picks its certificate or site by SNI answers for the wrong one. ``nginx -t`` checks
    neither; a ``proxy_ssl_name`` set at http or server level covers the location.
    """
    for where, arg, target, chain in _https_targets(index):
        names = _upstream_tls_names(index, arg, target, chain)
        if not names:
            continue
        verify = index.value(chain, "proxy_ssl_verify")
        sni = index.value(chain, "proxy_ssl_server_name")
        name = names[0]
        blocks = (
            f"the upstream block `{name}`"
            if len(names) == 1
            else ("upstream blocks (" + ", ".join(f"`{n}`" for n in names) + ")")
        )
        if verify is not None and verify.args[:1] == ("on",):
            severity = Severity.ERROR
            effect = (
                f"`proxy_ssl_verify on` ({verify.where}) checks the upstream's certificate "
                f'against "{name}", the block\'s name: unless the certificate names exactly '
                f"that, every request fails with `upstream SSL certificate does not match "
                f'"{name}"` and a 502'
            )
        elif sni is not None and sni.args[:1] == ("on",):
            severity = Severity.WARNING
            effect = (
                f'`proxy_ssl_server_name on` ({sni.where}) sends SNI "{name}": a server that '
                "picks its certificate or site by SNI answers for the wrong one or refuses the "
                "handshake"
            )
        else:
            continue  # nginx computes no TLS name then; https_without_sni tells of the SNI
        yield Finding(
            code="proxy-ssl-name-is-upstream",
            severity=severity,
            where=where,
            message=(
                f"`proxy_pass {arg}` names {blocks} and no `proxy_ssl_name` is in scope, so "
                f'nginx uses the block\'s name ("{name}") as the TLS name: {effect}'
            ),
            fix="add `proxy_ssl_name HOST;` (the name on the upstream's certificate) next to "
            "the proxy_pass or at server/http level",
        )
