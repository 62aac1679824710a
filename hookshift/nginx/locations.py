"""Which location nginx uses for a URI inside a server: ``ngx_http_core_find_location``.

An exact ``=`` match ends the search; else the longest matching prefix is remembered and its
nested locations are searched the same way; unless that prefix is ``^~``, the regexes (``~``,
``~*``) of the level are tried in order and the first match wins (and its nested locations are
searched). Named ``@`` locations never match a request: only a hand-off reaches them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hookshift.nginx.config import Directive, NginxConfig
from hookshift.nginx.pcre import compile_or_refuse


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


def location_regex(location: Directive) -> re.Pattern[str]:
    """The compiled regex of a ``~``/``~*`` location; `InputError` when it cannot be read."""
    spec = location_spec(location)
    return compile_or_refuse(
        spec.pattern,
        spec.modifier == "~*",
        f"location {spec}",
        location.where,
        "pass the exact server with --server-name/--listen",
    )


def find_location(
    block: Directive, uri: str, config: NginxConfig, parents: tuple[Directive, ...] = ()
) -> tuple[Directive, tuple[Directive, ...]] | None:
    """The location nginx uses for `uri` inside `block` (a server or location), with the
    locations enclosing it (outermost first); None when no location matches."""
    found = _find(block, uri, config, parents)
    return None if found is None else (found[0], found[1])


def named_location(server: Directive, name: str, config: NginxConfig) -> Directive | None:
    """The server's ``location @name`` (named locations live at server level only)."""
    for loc in config.effective_children(server, "location"):
        spec = location_spec(loc)
        if spec.modifier == "@" and spec.pattern == name:
            return loc
    return None


def _find(
    block: Directive, uri: str, config: NginxConfig, parents: tuple[Directive, ...]
) -> tuple[Directive, tuple[Directive, ...], bool] | None:
    """(location, parents, final): final is nginx's NGX_OK (exact or regex: search over)."""
    specs = [(loc, location_spec(loc)) for loc in config.effective_children(block, "location")]
    for loc, spec in specs:
        if spec.modifier == "=" and spec.pattern == uri:
            return loc, parents, True
    found: tuple[Directive, tuple[Directive, ...], bool] | None = None
    noregex = False
    prefixes = [
        (loc, spec)
        for loc, spec in specs
        if spec.modifier in ("", "^~") and uri.startswith(spec.pattern)
    ]
    if prefixes:
        loc, spec = max(prefixes, key=lambda p: len(p[1].pattern))
        noregex = spec.modifier == "^~"
        found = (loc, parents, False)
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
                    return nested[0], nested[1], True
                return loc, parents, True
    return found
