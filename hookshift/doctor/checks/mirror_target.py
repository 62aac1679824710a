"""Checks on the location that receives mirror copies and sends them to the stage.

nginx keeps each request open until its mirror subrequests end: whatever stalls the
mirror target stalls the callback path, so the target must be bounded (short timeouts), must
stop trying a dead stage (a circuit breaker), and must send what the stage expects (Host).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from hookshift.doctor.findings import Finding, Severity
from hookshift.doctor.mirrors import (
    MirrorUse,
    is_internal,
    mirror_path_locations,
    mirror_targets,
)
from hookshift.doctor.model import (
    Index,
    Location,
    ProxyTarget,
    is_aws_host,
    parse_time,
    proxy_target_of,
)
from hookshift.nginx.config import Directive

MAX_MIRROR_TIMEOUT_S = 10.0
"""Above this, one stalled stage request holds a callback connection long enough to matter."""

STALL_COST = (
    "nginx keeps each request open until its mirror subrequest ends, so the next callback on "
    "that connection waits too: with a stage answering after 3 s under the default timeouts, "
    "a server that handles thousands of callbacks a second handles a few"
)
BREAKER_COST = (
    "nginx keeps each request open until its mirror subrequest ends, and without a breaker "
    "every callback pays the full timeout while the stage is bad: short timeouts alone still "
    "cut throughput to a trickle against a slow stage, while an upstream with max_fails and a "
    "fast-failing backup server keeps most of it"
)


def _sent_by(uses: list[MirrorUse]) -> str:
    first = uses[0]
    more = f" and {len(uses) - 1} more" if len(uses) > 1 else ""
    return f"`mirror {first.uri}` at {first.directive.where} ({first.source.label}){more}"


def mirror_target_not_internal(index: Index) -> Iterator[Finding]:
    """A mirror target without ``internal`` is a public URL into the queue (or back to the app)."""
    for target, uses in mirror_targets(index).items():
        if is_internal(index, target):
            continue
        if any(use.source == target for use in uses):
            runtime = (
                f"the copy is served by {target.label} itself, the location it was copied "
                "from: the app receives every such request twice and the stage none"
            )
        else:
            runtime = (
                f"{target.label} is reachable from outside: anyone can send requests straight "
                "to it and so into the stage (and its queue), bypassing the callback location"
            )
        yield Finding(
            code="mirror-target-not-internal",
            severity=Severity.WARNING,
            where=target.where,
            message=f"{_sent_by(uses)} lands in {target.label}, which is not `internal`: "
            + runtime,
            fix="serve the mirror URI from its own `location = URI { internal; ... }`",
        )


def _stage_host(target: ProxyTarget, index: Index) -> str | None:
    """The host the stage expects in ``Host``: a literal host that is not an upstream or IP."""
    if target.host is None or target.is_ip or index.upstream_for(target) is not None:
        return None
    return target.host


def _host_header(index: Index, location: Location) -> Directive | None:
    lines = [
        d
        for d in index.effective(location.chain, "proxy_set_header")
        if d.args and d.args[0].lower() == "host"
    ]
    return lines[-1] if lines else None


def wrong_host_header(index: Index) -> Iterator[Finding]:
    """The stage must get its own name in ``Host``; a server-level ``Host $host`` leaks in.

    Applies to mirror targets that proxy to a host by name and to every proxy to an AWS host.
    """
    candidates: dict[Location, bool] = {loc: True for loc in mirror_targets(index)}
    for server in index.servers:
        for loc in server.all_locations():
            found = proxy_target_of(index, loc)
            if found and is_aws_host(found[1].host):
                candidates.setdefault(loc, False)
    for loc, is_mirror_target in candidates.items():
        found = proxy_target_of(index, loc)
        if found is None:
            continue
        target = found[1]
        host = _stage_host(target, index)
        header = _host_header(index, loc)
        if host is None or header is None or len(header.args) < 2:
            continue
        value = header.args[1]
        expected = {host, f"{host}:{target.port}" if target.port else host}
        if value == "$proxy_host" or value.lower() in expected:
            continue
        inherited = header not in index.own(loc.directive, "proxy_set_header")
        origin = (
            f"inherited from `proxy_set_header Host {value}` at {header.where}"
            if inherited
            else f"set to {value} at {header.where}"
        )
        aws = is_aws_host(host)
        yield Finding(
            code="mirror-wrong-host" if is_mirror_target else "proxy-wrong-host",
            severity=Severity.ERROR if aws else Severity.WARNING,
            where=header.where if not inherited else loc.where,
            message=(
                f"{loc.label} proxies to {host} with the Host header {origin}: the stage gets "
                "the client's host instead of its own"
                + (
                    ", and API Gateway answers 403 Forbidden to every request"
                    if aws
                    else ", and a name-based server routes it wrongly or refuses it"
                )
            ),
            fix=f"add `proxy_set_header Host {host};` in {loc.label} (this drops every "
            "inherited proxy_set_header there; re-declare those the stage needs)",
        )


def _timeouts(index: Index, loc: Location) -> list[str]:
    slow = []
    for name in ("proxy_connect_timeout", "proxy_send_timeout", "proxy_read_timeout"):
        d = index.value(loc.chain, name)
        seconds = parse_time(d.args[0]) if d is not None and d.args else None
        if d is None:
            slow.append(f"{name} unset (60 s)")
        elif seconds is not None and seconds > MAX_MIRROR_TIMEOUT_S:
            slow.append(f"{name} {d.args[0]} at {d.where}")
    return slow


def mirror_default_timeouts(index: Index) -> Iterator[Finding]:
    for target, uses in mirror_targets(index).items():
        if proxy_target_of(index, target) is None:
            continue
        slow = _timeouts(index, target)
        if not slow:
            continue
        yield Finding(
            code="mirror-slow-timeouts",
            severity=Severity.WARNING,
            where=target.where,
            message=(
                f"{target.label} (the target of {_sent_by(uses)}) has {', '.join(slow)}: a "
                f"stage that stalls holds each callback that long. {STALL_COST}"
            ),
            fix="set proxy_connect_timeout, proxy_send_timeout and proxy_read_timeout to 1s-2s "
            "in the mirror location",
        )


def _has_breaker(upstream: Directive) -> bool:
    """Primary servers that can be marked failed plus a ``backup``: nginx then stops sending
    to a failing stage for ``fail_timeout``. A single server never trips (max_fails is ignored)."""
    servers = [d for d in upstream.children("server") if d.args]
    backups = [d for d in servers if "backup" in d.args[1:]]
    primaries = [d for d in servers if "backup" not in d.args[1:]]
    can_fail = [d for d in primaries if "max_fails=0" not in d.args[1:]]
    return bool(backups) and bool(can_fail)


def mirror_without_breaker(index: Index) -> Iterator[Finding]:
    for target, uses in mirror_targets(index).items():
        found = proxy_target_of(index, target)
        if found is None:
            continue
        proxy_line, proxy = found
        upstream = index.upstream_for(proxy)
        if upstream is not None and _has_breaker(upstream):
            continue
        how = (
            f"`upstream {upstream.args[0]}` at {upstream.where} has no backup server, so it "
            "never stops trying a failing stage"
            if upstream is not None
            else f"`proxy_pass {proxy_line.args[0]}` goes to the stage directly, so every "
            "callback waits for a failing stage until the timeouts"
        )
        yield Finding(
            code="mirror-no-circuit-breaker",
            severity=Severity.WARNING,
            where=proxy_line.where,
            message=f"the mirror target of {_sent_by(uses)} has no circuit breaker: {how}. "
            + BREAKER_COST,
            fix="proxy the mirror to an `upstream` with `server ... max_fails=1 fail_timeout=10s;`"
            " and a `backup` server that fails at once (on nginx < 1.27.3 the primary is a "
            "local server block that does resolver + proxy_pass to the stage), as `hookshift "
            "mirror plan` generates",
        )


def mirror_resolver_timeout(index: Index) -> Iterator[Finding]:
    """``resolver_timeout`` defaults to 30 s: a silent DNS server stalls the callbacks."""
    for target in mirror_targets(index):
        found = proxy_target_of(index, target)
        if found is None:
            continue
        proxy = found[1]
        if not proxy.has_variables or proxy.is_ip:
            continue
        if index.resolved_at_load(proxy):
            continue
        d = index.value(target.chain, "resolver_timeout")
        seconds = parse_time(d.args[0]) if d is not None and d.args else None
        if d is not None and (seconds is None or seconds <= MAX_MIRROR_TIMEOUT_S):
            continue
        setting = f"`resolver_timeout {d.args[0]}` at {d.where}" if d else "30 s (the default)"
        yield Finding(
            code="mirror-resolver-timeout",
            severity=Severity.WARNING,
            where=d.where if d else target.where,
            message=(
                f"{target.label} resolves the stage per request and waits {setting} for a DNS "
                "answer (the proxy timeouts do not cover resolution): a resolver that stops "
                "answering (nginx logs `could not be resolved (110: Operation timed out)`) "
                "holds every callback that long"
            ),
            fix="add `resolver_timeout 2s;` next to the resolver",
        )


def _first_matching_rule(rules: tuple[Directive, ...], peer: str) -> Directive | None:
    """The ``allow``/``deny`` rule nginx applies to a client at `peer` (``unix:`` for a unix
    socket): the first that matches; None when none does (the request is let in)."""
    for rule in rules:
        arg = rule.args[0] if rule.args else ""
        if arg == "all" or arg == peer:
            return rule
        if peer == "unix:" or arg == "unix:":
            continue
        try:
            if ipaddress.ip_address(peer) in ipaddress.ip_network(arg, strict=False):
                return rule
        except ValueError:
            continue
    return None


def _relay_locations(index: Index) -> Iterator[tuple[Location, str]]:
    """Locations of the mirror path that a copy reaches as a request of its own (a relay's,
    proxied to over a local socket, not a mirror subrequest, which skips the access phases),
    with the address nginx sees the copy come from."""
    targets = mirror_targets(index)
    for loc in sorted(mirror_path_locations(index), key=lambda loc: loc.where):
        if loc in targets or loc.modifier == "@" or is_internal(index, loc):
            continue
        if not (index.own(loc.directive, "mirror") or index.own(loc.directive, "proxy_pass")):
            continue  # not where a copy goes (a catch-all `return 404`)
        listens = [d.args[0] for d in index.own(loc.chain[1], "listen") if d.args]
        yield loc, "unix:" if any(a.startswith("unix:") for a in listens) else "127.0.0.1"


def _labels(locations: list[Location]) -> str:
    return ", ".join(f"{loc.label} ({loc.where})" for loc in locations)


def relay_refuses_copies(index: Index) -> Iterator[Finding]:
    """A relay is a server like any other: ``allow``/``deny``, ``auth_basic``, and
    ``limit_req`` or ``limit_conn`` at http level (an allow-list dropped into conf.d) apply to
    it too, and refuse the copies there while the callbacks pass at the front. One finding per
    line, naming every relay location it reaches."""
    denied: dict[Directive, list[tuple[Location, str]]] = {}
    auths: dict[Directive, list[tuple[Location, str]]] = {}
    limits: dict[Directive, list[tuple[Location, str]]] = {}
    for loc, peer in _relay_locations(index):
        passes = [
            auth
            for name in ("auth_basic", "auth_request")
            if (auth := index.value(loc.chain, name)) is not None and auth.args[:1] != ("off",)
        ]
        for auth in passes:
            auths.setdefault(auth, []).append((loc, peer))
        satisfy = index.value(loc.chain, "satisfy")
        # under `satisfy any` a copy with the credentials passes whatever `deny` says: the
        # authentication's finding tells of the others
        if not (passes and satisfy is not None and satisfy.args[:1] == ("any",)):
            rule = _first_matching_rule(index.inheritance.shared(loc.chain, "allow"), peer)
            if rule is not None and rule.name == "deny":
                denied.setdefault(rule, []).append((loc, peer))
        for name in ("limit_req", "limit_conn"):
            # a cap set in the relay's own server is the relay's (hookshift's caps its
            # copies so); one from http level is meant for the vendors
            caps = index.inheritance.lookup(loc.chain, name)
            dry_run = index.value(loc.chain, f"{name}_dry_run")
            if caps.block is None or caps.block.name != "http":
                continue
            if dry_run is None or dry_run.args[:1] != ("on",):
                for limit in caps.lines:
                    limits.setdefault(limit, []).append((loc, peer))
    for rule, found in denied.items():
        peer = found[0][1]
        yield Finding(
            code="relay-refuses-copies",
            severity=Severity.ERROR,
            where=rule.where,
            message=(
                f"`{rule.text}` applies to {_labels([loc for loc, _ in found])}, which relay "
                f"the copies to the stage: a copy reaches them from {peer} (nginx itself, "
                "over a local socket), so every copy gets 403 there and none reaches the "
                "stage, while the callbacks themselves pass"
            ),
            fix=f"add `allow {peer};` before it there, or move the rules from http level "
            "into the servers they protect",
        )
    for auth, found in auths.items():
        yield Finding(
            code="relay-refuses-copies",
            severity=Severity.WARNING,
            where=auth.where,
            message=(
                f"`{auth.text}` applies to {_labels([loc for loc, _ in found])}, which relay "
                "the copies to the stage: a copy without the credentials it asks for is "
                "refused there (401/403) and never reaches the stage"
            ),
            fix=f"add `{auth.name} off;` there, or move it from http level into the "
            "servers it protects",
        )
    for limit, found in limits.items():
        peer = found[0][1]
        yield Finding(
            code="relay-refuses-copies",
            severity=Severity.WARNING,
            where=limit.where,
            message=(
                f"`{limit.text}` applies to {_labels([loc for loc, _ in found])}, which "
                f"relay the copies to the stage: every copy comes from {peer}, so all the "
                "senders' callbacks share one allowance there"
                + (" (of connections at once)" if limit.name == "limit_conn" else "")
                + ", and copies over it get 503 and never reach the stage"
            ),
            fix=f"move `{limit.name}` from http level into the servers it protects, or add "
            f"`{limit.name}_dry_run on;` in the relay's server",
        )


def mirror_path_drops_body(index: Index) -> Iterator[Finding]:
    """``proxy_pass_request_body off`` where the copies are proxied on (nginx's own mirror
    example puts it in the mirror location, to log requests without their bodies) sends each
    copy without its body: the stage queues empty callbacks."""
    for loc in sorted(mirror_path_locations(index), key=lambda loc: loc.where):
        if not index.own(loc.directive, "proxy_pass"):
            continue
        setting = index.value(loc.chain, "proxy_pass_request_body")
        if setting is None or setting.args[:1] != ("off",):
            continue
        yield Finding(
            code="mirror-no-body",
            severity=Severity.ERROR,
            where=setting.where,
            message=(
                f"`proxy_pass_request_body off` applies to {loc.label} ({loc.where}), which "
                "proxies the copies on: each copy leaves without its body, so the stage (and "
                "its queue) receives empty callbacks"
            ),
            fix="remove `proxy_pass_request_body off` (and a `proxy_set_header Content-Length "
            '"";` beside it) from the locations the copies go through',
        )
