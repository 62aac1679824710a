"""The parts of a loaded nginx config that the checks reason about, with nginx's own rules.

`nginx.config` gives directives with file:line and includes expanded. Doctor needs three more
things nginx does at run time, all pure and computed here once:

- *inheritance*: a directive not set in a block is taken from the nearest enclosing block that
  sets it; array-like directives (``proxy_set_header``, ``access_log``, ``mirror``, ``allow``/
  ``deny``) are inherited only when the block sets none of them (`effective`);
- *location selection*: which location serves a URI (`Server.match`), needed to follow a
  ``mirror`` to the location that sends the copy;
- *proxy targets*: what a ``proxy_pass`` argument resolves to at run time (`ProxyTarget`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar, cast

from nginx.config import Directive, NginxConfig

T = TypeVar("T")
Chain = tuple[Directive, ...]
"""Enclosing blocks, outermost first, ending with the block itself: (http, server, location...)."""


def _identity(d: Directive) -> tuple[object, ...]:
    """A block is known by where it is written: hashing its whole subtree (the dataclass
    default) costs O(size of the config) per lookup, which is quadratic over a big config."""
    return (d.file, d.line, d.name, d.args)


@dataclass(frozen=True, eq=False)
class Location:
    """One ``location`` block with the chain of blocks around it (http, server, ..., itself)."""

    directive: Directive
    chain: Chain
    modifier: str  # "", "=", "^~", "~", "~*" or "@" (named)
    pattern: str
    children: tuple[Location, ...]

    @property
    def where(self) -> str:
        return self.directive.where

    @property
    def label(self) -> str:
        """``location = /x`` as written, for messages."""
        return "location " + " ".join(self.directive.args)

    def walk(self) -> Iterator[Location]:
        yield self
        for child in self.children:
            yield from child.walk()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and _identity(self.directive) == _identity(
            other.directive
        )

    def __hash__(self) -> int:
        return hash(_identity(self.directive))


@dataclass(frozen=True, eq=False)
class Server:
    directive: Directive
    chain: Chain  # (http, server)
    locations: tuple[Location, ...]  # top level only; nested ones under .children
    _matches: dict[str, Location | None] = field(default_factory=dict, repr=False)

    @property
    def where(self) -> str:
        return self.directive.where

    def all_locations(self) -> Iterator[Location]:
        for loc in self.locations:
            yield from loc.walk()

    def match(self, uri: str) -> Location | None:
        """The location nginx picks for `uri` in this server (None when none matches)."""
        cache = self._matches
        if uri not in cache:
            cache[uri] = _match(self.locations, uri)
        return cache[uri]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Server) and _identity(self.directive) == _identity(other.directive)

    def __hash__(self) -> int:
        return hash(_identity(self.directive))


@dataclass(frozen=True)
class ProxyTarget:
    """A ``proxy_pass`` argument taken apart the way nginx will use it.

    `host` is None when the host part itself comes from a variable (only known per request).
    """

    scheme: str
    host: str | None
    port: int | None
    has_variables: bool

    @property
    def is_ip(self) -> bool:
        if self.host is None:
            return False
        try:
            ipaddress.ip_address(self.host.strip("[]"))
        except ValueError:
            return False
        return True


@dataclass(frozen=True)
class Index:
    """Servers, locations and upstreams of one config, built once for every check."""

    config: NginxConfig
    servers: tuple[Server, ...]
    upstreams: dict[str, Directive]
    _by_name: dict[tuple[object, ...], dict[str, tuple[Directive, ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    _memo: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()` once per index (derived views several checks share)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return cast(T, self._memo[key])

    def _children(self, block: Directive) -> dict[str, tuple[Directive, ...]]:
        """A block's children (includes expanded) grouped by name, computed once per block."""
        key = _identity(block)
        grouped = self._by_name.get(key)
        if grouped is None:
            lists: dict[str, list[Directive]] = {}
            for d in self.config.effective_children(block):
                lists.setdefault(d.name, []).append(d)
            grouped = {n: tuple(ds) for n, ds in lists.items()}
            self._by_name[key] = grouped
        return grouped

    def effective(self, chain: Chain, name: str) -> tuple[Directive, ...]:
        """`name` as nginx applies it in the innermost block of `chain`.

        The innermost block that sets `name` at all wins, with every one of its `name` lines;
        this is exact for array directives (inherited only when a block sets none) and gives the
        value for scalar ones (the last line).
        """
        for block in reversed(chain):
            found = self._children(block).get(name)
            if found:
                return found
        return ()

    def value(self, chain: Chain, name: str) -> Directive | None:
        found = self.effective(chain, name)
        return found[-1] if found else None

    def own(self, block: Directive, name: str) -> tuple[Directive, ...]:
        return self._children(block).get(name, ())

    def upstream_for(self, target: ProxyTarget) -> Directive | None:
        """The ``upstream`` block a proxy target names (nginx looks these up before DNS)."""
        if target.host is None or target.port is not None:
            return None
        return self.upstreams.get(target.host)

    @cached_property
    def upstream_passes(self) -> tuple[tuple[Directive, Chain], ...]:
        """Every http ``proxy_pass``, ``fastcgi_pass``, ``uwsgi_pass``, ``scgi_pass`` and
        ``grpc_pass`` with its enclosing blocks: all resolve a variable host the same way."""
        return tuple(
            (d, parents)
            for d, parents in self.config.walk()
            if d.name in PASS_DIRECTIVES and parents and parents[0].name == "http" and d.args
        )

    @cached_property
    def proxy_passes(self) -> tuple[tuple[Directive, Chain], ...]:
        """Every http ``proxy_pass`` with its enclosing blocks (outermost first)."""
        return tuple(
            (d, parents)
            for d, parents in self.config.walk()
            if d.name == "proxy_pass" and parents and parents[0].name == "http" and d.args
        )


def build_index(config: NginxConfig) -> Index:
    servers: list[Server] = []
    upstreams: dict[str, Directive] = {}
    for http in config.http_blocks():
        for d in config.effective_children(http):
            if d.name == "upstream" and d.args:
                upstreams[d.args[0]] = d
            elif d.name == "server" and d.block is not None:
                chain = (http, d)
                servers.append(Server(d, chain, _locations(config, d, chain)))
    return Index(config=config, servers=tuple(servers), upstreams=upstreams)


def _locations(config: NginxConfig, block: Directive, chain: Chain) -> tuple[Location, ...]:
    found = []
    for d in config.effective_children(block, "location"):
        if d.block is None or not d.args:
            continue
        modifier, pattern = split_location_args(d.args)
        loc_chain = (*chain, d)
        found.append(Location(d, loc_chain, modifier, pattern, _locations(config, d, loc_chain)))
    return tuple(found)


def split_location_args(args: tuple[str, ...]) -> tuple[str, str]:
    """``('=', '/x')`` or the glued ``('=/x',)`` -> ``('=', '/x')``; named -> ``('@', 'name')``."""
    if len(args) >= 2:
        return args[0], args[1]
    arg = args[0]
    for modifier in ("^~", "~*", "=", "~", "@"):
        if arg.startswith(modifier):
            return modifier, arg[len(modifier) :]
    return "", arg


def _match(locations: tuple[Location, ...], uri: str) -> Location | None:
    """nginx's location choice: exact, then the longest prefix (and its nested locations);
    ``^~`` stops there, otherwise regexes in order win over the prefix."""
    for loc in locations:
        if loc.modifier == "=" and loc.pattern == uri:
            return loc
    prefixes = [
        loc for loc in locations if loc.modifier in ("", "^~") and uri.startswith(loc.pattern)
    ]
    best = max(prefixes, key=lambda loc: len(loc.pattern), default=None)
    chosen = best
    if best is not None:
        nested = _match(best.children, uri)
        if nested is not None:
            if nested.modifier in ("=", "~", "~*"):
                return nested
            chosen = nested
        if best.modifier == "^~":
            return chosen
    for loc in locations:
        if loc.modifier in ("~", "~*") and _regex_matches(loc.pattern, uri, loc.modifier == "~*"):
            return loc
    return chosen


def _regex_matches(pattern: str, uri: str, ignore_case: bool) -> bool:
    # PCRE's (?<name>...) is Python's (?P<name>...); lookbehinds (?<= (?<! stay as they are.
    python_pattern = re.sub(r"\(\?<(?![=!])", "(?P<", pattern)
    try:
        return re.search(python_pattern, uri, re.IGNORECASE if ignore_case else 0) is not None
    except re.error:
        return False


# Variables whose value starts with "/" or "?": a host literal right before them is complete.
_PATH_VARIABLES = ("request_uri", "uri", "document_uri", "is_args", "args", "query_string")
_PROXY_RE = re.compile(r"^(?P<scheme>[a-zA-Z]+)://(?P<rest>.*)$")
PASS_DIRECTIVES = ("proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass")


def pass_url(name: str, arg: str) -> str:
    """A ``*_pass`` argument as a URL: fastcgi, scgi, uwsgi and grpc may leave out the scheme
    (``fastcgi_pass php:9000``), which parse_proxy_pass needs."""
    if name == "proxy_pass" or "://" in arg:
        return arg
    return f"{name.split('_', 1)[0]}://{arg}"


def parse_proxy_pass(arg: str) -> ProxyTarget | None:
    """Split a ``proxy_pass`` URL; None for forms doctor does not judge (``unix:``, bare vars)."""
    m = _PROXY_RE.match(arg)
    if m is None:
        return None
    scheme, rest = m.group("scheme").lower(), m.group("rest")
    if rest.startswith("unix:"):
        return None
    has_variables = "$" in arg
    host_re = re.match(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d+))?", rest)
    if host_re is None:
        return ProxyTarget(scheme, None, None, has_variables)
    host, port = host_re.group(1), host_re.group(2)
    after = rest[host_re.end() :]
    if after.startswith("$"):
        var = re.match(r"^\$\{?(\w+)", after)
        if var is None or var.group(1) not in _PATH_VARIABLES:
            return ProxyTarget(scheme, None, None, has_variables)  # host continues in a variable
    elif after and after[0] not in "/?":
        return ProxyTarget(scheme, None, None, has_variables)
    return ProxyTarget(scheme, host.lower(), int(port) if port else None, has_variables)


def is_aws_host(host: str | None) -> bool:
    """An AWS endpoint (API Gateway's execute-api and the rest): foreign to the app's headers."""
    return host is not None and (
        host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")
    )


def proxy_target_of(index: Index, location: Location) -> tuple[Directive, ProxyTarget] | None:
    """The location's own ``proxy_pass`` (not inherited: nginx never inherits it)."""
    for d in index.own(location.directive, "proxy_pass"):
        target = parse_proxy_pass(d.args[0]) if d.args else None
        if target is not None:
            return d, target
    return None


_TIME_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000}


def parse_time(text: str) -> float | None:
    """nginx time (``500ms``, ``2s``, ``1m30s``, ``10``) in seconds; None when not a time."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|M|y)?", text)
    if not parts or "".join(n + (u or "") for n, u in parts) != text:
        return None
    total = 0.0
    for number, unit in parts:
        total += int(number) * (31536000 if unit == "y" else _TIME_UNITS.get(unit or "s", 1))
    return total
