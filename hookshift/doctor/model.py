"""The parts of a loaded nginx config that the checks reason about, with nginx's own rules.

`nginx.config` gives directives with file:line and includes expanded. Doctor needs three more
things nginx does at run time, all pure and computed here once:

- *inheritance*: which lines of a directive apply in a block (`effective`), by the rules of
  `nginx.inheritance` (the model mirror uses too);
- *location selection*: which location serves a URI (`Server.match`), needed to follow a
  ``mirror`` to the location that sends the copy: nginx's own rules, from `nginx.locations`
  (the one matcher mirror uses too);
- *proxy targets*: what a ``proxy_pass`` argument resolves to at run time (`ProxyTarget`,
  from `nginx.values`, the one value parser).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TypeVar, cast

from hookshift.errors import InputError
from hookshift.nginx.config import Directive, NginxConfig
from hookshift.nginx.inheritance import Chain, Inheritance
from hookshift.nginx.locations import find_location, location_spec
from hookshift.nginx.values import (
    PASS_DIRECTIVES,
    ProxyTarget,
    parse_proxy_pass,
    parse_time,
    pass_url,
)

__all__ = [
    "PASS_DIRECTIVES",
    "Chain",
    "ProxyTarget",
    "parse_proxy_pass",
    "parse_time",
    "pass_url",
]

T = TypeVar("T")

# The port nginx gives a ``*_pass`` URL that names none (fastcgi, uwsgi and scgi need one).
_DEFAULT_PORTS = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443}


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
    pattern: str  # a named location's pattern keeps its "@" (``@app``)
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
    config: NginxConfig = field(repr=False)
    _matches: dict[str, Location | None] = field(default_factory=dict, repr=False)
    _by_directive: dict[int, Location] = field(default_factory=dict, repr=False)

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
            try:
                found = find_location(self.directive, uri, self.config)
            except InputError:  # a regex Python cannot read: doctor judges what it can
                found = None
            if found is not None and not self._by_directive:
                self._by_directive.update({id(loc.directive): loc for loc in self.all_locations()})
            cache[uri] = None if found is None else self._by_directive.get(id(found[0]))
        return cache[uri]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Server) and _identity(self.directive) == _identity(other.directive)

    def __hash__(self) -> int:
        return hash(_identity(self.directive))


@dataclass(frozen=True)
class Index:
    """Servers, locations and upstreams of one config, built once for every check."""

    config: NginxConfig
    servers: tuple[Server, ...]
    upstreams: dict[str, Directive]
    _memo: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()` once per index (derived views several checks share)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return cast(T, self._memo[key])

    @cached_property
    def inheritance(self) -> Inheritance:
        """nginx's inheritance rules over this config (`nginx.inheritance`), cached per block."""
        return Inheritance(self.config)

    def effective(self, chain: Chain, name: str) -> tuple[Directive, ...]:
        """`name` as nginx applies it in the innermost block of `chain` (`nginx.inheritance`)."""
        return self.inheritance.effective(chain, name)

    def value(self, chain: Chain, name: str) -> Directive | None:
        return self.inheritance.value(chain, name)

    def own(self, block: Directive, name: str) -> tuple[Directive, ...]:
        return self.inheritance.own(block, name)

    def upstream_for(self, target: ProxyTarget) -> Directive | None:
        """The ``upstream`` block a proxy target names (nginx looks these up before DNS)."""
        if target.host is None or target.port is not None:
            return None
        return self.upstreams.get(target.host)

    @cached_property
    def load_time_upstreams(self) -> frozenset[tuple[str, int]]:
        """(host, port) of every ``*_pass`` without variables: nginx makes each an upstream
        of its own at load time, resolved then, and a variable URL naming the same host and
        port (``proxy_pass http://localhost:8000$request_uri`` beside ``proxy_pass
        http://localhost:8000``) uses it instead of asking a ``resolver``."""
        found: set[tuple[str, int]] = set()
        for d, _chain in self.upstream_passes:
            if "$" in d.args[0]:
                continue
            target = parse_proxy_pass(pass_url(d.name, d.args[0]))
            port = None if target is None else target.port or _DEFAULT_PORTS.get(target.scheme)
            if target is not None and target.host is not None and port is not None:
                found.add((target.host, port))
        return frozenset(found)

    def resolved_at_load(self, target: ProxyTarget) -> bool:
        """Whether nginx finds `target`'s host among its upstreams (an ``upstream`` block, or
        one a ``*_pass`` without variables made), so a variable URL needs no ``resolver``."""
        if self.upstream_for(target) is not None:
            return True
        port = target.port or _DEFAULT_PORTS.get(target.scheme)
        return target.host is not None and (target.host, port) in self.load_time_upstreams

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
                servers.append(Server(d, chain, _locations(config, d, chain), config))
    return Index(config=config, servers=tuple(servers), upstreams=upstreams)


def _locations(config: NginxConfig, block: Directive, chain: Chain) -> tuple[Location, ...]:
    found = []
    for d in config.effective_children(block, "location"):
        if d.block is None or not d.args:
            continue
        spec = location_spec(d)
        modifier, pattern = spec.modifier, spec.pattern
        loc_chain = (*chain, d)
        found.append(Location(d, loc_chain, modifier, pattern, _locations(config, d, loc_chain)))
    return tuple(found)


def is_aws_host(host: str | None) -> bool:
    """An AWS endpoint (API Gateway's execute-api and the rest): foreign to the app's headers."""
    return host is not None and (
        host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")
    )


def proxy_target_of(index: Index, location: Location) -> tuple[Directive, ProxyTarget] | None:
    """The location's own ``proxy_pass`` (not inherited: nginx never inherits it)."""
    for d in index.own(location.directive, "proxy_pass"):
        target = pass_target(index, d, location.chain) if d.args else None
        if target is not None:
            return d, target
    return None


def pass_target(index: Index, d: Directive, chain: Chain) -> ProxyTarget | None:
    """What the ``*_pass`` line `d` in the blocks `chain` sends to. A URL that starts with a
    variable holding the scheme too (``set $stage https://HOST; proxy_pass $stage$request_uri;``,
    the usual way to make nginx resolve a name per request) is read through the values that
    variable is given, when they all name the same scheme, host and port."""
    url = pass_url(d.name, d.args[0])
    target = parse_proxy_pass(url)
    if target is not None:
        return target
    m = re.match(r"^\$\{?(\w+)\}?(.*)$", d.args[0])
    if m is None:
        return None
    values = variable_values(index, "$" + m.group(1), chain)
    if not values or any("$" in v for v in values):
        return None
    found = {parse_proxy_pass(pass_url(d.name, value + m.group(2))) for value in values}
    if len(found) != 1 or (only := found.pop()) is None:
        return None
    return replace(only, has_variables=True)


def variable_values(index: Index, var: str, chain: Chain) -> list[str]:
    """Every value `var` (``$name``) is given: by ``set`` in the blocks of `chain` (or an ``if``
    in them), by a ``map`` or by a ``geo`` (a pool per client network)."""
    values: list[str] = []
    for block in chain:
        if block.name == "http":
            continue  # `set` is not allowed there
        for d in _rewrite_scope(index, block):
            if d.name == "set" and len(d.args) >= 2 and d.args[0] == var:
                values.append(d.args[1])
    for http in index.config.http_blocks():
        for d in index.config.effective_children(http, "map"):
            if len(d.args) >= 2 and d.args[1] == var:
                values += [
                    c.args[-1]
                    for c in index.config.effective_children(d)
                    if c.args and c.name not in ("hostnames", "volatile")
                ]
        for d in index.config.effective_children(http, "geo"):
            if d.args and d.args[-1] == var:
                values += [
                    c.args[0]
                    for c in index.config.effective_children(d)
                    if len(c.args) == 1 and c.name not in ("delete", "proxy")
                ]
    return values


def _rewrite_scope(index: Index, block: Directive) -> list[Directive]:
    """A block's own directives and those of its ``if`` blocks (``set`` can sit in either)."""
    found: list[Directive] = []
    for d in index.config.effective_children(block):
        found.append(d)
        if d.name == "if" and d.block is not None:
            found += index.config.effective_children(d)
    return found
