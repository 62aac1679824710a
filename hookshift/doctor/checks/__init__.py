"""Every check doctor runs, and `diagnose()` which runs them all.

A check is a pure function from the `Index` of a loaded config to findings; adding one means
writing it in the module of its family and listing it in `CHECKS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hookshift.doctor.checks import (
    inheritance,
    loads,
    mirror_source,
    mirror_target,
    proxy,
    resolver,
)
from hookshift.doctor.findings import Finding, sort_key
from hookshift.doctor.model import Index, build_index
from hookshift.nginx.config import NginxConfig

Check = Callable[[Index], Iterable[Finding]]

CHECKS: tuple[Check, ...] = (
    loads.duplicate_location,
    proxy.proxy_pass_without_resolver,
    proxy.https_without_sni,
    proxy.https_without_verify,
    proxy.https_upstream_block_name,
    mirror_target.mirror_target_not_internal,
    mirror_target.wrong_host_header,
    mirror_target.mirror_default_timeouts,
    mirror_target.mirror_without_breaker,
    mirror_target.mirror_resolver_timeout,
    mirror_target.relay_refuses_copies,
    mirror_target.mirror_path_drops_body,
    mirror_source.mirror_never_runs,
    mirror_source.mirror_copy_taken,
    mirror_source.mirror_without_body,
    mirror_source.mirror_target_missing,
    mirror_source.mirror_duplicated,
    mirror_source.mirror_at_server_level,
    mirror_source.mirror_twice_via_error_page,
    mirror_source.mirror_holds_callback,
    mirror_source.relay_unfed,
    mirror_source.mirror_forwards_credentials,
    resolver.public_resolver,
    resolver.resolver_without_valid,
    resolver.resolver_without_ipv6_off,
    inheritance.access_log_silences_inherited,
    inheritance.proxy_set_header_drops_inherited,
)


def diagnose(config: NginxConfig, checks: Iterable[Check] = CHECKS) -> tuple[Finding, ...]:
    """All findings for `config`, most severe first, each reported once."""
    index = build_index(config)
    found = {finding for check in checks for finding in check(index)}
    return tuple(sorted(found, key=sort_key))
