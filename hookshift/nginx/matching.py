"""Choose the server and the location where nginx really runs a request's content handler.

Server: the listening socket, then ``server_name`` in nginx's order (exact name, longest
leading wildcard, longest trailing wildcard, first matching regex in file order; a name two
servers of a socket declare belongs to the first), else the socket's ``default_server`` (or
its first server). Sockets are per address family: ``listen 80`` (every IPv4 address) and
``listen [::]:80`` (every IPv6 address) are two sockets; an explicit address wins over the
wildcard of its family on the same port; ``listen [::]:80 ipv6only=off`` also takes the IPv4
connections of its port.

Location: `nginx.locations` selects, `nginx.route` follows internal redirects (``try_files``,
``rewrite ... last``, ``error_page``, ``index``) to the location that answers.

Without ``--server-name`` the server is the one that hands the path to an app; when several
could, the choice is refused naming them. With it, only sockets where a server carries the
name count (elsewhere the request would only fall to a default server).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hookshift.addresses import is_ip_address
from hookshift.errors import InputError
from hookshift.nginx.config import Directive, NginxConfig, check_serves_http
from hookshift.nginx.locations import LocationSpec, find_location, location_spec
from hookshift.nginx.pcre import NginxRegex, compile_pcre
from hookshift.nginx.route import Route, follow
from hookshift.nginx.uri import raw_path, request_uri_path, sent_path
from hookshift.nginx.values import Listen, Socket, parse_listen, parse_socket

__all__ = [
    "Listen",
    "LocationSpec",
    "Match",
    "Socket",
    "choose_server",
    "find_location",
    "location_spec",
    "match",
    "parse_socket",
    "server_listens",
    "server_names",
]

RouteOf = Callable[[Directive], Route | None]
DEFAULT_LISTEN = Listen(Socket("*", "80"))
_MAX_LISTED = 8
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Match:
    """The chosen server, the route to the location that answers, the sockets it holds on,
    and what the choice assumed (lines for the user)."""

    server: Directive
    route: Route
    sockets: tuple[Socket, ...]
    info: tuple[str, ...] = ()

    @property
    def location(self) -> Directive:
        """Where the content handler runs: the last location of the route."""
        return self.route.final.location

    @property
    def parents(self) -> tuple[Directive, ...]:
        return self.route.final.parents

    @property
    def exact(self) -> bool:
        """True when the location is ``location = /path``."""
        return location_spec(self.location).modifier == "="


@dataclass
class SocketTable:
    """Every socket with its servers (in file order) and their ``default_server`` flags."""

    servers: dict[Socket, dict[int, tuple[Directive, bool]]] = field(default_factory=dict)
    dual_stack: set[Socket] = field(default_factory=set)
    ssl: set[Socket] = field(default_factory=set)  # one `listen ... ssl` makes the socket TLS

    def entries(self, socket: Socket) -> list[tuple[Directive, bool]]:
        return list(self.servers[socket].values())


def server_listens(server: Directive, config: NginxConfig) -> list[Listen]:
    listens = [parse_listen(d.args) for d in config.effective_children(server, "listen") if d.args]
    return listens or [DEFAULT_LISTEN]


def ascii_lower(text: str) -> str:
    """`text` with A-Z lowercased and nothing else, as nginx lowercases host names
    (``ngx_strlow``): str.lower() would also fold letters nginx keeps as their bytes (the
    Kelvin sign K becomes k, Ä becomes ä), and so pick a server nginx does not."""
    return text.translate(_ASCII_LOWER)


def server_names(server: Directive, config: NginxConfig) -> list[str]:
    """The server's names as nginx keeps them: lowercased (A-Z only), except regular
    expressions."""
    return [
        a if a.startswith("~") else ascii_lower(a)
        for d in config.effective_children(server, "server_name")
        for a in d.args
    ]


@dataclass
class _NameTables:
    """nginx's server-name tables of one socket (`ngx_hash_add_key`): each name goes to the
    first server that declares it; a later one is ignored ("conflicting server name").
    ``.example.com`` takes ``example.com`` in the exact table as well as ``*.example.com``'s
    place in the leading-wildcard one, and is ignored as a whole when the exact name was
    taken first."""

    exact: dict[str, int] = field(default_factory=dict)
    head: dict[str, tuple[int, bool]] = field(default_factory=dict)  # (server, bare name too)
    tail: dict[str, int] = field(default_factory=dict)
    regexes: list[tuple[NginxRegex | None, int]] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)  # the exact table's conflict check

    def add(self, name: str, index: int) -> None:
        if name.startswith("~"):
            # nginx compiles a name with an upper-case letter caseless (the host is lowercase)
            caseless = re.search("[A-Z]", name) is not None
            try:
                self.regexes.append((compile_pcre(name[1:], caseless), index))
            except re.error:
                self.regexes.append((None, index))
            return
        if len(name) > 1 and name.startswith("."):
            bare = name[1:]
            if bare in self.taken:
                return
            self.taken.add(bare)
            self.head.setdefault(bare, (index, True))
        elif len(name) > 2 and name.startswith("*."):
            self.head.setdefault(name[2:], (index, False))
        elif len(name) > 2 and name.endswith(".*"):
            self.tail.setdefault(name[:-2], index)
        elif name not in self.taken:
            self.taken.add(name)
            self.exact[name] = index

    def find(self, host: str) -> int | None:
        """The server for `host`: exact name, longest leading wildcard, longest trailing
        wildcard, first matching regex in file order."""
        if host in self.exact:
            return self.exact[host]
        labels = host.split(".")
        for i in range(len(labels)):
            found = self.head.get(".".join(labels[i:]))
            # `*.example.com` wants a label in front; `.example.com` also takes the bare name
            if found is not None and (i > 0 or found[1]):
                return found[0]
        for j in range(len(labels) - 1, 0, -1):
            tail = self.tail.get(".".join(labels[:j]))  # `www.example.*` wants a label after
            if tail is not None:
                return tail
        for regex, index in self.regexes:
            if regex is not None and regex.search(host):
                return index
        return None


def check_host(host: str) -> None:
    """Refuse a Host nothing could send: empty (leaving the option out means the server that
    answers without a name), or with spaces (one pasted with a blank at its end would be
    shown back invisibly in every refusal)."""
    if not host.strip():
        raise InputError(
            "--server-name is empty",
            fix="leave --server-name out (the default server of the socket answers), or give "
            "the host name the vendor posts to",
        )
    if any(c.isspace() for c in host):
        raise InputError(
            f"--server-name {host!r}: a host name has no spaces",
            fix=f"--server-name {host.strip() if host.strip().isprintable() else 'NAME'}",
        )
    if not host.isascii():
        raise InputError(
            f"--server-name {host}: a client sends a name outside ASCII in its xn-- form "
            "(nginx 1.31.5 answers 400 to it as typed, 1.22 compares it byte for byte)",
            fix=f"--server-name {_idna(host)}",
        )


def _idna(host: str) -> str:
    """`host` as clients put it in the Host header (IDNA's xn-- form), or a placeholder."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return "the name's xn-- form"


def request_host(host: str) -> str:
    """The name nginx matches server_name against for a Host header: lowercased, without
    its port and trailing dot (``Hooks.Example.com.:8443`` -> ``hooks.example.com``)."""
    if host.startswith("["):
        return ascii_lower(host.partition("]")[0]) + "]"
    return ascii_lower(host.partition(":")[0]).rstrip(".")


def pick_server(
    servers: list[tuple[Directive, bool]], host: str | None, config: NginxConfig
) -> tuple[Directive, bool]:
    """Among the servers of one socket, the one nginx picks, and whether its name matched
    `host` (False: the request only falls to the default server)."""
    if host:
        tables = _NameTables()
        for index, (server, _) in enumerate(servers):
            for name in server_names(server, config):
                tables.add(name, index)
        found = tables.find(request_host(host))
        if found is not None:
            return servers[found][0], True
    defaults = [s for s, is_default in servers if is_default]
    return (defaults[0] if defaults else servers[0][0]), False


def reachable_servers(
    servers: list[tuple[Directive, bool]], config: NginxConfig
) -> list[Directive]:
    """The servers of one socket that some request can reach: the default one, and each
    that keeps at least one of its names in nginx's tables there. A server whose every name
    an earlier server took ("conflicting server name ... ignored") answers nothing on it."""
    tables = _NameTables()
    for index, (server, _) in enumerate(servers):
        for name in server_names(server, config):
            tables.add(name, index)
    named = {
        *tables.exact.values(),
        *(index for index, _ in tables.head.values()),
        *tables.tail.values(),
        *(index for _, index in tables.regexes),
    }
    default = pick_server(servers, None, config)[0]
    return [s for i, (s, _) in enumerate(servers) if i in named or s is default]


def choose_server(
    servers: list[tuple[Directive, bool]], host: str | None, config: NginxConfig
) -> Directive:
    """Among the servers of one socket (with their default flag), the one nginx picks."""
    return pick_server(servers, host, config)[0]


def socket_table(config: NginxConfig) -> SocketTable:
    """Linear in the number of ``listen`` lines (a server is found by its id, not a scan)."""
    table = SocketTable()
    for server in config.servers():
        for listen in server_listens(server, config):
            entries = table.servers.setdefault(listen.socket, {})
            known = entries.get(id(server))
            entries[id(server)] = (server, listen.default or (known is not None and known[1]))
            if listen.dual_stack:
                table.dual_stack.add(listen.socket)
            if listen.ssl:
                table.ssl.add(listen.socket)
    return table


def candidate_sockets(table: SocketTable, listen: str | None) -> list[Socket]:
    """The sockets a request to `listen` (``PORT``, ``ADDR:PORT``, ``[::]:PORT``,
    ``unix:PATH``) arrives on; every socket when `listen` is None."""
    sockets = list(table.servers)
    if listen is None:
        return sockets
    wanted = parse_socket(listen)
    unclosed = listen.startswith("[") and "]" not in listen
    if (
        not listen.strip()
        or unclosed
        or (wanted.family == "unix" and wanted.addr in ("", "unix:"))
        or (wanted.family != "unix" and not _valid_socket(wanted))
    ):
        raise InputError(
            f"--listen {listen!r} is not a socket nginx listens on",
            fix="pass PORT, ADDR:PORT, [IPV6]:PORT or unix:PATH, e.g. --listen 443",
        )
    if wanted.family == "unix":
        return [s for s in sockets if s.addr == wanted.addr]
    same_port = [s for s in sockets if s.port == wanted.port and s.family != "unix"]

    def wildcard_for(family: str) -> list[Socket]:
        found = [s for s in same_port if s.wildcard and s.family == family]
        if not found and family == "inet":
            found = [s for s in same_port if s in table.dual_stack]
        return found

    if wanted.wildcard:
        return wildcard_for(wanted.family) or [s for s in same_port if s.family == wanted.family]
    explicit = [s for s in same_port if s.addr == wanted.addr]
    return explicit or wildcard_for(wanted.family)


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")


def _valid_socket(socket: Socket) -> bool:
    """Whether a socket given on the command line names an address and a port nginx takes."""
    if not socket.port.isdigit() or not 0 < int(socket.port) < 65536:
        return False
    addr = socket.addr.removeprefix("[").removesuffix("]")
    if re.fullmatch(r"[0-9.]+", addr):  # digits and dots: an IPv4 address or nothing
        return is_ip_address(addr)
    return addr == "*" or bool(_HOSTNAME.fullmatch(addr)) or is_ip_address(addr)


def _label(server: Directive, config: NginxConfig) -> str:
    """The server by its names, at the line that names them (its first ``server_name``; the
    ``server {`` line for a server without one)."""
    names = " ".join(server_names(server, config)) or '""'
    named = config.effective_children(server, "server_name")
    return f"server_name {names} ({(named[0] if named else server).where})"


def _http_of(config: NginxConfig) -> dict[int, Directive]:
    return {
        id(server): http
        for http in config.http_blocks()
        for server in config.effective_children(http, "server")
    }


def match(
    config: NginxConfig,
    path: str,
    *,
    host: str | None = None,
    listen: str | None = None,
    for_app: bool = True,
) -> Match:
    """The server and the route nginx would use for `path` (query string ignored; the rest
    decoded and normalised as nginx does before it selects a location).

    Raises `InputError` when nothing takes the path or when the choice is not one location.
    `for_app` (the callback's receiver is wanted) also refuses a route that hands the path to
    no app, a `host` no server is named, and several servers that could each receive it;
    without it the answer is nginx's plain choice for a request with that Host.
    """
    raw = raw_path(path) or "/"
    if not raw.startswith("/"):
        raise InputError(
            f"--path must start with '/': {path!r}",
            fix="pass the path the vendor posts to, as in its URL (e.g. --path /callback), not a "
            "location pattern",
        )
    uri = request_uri_path(raw)
    # what nginx selects the location by where `merge_slashes off` applies (see `_merging`)
    unmerged = request_uri_path(raw, merge_slashes=False)
    if host is not None:
        check_host(host)
    check_serves_http(config)
    table = socket_table(config)
    sockets = candidate_sockets(table, listen)
    if not sockets:
        known = ", ".join(sorted({str(s) for s in table.servers}))
        raise InputError(
            f"no server listens on {listen}",
            where=str(config.main),
            fix=f"pass one of the configured sockets with --listen: {known}",
        )
    https = _http_of(config)
    routes: dict[int, Route | None] = {}
    kept: set[int] = set()  # the servers whose requests keep their repeated slashes
    merging: dict[int, dict[bool, list[Socket]]] = {}

    # `$request_uri` as the vendor's HTTP library most likely sends it (escaped)
    sent = sent_path(raw)

    def route_of(server: Directive, request_uri: str = sent) -> Route | None:
        key = id(server) if request_uri == sent else -id(server)
        if key not in routes:
            routes[key] = follow(
                config,
                server,
                unmerged if id(server) in kept else uri,
                https.get(id(server)),
                request_uri,
                request_host(host) if host else None,
            )
        return routes[key]

    info: list[str] = []
    if host:
        on: dict[int, tuple[Directive, list[Socket]]] = {}
        fallen: list[Socket] = []
        for socket in sockets:
            server, named = pick_server(table.entries(socket), host, config)
            if named:
                on.setdefault(id(server), (server, []))[1].append(socket)
            else:
                fallen.append(socket)
        if not on and for_app and not is_ip_address(request_host(host)):
            raise _unknown_name(config, table, host, listen)
        if not on and for_app:
            # a vendor that posts to an address: nginx gives it to each socket's default server
            defaults = _defaults(config, table, sockets, host)
            info.append(
                f"no server is named {request_host(host)}: nginx gives a request for that "
                "address to the default server of its socket, so the plan is for "
                + "; ".join(f"{_label(s, config)} on {_socks(socks)}" for s, socks in defaults)
            )
        if fallen and on:
            chosen_socks = [s for _, socks in on.values() for s in socks]
            info.append(
                f"{host} is named on {_socks(chosen_socks)}; on {_socks(fallen)} a request for "
                f"it would only reach the default server, so the plan is for "
                f"{_socks(chosen_socks)}"
            )
        candidates = list(on.values()) or _defaults(config, table, sockets, host)
    elif not for_app:
        candidates = _defaults(config, table, sockets, host)
    else:
        seen: dict[int, tuple[Directive, list[Socket]]] = {}
        for socket in sockets:
            for server in reachable_servers(table.entries(socket), config):
                seen.setdefault(id(server), (server, []))[1].append(socket)
        candidates = list(seen.values())
    if unmerged != uri:
        merging = {id(s): _merging(config, table, s, socks, https) for s, socks in candidates}
        kept.update(key for key, found in merging.items() if list(found) == [False])
    receivers = [
        (s, socks)
        for s, socks in candidates
        if (_reaches(route_of(s)) if for_app else _has_location(route_of(s)))
    ]
    if not receivers:
        raise _no_app(config, uri, [s for s, _ in candidates], route_of, host)
    by_location: dict[int, list[tuple[Directive, list[Socket]]]] = {}
    for server, socks in receivers:
        route = route_of(server)
        assert route is not None
        by_location.setdefault(id(route.final.location), []).append((server, socks))
    if len(by_location) > 1:
        raise _ambiguous(config, uri, receivers, route_of, host)
    server, socks = receivers[0]
    route = route_of(server)
    assert route is not None
    if not host and for_app and len(candidates) > 1:
        info.append(
            f"{_label(server, config)} is the only server that passes {uri} to an app; "
            "the plan is for it"
        )
    if len(merging.get(id(server), {})) > 1:
        found = merging[id(server)]
        raise InputError(
            f"nginx merges the repeated slashes of {raw} on {_socks(found[True])} but not on "
            f"{_socks(found[False])} (the `merge_slashes` of the server that reads the request "
            f"line there), so {_label(server, config)} would route it two ways",
            where=server.where,
            fix="pass the socket the vendor posts to with --listen",
        )
    if sent != raw:
        info.extend(_unescaped(raw, sent, route, lambda: route_of(server, raw)))
    if id(server) in kept:
        info.append(
            f"`merge_slashes off` applies to {raw}: nginx selects the location by {unmerged}, "
            "its repeated slashes kept"
        )
    if len(route.hops) > 1 or route.hops[0].via or route.hops[0].uri != route.uri:
        info.append(f"route: {route.describe()}")
    info.extend(route.assumptions)
    return Match(server, route, tuple(s for _, ss in receivers for s in ss), tuple(info))


def _unescaped(
    raw: str, sent: str, route: Route, unescaped: Callable[[], Route | None]
) -> list[str]:
    """What the plan says when `raw` has letters outside ASCII: the route is for `sent`, the
    escaped form most HTTP libraries send; where the raw UTF-8 bytes (curl's form) would
    take the request elsewhere (a condition on, or a target built from, ``$request_uri``),
    that is said too."""

    def ends(r: Route) -> tuple[Directive | None, Directive | None]:
        # a server-level `return` answers before any location: a route without hops
        return (r.final.location if r.hops else None, r.end)

    try:
        other = unescaped()
        differs = other is None or ends(other) != ends(route)
        elsewhere = "no location" if other is None else other.answer
    except InputError as exc:
        differs, elsewhere = True, f"a refusal ({exc.what})"
    if not differs:
        return []
    return [
        f"the route takes the vendor as sending {raw} escaped, {sent} (as most HTTP libraries "
        f"do): nginx's $request_uri then leads to {route.answer}; sent as raw UTF-8 (as curl "
        f"does) it would lead to {elsewhere}"
    ]


def _merging(
    config: NginxConfig,
    table: SocketTable,
    server: Directive,
    sockets: list[Socket],
    https: dict[int, Directive],
) -> dict[bool, list[Socket]]:
    """Which of `sockets` merge repeated slashes (True) for a request `server` answers, and
    which do not (False).

    nginx normalises the path as it reads the request line, before the Host header, so the
    ``merge_slashes`` that applies is not the named server's: on a plain socket it is the
    default server's, on a TLS socket the server the vendor's SNI names (the one it posts
    to).
    """
    found: dict[bool, list[Socket]] = {}
    for socket in sockets:
        decider = (
            server if socket in table.ssl else pick_server(table.entries(socket), None, config)[0]
        )
        blocks = [decider, *([https[id(decider)]] if id(decider) in https else [])]
        setting = next(
            (d for b in blocks for d in config.effective_children(b, "merge_slashes")), None
        )
        merged = setting is None or setting.args[:1] != ("off",)
        found.setdefault(merged, []).append(socket)
    return found


def _defaults(
    config: NginxConfig, table: SocketTable, sockets: list[Socket], host: str | None
) -> list[tuple[Directive, list[Socket]]]:
    """The server nginx picks on each socket for `host`, with the sockets it is picked on."""
    found: dict[int, tuple[Directive, list[Socket]]] = {}
    for socket in sockets:
        server = pick_server(table.entries(socket), host, config)[0]
        found.setdefault(id(server), (server, []))[1].append(socket)
    return list(found.values())


def _has_location(route: Route | None) -> bool:
    return route is not None and bool(route.hops)


def _reaches(route: Route | None) -> bool:
    return route is not None and route.reaches_app


def _tls_example(config: NginxConfig) -> str:
    """A TLS socket of the config, as --listen takes it (443 when none is configured)."""
    tls = sorted(socket_table(config).ssl, key=lambda s: (s.family != "inet", s.port, s.addr))
    if not tls:
        return "443"
    first = tls[0]
    return str(first) if first.family == "unix" or not first.wildcard else first.port


def _socks(sockets: Iterable[Socket]) -> str:
    return ", ".join(dict.fromkeys(str(s) for s in sockets))


def _unknown_name(
    config: NginxConfig, table: SocketTable, host: str, listen: str | None
) -> InputError:
    everywhere = [
        socket for socket in table.servers if pick_server(table.entries(socket), host, config)[1]
    ]
    if everywhere:
        return InputError(
            f"no server named {host} listens on {listen}",
            where=str(config.main),
            fix=f"servers named {host} listen on {_socks(everywhere)}: pass one with --listen",
        )
    names = sorted(
        {n for s in config.servers() for n in server_names(s, config) if n not in ("_", "")}
    )
    close = difflib.get_close_matches(request_host(host), names, n=len(names) or 1, cutoff=0.0)
    listed = ", ".join(close[:_MAX_LISTED]) + (", ..." if len(close) > _MAX_LISTED else "")
    return InputError(
        f"no server is named {host}",
        where=str(config.main),
        fix=(
            f"pass one of the configured names with --server-name: {listed}"
            if names
            else f"add `server_name {request_host(host)};` to the server that proxies the callback"
        ),
    )


def _no_app(
    config: NginxConfig,
    uri: str,
    servers: list[Directive],
    route_of: RouteOf,
    host: str | None,
) -> InputError:
    answered = [(s, route_of(s)) for s in servers]
    with_route = [(s, r) for s, r in answered if r is not None and r.hops]
    at_server = [(s, r) for s, r in answered if r is not None and not r.hops and r.end]
    if not with_route and at_server:
        server, route = at_server[0]
        assert route.end is not None
        targets = route.end.args[1:]
        to_https = any(a.startswith("https://") for a in targets)
        redirect = route.end.name == "rewrite" or any(
            a.startswith(("http://", "$scheme")) for a in targets
        )
        return InputError(
            f"{uri} on {_label(server, config)} is answered by {route.answer} before any "
            "location is chosen, not passed to an app: there is nothing to mirror",
            where=route.end.where,
            fix=(
                "pass --listen with the socket where the callback reaches the app (this one "
                f"redirects to https: the https one, e.g. --listen {_tls_example(config)})"
                if to_https
                else "pass --path (and --server-name) as the URL the vendor really posts to: "
                "a vendor does not follow a redirect with its POST"
                if redirect
                else "pass --listen and --server-name of the server that proxies the callback "
                "to the app"
            ),
        )
    if not with_route:
        where = ", ".join(dict.fromkeys(s.where for s in servers))
        return InputError(
            f"no location matches {uri} in the servers that would answer it ({where})",
            where=str(config.main),
            fix="pass the callback's path with --path, or --server-name of the server "
            "that proxies it",
        )
    server, route = with_route[0]
    final = route.final.location
    how = f" (reached by {route.describe()})" if len(route.hops) > 1 else ""
    others = "" if host else _name_hint(config, servers, server)
    fix = (
        f"if the vendor posts to {route.final.uri}/, pass --path {route.final.uri}/ (a vendor "
        f"does not follow a redirect with its POST); else add `location = {route.final.uri}` "
        "that proxies it to the app"
        if route.redirects_to_slash and len(route.hops) == 1
        else f"make {uri} reach the app without nginx's redirect of {route.final.uri} (for "
        f"example a target of {route.final.uri}/ in the line that sends it there)"
        if route.redirects_to_slash
        else "pass --path as the callback's path the vendor posts to and --server-name as the "
        f"name of the server that proxies it to the app{others}"
    )
    return InputError(
        f"{uri} on {_label(server, config)} is answered by "
        f"location {location_spec(final)}{how} with {route.answer}, not passed to an app: "
        "there is nothing to mirror",
        where=final.where,
        fix=fix,
    )


def _name_hint(config: NginxConfig, servers: list[Directive], skip: Directive) -> str:
    names = [n for s in servers if s is not skip for n in server_names(s, config) if n != "_"]
    if not names:
        return ""
    return " (configured: " + ", ".join(list(dict.fromkeys(names))[:_MAX_LISTED]) + ")"


def _ambiguous(
    config: NginxConfig,
    uri: str,
    receivers: list[tuple[Directive, list[Socket]]],
    route_of: RouteOf,
    host: str | None,
) -> InputError:
    parts = []
    for server, socks in receivers[:_MAX_LISTED]:
        route = route_of(server)
        assert route is not None
        final = route.final.location
        parts.append(
            f"{_socks(socks)} -> {_label(server, config)}, location {location_spec(final)} "
            f"{final.where}"
        )
    listing = "; ".join(parts)
    if host:
        return InputError(
            f"ambiguous: servers named {host} on different sockets answer {uri} in "
            f"different locations: {listing}",
            fix="choose the socket the vendor posts to with --listen ADDR:PORT",
        )
    return InputError(
        f"more than one server could receive {uri}: {listing}",
        fix="choose the server the vendor posts to with --server-name NAME "
        "(and --listen ADDR:PORT when one name is on several sockets)",
    )
