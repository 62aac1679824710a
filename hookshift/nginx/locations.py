"""Which location nginx uses for a URI inside a server: ``ngx_http_core_find_location``.

An exact ``=`` match ends the search; else the longest matching prefix is remembered and its
nested locations are searched the same way; unless that prefix is ``^~``, the regexes (``~``,
``~*``) of the level are tried in order and the first match wins (and its nested locations are
searched). Named ``@`` locations never match a request: only a hand-off reaches them.

One case ends the search without a location's content: a URI one ``/`` short of a ``location``
whose name ends in ``/`` and which passes requests on (``proxy_pass`` and the other
``*_pass``: nginx's ``auto_redirect``) is answered with a 301 to the URI with the ``/``, unless
a location named exactly the URI (``=`` or prefix) takes it; regexes are not tried
(``ngx_http_core_find_static_location`` returns ``NGX_DONE``).
"""

from __future__ import annotations

from dataclasses import dataclass

from hookshift.nginx.config import Directive, NginxConfig
from hookshift.nginx.pcre import NginxRegex, compile_or_refuse
from hookshift.nginx.values import PASS_DIRECTIVES

# the handlers that make nginx redirect a URI one `/` short of their location's name
_AUTO_REDIRECT = (*PASS_DIRECTIVES, "memcached_pass")


@dataclass(frozen=True)
class LocationSpec:
    """A ``location``'s modifier (``=``, ``^~``, ``~``, ``~*``, ``@`` or empty) and pattern.

    A named location keeps its ``@`` in the pattern (``@app``), the way hand-offs name it.
    """

    modifier: str
    pattern: str

    def __str__(self) -> str:
        if self.modifier == "@":
            return self.pattern
        return f"{self.modifier} {self.pattern}".strip()


def location_spec(location: Directive) -> LocationSpec:
    args = location.args
    if len(args) >= 2:
        return LocationSpec(args[0], args[1])
    arg = args[0] if args else ""
    for modifier in ("=", "^~", "~*", "~", "@"):
        if arg.startswith(modifier):
            return LocationSpec(modifier, arg[len(modifier) :] if modifier != "@" else arg)
    return LocationSpec("", arg)


def location_regex(location: Directive) -> NginxRegex:
    """The compiled regex of a ``~``/``~*`` location; `InputError` when it cannot be read."""
    spec = location_spec(location)
    return compile_or_refuse(
        spec.pattern,
        spec.modifier == "~*",
        f"location {spec}",
        location.where,
        "pass the exact server with --server-name/--listen",
    )


@dataclass(frozen=True)
class Located:
    """The location nginx uses for a URI, the locations enclosing it (outermost first), and
    whether nginx answers there with its own 301 to the URI with a ``/`` (`redirects`)."""

    location: Directive
    parents: tuple[Directive, ...]
    redirects: bool = False


def find_location(
    block: Directive, uri: str, config: NginxConfig, parents: tuple[Directive, ...] = ()
) -> tuple[Directive, tuple[Directive, ...]] | None:
    """The location nginx uses for `uri` inside `block` (a server or location), with the
    locations enclosing it (outermost first); None when no location matches."""
    found = locate(block, uri, config, parents)
    return None if found is None else (found.location, found.parents)


def locate(
    block: Directive, uri: str, config: NginxConfig, parents: tuple[Directive, ...] = ()
) -> Located | None:
    """`find_location`, saying also whether nginx redirects `uri` there instead of serving it
    (a location named `uri` + ``/`` that passes requests on: see the module doc)."""
    found = _find(block, uri, config, parents)
    return None if found is None else Located(found[0], found[1], found[3])


def duplicate_locations(block: Directive, config: NginxConfig) -> list[tuple[Directive, Directive]]:
    """(first, again) for each ``location`` in `block` (a server or location, nested ones
    included) that repeats an earlier one's name at its level: nginx refuses the config
    (``duplicate location``). Prefix and ``^~`` locations share one name space, exact ones
    their own; regexes and named locations may repeat (nginx uses the first)."""
    seen: dict[tuple[str, str], Directive] = {}
    found: list[tuple[Directive, Directive]] = []
    for loc in config.effective_children(block, "location"):
        spec = location_spec(loc)
        if spec.modifier not in ("~", "~*", "@"):
            kind = "prefix" if spec.modifier in ("", "^~") else spec.modifier
            first = seen.setdefault((kind, spec.pattern), loc)
            if first is not loc:
                found.append((first, loc))
        found += duplicate_locations(loc, config)
    return found


def named_location(server: Directive, name: str, config: NginxConfig) -> Directive | None:
    """The server's ``location @name`` (named locations live at server level only)."""
    for loc in config.effective_children(server, "location"):
        spec = location_spec(loc)
        if spec.modifier == "@" and spec.pattern == name:
            return loc
    return None


def _find(
    block: Directive, uri: str, config: NginxConfig, parents: tuple[Directive, ...]
) -> tuple[Directive, tuple[Directive, ...], bool, bool] | None:
    """(location, parents, final, redirects): final is nginx's NGX_OK (exact or regex: search
    over), redirects its NGX_DONE (the 301 of `_redirects_to_slash`)."""
    specs = [(loc, location_spec(loc)) for loc in config.effective_children(block, "location")]
    for loc, spec in specs:
        if spec.modifier == "=" and spec.pattern == uri:
            return loc, parents, True, False
    redirect = _redirects_to_slash(specs, uri, config)
    if redirect is not None:
        return redirect, parents, True, True
    found: tuple[Directive, tuple[Directive, ...], bool, bool] | None = None
    noregex = False
    prefixes = [
        (loc, spec)
        for loc, spec in specs
        if spec.modifier in ("", "^~") and uri.startswith(spec.pattern)
    ]
    if prefixes:
        loc, spec = max(prefixes, key=lambda p: len(p[1].pattern))
        noregex = spec.modifier == "^~"
        found = (loc, parents, False, False)
        nested = _find(loc, uri, config, (*parents, loc))
        if nested is not None:
            if nested[2]:
                return nested
            found = nested
    if not noregex:
        for loc, spec in specs:
            if spec.modifier in ("~", "~*") and location_regex(loc).search(uri):
                nested = _find(loc, uri, config, (*parents, loc))
                if nested is not None:
                    return nested[0], nested[1], True, nested[3]
                return loc, parents, True, False
    return found


def _redirects_to_slash(
    specs: list[tuple[Directive, LocationSpec]], uri: str, config: NginxConfig
) -> Directive | None:
    """The location nginx redirects `uri` to with a ``/`` added, at one level: named `uri` +
    ``/`` (``=``, ``^~`` or prefix) with a ``*_pass`` of its own (one inside an ``if`` does
    not count: it is the ``if``'s), when no prefix location is named `uri` itself."""
    if not uri or any(spec.modifier in ("", "^~") and spec.pattern == uri for _, spec in specs):
        return None
    for loc, spec in specs:
        named = spec.modifier in ("=", "", "^~") and spec.pattern == uri + "/"
        if named and any(d.name in _AUTO_REDIRECT for d in config.effective_children(loc)):
            return loc
    return None
