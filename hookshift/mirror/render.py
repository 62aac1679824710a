"""Render the lines hookshift inserts, from ``templates/nginx/*.j2``, and why they look so.

What nginx does with a mirror, and the choices that follow from it (docs/isolation.md has the
measurements and the nginx source behind each point):

* **The copy must not hold the callback.** nginx finalizes a request, and reads the next one on
  a keep-alive connection, only when every ``mirror`` subrequest has ended; a copy sent
  straight to the stage makes every callback wait for the stage (a stage 50 ms away: each
  keep-alive connection serves one callback per 50 ms; a hanging one: every callback waits the
  timeout). So the callback's location mirrors to an internal location that hands the copy to
  a **relay** over a unix socket, with short timeouts and a new connection per copy (the
  relay's connection stays busy until its own copy ends, so a kept one would make the next
  copy wait). A hand-off holds two more of the worker's connections beside the callback's
  own two, so each worker hands over copies of a bounded number of callbacks at once
  (``limit_conn`` keyed by ``$pid``, logged at ``info``) and drops the others' copies at once:
  under a crowd of vendor connections a worker short of connections would close idle ones.
  The relay is a hookshift-only ``server`` whose callback location:

  - mirrors the request on to its internal stage location (the relay's request, not the
    callback, then waits for the stage; ``proxy_ignore_client_abort on`` there, because the
    front closes its connection as soon as it has the answer);
  - answers at once from the content phase without another hop: ``empty_gif`` refuses a POST
    with 405, and ``error_page 405 =204`` turns that into an empty 204 from a named location.
    ``return`` cannot do it: it runs in the rewrite phase, before the mirror (precontent),
    which then never runs; ``try_files ... =204`` runs in the precontent phase before the
    mirror, too;
  - caps the copies in flight with ``limit_conn`` on a zone keyed by ``$server_name``
    (constant in the relay): the count lasts until the relay's request ends, that is until
    its copy has ended. The cap keeps the connections copies hold to an eighth of
    ``worker_connections`` (2 per copy, 4 through the stage hop below; one count for all
    workers, which may all sit in the busiest one); the excess is
    answered 503 at once and lost (parity counts it as ``missing_in_queue``, heal re-sends
    it), so a hanging stage never uses up the connections the vendor needs. The cap also has
    a ceiling (``Tuning.max_copies``): when a stage slows down, every copy in flight may open
    a connection and make a TLS handshake before the breaker opens, and a cap of thousands
    (a large ``worker_connections``) would spend the callbacks' CPU on that burst;
  - forwards only the callback path (``location =``) and only POST (``limit_except``):
    anything else gets 404 or 403. nginx creates unix sockets mode 0666 and has no option to
    change that, so the relay's socket goes in a directory of its own (default
    ``/run/hookshift``) that the relay declares as its ``client_body_temp_path``: nginx creates
    that directory when it starts (and at ``nginx -t``, before it binds the sockets), mode
    0700, owned by its worker user, so only nginx can reach the sockets, and after a reboot
    (``/run`` is empty) nginx recreates it. That is done only for a directory whose name
    starts with ``hookshift``: nginx would chown any directory named so to its user.
  - has its own ``error_log`` (``--mirror-error-log``, level ``warn``): the stage's timeouts,
    refusals, DNS and TLS errors, the breaker's ``no live upstreams`` and the cap's drops go
    there; the front's error log gets nothing per copy.

* **The breaker sits where the relay meets the stage**: an ``upstream`` with a ``zone`` (its
  state shared by the workers), the stage side as primary with ``max_fails=1
  fail_timeout=10s``, and a ``backup`` that fails at once (a unix socket that does not exist;
  nginx ignores ``max_fails`` when an upstream has a single server). After a failure the copies
  fail in microseconds for ``fail_timeout``, then one copy probes the stage again. With
  ``proxy_next_upstream ... non_idempotent`` a failed POST copy counts as a failure and goes
  on to the backup instead of being answered from the failed attempt. A 5xx answer counts
  too (``http_500 http_502 http_503 http_504``; through the stage hop the stage's own status
  passes through the hop, and the hop's 502/504 stand for the stage's timeouts and refusals):
  a failing stage answers with a body, which nginx cannot keep a connection past (a copy is
  header-only), so without the breaker every copy to it would cost a new TCP and TLS
  connection. Counted, it costs one probe copy per ``fail_timeout``. nginx counts a status
  only while another server is left to try (``tries > 1``): the backup is that server. A 429
  is not counted: API Gateway answers it when a rate limit is exceeded, the stage still takes
  copies up to that rate, and one 429 would shut all copies out for ``fail_timeout``.

* **Re-resolving the stage's name.** nginx before 1.27.3 resolves an ``upstream``'s servers
  only at start, at ``nginx -t`` and on reload (with the *system* resolver), and re-resolves
  only a variable ``proxy_pass``, which keeps no connection and reuses no TLS session: every
  copy would cost a TCP connection and a full TLS handshake, most of a copy's cost on a
  CPU-bound host. An ``upstream`` naming the stage keeps connections, but nginx must then
  resolve the name to start at all: a DNS failure at a restart or a boot would stop every site
  of the server. So on those versions (layout ``two-hop``) the default (``--stage-dns
  runtime``) makes the breaker's primary a **stage hop**, a second hookshift-only server on a
  unix socket beside the relay's. The hop keeps connections to the stage's **address** as the
  resolver gave it when planning (``upstream hookshift_stage_keepalive``, an address nginx
  needs no DNS for, with a breaker of its own; one address, so a failed copy goes to the
  backup instead of to another address of the same stage), and when that address cannot be
  used (refused, reset, a certificate that is not the stage's, its breaker open:
  ``proxy_next_upstream error`` and ``error_page 502``) sends the copy on by the name. A
  timeout and the stage's own 5xx go back to the relay's breaker instead: a slow stage gets
  each copy once, and its onset is not a second burst of handshakes. By name:
  ``resolver`` + variable ``proxy_pass https://HOST/STAGE$request_uri`` (re-resolved per
  ``valid=``), at a handshake per copy. SNI, the stage's name for verification and ``Host``,
  ``proxy_ssl_verify on`` on both paths. ``hookshift mirror refresh`` (``mirror/refresh.py``,
  run by a systemd timer) rewrites the address once the name no longer resolves to it;
  planning again keeps it. Without an address (planned offline) only the name path is
  written. ``--stage-dns reload``, the user's choice, makes the stage's name the breaker's
  primary, with keep-alive, and ``refresh`` reloads nginx when its addresses change; a stale
  address costs copies (the breaker opens, parity shows them), never callbacks. From 1.27.3
  (layout ``upstream-resolve``), ``server HOST:443 resolve`` in the upstream re-resolves in
  place with keep-alive: one hop from the relay, nothing to refresh.

* **Keep-alive to the stage** (a known address, ``reload`` and ``upstream-resolve``) keeps as
  many idle connections as copies may be in flight (fewer would close and reopen, a handshake
  each, what the next busy second needs), ``proxy_http_version 1.1`` and ``Connection ""``,
  and only works when the stage answers with an empty body: a mirror subrequest is
  header-only, and nginx keeps the connection only when there is no body to skip (204, 304 or
  ``Content-Length: 0``). hookshift's API Gateway integration answers 200 with an empty
  template; keep it that way.

* **Credentials stay home.** The stage-facing hop clears ``Authorization``, ``Cookie`` and
  ``Proxy-Authorization`` (``proxy_set_header NAME ""`` drops the header) unless the user keeps
  one with ``--keep-header``; the request id header set by the front passes through the relay
  unchanged (the relay must not set it again: it would send its own ``$request_id``).

* When the chosen location serves more than the callback path (``location /api/``), a ``map``
  on ``$request_uri`` marks the callback; the mirror location answers other copies with 204
  at once (no relay) and the parity ``access_log`` has ``if=``, so only the callback is
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

from hookshift.nginx.values import address_port
from hookshift.templates import environment

Layout = Literal["two-hop", "upstream-resolve", "direct"]
Mode = Literal["mirror", "forward"]
StageDns = Literal["runtime", "reload"]

BREAKER_SOCKET = "/nonexistent/hookshift-breaker-open.sock"
# What a copy must not carry to the stage unless the user keeps it (``--keep-header``).
CREDENTIAL_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")
RELAY_STAGE_URI = "/__hookshift_stage"
# The stage hop's location that sends a copy by the stage's name when its address fails.
STAGE_DNS_LOCATION = "@hookshift_stage_dns"
COPIES_ZONE = "hookshift_copies"
HANDOFFS_ZONE = "hookshift_handoffs"
# What counts as a failed copy for the breaker (``proxy_next_upstream``); 429 is left out.
BREAKER_FAILURES = ("error", "timeout", "http_500", "http_502", "http_503", "http_504")


@dataclass(frozen=True)
class Tuning:
    """The knobs of the protective layout (benchmarked by ``bench``)."""

    max_fails: int = 1
    fail_timeout: str = "10s"
    keepalive: int = 16
    resolver_valid: str = "10s"
    body_buffer: str = "128k"
    verify_depth: int = 3
    # Copies in flight, at most, whatever worker_connections allow: when the stage slows down
    # each one may open a new connection (a TLS handshake) before the breaker opens, and
    # thousands of handshakes at once starve the callbacks of CPU. 512 covers a stage 128 ms
    # away at 4,000 callbacks/s.
    max_copies: int = 512


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
    # The `mirror` lines the location inherits, declared again beside hookshift's own: nginx
    # takes a block's own `mirror` lines instead of the inherited ones, not as well.
    kept_mirror_lines: tuple[str, ...] = ()
    app_header_lines: tuple[str, ...] = ()
    # In each relay server: the http level's allow/deny and authentication turned off there.
    relay_access_lines: tuple[str, ...] = ()
    forward_log_lines: tuple[str, ...] = ()
    path_filter: str | None = None
    callback_var: str = "hookshift_callback"
    forward_rewrite: str = ""
    breaker_socket: str = BREAKER_SOCKET
    mirror_error_log: str | None = None
    stage_dns: StageDns = "runtime"
    stage_pool: str = "hookshift_stage_keepalive"
    stage_pool_target: str = ""
    stage_port: int = 443
    # The stage's addresses as its name resolved when planning (run-time DNS only): the
    # relay's keep-alive path; empty, every copy goes by run-time DNS.
    stage_addresses: tuple[str, ...] = ()
    callback_path: str = "/"
    stage_hop_socket: str = ""
    relay_dir: str | None = None
    copies_cap: int = 192
    copies_zone: str = COPIES_ZONE
    handoffs_per_worker: int = 48
    handoffs_zone: str = HANDOFFS_ZONE
    stage_dns_location: str = STAGE_DNS_LOCATION
    stage_uri: str = RELAY_STAGE_URI
    strip_headers: tuple[str, ...] = CREDENTIAL_HEADERS

    # Derived values the templates read.
    @property
    def stage_hop(self) -> bool:
        """Run-time DNS on nginx < 1.27.3: the breaker's primary is a local stage-hop server,
        because only a variable ``proxy_pass`` re-resolves and it cannot sit in an upstream."""
        return self.layout == "two-hop" and self.stage_dns == "runtime"

    @property
    def known_addresses(self) -> bool:
        """Run-time DNS with the stage's addresses known: the relay keeps connections to those
        addresses and falls back to the stage hop when they fail."""
        return self.stage_hop and bool(self.stage_addresses)

    @property
    def stage_servers(self) -> tuple[str, ...]:
        """``ADDRESS:PORT`` of each known address (an IPv6 one in brackets)."""
        return tuple(address_port(a, self.stage_port) for a in self.stage_addresses)

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
    def breaker_failures(self) -> str:
        return " ".join(BREAKER_FAILURES)

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
    """Lines for the chosen location: ``mirror`` (or the forward ``rewrite``) and logs; the
    inherited ``mirror`` lines right after hookshift's (`TemplateContext.kept_mirror_lines`)."""
    lines = _lines("nginx/location.conf.j2", ctx)
    if ctx.mode != "mirror" or not ctx.kept_mirror_lines:
        return lines
    return (lines[0], *ctx.kept_mirror_lines, *lines[1:])
