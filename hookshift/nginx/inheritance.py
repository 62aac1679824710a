"""Which lines of a directive apply in a block: nginx's inheritance, in one place.

nginx merges each block's settings into the blocks it encloses (http -> server -> location ->
nested location, and into the ``if`` and ``limit_except`` blocks inside a location). Three
rules cover what hookshift reasons about:

- a *scalar* directive (``client_body_buffer_size``, ``resolver``, ``root``) not set in a block
  is taken from the nearest enclosing block that sets it;
- an *array* directive (``proxy_set_header``, ``add_header``, ``access_log``, ``mirror``,
  ``error_page``, ...) collects every line of one block into a list, and a block inherits that
  list only when it sets none of its own (all or nothing per level). Some directives share one
  list: a location with one ``allow`` drops the server's ``deny all``;
- a few directives are never inherited (``location``, ``return``, ``rewrite``, ``try_files``, ...),
  and the ``*_pass`` handlers only reach the ``if``/``limit_except`` blocks of their location.

Since 1.29.3 ``add_header_inherit merge`` (and ``add_trailer_inherit``) makes a block append the
inherited headers to its own, and ``off`` stops inheritance; both settings are themselves
inherited.

A *chain* is the blocks around a place, outermost first, ending with the block asked about:
``(http, server, location, if)``. Includes are expanded (`NginxConfig.effective_children`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hookshift.nginx.config import Directive, NginxConfig

Chain = tuple[Directive, ...]
"""Enclosing blocks, outermost first, ending with the block itself: (http, server, location...)."""

# Directives that share one list: the names of each group in one frozenset.
_SHARED_LISTS: tuple[frozenset[str], ...] = (
    frozenset({"allow", "deny"}),
    *(
        frozenset({f"{module}_hide_header", f"{module}_pass_header"})
        for module in ("proxy", "fastcgi", "uwsgi", "scgi", "grpc")
    ),
)

ARRAY_DIRECTIVES: frozenset[str] = frozenset(
    {
        "access_log",
        "add_header",
        "add_trailer",
        "auth_request_set",
        "error_log",
        "error_page",
        "fastcgi_param",
        "grpc_set_header",
        "index",
        "limit_conn",
        "limit_req",
        "mirror",
        "proxy_cache_bypass",
        "proxy_cache_valid",
        "proxy_cookie_domain",
        "proxy_cookie_flags",
        "proxy_cookie_path",
        "proxy_no_cache",
        "proxy_redirect",
        "proxy_set_header",
        "proxy_ssl_conf_command",
        "scgi_param",
        "set_real_ip_from",
        "ssl_certificate",
        "ssl_certificate_key",
        "ssl_conf_command",
        "sub_filter",
        "uwsgi_param",
        *(name for group in _SHARED_LISTS for name in group),
    }
)
"""Directives nginx inherits all or nothing per level: a block with any line of its own (or of
a directive sharing its list) uses only its own lines."""

# Scalars that share one setting: a location's ``alias`` hides the server's ``root``.
_SHARED_SCALARS: tuple[frozenset[str], ...] = (frozenset({"root", "alias"}),)

HANDLERS: frozenset[str] = frozenset(
    {"proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass", "memcached_pass"}
)
"""Content handlers: set in a location, they reach its ``if`` and ``limit_except`` blocks (which
nginx runs as part of the location) but never a nested location."""

NOT_INHERITED: frozenset[str] = frozenset(
    {
        # blocks and what only makes sense where it is written
        "events",
        "http",
        "if",
        "include",
        "internal",
        "limit_except",
        "listen",
        "location",
        "map",
        "server",
        "server_name",
        "try_files",
        "upstream",
        # the rewrite module runs each block's statements in that block only
        "break",
        "return",
        "rewrite",
        "set",
    }
)
"""Directives that apply only in the block that has them."""

# Blocks nginx runs as part of their location: they inherit its handler.
_PART_OF_LOCATION = frozenset({"if", "limit_except"})

# Array directives whose merge a switch directive changes: name -> its switch.
_MERGE_SWITCH: dict[str, str] = {
    "add_header": "add_header_inherit",
    "add_trailer": "add_trailer_inherit",
}


def is_array(name: str) -> bool:
    """Whether `name` is inherited all or nothing per level."""
    return name in ARRAY_DIRECTIVES


def list_of(name: str) -> frozenset[str]:
    """The directives that share `name`'s setting (`name` alone for most)."""
    for group in (*_SHARED_LISTS, *_SHARED_SCALARS):
        if name in group:
            return group
    return frozenset({name})


@dataclass(frozen=True)
class Found:
    """The lines of a directive in effect at the end of a chain, and where they come from."""

    lines: tuple[Directive, ...]
    block: Directive | None
    """The block that sets them (the nearest that sets the directive or one sharing its list);
    None when no block of the chain does, and nginx's default applies."""
    depth: int = -1
    """`block`'s index in the chain (-1 when None)."""

    @property
    def value(self) -> Directive | None:
        """The line that decides a scalar: the last (nginx refuses most duplicates anyway)."""
        return self.lines[-1] if self.lines else None


_NOTHING = Found((), None)


class Inheritance:
    """Inheritance lookups over one config; each block's children are grouped once."""

    def __init__(self, config: NginxConfig) -> None:
        self.config = config
        # keyed by id() (hashing a block hashes its whole subtree); each entry keeps its block
        # alive so that the id cannot be reused by another block while cached
        self._grouped: dict[int, tuple[Directive, dict[str, tuple[Directive, ...]]]] = {}

    def children(self, block: Directive) -> dict[str, tuple[Directive, ...]]:
        """`block`'s children (includes expanded) grouped by name, computed once per block."""
        entry = self._grouped.get(id(block))
        if entry is None:
            lists: dict[str, list[Directive]] = {}
            for d in self.config.effective_children(block):
                lists.setdefault(d.name, []).append(d)
            entry = (block, {n: tuple(ds) for n, ds in lists.items()})
            self._grouped[id(block)] = entry
        return entry[1]

    def own(self, block: Directive, name: str) -> tuple[Directive, ...]:
        """`block`'s own `name` lines (includes expanded), nothing inherited."""
        return self.children(block).get(name, ())

    def sets(self, block: Directive, name: str) -> bool:
        """Whether `block` sets `name` or a directive sharing its list (then it inherits none)."""
        grouped = self.children(block)
        return any(n in grouped for n in list_of(name))

    def lookup(self, chain: Chain, name: str) -> Found:
        """`name` as nginx applies it in the innermost block of `chain`, and where from."""
        if not chain:
            return _NOTHING
        if name in NOT_INHERITED:
            lines = self.own(chain[-1], name)
            return Found(lines, chain[-1], len(chain) - 1) if lines else _NOTHING
        if name in HANDLERS:
            return self._handler(chain, name)
        switch = _MERGE_SWITCH.get(name)
        if switch is not None:
            return self._switched(chain, name, switch)
        for depth in range(len(chain) - 1, -1, -1):
            if self.sets(chain[depth], name):
                return Found(self.own(chain[depth], name), chain[depth], depth)
        return _NOTHING

    def _handler(self, chain: Chain, name: str) -> Found:
        depth = len(chain) - 1
        while True:
            lines = self.own(chain[depth], name)
            if lines:
                return Found(lines, chain[depth], depth)
            if depth == 0 or chain[depth].name not in _PART_OF_LOCATION:
                return _NOTHING
            depth -= 1

    def _switched(self, chain: Chain, name: str, switch: str) -> Found:
        """``add_header`` under ``add_header_inherit``: ``on`` (the default) inherits only into
        a block without lines of its own, ``merge`` appends the inherited lines to the block's
        own, ``off`` inherits none."""
        depth = len(chain) - 1
        own = self.own(chain[depth], name)
        here = Found(own, chain[depth], depth) if own else _NOTHING
        if depth == 0:
            return here
        mode = self.lookup(chain, switch).value
        word = mode.args[0] if mode is not None and mode.args else "on"
        if word == "off":
            return here
        outer = self._switched(chain[:-1], name, switch)
        if not own:
            return outer
        if word == "merge":
            return Found(own + outer.lines, chain[depth], depth)
        return here

    def effective(self, chain: Chain, name: str) -> tuple[Directive, ...]:
        """The `name` lines in effect in the innermost block of `chain` (maybe inherited)."""
        return self.lookup(chain, name).lines

    def shared(self, chain: Chain, name: str) -> tuple[Directive, ...]:
        """Every line of the list `name` belongs to (``allow`` and ``deny`` together), in the
        order written, as in effect in the innermost block of `chain`: nginx checks them in
        that order."""
        found = self.lookup(chain, name)
        if found.block is None:
            return ()
        names = list_of(name)
        return tuple(d for d in self.config.effective_children(found.block) if d.name in names)

    def value(self, chain: Chain, name: str) -> Directive | None:
        """The line that decides a scalar `name` in the innermost block (None: the default)."""
        found = self.effective(chain, name)
        return found[-1] if found else None

    def inherited_from(self, chain: Chain, name: str) -> Directive | None:
        """The enclosing block `name` comes from (None when the block sets it or none does)."""
        found = self.lookup(chain, name)
        return None if found.block is None or found.block is chain[-1] else found.block

    def dropped(self, chain: Chain, name: str) -> tuple[Directive, ...]:
        """The lines of array `name` the innermost block would inherit but does not, because it
        sets its own (empty when it sets none, or when they are merged in)."""
        if not chain or not self.sets(chain[-1], name):
            return ()
        inherited = self.effective(chain[:-1], name)
        kept = self.effective(chain, name)
        return tuple(d for d in inherited if not any(d is k for k in kept))


def effective(config: NginxConfig, chain: Chain, name: str) -> tuple[Directive, ...]:
    """The `name` lines nginx applies in the innermost block of `chain`."""
    return Inheritance(config).effective(chain, name)


def inherited_from(config: NginxConfig, chain: Chain, name: str) -> Directive | None:
    """The enclosing block `name` is inherited from (None: set in the block itself, or unset)."""
    return Inheritance(config).inherited_from(chain, name)
