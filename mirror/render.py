"""Render the lines hookshift inserts, from ``templates/nginx/*.j2``, and why they look so.

What nginx does with a mirror, and the choices that follow from it:

* nginx keeps the client's request open until every ``mirror`` subrequest has finished, so the
  next request on a keep-alive connection waits for the copy sent to the stage. A slow, dead or
  unresolvable stage would slow the primary path (issue 6 measured 28k req/s -> 5 req/s with
  the seed's config and a stage answering after 3 s). Hence:

  - short timeouts everywhere on the mirror side (``--timeout``, default 2 s: connect and DNS at
    most 1 s, send/read the full value) bound each stall;
  - a circuit breaker: an ``upstream`` whose primary server has ``max_fails=1
    fail_timeout=10s`` plus a ``backup`` server that fails at once (a unix socket that does not
    exist). After one failure the primary is skipped for ``fail_timeout`` and every copy fails
    in microseconds on the backup, so the primary path runs at full speed while the stage is
    bad. A single server never trips (nginx ignores ``max_fails`` when there is only one). The
    copies lost meanwhile are visible in the parity log and re-sent by ``hookshift verify heal``.
    nginx's error log says so too: ``upstream server temporarily disabled`` when the breaker
    opens, one ``[crit] connect() to unix:/nonexistent/...`` for the backup, then ``no live
    upstreams`` per lost copy (tests/mirror/test_functional.py shows a hanging stage is
    contacted once, not once per callback).
  - the upstream has a ``zone``, so the breaker's state (failures, "down until") is shared by
    every worker instead of each worker having to trip its own;
  - ``proxy_next_upstream error timeout http_502 http_504 non_idempotent`` so the relay's own
    502/504 (stage unreachable, DNS failure, stage timeout) count as failures for the breaker,
    and a POST copy that failed may go on to the backup (which fails at once) instead of
    being answered from the failed attempt; either way the copy is lost and the parity
    report shows it.

* nginx before 1.27.3 resolves the servers of an ``upstream`` once, at start; API Gateway's
  addresses change. So on those versions the layout is **two-hop**: the mirror location
  proxies to an upstream whose primary server is a local hookshift-only ``server`` on a unix
  socket (no port to clash with), and that server does the ``resolver`` + variable
  ``proxy_pass https://HOST/STAGE$request_uri`` (re-resolved per ``valid=``) with SNI, the
  stage's name for verification and ``Host``, ``proxy_ssl_verify on`` with a CA bundle. Both
  re-resolution and the breaker hold.

  The price (docs/isolation.md, mechanism 3): a variable ``proxy_pass`` builds a throw-away
  upstream per request, which keeps no connection alive and reuses no TLS session, so every
  copy costs a new TCP connection and a full TLS handshake. On a CPU-bound host that alone
  took the primary path to about 0.15x of no-mirror with a healthy stage.

* ``--stage-dns reload`` (two-hop only) trades re-resolution for keep-alive: the relay
  proxies to an ``upstream`` whose server is ``STAGE_HOST:PORT`` with ``keepalive``,
  ``proxy_http_version 1.1``, ``Connection ""`` and TLS session reuse (SNI, verification and
  ``Host`` as in ``runtime``), and ``proxy_next_upstream error non_idempotent`` with 2 tries:
  a kept-alive connection the stage closed while nginx was picking it fails with an error
  before any answer, and without the retry that copy would be lost *and* the relay's 502
  would open the breaker for ``fail_timeout``; ``timeout`` stays out (a slow stage must not
  get the copy twice). nginx resolves that name with the *system* resolver
  (``/etc/hosts``, getaddrinfo; not ``--resolver``) when it starts, when ``nginx -t`` runs and
  on each reload, and nowhere else: **the addresses are fixed until the next reload**, so pair
  it with a periodic ``nginx -s reload`` (e.g. every few minutes from cron or a systemd
  timer). A stale address costs copies, not callbacks: the relay answers 502/504, the breaker
  in front opens, and the losses show up as ``missing_in_queue`` in the parity report (and are
  re-sent by ``hookshift verify heal``), never as primary-path slowness. The default stays
  ``runtime`` (today's behaviour: always re-resolved, never kept alive).

* From 1.27.3, ``server HOST:443 resolve`` in an upstream with a ``zone`` re-resolves in place,
  so the layout is **upstream-resolve**: one hop, keep-alive connections to the stage.

* **Keep-alive to the stage needs an empty-body answer** (``reload`` and
  ``upstream-resolve``). A mirror subrequest is header-only: nginx ends the copy when the
  stage's response header arrives and never reads a body, and keeps the upstream connection
  only when there is no body to skip (204, 304 or ``Content-Length: 0``). hookshift's API
  Gateway integration answers 200 with an empty template (``Content-Length: 0``); keep it that
  way. A stage answering with a body (a JSON 500, SQS's ``SendMessageResponse``) silently
  costs a new connection and TLS handshake per copy whatever this config says.

* The relay server has its own ``error_log`` (``--mirror-error-log``, level ``warn``; default
  beside the parity log, else ``/var/log/nginx/hookshift-mirror.error.log``): the stage's
  timeouts, refusals, DNS and TLS errors go there instead of the user's error log. The
  internal mirror location cannot have one that works: nginx switches the connection's log to
  a location's ``error_log`` only for main requests (``ngx_http_update_location_config``:
  ``if (r == r->main)``), so the first hop's lines for a copy (``upstream server temporarily
  disabled``, the backup's ``connect() ... failed`` and one ``no live upstreams`` per copy
  while the breaker is open) stay in the error log of the callback's own location.

* When the chosen location serves more than the callback path (``location /api/``), a ``map``
  on ``$request_uri`` marks the callback; the mirror location answers other copies with 204
  at once (no upstream) and the parity ``access_log`` has ``if=``, so only the callback is
  copied and logged. In forward mode the ``rewrite`` regex is the exact path.

* ``access_log`` or ``proxy_set_header`` in a location drops every inherited one, so when
  hookshift adds one it re-declares the ones that were in effect (the plan computes them).
  ``client_body_buffer_size`` is raised in the location so ``$request_body`` (logged for the
  parity report) is in memory.

All figures are parameters (`Tuning`) so the benchmark can try others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from templates import environment

Layout = Literal["two-hop", "upstream-resolve", "direct"]
Mode = Literal["mirror", "forward"]
StageDns = Literal["runtime", "reload"]

BREAKER_SOCKET = "/nonexistent/hookshift-breaker-open.sock"
# What a copy must not carry to the stage unless the user keeps it (``--keep-header``).
CREDENTIAL_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")
RELAY_STAGE_URI = "/__hookshift_stage"
COPIES_ZONE = "hookshift_copies"


@dataclass(frozen=True)
class Tuning:
    """The knobs of the protective layout (benchmarked by ``bench``)."""

    max_fails: int = 1
    fail_timeout: str = "10s"
    keepalive: int = 16
    resolver_valid: str = "10s"
    body_buffer: str = "128k"
    verify_depth: int = 3


@dataclass(frozen=True)
class TemplateContext:
    """Everything the templates need, already decided by the plan."""

    mode: Mode
    layout: Layout
    internal_uri: str
    mirror_uri: str
    upstream: str
    relay_socket: str
    stage_target: str
    upstream_target: str
    stage_authority: str
    tls_name: str
    host_header: str
    trusted_ca: str
    resolvers: tuple[str, ...]
    timeout: float
    request_id_header: str
    parity_log: bool
    tuning: Tuning = field(default_factory=Tuning)
    set_mirror_request_body: bool = True
    set_body_buffer: bool = True
    location_log_lines: tuple[str, ...] = ()
    app_header_lines: tuple[str, ...] = ()
    forward_log_lines: tuple[str, ...] = ()
    path_filter: str | None = None
    callback_var: str = "hookshift_callback"
    forward_rewrite: str = ""
    breaker_socket: str = BREAKER_SOCKET
    mirror_error_log: str | None = None
    stage_dns: StageDns = "runtime"
    stage_pool: str = "hookshift_stage_keepalive"
    stage_pool_target: str = ""
    callback_path: str = "/"
    stage_hop_socket: str = ""
    relay_dir: str | None = None
    copies_cap: int = 192
    copies_zone: str = COPIES_ZONE
    stage_uri: str = RELAY_STAGE_URI
    strip_headers: tuple[str, ...] = CREDENTIAL_HEADERS

    # Derived values the templates read.
    @property
    def stage_hop(self) -> bool:
        """Run-time DNS on nginx < 1.27.3: the breaker's primary is a local stage-hop server,
        because only a variable ``proxy_pass`` re-resolves and it cannot sit in an upstream."""
        return self.layout == "two-hop" and self.stage_dns == "runtime"

    @property
    def resolver_args(self) -> str:
        return " ".join([*self.resolvers, f"valid={self.tuning.resolver_valid}", "ipv6=off"])

    @property
    def resolver_timeout(self) -> str:
        return seconds(min(1.0, self.timeout))

    @property
    def connect_timeout(self) -> str:
        return seconds(min(1.0, self.timeout))

    @property
    def io_timeout(self) -> str:
        return seconds(self.timeout)

    @property
    def relay_read_timeout(self) -> str:
        """The first hop waits a little longer than the relay, so the relay reports 502/504."""
        return seconds(self.timeout + 2 * min(1.0, self.timeout) + 1)

    @property
    def callback_map_key(self) -> str:
        """The map key matching the callback's ``$request_uri`` (a quoted ``~regex``)."""
        return quote(f"~{self.path_filter}")

    @property
    def max_fails(self) -> int:
        return self.tuning.max_fails

    @property
    def fail_timeout(self) -> str:
        return self.tuning.fail_timeout

    @property
    def keepalive(self) -> int:
        return self.tuning.keepalive

    @property
    def stage_keepalive(self) -> int:
        """Idle connections kept to the stage: as many as copies may be in flight, so a busy
        second does not close and reopen (a TLS handshake each) what the next one needs."""
        return max(self.tuning.keepalive, self.copies_cap)

    @property
    def body_buffer(self) -> str:
        return self.tuning.body_buffer

    @property
    def verify_depth(self) -> int:
        return self.tuning.verify_depth


def seconds(value: float) -> str:
    """nginx time: whole seconds as ``2s``, fractions as milliseconds (``500ms``)."""
    ms = round(value * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


_NEEDS_QUOTES = re.compile(r"""[\s;{}#'"\\]""")


def quote(arg: str) -> str:
    """An nginx argument, double-quoted (and escaped) only when it has to be."""
    if arg and not _NEEDS_QUOTES.search(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def directive(name: str, *args: str) -> str:
    """One directive on one line: ``name arg ...;`` with nginx quoting."""
    return " ".join([name, *(quote(a) for a in args)]) + ";"


def _lines(template: str, ctx: TemplateContext) -> tuple[str, ...]:
    env = environment()
    env.filters.setdefault("q", quote)
    text = env.get_template(template).render(t=ctx)
    return tuple(line.rstrip() for line in text.splitlines() if line.strip())


def http_lines(ctx: TemplateContext) -> tuple[str, ...]:
    """Lines for http level: the parity ``log_format`` and the breaker/relay blocks."""
    return _lines("nginx/http.conf.j2", ctx)


def server_lines(ctx: TemplateContext) -> tuple[str, ...]:
    """The internal mirror (or forward) location for the chosen server."""
    return _lines("nginx/server.conf.j2", ctx)


def location_lines(ctx: TemplateContext) -> tuple[str, ...]:
    """Lines for the chosen location: ``mirror`` (or the forward ``rewrite``) and logs."""
    return _lines("nginx/location.conf.j2", ctx)
