"""The array-inheritance traps: one ``access_log`` or ``proxy_set_header`` in a location (or an
``access_log`` in an ``if`` block inside it) drops every one inherited, silently.

This is how adding a parity log to the callback location silences the site's access log, and
how adding one header drops ``X-Forwarded-For`` and friends the app relies on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from hookshift.doctor.findings import Finding, Severity
from hookshift.doctor.mirrors import mirror_path_locations
from hookshift.doctor.model import Chain, Index, Location, is_aws_host, proxy_target_of
from hookshift.nginx.config import Directive


def _dropped(
    index: Index, chain: Chain, name: str, key: Callable[[Directive], str]
) -> tuple[list[Directive], list[Directive]]:
    """(the block's own `name` lines, inherited lines whose key the block does not set)."""
    own = list(index.own(chain[-1], name))
    kept = {key(d) for d in own}
    return own, [d for d in index.inheritance.dropped(chain, name) if key(d) not in kept]


def _scopes(index: Index, loc: Location) -> Iterator[tuple[Chain, str]]:
    """The location and each ``if`` block in it, which nginx runs with settings of its own."""
    yield loc.chain, loc.label
    for cond in index.own(loc.directive, "if"):
        yield (*loc.chain, cond), f"`if ({' '.join(cond.args)})` of {loc.label}"


def _names(lines: list[Directive], key: Callable[[Directive], str]) -> str:
    return ", ".join(f"{key(d)} ({d.where})" for d in lines)


def access_log_silences_inherited(index: Index) -> Iterator[Finding]:
    def key(d: Directive) -> str:
        return d.args[0] if d.args else ""

    for server in index.servers:
        for loc in server.all_locations():
            for chain, label in _scopes(index, loc):
                own, dropped = _dropped(index, chain, "access_log", key)
                if not dropped or any(key(d) == "off" for d in own):
                    continue
                dropped = [d for d in dropped if key(d) != "off"]
                if not dropped:
                    continue
                yield Finding(
                    code="access-log-drops-inherited",
                    severity=Severity.WARNING,
                    where=own[0].where,
                    message=(
                        f"the `access_log` in {label} replaces the inherited ones: requests "
                        f"served here are no longer written to {_names(dropped, key)}"
                    ),
                    fix="re-declare the inherited access_log lines in this "
                    + ("location" if chain[-1] is loc.directive else "`if` block"),
                )


def proxy_set_header_drops_inherited(index: Index) -> Iterator[Finding]:
    def key(d: Directive) -> str:
        return d.args[0].lower() if d.args else ""

    mirror_path = mirror_path_locations(index)
    for server in index.servers:
        for loc in server.all_locations():
            own, dropped = _dropped(index, loc.chain, "proxy_set_header", key)
            if not dropped:
                continue
            found = proxy_target_of(index, loc)
            to_aws = found is not None and is_aws_host(found[1].host)
            mirror = loc in mirror_path or to_aws
            yield Finding(
                code="proxy-set-header-drops-inherited",
                severity=Severity.INFO if mirror else Severity.WARNING,
                where=own[0].where,
                message=(
                    f"the `proxy_set_header` lines in {loc.label} replace the inherited ones: "
                    f"requests proxied from here no longer carry {_names(dropped, key)}"
                    + (
                        " (it sends to the stage or handles mirror copies: usually intended, the "
                        "stage needs none of the app's headers)"
                        if mirror
                        else " (nginx then sends its defaults, e.g. Host $proxy_host)"
                    )
                ),
                fix="re-declare the inherited proxy_set_header lines the upstream needs in "
                "this location",
            )
