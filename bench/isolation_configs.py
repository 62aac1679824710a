"""The front nginx configs the isolation benchmark compares (the nginx that serves the vendor).

Each config is the same callback server (``location /callback/`` proxying to the 2 ms app, as a
user's config does, without upstream keep-alive) plus one way of mirroring to the stage:

- ``none``: no mirror, the baseline;
- ``seed``: the seed document's block (variable ``proxy_pass`` to the stage, ``resolver ...
  valid=10s``, every other setting at nginx's defaults: 60 s proxy timeouts, 30 s
  ``resolver_timeout``), pointed at the loopback resolver;
- ``short_timeouts``: the seed's block with 1 s timeouts (research: timeouts alone);
- ``hookshift``: what ``hookshift mirror plan`` inserts by default for the front's nginx: a
  relay on a unix socket that answers the copy at once, and the breaker (an ``upstream`` with
  ``zone``, ``max_fails=1 fail_timeout=10s`` and a ``backup`` that fails at once) where the
  relay meets the stage, plus the parity log. On nginx 1.22 the breaker's primary is a stage
  hop that keeps connections to the stage's address as the resolver gave it when planning
  (127.0.0.1, written into the config) and, when that address fails, re-resolves the stage
  with the loopback resolver (run-time DNS, a TLS handshake per copy); from 1.27.3 the stage
  itself, ``server ... resolve``, with keep-alive;
- ``hookshift-keepalive``: the same planned with ``--stage-dns reload`` (nginx < 1.27.3 only):
  the stage in the breaker with keep-alive, its name resolved at start/reload. nginx resolves
  that upstream's name with the system resolver, which does not know the bench's stage name
  (only the loopback DNS server does), so the bench writes the address getaddrinfo would
  return, 127.0.0.1, in the upstream's ``server`` line; SNI, verification and ``Host`` keep
  the name;
- ``pooled`` (research): one hop through an ``upstream`` of the stage's address with the same
  breaker and TLS keep-alive; what nginx 1.27.3+ ``server HOST resolve`` gives; the row shows
  what keep-alive to the stage is worth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from bench.stages import STAGE_PATH, Certs, StageTarget, nginx_prefix, nginx_temp_paths
from hookshift.mirror.plan import MirrorOptions, make_plan
from hookshift.mirror.render import StageDns
from hookshift.procs import LOOPBACK

CALLBACK_PREFIX = "/callback/"
CALLBACK_PATH = "/callback/bizppurio"
NGINX_VERSION = (1, 22, 1)  # Debian 12's nginx, which the bench runs
MIRROR_URI = "/_hookshift_mirror"
# hookshift's own configs, by the --stage-dns each is planned with (None: the default)
HOOKSHIFT_VARIANTS: dict[str, StageDns | None] = {
    "hookshift": None,
    "hookshift-keepalive": "reload",
}
VARIANTS = ("none", "seed", "short_timeouts", *HOOKSHIFT_VARIANTS, "pooled", "relay")


@dataclass(frozen=True)
class MirrorText:
    """What one mirror variant adds at http level, in the server and in the callback location."""

    http: str = ""
    server: str = ""
    location: str = ""


@dataclass(frozen=True)
class FrontSpec:
    """Everything a front config depends on besides the variant."""

    prefix: Path
    port: int
    app_port: int
    target: StageTarget
    certs: Certs
    workers: int = 2
    parity_log: Path | None = None  # hookshift's parity log (the "hookshift" variant only)
    nginx_version: tuple[int, int, int] = NGINX_VERSION  # the front's: it chooses the layout
    # hookshift sizes its cap on copies in flight from it, as the plan tells a user to: at
    # 5,000+ callbacks/s a stage 50 ms away holds about 270 copies, and 8192 allows 256 through
    # nginx 1.22's stage hop (4 connections a copy); 16384 gives every layout the ceiling, 512
    worker_connections: int = 16384


def seed_mirror(spec: FrontSpec, *, timeouts: str = "") -> MirrorText:
    """The seed's mirror block, with `timeouts` (directive lines) added for the research row."""
    return MirrorText(
        server=(
            f"        location = {MIRROR_URI} {{\n"
            "            internal;\n"
            f"            resolver {spec.target.resolver} valid=10s;\n"
            f"{timeouts}"
            f"            proxy_pass https://{spec.target.authority}{STAGE_PATH}$request_uri;\n"
            "        }\n"
        ),
        location=f"            mirror {MIRROR_URI};\n",
    )


SHORT_TIMEOUTS = (
    "            resolver_timeout 1s;\n"
    "            proxy_connect_timeout 1s;\n"
    "            proxy_send_timeout 1s;\n"
    "            proxy_read_timeout 1s;\n"
)


def pooled_mirror(spec: FrontSpec) -> MirrorText:
    """One hop: an upstream of the stage's address with the breaker and TLS keep-alive.

    On nginx 1.27.3+ this is ``server HOST:443 resolve`` (re-resolved); on 1.22 the address is
    fixed when the config loads, so this row measures what TLS keep-alive buys, not a config
    hookshift can write for 1.22.
    """
    dead = spec.prefix / "hookshift-mirror-open-circuit.sock"
    target = spec.target
    return MirrorText(
        http=(
            "    upstream hookshift_stage {\n"
            "        zone hookshift_stage 64k;\n"
            f"        server 127.0.0.1:{target.port} max_fails=1 fail_timeout=10s;\n"
            f"        server unix:{dead} backup;\n"
            "        keepalive 16;\n"
            "    }\n"
        ),
        server=(
            f"        location = {MIRROR_URI} {{\n"
            "            internal;\n"
            "            proxy_http_version 1.1;\n"
            '            proxy_set_header Connection "";\n'
            f"            proxy_set_header Host {target.host};\n"
            "            proxy_set_header X-Request-Id $request_id;\n"
            "            proxy_connect_timeout 1s;\n"
            "            proxy_send_timeout 1s;\n"
            "            proxy_read_timeout 1s;\n"
            "            proxy_next_upstream error timeout http_502 http_504 non_idempotent;\n"
            "            proxy_ssl_server_name on;\n"
            f"            proxy_ssl_name {target.host};\n"
            "            proxy_ssl_verify on;\n"
            f"            proxy_ssl_trusted_certificate {spec.certs.ca};\n"
            f"            proxy_pass https://hookshift_stage{STAGE_PATH}$request_uri;\n"
            "        }\n"
        ),
        location=f"            mirror {MIRROR_URI};\n",
    )


def relay_mirror(spec: FrontSpec) -> MirrorText:
    """Research: a relay that answers the copy at once (204) and forwards it in its own mirror.

    nginx releases the vendor's connection only when the mirror subrequest ends; here it ends as
    soon as the relay (a separate request on a unix socket) has the body. The relay's own
    request then waits for the stage, behind the same breaker and timeouts as ``hookshift``.
    """
    hop = spec.prefix / "relay-hop.sock"
    relay = spec.prefix / "relay.sock"
    target = spec.target
    return MirrorText(
        http=(
            "    upstream relay_breaker {\n"
            "        zone relay_breaker 64k;\n"
            f"        server unix:{hop} max_fails=1 fail_timeout=10s;\n"
            "        server unix:/nonexistent/hookshift-breaker-open.sock backup;\n"
            "        keepalive 16;\n"
            "    }\n"
            "    server {\n"
            f"        listen unix:{hop};\n"
            "        access_log off;\n"
            "        location / {\n"
            f"            resolver {target.resolver} valid=10s ipv6=off;\n"
            "            resolver_timeout 1s;\n"
            "            proxy_connect_timeout 1s;\n"
            "            proxy_send_timeout 2s;\n"
            "            proxy_read_timeout 2s;\n"
            "            proxy_ssl_server_name on;\n"
            f"            proxy_ssl_name {target.host};\n"
            "            proxy_ssl_verify on;\n"
            f"            proxy_ssl_trusted_certificate {spec.certs.ca};\n"
            f"            proxy_set_header Host {target.host};\n"
            f"            proxy_pass https://{target.authority}{STAGE_PATH}$request_uri;\n"
            "        }\n"
            "    }\n"
            "    server {\n"
            f"        listen unix:{relay};\n"
            "        access_log off;\n"
            "        location / {\n"
            "            mirror /_relay_forward;\n"
            f"            proxy_pass http://unix:{relay}:/_relay_accepted;\n"
            "        }\n"
            "        location /_relay_accepted { return 204; }\n"
            "        location = /_relay_forward {\n"
            "            internal;\n"
            "            proxy_http_version 1.1;\n"
            '            proxy_set_header Connection "";\n'
            "            proxy_connect_timeout 1s;\n"
            "            proxy_read_timeout 5s;\n"
            "            proxy_next_upstream error timeout http_502 http_504 non_idempotent;\n"
            "            proxy_pass http://relay_breaker$request_uri;\n"
            "        }\n"
            "    }\n"
        ),
        server=(
            f"        location = {MIRROR_URI} {{\n"
            "            internal;\n"
            "            proxy_set_header X-Request-Id $request_id;\n"
            "            proxy_connect_timeout 1s;\n"
            "            proxy_read_timeout 1s;\n"
            f"            proxy_pass http://unix:{relay}:$request_uri;\n"
            "        }\n"
        ),
        location=f"            mirror {MIRROR_URI};\n",
    )


def mirror_text(variant: str, spec: FrontSpec) -> MirrorText:
    """The hand-written mirror of `variant` (``hookshift`` is rendered by `write_front_conf`)."""
    if variant == "none":
        return MirrorText()
    if variant == "seed":
        return seed_mirror(spec)
    if variant == "short_timeouts":
        return seed_mirror(spec, timeouts=SHORT_TIMEOUTS)
    if variant == "pooled":
        return pooled_mirror(spec)
    if variant == "relay":
        return relay_mirror(spec)
    raise ValueError(f"unknown mirror variant {variant!r} (one of {', '.join(VARIANTS)})")


def render_front_conf(mirror: MirrorText, spec: FrontSpec) -> str:
    """The whole front nginx.conf: the callback server plus `mirror`'s lines."""
    return (
        f"{nginx_prefix(spec.prefix)}"
        f"worker_processes {spec.workers};\n"
        "worker_rlimit_nofile 16000;\n"
        f"events {{ worker_connections {spec.worker_connections}; }}\n"
        "http {\n"
        f"    access_log {spec.prefix}/access.log;\n"
        f"{nginx_temp_paths(spec.prefix)}"
        f"{mirror.http}"
        "    server {\n"
        f"        listen {LOOPBACK}:{spec.port};\n"
        f"        location {CALLBACK_PREFIX} {{\n"
        f"{mirror.location}"
        f"            proxy_pass http://{LOOPBACK}:{spec.app_port};\n"
        "        }\n"
        f"{mirror.server}"
        "    }\n"
        "}\n"
    )


def hookshift_plan_options(conf: Path, spec: FrontSpec) -> MirrorOptions:
    """What `hookshift mirror plan` is asked for the bench's config (loopback stage and DNS)."""
    return MirrorOptions(
        config=conf,
        path=CALLBACK_PATH,
        stage_url=f"https://{spec.target.authority}{STAGE_PATH}",
        resolvers=(spec.target.resolver,),
        trusted_ca=spec.certs.ca,
        relay_socket=str(spec.prefix / "hookshift" / "relay.sock"),
        parity_log=spec.parity_log,
        default_access_log=str(spec.prefix / "access.log"),
    )


def write_front_conf(variant: str, spec: FrontSpec) -> Path:
    """Write ``nginx.conf`` for `variant` into the prefix; ``hookshift`` = mirror/'s plan applied.

    The hookshift config is not hand-written here: the no-mirror config is written, then
    `mirror.plan.make_plan` plans the mirror exactly as ``hookshift mirror plan`` would and its
    new texts are written over the bench's throw-away copy.
    """
    conf = spec.prefix / "nginx.conf"
    if variant not in HOOKSHIFT_VARIANTS:
        conf.write_text(render_front_conf(mirror_text(variant, spec), spec), encoding="utf-8")
        return conf
    conf.write_text(render_front_conf(MirrorText(), spec), encoding="utf-8")
    options = replace(
        hookshift_plan_options(conf, spec),
        stage_dns=HOOKSHIFT_VARIANTS[variant],
        # what `hookshift mirror plan` gets from the resolver while the stage's name resolves
        # (to the loopback stages); the DNS rows then fail the name, not this address
        stage_addresses=(LOOPBACK,),
    )
    plan = make_plan(options, spec.nginx_version)
    for change in plan.changes:
        change.path.write_text(_system_resolved(change.new_text, spec), encoding="utf-8")
    return conf


def _system_resolved(text: str, spec: FrontSpec) -> str:
    """A stage server resolved at load time, as getaddrinfo would resolve it (see the module
    doc); one re-resolved at run time (``resolve``) keeps its name for the loopback DNS."""
    server = f"server {spec.target.authority} max_fails="
    return text.replace(server, f"server {LOOPBACK}:{spec.target.port} max_fails=")
