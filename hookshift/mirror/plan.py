"""Decide what to insert where: config texts + options + nginx version -> `MirrorPlan` (pure).

The plan chooses the server and location nginx would use for the callback path
(`nginx.matching`), renders the lines (`mirror.render`) and splices them into copies of the
texts (`nginx.splice`). It never writes: `mirror.apply` does, after `nginx -t`.

A config that already carries hookshift's lines is planned on its texts with those lines
removed; when the result equals what is on disk the plan has no changes (apply twice = no-op),
otherwise its changes go from the texts on disk to the new result (an upgrade in one edit).
"""

from __future__ import annotations

import difflib
import enum
import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from hookshift.addresses import dns_host
from hookshift.errors import InputError
from hookshift.mirror.render import (
    CREDENTIAL_HEADERS,
    STAGE_DNS_LOCATION,
    Layout,
    Mode,
    StageDns,
    TemplateContext,
    Tuning,
    directive,
)
from hookshift.mirror.render import http_lines as render_http
from hookshift.mirror.render import location_lines as render_location
from hookshift.mirror.render import server_lines as render_server
from hookshift.mirror.state import ConfigState, record_for, without_ours
from hookshift.nginx import splice
from hookshift.nginx.config import Directive, NginxConfig
from hookshift.nginx.inheritance import Found, Inheritance
from hookshift.nginx.locations import duplicate_locations
from hookshift.nginx.matching import (
    Match,
    location_spec,
    match,
    request_host,
    server_listens,
    server_names,
)
from hookshift.nginx.route import Hop, server_takes
from hookshift.nginx.source import SourceConfig, load_stripped
from hookshift.nginx.syntax import check_statement_ends
from hookshift.nginx.uri import raw_path, request_uri_path, request_uri_pattern, sent_path
from hookshift.nginx.values import (
    REQUEST_BUFFERING,
    log_file,
    parse_resolver,
    parse_size,
    parse_socket,
)

DEFAULT_RESOLVERS = ("1.1.1.1", "8.8.8.8")
DEFAULT_TRUSTED_CA = Path("/etc/ssl/certs/ca-certificates.crt")  # Debian, Ubuntu
CA_BUNDLES = (
    DEFAULT_TRUSTED_CA,
    Path("/etc/pki/tls/certs/ca-bundle.crt"),  # RHEL, Fedora, Amazon Linux
    Path("/etc/ssl/cert.pem"),  # Alpine, macOS
)
DEFAULT_RELAY_SOCKET = "/run/hookshift/relay.sock"
# A relay socket in a directory whose name starts so is in hookshift's own directory: nginx
# creates it at start for its worker user, mode 0700, so only nginx can reach the sockets.
PRIVATE_RELAY_DIR_PREFIX = "hookshift"
DEFAULT_WORKER_CONNECTIONS = 512  # nginx's compiled default
# Copies in flight at the relay hold at most an eighth of worker_connections: each holds the
# relay's client connection and one to the stage, plus two more through a stage hop. The cap is
# one count for all workers, so all of them may sit in the worker that has the most clients.
COPIES_CONNECTION_SHARE = 8
# Callbacks one worker has in flight with a copy handed to the relay: a thirty-second of
# worker_connections. A hand-off holds two more of the worker's connections (the front's end
# and the relay's end of the unix socket) beside the callback's own two, and nginx spreads
# clients unevenly over workers: with 512 clients and 768 connections one worker already
# holds about 600 without a mirror, and closes idle vendor connections from 720 on.
HANDOFF_CONNECTION_SHARE = 32
# Both bounds allow at least a quiet endpoint's concurrency, whatever worker_connections say:
# below 512 (nginx's default) the shares above would drop copies of a few callbacks at once.
MIN_IN_FLIGHT = 16
DEFAULT_ACCESS_LOG = "/var/log/nginx/access.log"
DEFAULT_MIRROR_ERROR_LOG = Path("/var/log/nginx/hookshift-mirror.error.log")
MIRROR_ERROR_LOG_NAME = DEFAULT_MIRROR_ERROR_LOG.name
DEFAULT_PARITY_LOG = Path("/var/log/nginx/hookshift-parity.log")
PARITY_LOG_NAME = DEFAULT_PARITY_LOG.name
# Where an access log is a device (``/dev/stdout`` in a container), not a file in a directory
# of logs: hookshift's own logs cannot go beside it.
_DEVICE_DIRS = (Path("/dev"), Path("/proc"))
UNIX_PATH_MAX = 107  # sun_path is 108 bytes with its terminating NUL
MIRROR_URI = "/__hookshift_mirror"
FORWARD_URI = "/__hookshift_forward"
UPSTREAM = "hookshift_stage"
STAGE_POOL = "hookshift_stage_keepalive"  # --stage-dns reload: the relay's keep-alive upstream
CALLBACK_VAR = "hookshift_callback"  # map: 1 when $request_uri is the callback path
RESOLVE_IN_UPSTREAM = (1, 27, 3)
# http-level directives that would also gate requests to the relay server (a normal request)
# http-level access control meant for the vendor's servers, which hookshift's relay servers (on
# a private unix socket) turn off for themselves: a block with an `allow`/`deny` list of its own
# drops the inherited one, and a block's own `auth_*` replaces the inherited.
RELAY_ACCESS_OFF = {
    "allow": "allow all;",
    "deny": "allow all;",
    "auth_basic": "auth_basic off;",
    "auth_request": "auth_request off;",
}
# http-level limits the relay cannot turn off for itself (`limit_req` has no `off`; the stage
# hop's location has no `limit_conn` of its own), keyed there by the one client address of a
# unix socket, so every copy shares one limit
RELAY_BLOCKERS = ("limit_req", "limit_conn")
EXECUTE_API = re.compile(r"^[a-z0-9]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


def system_ca_bundle() -> Path:
    """The system's CA bundle (the first that exists), for ``proxy_ssl_trusted_certificate``."""
    return next((p for p in CA_BUNDLES if p.is_file()), DEFAULT_TRUSTED_CA)


class Beside(enum.Enum):
    """Where hookshift's logs go when the user names no file for them."""

    ACCESS_LOG = "beside the callback's access log"


BESIDE_ACCESS_LOG: Final = Beside.ACCESS_LOG
"""`MirrorOptions.parity_log`'s value for "hookshift-parity.log in the directory of the access log
nginx writes for the callback": where the operators already read, rotate and keep logs."""


@dataclass(frozen=True)
class MirrorOptions:
    """What the user asked for (the CLI's options, as data).

    `parity_log` None writes none; `mirror_error_log` None puts the relay's error log beside a
    `parity_log` the user named, else beside the callback's access log. `nginx_prefix` is
    where nginx resolves a relative log path (its ``-p``, else its compiled ``--prefix``;
    None: not known, and such a path stays relative); `default_access_log` is nginx's compiled
    one, which applies where no ``access_log`` does.
    """

    config: Path
    path: str
    stage_url: str
    server_name: str | None = None
    listen: str | None = None
    resolvers: tuple[str, ...] = DEFAULT_RESOLVERS
    parity_log: Path | Beside | None = None
    request_id_header: str = "X-Request-Id"
    request_id_to_app: bool = False
    stage_path: str | None = None
    trusted_ca: Path = field(default_factory=system_ca_bundle)
    timeout: float | None = None
    mode: Mode = "mirror"
    relay_socket: str = DEFAULT_RELAY_SOCKET
    default_access_log: str | None = DEFAULT_ACCESS_LOG
    nginx_prefix: Path | None = None
    layout: Layout | None = None
    tuning: Tuning = field(default_factory=Tuning)
    mirror_error_log: Path | None = None
    # None: the nginx version's default: `runtime` before 1.27.3 (nginx starts whatever DNS
    # answers), `resolve` in the upstream from then on.
    stage_dns: StageDns | None = None
    keep_headers: tuple[str, ...] = ()
    # Run-time DNS only: the stage's addresses as --resolver gives them now (the relay keeps
    # connections to them). Empty: none known, every copy goes by run-time DNS. The addresses
    # already in the config for the same stage win, so planning again does not churn them.
    stage_addresses: tuple[str, ...] = ()

    @property
    def strip_headers(self) -> tuple[str, ...]:
        """The credential headers taken off each copy: the defaults the user did not keep."""
        kept = {name.lower() for name in self.keep_headers}
        return tuple(h for h in CREDENTIAL_HEADERS if h.lower() not in kept)

    @property
    def effective_timeout(self) -> float:
        """Mirror copies must fail fast (2 s); forwarded requests are the real thing (10 s)."""
        if self.timeout is not None:
            return self.timeout
        return 2.0 if self.mode == "mirror" else 10.0


@dataclass(frozen=True)
class Stage:
    """Where copies (or forwarded requests) go."""

    url: str
    host: str
    port: int
    base_path: str
    kind: str  # "execute-api" or "custom-domain"

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return host if self.port == 443 else f"{host}:{self.port}"


@dataclass(frozen=True)
class Place:
    """A block hookshift chose, named the way diagnostics name it."""

    kind: str
    where: str
    description: str


@dataclass(frozen=True)
class InsertionInfo:
    after_line: int  # 1-based line of the original file holding the block's '{' (or the ';')
    block: str
    lines: tuple[str, ...]
    new_first_line: int  # 1-based line of the first inserted line in the new file

    @property
    def new_lines(self) -> tuple[int, int]:
        """The inserted lines' range (first, last) in the new file."""
        return self.new_first_line, self.new_first_line + len(self.lines) - 1


@dataclass(frozen=True)
class FileChange:
    path: Path
    old_text: str
    new_text: str
    insertions: tuple[InsertionInfo, ...]
    # The user's text without hookshift's lines, when `old_text` still holds an earlier
    # plan's: what hookshift's lines are counted against (remove brings this back).
    base_text: str | None = None

    @property
    def user_text(self) -> str:
        return self.old_text if self.base_text is None else self.base_text

    @property
    def old_sha256(self) -> str:
        return hashlib.sha256(self.old_text.encode("utf-8", "surrogateescape")).hexdigest()

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.old_text.splitlines(keepends=True),
                self.new_text.splitlines(keepends=True),
                fromfile=f"a{self.path}",
                tofile=f"b{self.path}",
            )
        )


@dataclass(frozen=True)
class MirrorPlan:
    """Everything apply needs and everything a reviewer wants to see."""

    options: MirrorOptions
    nginx_version: tuple[int, int, int]
    layout: Layout
    stage: Stage
    internal_uri: str
    server: Place
    location: Place
    changes: tuple[FileChange, ...]
    warnings: tuple[str, ...]
    already_applied: bool = False
    info: tuple[str, ...] = ()
    route: str = ""
    stage_dns: StageDns = "runtime"
    mirror_error_log: Path | None = None
    stage_addresses: tuple[str, ...] = ()  # the relay keeps connections to these
    parity_log: Path | None = None  # the file nginx writes it to (None: no parity log)
    # Why hookshift put a log of its own where it did, for a log the user placed no file for
    # ("beside the access log nginx writes for the callback (...)"); empty when none.
    default_log_place: str = ""
    # that place was a relative path resolved under nginx's prefix (-p, else the compiled one)
    default_log_relative: bool = False
    # Already applied: each file holding hookshift's lines as the plan found it, which apply
    # checks under its lock (another run may have taken the lines out since).
    applied_texts: tuple[tuple[Path, str], ...] = ()

    @property
    def mode(self) -> Mode:
        return self.options.mode

    @property
    def keeps_stage_addresses(self) -> bool:
        """Whether this layout keeps connections to the stage's addresses when it is given
        them (`MirrorOptions.stage_addresses`): a mirror with run-time DNS before 1.27.3."""
        return self.mode == "mirror" and self.layout == "two-hop" and self.stage_dns == "runtime"

    @property
    def asks_resolvers(self) -> bool:
        """Whether hookshift's lines hold a ``resolver`` (`MirrorOptions.resolvers`) that nginx
        asks for the stage's address: every layout but the relay with ``--stage-dns reload``,
        where nginx resolves the name with the system resolver at start and reload."""
        return not (self.layout == "two-hop" and self.stage_dns == "reload")

    def diff(self) -> str:
        return "".join(c.diff() for c in self.changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "layout": self.layout,
            "nginx_version": ".".join(map(str, self.nginx_version)),
            "config": str(self.options.config),
            "path": self.options.path,
            "stage": {
                "url": self.stage.url,
                "host": self.stage.host,
                "port": self.stage.port,
                "base_path": self.stage.base_path,
                "kind": self.stage.kind,
            },
            "internal_uri": self.internal_uri,
            "stage_dns": self.stage_dns,
            "keepalive_to_stage": self.layout == "upstream-resolve"
            or self.stage_dns == "reload"
            or bool(self.stage_addresses),
            "stage_addresses": list(self.stage_addresses),
            "mirror_error_log": None
            if self.mirror_error_log is None
            else str(self.mirror_error_log),
            "parity_log": None if self.parity_log is None else str(self.parity_log),
            "server": vars(self.server),
            "location": vars(self.location),
            "already_applied": self.already_applied,
            "files": [
                {
                    "path": str(c.path),
                    "sha256_before": c.old_sha256,
                    "insertions": [
                        {
                            "after_line": i.after_line,
                            "new_lines": list(i.new_lines),
                            "block": i.block,
                            "lines": list(i.lines),
                        }
                        for i in c.insertions
                    ],
                    "diff": c.diff(),
                }
                for c in self.changes
            ],
            "warnings": list(self.warnings),
            "info": list(self.info),
            "route": self.route,
        }


def default_resolvers_info(plan: MirrorPlan, host_resolver: str | None) -> str:
    """The line that says what asking `DEFAULT_RESOLVERS` trades, for a plan whose resolvers
    the user did not choose, and which resolver to ask instead (`host_resolver`: this host's,
    from /etc/resolv.conf, when known)."""
    who = "the relay" if plan.mode == "mirror" else "the forward location"
    instead = (
        f"this host's resolver instead, pass --resolver {host_resolver} (the first nameserver "
        "in /etc/resolv.conf)"
        if host_resolver is not None
        else "the host's or the VPC's resolver instead, pass --resolver ADDR (the nameserver in "
        "/etc/resolv.conf; 169.254.169.253 in an AWS VPC)"
    )
    public = " and ".join(plan.options.resolvers)
    return (
        f"--resolver not given: {who} asks the public resolvers {public} for the stage's "
        "address, over plain UDP across the internet (an answer can be spoofed on the way, "
        "though proxy_ssl_verify still checks the stage's certificate, and they do not see "
        f"private zones such as a VPC endpoint's). To ask {instead}"
    )


# Characters that would end or change an nginx word if written into the config unquoted: a
# path or URL holding one would become another directive, a variable or a comment.
_NGINX_SYNTAX = frozenset(";{}$#'\"\\")


def _unsafe_char(text: str, extra: str = "") -> str | None:
    """The first character of `text` that cannot go into an nginx word as it is, described."""
    for ch in text:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return {"\n": "a newline", "\r": "a carriage return", "\t": "a tab"}.get(
                ch, f"the control character {ch!r}"
            )
        if ch.isspace():
            return "a space"
        if ch in _NGINX_SYNTAX or ch in extra:
            return f"'{ch}'"
    return None


# An HTTP header name (RFC 9110 token) that nginx reads as a plain word
_HEADER_NAME = re.compile(r"[A-Za-z0-9!%&*+.^_`|~-]+")


def _check_option_words(options: MirrorOptions) -> None:
    """Refuse option values that would not stay one nginx word (or one sensible value) in the
    config: a resolver, socket or header name holding a space or `;` would write another
    directive, which nginx -t may well accept."""
    for resolver in options.resolvers:
        parse_resolver(resolver)
    bad = _unsafe_char(options.relay_socket)
    if bad is not None or not options.relay_socket.startswith("/"):
        raise InputError(
            f"--relay-socket must be an absolute path without spaces or nginx syntax: "
            f"{options.relay_socket!r}",
            fix=f"e.g. --relay-socket {DEFAULT_RELAY_SOCKET}",
        )
    for flag, name, example in (
        ("--request-id-header", options.request_id_header, "X-Request-Id"),
        *(("--keep-header", h, "X-Signature") for h in options.keep_headers),
    ):
        if not _HEADER_NAME.fullmatch(name):
            raise InputError(
                f"{flag} must be an HTTP header name, not {name!r}",
                fix=f"e.g. {flag} {example}",
            )
    if options.timeout is not None and not 0 < options.timeout < 86400:
        raise InputError(
            f"--timeout must be a number of seconds above 0, not {options.timeout}",
            fix="e.g. --timeout 2",
        )


def check_callback_path(path: str) -> str:
    """The callback path as it goes into the config: it starts with '/' and holds nothing nginx
    would read as syntax (a newline would make a filter that never matches)."""
    bad = _unsafe_char(path)
    if bad is not None:
        raise InputError(
            f"--path must not contain {bad}: {path!r}",
            fix="pass the path the vendor calls, e.g. --path /callback",
        )
    if not path.startswith("/"):
        raise InputError(
            f"--path must start with '/': {path!r}",
            fix="pass the path the vendor posts to, as in its URL (e.g. --path /callback), not a "
            "location pattern",
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in request_uri_path(raw_path(path))):
        raise InputError(
            f"--path {path} holds an escaped control character, which nginx's locations "
            "cannot name",
            fix="pass the path the vendor calls, e.g. --path /callback",
        )
    return path


def parse_stage_url(
    url: str, stage_path: str | None = None, callback_path: str | None = None
) -> tuple[Stage, list[str]]:
    """Check the stage URL: https only; an execute-api host needs its stage in the path.

    The URL is written into ``proxy_pass``, so anything nginx would read as syntax is refused
    before parsing (``urlsplit`` silently drops newlines and tabs). With `callback_path`, a
    URL that already ends with it is refused: nginx appends the request's path to it.
    """
    warnings: list[str] = []
    bad = _unsafe_char(url)
    if bad is not None:
        raise InputError(
            f"--stage-url must not contain {bad}: {url!r}",
            fix="pass the stage's URL only, e.g. https://abc123.execute-api.REGION.amazonaws.com/prod",
        )
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed [IPv6 address
        raise InputError(
            f"--stage-url is not a URL: {url}",
            fix="pass the stage's https URL, e.g. https://abc123.execute-api.REGION.amazonaws.com/prod",
        ) from None
    if parts.scheme != "https":
        raise InputError(
            f"--stage-url must be https (got {parts.scheme or 'no scheme'}): {url}",
            fix="use the stage's https URL, e.g. https://abc123.execute-api.REGION.amazonaws.com/prod",
        )
    if "@" in parts.netloc:
        raise InputError(
            f"--stage-url must not contain a user name or password: {url}",
            fix="drop the 'USER:PASSWORD@' part (API Gateway does not read it)",
        )
    given = parts.hostname or ""
    if not given:
        raise InputError(f"--stage-url has no host: {url}", fix="e.g. https://HOST/STAGE")
    try:
        host = dns_host(given)
    except ValueError as exc:
        raise InputError(
            f"--stage-url's host {given!r} is {exc}", fix="pass the stage's host as DNS knows it"
        ) from None
    if host != given.lower():
        warnings.append(
            f"the stage's host {given} is written as {host}, the form DNS, TLS (SNI) and the "
            "Host header carry"
        )
    if parts.query or parts.fragment:
        raise InputError(
            f"--stage-url must not have a query or fragment: {url}", fix="drop ?... and #..."
        )
    base = parts.path.rstrip("/")
    if EXECUTE_API.match(host):
        kind = "execute-api"
        if not base and stage_path is None:
            raise InputError(
                f"--stage-url names an execute-api host without a stage: {url}",
                fix=f"append the stage name, e.g. {url.rstrip('/')}/prod",
            )
    else:
        kind = "custom-domain"
        warnings.append(
            f"{host} is not an execute-api host (*.execute-api.REGION.amazonaws.com); "
            "treating it as a custom domain mapped to the stage"
        )
        try:
            ipaddress.ip_address(host)
            warnings.append(
                f"{host} is an IP address: TLS verification needs a certificate for that address"
            )
        except ValueError:
            pass
    if stage_path is not None and not stage_path.startswith("/"):
        raise InputError(f"--stage-path must start with '/': {stage_path}", fix="e.g. /prod/cb")
    callback = (callback_path or "").rstrip("/")
    if stage_path is None and callback and (base == callback or base.endswith(callback)):
        stage_root = base[: len(base) - len(callback)]
        raise InputError(
            f"--stage-url already ends with the callback path {callback}: copies would go to "
            f"{base}{callback}, because nginx appends the request's path to the stage URL",
            fix=f"pass --stage-url https://{parts.netloc}{stage_root}",
        )
    try:
        port = parts.port or 443
    except ValueError:
        raise InputError(
            f"--stage-url has an invalid port: {url}", fix="e.g. https://HOST:8443/STAGE"
        ) from None
    return Stage(url, host, port, base, kind), warnings


def _is_off(d: Directive) -> bool:
    return d.args[:1] == ("off",)


def _location_chain(scene: _Scene) -> tuple[Directive, ...]:
    """The blocks around the scene's location, outermost first, ending with it."""
    return (*reversed(scene.levels), scene.location)


def _redeclare(d: Directive) -> str:
    return directive(d.name, *d.args)


def _enclosing_http(config: NginxConfig, server: Directive) -> Directive:
    """Servers sit directly in ``http`` (includes expanded): no need to walk every block."""
    for http in config.http_blocks():
        if any(s is server for s in config.effective_children(http, "server")):
            return http
    raise InputError("the chosen server is not inside an http block", where=server.where)


def _describe_server(m: Match, config: NginxConfig) -> str:
    """The server as written, and the sockets the plan is for when it listens on more."""
    names = " ".join(server_names(m.server, config)) or '""'
    listens = list(dict.fromkeys(str(lst.socket) for lst in server_listens(m.server, config)))
    chosen = list(dict.fromkeys(str(s) for s in m.sockets))
    text = f"server_name {names}; listen {', '.join(listens)}"
    if set(chosen) != set(listens):
        text += f" (the callback arrives on {', '.join(chosen)})"
    return text


@dataclass(frozen=True)
class _Scene:
    """What the plan works on: the chosen blocks and what they already contain."""

    config: NginxConfig
    match: Match
    http: Directive
    mode: Mode
    layout: Layout
    internal_uri: str

    @property
    def location(self) -> Directive:
        """Where the lines go: a mirror where the content handler runs (the route's last
        location, reached after any hand-off); a forward's rewrite where the callback's URI is
        still the one the vendor posted (the first location, before any hand-off)."""
        return self._hop.location

    @property
    def _hop(self) -> Hop:
        route = self.match.route
        return route.hops[0] if self.mode == "forward" else route.final

    @property
    def levels(self) -> list[Directive]:
        """The blocks the location inherits from, innermost first."""
        return [*reversed(self._hop.parents), self.match.server, self.http]

    @property
    def location_names(self) -> set[str]:
        return {d.name for d in self.config.effective_children(self.location)}


# How each layout is named to the user (the layout values stay in --format json).
LAYOUT_WORDS: dict[str, str] = {
    "two-hop": "copies through a relay on a unix socket (nginx before 1.27.3)",
    "upstream-resolve": "copies straight to a resolving upstream (nginx 1.27.3+)",
    "direct": "forwarding straight to the stage",
}


def describe_layout(layout: Layout) -> str:
    """`layout` in words a user knows."""
    return LAYOUT_WORDS.get(layout, layout)


def _choose_layout(options: MirrorOptions, version: tuple[int, int, int]) -> Layout:
    if options.mode == "forward":
        return "direct"
    layout = options.layout or ("upstream-resolve" if version >= RESOLVE_IN_UPSTREAM else "two-hop")
    if layout == "upstream-resolve" and version < RESOLVE_IN_UPSTREAM:
        raise InputError(
            "copying straight to a resolving upstream needs nginx 1.27.3 or later "
            "(`server ... resolve` in an upstream)",
            fix="let hookshift choose: on this nginx it copies through a relay on a unix socket",
        )
    return layout


def _scene_warnings(scene: _Scene, options: MirrorOptions) -> list[str]:
    """What in the user's config would make the mirror (or forward) do less than asked."""
    config, loc, m = scene.config, scene.location, scene.match
    warnings: list[str] = []
    if scene.mode == "mirror":
        # a `return` or `rewrite` of the location itself did not end the callback (the route
        # reached the app through it); these may refuse some callbacks
        for name in ("limit_req", "auth_request", "deny"):
            if name in scene.location_names:
                warnings.append(
                    f"location {location_spec(loc)} ({loc.where}) has `{name}`: requests it "
                    "ends before the content phase are not mirrored"
                )
        for d in _request_buffering_off(scene):
            warnings.append(
                f"`{d.text}` ({d.where}) stops streaming request bodies in location "
                f"{location_spec(loc)}: a mirror there makes nginx read each request's whole "
                "body before passing it on, every request of the location, not only the "
                "callback (uploads wait for their last byte)"
            )
        mrb = config.effective_children(loc, "mirror_request_body")
        if mrb and _is_off(mrb[0]):
            warnings.append(
                f"mirror_request_body off at {mrb[0].where}: copies reach the stage without a body"
            )
    if options.server_name:
        host = request_host(options.server_name)
        names = server_names(m.server, config)
        if host not in names:
            warnings.append(
                f"{host} reaches the server at {m.server.where} ({' '.join(names) or 'no name'}) "
                "through a wildcard, a regular expression or as its default server: callbacks "
                f"to {raw_path(options.path)} for the other hosts it takes are copied and logged "
                "for parity too (the filter is on the path, not the host)"
            )
    if scene.mode == "mirror":
        warnings += _kept_mirror_warnings(scene)
        warnings += _body_file_warnings(scene, options)
        # every mirror layout has a relay server
        for d in config.effective_children(scene.http):
            if d.name in RELAY_BLOCKERS:
                warnings.append(
                    f"http-level `{d.name}` ({d.where}) also applies to hookshift's relay "
                    "server: copies may be refused there (move it into the servers it protects)"
                )
    return warnings


def _kept_mirrors(scene: _Scene) -> tuple[Directive, ...]:
    """The ``mirror`` lines the callback's location inherits, which hookshift declares again
    beside its own there: nginx's ``mirror`` is all or nothing per block, so a location with a
    ``mirror`` of its own drops every inherited one, and the user's mirror (an audit copy, a
    shadow app) would stop getting the callbacks.

    A ``mirror off`` of the location's own is refused: nginx takes no other ``mirror`` line
    beside it (``"mirror" directive is duplicate``), and it says that this location is not
    to be mirrored.
    """
    found = Inheritance(scene.config).lookup(_location_chain(scene), "mirror")
    if found.block is scene.location:
        off = next((d for d in found.lines if _is_off(d)), None)
        if off is not None:
            raise InputError(
                f"location {location_spec(scene.location)} has `mirror off;`: nginx takes no "
                "other `mirror` line beside it, so hookshift cannot copy the callback there",
                where=off.where,
                fix="delete that line if the callbacks may be copied (the `mirror` lines of the "
                "enclosing blocks then apply there too, and hookshift keeps them), then plan "
                "again",
            )
        return ()
    return tuple(d for d in found.lines if not _is_off(d))


def _kept_mirror_warnings(scene: _Scene) -> list[str]:
    """What keeping the inherited mirrors (`_kept_mirrors`) changes for them."""
    kept = _kept_mirrors(scene)
    if not kept:
        return []
    spec = location_spec(scene.location)
    said = ", ".join(f"`{d.text}` ({d.where})" for d in kept)
    warnings = [
        f"location {spec} inherits {said}: hookshift declares it again there beside its own "
        "`mirror` (nginx would drop it otherwise); a later change of that line reaches "
        f"location {spec} only when `hookshift mirror apply` runs again"
    ]
    body = Inheritance(scene.config).value(_location_chain(scene), "mirror_request_body")
    if body is not None and _is_off(body) and "mirror_request_body" not in scene.location_names:
        warnings.append(
            f"`{body.text}` ({body.where}) applies to location {spec}; hookshift turns it on "
            "there (its copies need the body), so the mirror it inherits gets the callback's "
            "body too"
        )
    return warnings


def _body_file_warnings(scene: _Scene, options: MirrorOptions) -> list[str]:
    """``client_body_in_file_only`` in the callback's location: nginx writes each request body
    to a file and keeps none in memory, so ``$request_body`` is empty. (hookshift's relay sets
    it off for itself, so an http-level one keeps no copy's body as a file.)"""
    inheritance = Inheritance(scene.config)
    spec = location_spec(scene.location)
    warnings = []
    here = inheritance.value(_location_chain(scene), "client_body_in_file_only")
    if here is not None and not _is_off(here) and options.parity_log is not None:
        warnings.append(
            f"`{here.text}` ({here.where}) applies to location {spec}: nginx keeps each "
            "callback's body in a file only, so the parity log gets no body and `verify "
            "parity` compares none (each callback is body_not_logged); the copies to the stage "
            "keep their bodies"
        )
    return warnings


def _request_buffering_off(scene: _Scene) -> list[Directive]:
    inheritance = Inheritance(scene.config)
    found = (inheritance.value(_location_chain(scene), n) for n in REQUEST_BUFFERING)
    return [d for d in found if d is not None and _is_off(d)]


# the words a tool writes at the top of a file it generates (Plesk, gitlab-ctl, ingress-nginx)
_GENERATED = re.compile(
    r"do not (?:modify|edit)|(?:auto(?:matically)?[- ])?generated (?:by|automatically)|"
    r"automatically generated|"
    r"managed by|changes (?:will|may) be (?:lost|erased|overwritten)",
    re.IGNORECASE,
)


def _generated_warnings(changes: tuple[FileChange, ...]) -> list[str]:
    """A file a tool writes again drops hookshift's lines with the user's: say so up front."""
    warnings = []
    for change in changes:
        head = change.old_text.split("\n", 30)[:30]
        found = next(
            (
                (n, line)
                for n, line in enumerate(head, 1)
                if line.lstrip().startswith("#") and _GENERATED.search(line)
            ),
            None,
        )
        if found is not None:
            n, line = found
            warnings.append(
                f"{change.path} looks written by a tool (line {n}: {line.strip()[:80]!r}): when "
                "the tool writes it again, hookshift's lines there go and copies stop; run "
                "`hookshift mirror apply` again after each time, or move the callback's location "
                "where the tool keeps your own lines"
            )
    return warnings


def _scene_info(scene: _Scene, options: MirrorOptions) -> list[str]:
    """What the plan chose and why, for a reviewer (not a problem to fix)."""
    loc = scene.location
    path = raw_path(options.path)
    query = (
        [
            f"the query string in --path ({options.path[len(path) :]}) is not matched: {path} is "
            "copied with whatever query string the vendor sends"
        ]
        if options.path != path
        else []
    )
    if scene.match.exact:
        return [*query, *scene.match.info]
    what = (
        "copied and logged for parity (a map on $request_uri filters the rest)"
        if scene.mode == "mirror"
        else "forwarded (the rewrite matches it exactly)"
    )
    return [
        *query,
        *scene.match.info,
        f"location {location_spec(loc)} ({loc.where}) serves other paths too; "
        f"only {path} is {what}, the others are served as before",
    ]


def _access_logs(scene: _Scene) -> Found:
    """The ``access_log`` lines nginx applies where the callback is logged: the mirrored
    location's; the forward location is new, in the server, and inherits from it and http."""
    chain = _location_chain(scene) if scene.mode == "mirror" else (scene.http, scene.match.server)
    return Inheritance(scene.config).lookup(chain, "access_log")


@dataclass(frozen=True)
class _Logs:
    """The files hookshift's logs go to, and a line for the user when hookshift chose them."""

    parity: Path | None
    mirror_error: Path | None  # the relay's; None without a relay (forward)
    info: tuple[str, ...] = ()
    default_place: str = ""  # why the directory, when hookshift chose it for a log
    default_relative: bool = False  # that directory is a relative path under nginx's prefix


def _log_dir(scene: _Scene, options: MirrorOptions) -> tuple[Path, str, bool]:
    """The directory of the access log nginx writes for the callback, how to name it, and
    whether it is a relative path resolved under nginx's prefix.

    The operators already read, rotate and back up that directory, and nginx can write there:
    the first line in effect that is a file in a fixed directory (no variable, no device);
    else nginx's compiled-in access log, which nginx writes wherever no ``access_log`` applies
    (even under ``-p`` when it was compiled absolute, as Debian's is).
    """
    for d in _access_logs(scene).lines:
        file = log_file(d.args[0], options.nginx_prefix) if d.args else None
        if file is None or "$" in str(file.parent):
            continue
        if any(file.is_relative_to(device) for device in _DEVICE_DIRS):
            continue
        return (
            file.parent,
            f"beside the access log nginx writes for the callback (`{d.text}` at {d.where})",
            not Path(d.args[0]).is_absolute(),
        )
    if options.default_access_log:
        return (
            Path(options.default_access_log).parent,
            f"beside nginx's compiled-in access log {options.default_access_log}",
            False,
        )
    if options.nginx_prefix is not None:
        return options.nginx_prefix / "logs", "in the logs directory of nginx's prefix", True
    return DEFAULT_PARITY_LOG.parent, "in /var/log/nginx (there is no nginx binary to ask)", False


def _hookshift_logs(scene: _Scene, options: MirrorOptions) -> _Logs:
    """The parity log and the relay's error log: where the user said, else in `_log_dir`.

    The relay's error log goes beside a parity log the user placed (hookshift's logs stay
    together, and a test prefix stays self-contained). When hookshift chose a place, a line
    says which and why: `verify parity` is pointed at that file.
    """
    directory, why, relative = _log_dir(scene, options)
    chosen = options.parity_log
    parity = directory / PARITY_LOG_NAME if isinstance(chosen, Beside) else chosen
    error = options.mirror_error_log
    if scene.mode != "mirror":
        error = None  # no relay
    elif error is None and isinstance(chosen, Path):
        error = chosen.parent / MIRROR_ERROR_LOG_NAME
    elif error is None:
        error = directory / MIRROR_ERROR_LOG_NAME
        if parity is None:
            told = f"the relay's error log goes to {error}, {why}; --mirror-error-log puts it"
            return _Logs(parity, error, (f"{told} elsewhere",), why, relative)
        told = (
            f"the parity log goes to {parity} and the relay's error log to {error}, {why}; "
            "--parity-log and --mirror-error-log put them"
        )
        return _Logs(parity, error, (f"{told} elsewhere",), why, relative)
    if isinstance(chosen, Beside):
        told = f"the parity log goes to {parity}, {why}; --parity-log puts it"
        return _Logs(parity, error, (f"{told} elsewhere",), why, relative)
    return _Logs(parity, error)


def _parity_log_lines(
    scene: _Scene,
    options: MirrorOptions,
    parity_log: Path | None,
    path_filter: str | None,
    warnings: list[str],
) -> tuple[str, ...]:
    """The parity ``access_log`` plus the inherited ones it would otherwise silence."""
    if parity_log is None:
        return ()
    log_args = [str(parity_log), "hookshift_parity"]
    if path_filter is not None:
        log_args.append(f"if=${CALLBACK_VAR}")
    lines = [directive("access_log", *log_args)]
    for block in scene.config.effective_children(scene.location):
        posts = block.name == "limit_except" and "POST" not in {a.upper() for a in block.args}
        logs = scene.config.effective_children(block, "access_log")
        if logs and (block.name == "if" or posts):
            # such a block's logs replace the location's for the requests it takes
            what = "`if`" if block.name == "if" else f"`limit_except {' '.join(block.args)}`"
            which = "its condition holds for" if block.name == "if" else "it takes (POST)"
            raise InputError(
                f"an {what} in location {location_spec(scene.location)} has its own "
                f"`{logs[0].text}`: for the callbacks {which}, nginx writes that log instead "
                "of the location's, the parity log included, and `verify parity` would count "
                "them lost",
                where=logs[0].where,
                fix=f"move that access_log out of the {what} (e.g. `access_log ... if=$var;` "
                "with a map), or pass --no-parity-log",
            )
    found = _access_logs(scene)
    own = found.lines if found.block is scene.location else ()
    for d in own:
        if _is_off(d):
            # nginx lets `access_log off` silence every log of its block, ours included
            raise InputError(
                f"location {location_spec(scene.location)} has `access_log off;`: nginx then "
                "writes no log for the callback, not even the parity log `verify parity` reads",
                where=d.where,
                fix="delete that line (the location then logs to the parity log and to the "
                "access logs it inherits), or pass --no-parity-log",
            )
    if own:
        return tuple(lines)  # the location already chose its logs; ours goes beside them
    inherited = found.lines
    if not inherited:
        if options.default_access_log:
            lines.append(directive("access_log", options.default_access_log, "combined"))
        else:
            warnings.append(
                "no access_log is configured and nginx's compiled default is unknown: "
                "the default access log stops for this location"
            )
    elif off := next((d for d in inherited if _is_off(d)), None):
        warnings.append(
            f"`access_log off;` ({off.where}) applies to location "
            f"{location_spec(scene.location)}; the parity log written there records each "
            f"callback, body included, in {parity_log} (the location's other logs stay "
            "off). Pass --no-parity-log to keep it off"
        )
    else:
        lines.extend(_redeclare(d) for d in inherited)
    return tuple(lines)


def _app_header_lines(
    scene: _Scene, options: MirrorOptions, warnings: list[str]
) -> tuple[str, ...]:
    """``--request-id-to-app``: the header, plus the inherited headers it would silence."""
    if scene.mode != "mirror" or not options.request_id_to_app:
        return ()
    loc = scene.location
    if "proxy_pass" not in scene.location_names:
        warnings.append(
            f"--request-id-to-app: location {loc.where} has no proxy_pass; header not added"
        )
        return ()
    lines = [directive("proxy_set_header", options.request_id_header, "$request_id")]
    found = Inheritance(scene.config).lookup(_location_chain(scene), "proxy_set_header")
    if found.block is not loc:  # the location's own lines would drop the inherited ones
        lines.extend(
            _redeclare(d)
            for d in found.lines
            if d.args[:1] and d.args[0].lower() != options.request_id_header.lower()
        )
    return tuple(lines)


def _needs_body_buffer(scene: _Scene, wanted: str) -> bool:
    """Raise ``client_body_buffer_size`` in the location only if what is in effect is smaller.

    A value set in the location itself is the user's (a second one is a duplicate), and a
    larger inherited value must not be lowered.
    """
    found = Inheritance(scene.config).lookup(_location_chain(scene), "client_body_buffer_size")
    if found.block is scene.location:
        return False
    if found.value is None or not found.value.args:
        return True
    current, target = parse_size(found.value.args[0]), parse_size(wanted)
    return current is None or target is None or current < target


def _template_context(
    scene: _Scene,
    options: MirrorOptions,
    stage: Stage,
    logs: _Logs,
    warnings: list[str],
    stage_addresses: tuple[str, ...] = (),
) -> TemplateContext:
    uri = raw_path(options.path)
    # Every location gets the filter, exact ones too: a rewrite, try_files or error_page
    # elsewhere can bring other requests into it, and only the callback (as the vendor posted
    # it, `$request_uri`) is copied and logged; other requests' copies end at once with 204.
    path_filter = None if scene.mode == "forward" else f"^{request_uri_pattern(uri)}(\\?|$)"
    # nginx's own locations and rewrites see the path decoded and normalised ($uri), as the
    # route that chose the location did
    nginx_uri = scene.match.route.uri
    log_lines = _parity_log_lines(scene, options, logs.parity, path_filter, warnings)
    if options.stage_path is not None:
        suffix = f"{options.stage_path}$is_args$args"
    else:
        suffix = f"{stage.base_path}$request_uri"
    names = scene.location_names
    return TemplateContext(
        mode=scene.mode,
        layout=scene.layout,
        internal_uri=scene.internal_uri,
        mirror_uri=scene.internal_uri,
        upstream=UPSTREAM,
        relay_socket=options.relay_socket,
        stage_target=f"https://{stage.authority}{suffix}",
        upstream_target=f"https://{UPSTREAM}{suffix}",
        stage_authority=f"{stage.host}:{stage.port}",
        tls_name=stage.host,
        host_header=stage.host,
        trusted_ca=str(options.trusted_ca),
        resolvers=options.resolvers,
        timeout=options.effective_timeout,
        request_id_header=options.request_id_header,
        parity_log=logs.parity is not None,
        tuning=options.tuning,
        set_mirror_request_body="mirror_request_body" not in names,
        set_body_buffer=_needs_body_buffer(scene, options.tuning.body_buffer),
        location_log_lines=log_lines if scene.mode == "mirror" else (),
        kept_mirror_lines=tuple(_redeclare(d) for d in _kept_mirrors(scene))
        if scene.mode == "mirror"
        else (),
        app_header_lines=_app_header_lines(scene, options, warnings),
        forward_log_lines=log_lines if scene.mode == "forward" else (),
        path_filter=path_filter,
        callback_var=CALLBACK_VAR,
        forward_rewrite=directive(
            "rewrite", f"^{re.escape(nginx_uri)}$", scene.internal_uri, "last"
        ),
        mirror_error_log=None if logs.mirror_error is None else str(logs.mirror_error),
        stage_dns=_stage_dns(scene, options),
        stage_pool=STAGE_POOL,
        stage_pool_target=f"https://{STAGE_POOL}{suffix}",
        stage_port=stage.port,
        stage_addresses=stage_addresses,
        callback_path=nginx_uri,
        stage_hop_socket=stage_hop_socket(options.relay_socket),
        relay_dir=relay_dir(options.relay_socket),
        copies_cap=_copies_cap(scene, options),
        handoffs_per_worker=_handoffs_per_worker(scene),
        strip_headers=options.strip_headers,
        relay_access_lines=_relay_access_lines(scene),
    )


def _relay_access_lines(scene: _Scene) -> tuple[str, ...]:
    """What the relay servers say to leave the http level's access control to the vendor's
    servers: only for directives the config uses there (so an nginx built without a module
    never meets its directive)."""
    used = {d.name for d in scene.config.effective_children(scene.http)}
    return tuple(dict.fromkeys(line for name, line in RELAY_ACCESS_OFF.items() if name in used))


def _copies_cap(scene: _Scene, options: MirrorOptions) -> int:
    """How many copies may be in flight at the relay; the excess is dropped at once."""
    per_copy = 4 if _stage_dns(scene, options) == "runtime" and scene.layout == "two-hop" else 2
    budget = _worker_connections(scene.config) // COPIES_CONNECTION_SHARE
    return min(options.tuning.max_copies, max(MIN_IN_FLIGHT, budget // per_copy))


def _handoffs_per_worker(scene: _Scene) -> int:
    """How many callbacks one worker may have in flight with a copy handed to the relay; the
    copies of the others are dropped at once. A worker with more in flight is near the end of
    its worker_connections, and a hand-off would make nginx close idle vendor connections."""
    budget = _worker_connections(scene.config) // HANDOFF_CONNECTION_SHARE
    return max(MIN_IN_FLIGHT, budget)


def _bounds_info(scene: _Scene, ctx: TemplateContext) -> list[str]:
    """What the two bounds on copies are for this config, and how to raise them: a busy
    endpoint with a slow app has many callbacks in flight, and their copies beyond the bounds
    are dropped (the callbacks never are)."""
    if scene.mode != "mirror":
        return []
    return [
        f"from worker_connections {_worker_connections(scene.config)}: copies of at most "
        f"{ctx.handoffs_per_worker} callbacks in flight per nginx worker are handed to the "
        f"relay, and at most {ctx.copies_cap} copies wait for the stage; beyond either, a copy "
        "is dropped at once (the callback is not affected; the parity report counts it as "
        "missing_in_queue and `hookshift verify heal` re-sends it). For more callbacks in "
        "flight (a slow app, a busy endpoint), raise worker_connections in the events block"
    ]


def stage_hop_socket(relay_socket: str) -> str:
    """The relay's second socket (run-time DNS only), beside the first."""
    path = Path(relay_socket)
    return str(path.with_name(f"{path.stem}-stage.sock"))


def relay_dir(relay_socket: str) -> str | None:
    """The relay's directory when it is hookshift's own (nginx then creates it private)."""
    parent = Path(relay_socket).parent
    return str(parent) if parent.name.startswith(PRIVATE_RELAY_DIR_PREFIX) else None


def _worker_connections(config: NginxConfig) -> int:
    """``worker_connections`` of the events block (nginx's default when absent)."""
    for d, parents in config.walk():
        in_events = any(p.name == "events" for p in parents)
        if d.name == "worker_connections" and in_events and d.args and d.args[0].isdigit():
            return int(d.args[0])
    return DEFAULT_WORKER_CONNECTIONS


def _stage_dns(scene: _Scene, options: MirrorOptions) -> StageDns:
    """``runtime`` unless the user asks for ``reload``, and ``reload`` only where it means
    something (the relay of the two-hop layout, nginx before 1.27.3).

    ``reload`` keeps connections and TLS sessions to the stage (an ``upstream`` naming the
    stage's host), which is much cheaper per copy, but nginx then resolves that name when it
    starts and refuses to start when it cannot: a DNS failure at a restart or a boot would take
    down every site of the server, not just the copies. So it is the user's choice, never the
    default; ``runtime`` costs a TCP and TLS handshake per copy and nothing at start.
    """
    if scene.layout != "two-hop":
        return "runtime"
    return options.stage_dns or "runtime"


def _stage_dns_warnings(scene: _Scene, options: MirrorOptions, stage: Stage) -> list[str]:
    warnings = _relay_dir_warnings(scene, options)
    if options.stage_dns == "reload" and scene.layout != "two-hop":
        warnings.append(
            f"--stage-dns reload has no effect here ({describe_layout(scene.layout)}): "
            "it changes only the relay used on nginx before 1.27.3"
        )
    return warnings


def _kept_by_address(scene: _Scene, options: MirrorOptions) -> bool:
    """Whether the relay keeps connections to the stage's addresses as resolved when planning:
    a mirror with run-time DNS on nginx before 1.27.3."""
    return (
        scene.mode == "mirror"
        and scene.layout == "two-hop"
        and (_stage_dns(scene, options) == "runtime")
    )


def _stage_dns_info(
    scene: _Scene, options: MirrorOptions, stage: Stage, addresses: tuple[str, ...]
) -> list[str]:
    """What the stage's name resolution does and how to keep the addresses current."""
    if scene.mode != "mirror" or scene.layout != "two-hop":
        return []
    if _stage_dns(scene, options) == "runtime":
        chosen = "--stage-dns runtime" + ("" if options.stage_dns else " (the default)")
        if addresses:
            return [
                f"{chosen}: the relay keeps connections to {', '.join(addresses)} (what "
                f"{stage.host} resolves to now, written into the config, so nginx starts "
                "whatever DNS answers); when they stop answering, copies go by the name, "
                "re-resolved with --resolver, at a new TCP and TLS connection each. Keep the "
                f"addresses current with `hookshift mirror refresh --config {options.config}` "
                "(it rewrites them, checked with nginx -t, only when the name has moved; "
                "`hookshift mirror refresh-units` writes a systemd timer that runs it every "
                "minute)"
            ]
        return [
            f"{chosen}: {stage.host} was not resolved when planning, so the relay re-resolves "
            "it with --resolver for every copy, at the cost of a new TCP and TLS connection "
            "each. Plan with a resolver that answers (without --no-dns-check) to keep "
            "connections to its addresses"
        ]
    return [
        f"--stage-dns reload: the relay keeps connections to {stage.host}, which nginx "
        "resolves with the system resolver (not --resolver) at start and on each reload only; "
        "nginx cannot start while that name does not resolve. Keep its addresses current with "
        f"`hookshift mirror refresh --config {options.config}` (it reloads nginx only when "
        "they changed; `hookshift mirror refresh-units` writes a systemd timer that runs it "
        "every minute). A stale address costs copies (the parity report shows them), never "
        "callbacks"
    ]


def _relay_dir_warnings(scene: _Scene, options: MirrorOptions) -> list[str]:
    if scene.mode != "mirror" or relay_dir(options.relay_socket) is not None:
        return []
    parent = Path(options.relay_socket).parent
    return [
        f"the relay socket is in {parent}, which other local users may reach: they could send "
        "copies to the stage through it. Put it in a directory of its own whose name starts "
        f"with `{PRIVATE_RELAY_DIR_PREFIX}` (default {DEFAULT_RELAY_SOCKET}): nginx then "
        "creates that directory for its own user only"
    ]


def _ours_on_disk(source: SourceConfig, on_disk: dict[Path, str] | None) -> bool:
    """True when some file on disk holds hookshift's lines (`_applied_texts`)."""
    return bool(_applied_texts(source, on_disk))


def _already_applied(
    changes: tuple[FileChange, ...], source: SourceConfig, on_disk: dict[Path, str] | None
) -> bool:
    """True when the files on disk already are this plan's result (apply twice = no-op)."""
    if on_disk is None or not _ours_on_disk(source, on_disk):
        return False
    planned = {c.path: c.new_text for c in changes}
    return all(text == planned.get(p, source.texts.get(p)) for p, text in on_disk.items())


def _upgrade_changes(
    changes: tuple[FileChange, ...], source: SourceConfig, on_disk: dict[Path, str] | None
) -> tuple[FileChange, ...]:
    """Changes from the texts on disk when they hold hookshift's lines of another plan.

    The plan was made on the texts without those lines, so each file's new text is known; the
    edit replaces the old lines with the new ones in one validated apply, and ``remove`` still
    brings back the user's own bytes (it takes out every marked line, old or new).
    """
    if on_disk is None or not _ours_on_disk(source, on_disk):
        return changes
    planned = {c.path: c for c in changes}
    upgraded: list[FileChange] = []
    for path, text in sorted(on_disk.items(), key=lambda item: str(item[0])):
        change = planned.get(path)
        new_text = change.new_text if change is not None else source.texts.get(path, text)
        if new_text != text:
            infos = change.insertions if change is not None else ()
            upgraded.append(FileChange(path, text, new_text, infos, source.texts.get(path)))
    return tuple(upgraded)


def build_plan(
    source: SourceConfig,
    options: MirrorOptions,
    nginx_version: tuple[int, int, int],
    on_disk: dict[Path, str] | None = None,
    written: WrittenStage | None = None,
) -> MirrorPlan:
    """The plan for `options` on the (marker-free) `source`; `on_disk` = the current texts,
    `written` = the stage addresses they hold.

    Pure: reads nothing, writes nothing.
    """
    config = source.config
    path = check_callback_path(options.path)
    _check_option_words(options)
    stage, warnings = parse_stage_url(options.stage_url, options.stage_path, path)
    m = match(config, options.path, host=options.server_name, listen=options.listen)
    repeated = duplicate_locations(m.server, config)
    if repeated:
        first, again = repeated[0]
        raise InputError(
            f"location {location_spec(again)} repeats the one at {first.where}: nginx -t "
            "fails on this config (`duplicate location`), so the plan's location choice would "
            "be a guess",
            where=again.where,
            fix="merge the two blocks into one, or delete one, then plan again",
        )
    if m.route.as_get:
        raise InputError(
            f"{options.path} reaches the app only after `error_page` made the vendor's POST a "
            f"GET ({m.route.describe()}): the app does not get the callback as sent, and "
            "neither would a copy",
            where=m.route.final.location.where,
            fix="hand it on to a named location (`error_page CODE = @app;`), which keeps the "
            "method, or proxy the callback path to the app directly",
        )
    internal_uri = MIRROR_URI if options.mode == "mirror" else FORWARD_URI
    _check_free_names(config, internal_uri)
    if len(stage_hop_socket(options.relay_socket).encode()) > UNIX_PATH_MAX:
        raise InputError(
            f"--relay-socket path is longer than {UNIX_PATH_MAX} bytes: {options.relay_socket}",
            fix=f"choose a shorter path, e.g. {DEFAULT_RELAY_SOCKET}",
        )
    scene = _Scene(
        config=config,
        match=m,
        http=_enclosing_http(config, m.server),
        mode=options.mode,
        layout=_choose_layout(options, nginx_version),
        internal_uri=internal_uri,
    )
    # the mirror's subrequest starts at the server's rewrites; forward mode's `rewrite ...
    # last` goes straight to location selection
    taken = (
        server_takes(config, m.server, internal_uri, sent_path(raw_path(options.path) or "/"))
        if options.mode == "mirror"
        else None
    )
    if taken is not None:
        raise InputError(
            f"the server-level `{taken.text}` also takes hookshift's subrequest to {internal_uri} "
            "(nginx runs a server's own rewrites for subrequests too): no copy would reach "
            "the stage, and the request would go where that line sends it",
            where=taken.where,
            fix="move it into the locations it is meant for (for example `location / { ... }`)",
        )
    for block in (scene.location, m.server):
        _refuse_shared(config, block)
    warnings += _scene_warnings(scene, options)
    info = _scene_info(scene, options)
    if raw_path(options.path) != options.path:
        info.append(
            f"--path {options.path}: only the path {raw_path(options.path) or '/'} is planned "
            "on (nginx chooses a location by the path alone); callbacks with any query string "
            "are copied, each with the query the vendor sent"
        )
    warnings += _stage_dns_warnings(scene, options, stage)
    addresses = (
        _stage_addresses(options, stage, written) if _kept_by_address(scene, options) else ()
    )
    info += _stage_dns_info(scene, options, stage, addresses)
    logs = _hookshift_logs(scene, options)
    info += logs.info
    ctx = _template_context(scene, options, stage, logs, warnings, addresses)
    info += _bounds_info(scene, ctx)
    changes = _splice(
        source,
        [
            (scene.http, render_http(ctx), _after_map_hash_sizes(config, scene.http)),
            (m.server, render_server(ctx), None),
            (scene.location, render_location(ctx), None),
        ],
    )
    warnings += _generated_warnings(changes)
    already = _already_applied(changes, source, on_disk)
    if not already:
        upgraded = _upgrade_changes(changes, source, on_disk)
        if upgraded != changes:
            changes = upgraded
            warnings.append("replaces hookshift's lines of an earlier mirror with this plan's")
    return MirrorPlan(
        options=options,
        nginx_version=nginx_version,
        layout=scene.layout,
        stage=stage,
        internal_uri=internal_uri,
        server=Place("server", m.server.where, _describe_server(m, config)),
        location=Place(
            "location", scene.location.where, f"location {location_spec(scene.location)}"
        ),
        changes=() if already else changes,
        warnings=tuple(warnings),
        already_applied=already,
        info=tuple(info),
        route=m.route.describe(),
        stage_dns=ctx.stage_dns,
        mirror_error_log=None if ctx.mirror_error_log is None else Path(ctx.mirror_error_log),
        stage_addresses=ctx.stage_addresses if ctx.known_addresses else (),
        parity_log=logs.parity,
        default_log_place=logs.default_place,
        default_log_relative=logs.default_relative,
        applied_texts=_applied_texts(source, on_disk) if already else (),
    )


def _applied_texts(
    source: SourceConfig, on_disk: dict[Path, str] | None
) -> tuple[tuple[Path, str], ...]:
    """The files on disk that hold hookshift's lines, with their texts: those that differ from
    the text planned on, which has them taken out (a user's own ``# hookshift`` line stays in
    both)."""
    return tuple(
        (path, text)
        for path, text in sorted((on_disk or {}).items(), key=lambda item: str(item[0]))
        if text != source.texts.get(path)
    )


# Directives that define a variable, and which of their arguments names it.
_VARIABLE_DEFINERS = {"map": -1, "geo": -1, "split_clients": -1, "set": 0, "perl_set": 0}
_VARIABLE_DEFINER_PREFIXES = ("js_set", "set_by_lua")
_OWN_PREFIX = "hookshift_"


def _defined_variable(d: Directive) -> str | None:
    """The variable `d` defines (``map $a $b {`` -> ``$b``), if it defines one."""
    if not d.args:
        return None
    if d.name in _VARIABLE_DEFINERS:
        return d.args[_VARIABLE_DEFINERS[d.name]]
    if d.name.startswith(_VARIABLE_DEFINER_PREFIXES):
        return d.args[0]
    return None


def _check_free_names(config: NginxConfig, internal_uri: str) -> None:
    """Refuse a config that already defines a name hookshift defines: nginx would either
    reject the duplicate or, for a variable, let the user's definition decide what is copied."""
    for d, _ in config.walk():
        if d.name == "location" and location_spec(d).pattern == internal_uri:
            raise InputError(
                f"the config already has a location {internal_uri}",
                where=d.where,
                fix="remove it (hookshift uses that name for its internal location)",
            )
        if d.name == "upstream" and d.args[:1] and d.args[0].startswith(_OWN_PREFIX):
            raise InputError(
                f"the config already has an upstream {d.args[0]}",
                where=d.where,
                fix="rename it (hookshift defines the upstreams named hookshift_...)",
            )
        if d.name == "log_format" and d.args[:1] and d.args[0].startswith(_OWN_PREFIX):
            raise InputError(
                f"the config already has a log_format {d.args[0]}",
                where=d.where,
                fix="rename it (hookshift defines the log formats named hookshift_...)",
            )
        variable = _defined_variable(d)
        if variable is not None and variable.lstrip("$").startswith(_OWN_PREFIX):
            raise InputError(
                f"the config already defines the variable {variable} (`{d.name}`)",
                where=d.where,
                fix="rename it (hookshift defines the variables named $hookshift_...)",
            )


def _refuse_shared(config: NginxConfig, block: Directive) -> None:
    """hookshift's lines go into the file that holds `block`: when that file is included in
    several places, they would mirror (and log for parity) the requests of each."""
    homes = config.homes(block)
    if len(homes) < 2:
        return
    places = []
    for parents in homes:
        server = next((p for p in reversed(parents) if p.name == "server"), None)
        if server is None:
            places.append(parents[-1].where if parents else str(config.main))
            continue
        names = " ".join(server_names(server, config)[:2])
        places.append(f"the server at {server.where}" + (f" ({names})" if names else ""))
    label = f"{block.name} {' '.join(block.args)}".strip()
    raise InputError(
        f"{label} is in {block.file}, which is included in {len(homes)} places "
        f"({'; '.join(places)}): hookshift's lines there would copy the callbacks of each to "
        "the stage and log them for parity",
        where=block.where,
        fix="give the server that receives the callbacks its own copy of that block (in its "
        "own file, or written into it), then run again",
    )


# nginx fixes the map hash's sizes at the first `map` of an http block: a map_hash_* line after
# hookshift's map would be "duplicate", so the map (with the rest of the http lines) follows it
_MAP_HASH_SIZES = ("map_hash_bucket_size", "map_hash_max_size")


def _after_map_hash_sizes(config: NginxConfig, http: Directive) -> Directive | None:
    """The statement of the http block, as written in its file, after which hookshift's http
    lines go: the last that sets a map hash size (or includes one); None: right after ``{``."""
    sizes = [d for d in config.effective_children(http) if d.name in _MAP_HASH_SIZES]
    return config.written_in(http, sizes[-1]) if sizes else None


def _splice(
    source: SourceConfig, inserts: list[tuple[Directive, tuple[str, ...], Directive | None]]
) -> tuple[FileChange, ...]:
    """The file changes that put each insertion's lines into its block: right after the
    ``{``, or after the statement given with it (which sits in the same file)."""
    by_file: dict[Path, list[tuple[Directive, tuple[str, ...], Directive | None]]] = {}
    for block, lines, anchor in inserts:
        if lines:
            by_file.setdefault(block.file, []).append((block, lines, anchor))
    changes: list[FileChange] = []
    for path, items in by_file.items():
        old = source.texts[path]
        placed = [
            splice.Insertion(b.open_brace, lines, anchor.end if anchor is not None else -1)
            for b, lines, anchor in items
        ]
        new = splice.insert(old, placed)
        _check_reversible(path, old, new, placed)
        infos: list[InsertionInfo] = []
        shift = 0  # lines inserted above, by earlier insertions in this file
        for (b, lines, _), ins in sorted(zip(items, placed, strict=True), key=lambda i: i[1].at):
            after = old.count("\n", 0, ins.at) + 1
            label = f"{b.name} {' '.join(b.args)}".strip()
            infos.append(InsertionInfo(after, label, lines, after + 1 + shift))
            shift += len(lines)
        changes.append(FileChange(path, old, new, tuple(infos)))
    return tuple(sorted(changes, key=lambda c: str(c.path)))


def _check_reversible(path: Path, old: str, new: str, placed: list[splice.Insertion]) -> None:
    """Refuse a change that `mirror remove` could not undo byte for byte.

    Remove takes out the marked lines apply recorded as added. A line of the user's that ends
    in ``# hookshift`` and goes on after the ``{`` (or ``;``) the lines go after is split
    there, and its rest then ends in the mark and reads as added: remove would take the
    user's own statements out with hookshift's, and nginx -t would refuse the result.
    """
    recorded, splits = splice.added_marks(old, new)
    if splice.remove_recorded(new, recorded, splits).text == old:
        return
    for ins in placed:
        start = old.rfind("\n", 0, ins.at) + 1
        end = old.find("\n", ins.at)
        line = old[start : len(old) if end < 0 else end].rstrip("\r")
        if line.endswith(splice.MARK):
            number = old.count("\n", 0, start) + 1
            token = "`{`" if ins.after < 0 else f"`{old[start : ins.after].strip()}`"
            raise InputError(
                f"`{line.strip()}` ends in `{splice.MARK}`, the mark hookshift puts on each "
                "line it adds, and hookshift's lines go in the middle of it: the rest of it "
                "would read as one of them, and `mirror remove` would take it out too",
                where=f"{path}:{number}",
                fix=f"end that line's comment some other way than `{splice.MARK}`, or break the "
                f"line after {token}, then plan again",
            )
    raise InputError(
        f"hookshift's lines could not be told apart from this file's own lines that end in "
        f"`{splice.MARK}`, so `mirror remove` could not give the file back byte for byte",
        where=str(path),
        fix=f"end those comments some other way than `{splice.MARK}`, then plan again",
    )


def stripped_source(config_path: Path) -> tuple[SourceConfig, SourceConfig]:
    """The config without hookshift's lines, and the config as it is on disk."""
    path = Path(os.path.abspath(config_path))

    def strip(on_disk: dict[Path, str]) -> dict[Path, str]:
        records = ConfigState.of(path).load().records
        legacy = not records
        return {p: without_ours(t, record_for(records, p), legacy).text for p, t in on_disk.items()}

    return load_stripped(config_path, strip)


@dataclass(frozen=True)
class WrittenStage:
    """The stage's addresses hookshift wrote for the relay's kept connections (run-time DNS on
    nginx before 1.27.3), with the stage's name they were resolved for."""

    host: str
    port: int
    addresses: tuple[str, ...]
    servers: tuple[Directive, ...]  # the ``server ADDRESS:PORT ...`` lines, in order


def written_stage(config: NginxConfig) -> WrittenStage | None:
    """The stage addresses in hookshift's keep-alive upstream of `config`, if it has one.

    The name is the one the location proxying to those addresses verifies the stage's
    certificate for (its ``proxy_ssl_name``), so the addresses belong to that name's stage.
    """
    pool = config.upstream(STAGE_POOL)
    target = f"https://{STAGE_POOL}"
    names = [
        name.args[0]
        for d, parents in config.walk()
        if d.name == "proxy_pass" and d.args and d.args[0].startswith(target) and parents
        for name in parents[-1].children("proxy_ssl_name")
        if name.args
    ]
    if pool is None or not names:
        return None
    servers = tuple(
        s
        for s in config.effective_children(pool, "server")
        if s.args and not s.args[0].startswith("unix:")
    )
    sockets = [parse_socket(s.args[0]) for s in servers]
    if not sockets:
        return None
    return WrittenStage(
        host=names[0],
        port=int(sockets[0].port),
        addresses=tuple(sock.addr.strip("[]") for sock in sockets),
        servers=servers,
    )


def relay_resolvers(config: NginxConfig) -> tuple[str, ...]:
    """The resolvers the stage hop asks when it sends a copy by the stage's name."""
    for d, parents in config.walk():
        if d.name == "resolver" and any(
            p.name == "location" and p.args == (STAGE_DNS_LOCATION,) for p in parents
        ):
            return tuple(a for a in d.args if "=" not in a)
    return ()


def _stage_addresses(
    options: MirrorOptions, stage: Stage, written: WrittenStage | None
) -> tuple[str, ...]:
    """The address for the relay's kept connections: the one already written for this stage
    (so that planning again changes nothing; `hookshift mirror refresh` renews it), else the
    first the resolver gave now.

    One address, not all: the breaker then sees the stage as one server, so a failed copy is
    counted at once and goes to the backup instead of being sent again to another address of
    the same stage (a 5xx would reach the stage once per address).
    """
    if written is not None and (written.host, written.port) == (stage.host, stage.port):
        return written.addresses[:1]
    return options.stage_addresses[:1]


@dataclass(frozen=True)
class PlanSource:
    """What planning reads from disk, read once for any number of plans of the same config."""

    stripped: SourceConfig  # the config without hookshift's lines
    on_disk: dict[Path, str]  # the texts as they are
    written: WrittenStage | None  # the stage address a mirror of hookshift's already keeps


def read_plan_source(config: Path) -> PlanSource:
    """Read the config at `config` for planning.

    crossplane reads the structure and hookshift's lexer the offsets of the edited files
    (`nginx.source.load_checked`); when crossplane cannot parse the config the lexer reads it
    alone and the plan says so in a warning.
    """
    stripped, on_disk = stripped_source(config)
    # one and the same when the config holds none of hookshift's lines
    written = written_stage(on_disk.config) if on_disk is not stripped else None
    return PlanSource(stripped, dict(on_disk.texts), written)


def plan_from(
    read: PlanSource, options: MirrorOptions, nginx_version: tuple[int, int, int]
) -> MirrorPlan:
    """The plan for `options` on a config already read (pure, like `build_plan`).

    A plan refused for what the config holds (no server, no location) may stem from a
    forgotten ``;`` that joined two lines into one statement: then that is what is said, with
    its line, rather than a fix to --path or --server-name that would not help.
    """
    try:
        plan = build_plan(read.stripped, options, nginx_version, read.on_disk, read.written)
    except InputError:
        for file, text in read.on_disk.items():
            check_statement_ends(text, str(file))
        raise
    return replace(plan, warnings=(*plan.warnings, *read.stripped.warnings))


def make_plan(options: MirrorOptions, nginx_version: tuple[int, int, int]) -> MirrorPlan:
    """Read the config at `options.config` and plan (the imperative shell around `build_plan`)."""
    return plan_from(read_plan_source(Path(options.config)), options, nginx_version)
