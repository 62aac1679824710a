"""Choose the server and the location nginx itself would choose for a request.

Server: the listening socket (``listen`` address:port; an explicit address wins over a wildcard
on the same port), then ``server_name`` in nginx's order (exact name, longest leading wildcard,
longest trailing wildcard, first matching regex in file order), else the socket's
``default_server`` (or its first server).

Location: nginx's ``ngx_http_core_find_location``: an exact ``=`` match ends the search; else
the longest matching prefix is remembered and its nested locations are searched the same way;
unless that prefix is ``^~``, the regexes (``~``, ``~*``) of the level are tried in order and
the first match wins (and its nested locations are searched). Named ``@`` locations never match
a request.

Without ``--listen`` every socket is considered; when different servers would answer the path
on different sockets the choice is ambiguous and `InputError` lists the candidates (file:line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from hookshift.errors import InputError
from nginx.config import Directive, NginxConfig

DEFAULT_LISTEN = ("*", "80")


@dataclass(frozen=True)
class Socket:
    """A listening address: ``addr`` is ``*``, ``[::]``, an address, or ``unix:/path``."""

    addr: str
    port: str

    def __str__(self) -> str:
        return self.addr if self.addr.startswith("unix:") else f"{self.addr}:{self.port}"

    @property
    def wildcard(self) -> bool:
        return self.addr in ("*", "0.0.0.0", "[::]")


@dataclass(frozen=True)
class Listen:
    socket: Socket
    default: bool


@dataclass(frozen=True)
class LocationSpec:
    """A ``location``'s modifier (``=``, ``^~``, ``~``, ``~*``, ``@`` or empty) and pattern."""

    modifier: str
    pattern: str

    def __str__(self) -> str:
        return f"{self.modifier} {self.pattern}".strip()


@dataclass(frozen=True)
class Match:
    """The chosen server, the chosen location and the locations enclosing it (outermost first)."""

    server: Directive
    location: Directive
    parents: tuple[Directive, ...]
    sockets: tuple[Socket, ...]

    @property
    def exact(self) -> bool:
        """True when the location serves only this one path (``location = /path``)."""
        return location_spec(self.location).modifier == "="


def parse_socket(text: str) -> Socket:
    """``80``, ``127.0.0.1:8080``, ``[::]:443``, ``localhost``, ``*:80``, ``unix:/run/x.sock``."""
    if text.startswith("unix:"):
        return Socket(text, "")
    if text.isdigit():
        return Socket("*", text)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return Socket(f"[{host}]", rest.lstrip(":") or "80")
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return Socket(host or "*", port)
    return Socket(text, "80")


def server_listens(server: Directive, config: NginxConfig) -> list[Listen]:
    listens = [
        Listen(parse_socket(d.args[0]), any(a in ("default_server", "default") for a in d.args))
        for d in config.effective_children(server, "listen")
        if d.args
    ]
    return listens or [Listen(Socket(*DEFAULT_LISTEN), False)]


def server_names(server: Directive, config: NginxConfig) -> list[str]:
    return [a.lower() for d in config.effective_children(server, "server_name") for a in d.args]


def _pcre(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """Compile an nginx (PCRE) regex with Python's engine (named groups spelled PCRE's way)."""
    py = re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", pattern)
    py = re.sub(r"\(\?'([A-Za-z_]\w*)'", r"(?P<\1>", py)
    py = re.sub(r"\(\?P>", "(?P=", py)
    return re.compile(py, flags)


def _name_rank(name: str, host: str) -> tuple[int, int] | None:
    """How well server_name `name` matches `host`: (class, -length) or None; lower is better."""
    if name.startswith("~"):
        try:
            return (3, 0) if _pcre(name[1:], re.IGNORECASE).search(host) else None
        except re.error:
            return None
    if name.startswith("."):
        if host == name[1:]:
            return (0, 0)
        return (1, -len(name)) if host.endswith(name) else None
    if name.startswith("*."):
        return (1, -len(name)) if host.endswith(name[1:]) else None
    if name.endswith(".*"):
        return (2, -len(name)) if host.startswith(name[:-1]) else None
    return (0, 0) if name == host else None


def choose_server(
    servers: list[tuple[Directive, bool]], host: str | None, config: NginxConfig
) -> Directive:
    """Among the servers of one socket (with their default flag), the one nginx picks."""
    if host:
        host = host.lower().rstrip(".")
        best: tuple[tuple[int, int], int] | None = None
        for index, (server, _) in enumerate(servers):
            for name in server_names(server, config):
                rank = _name_rank(name, host)
                if rank is not None and (best is None or (rank, index) < best):
                    # regexes are tried in config order, so index breaks ties for them too
                    best = (rank, index)
        if best is not None:
            return servers[best[1]][0]
    defaults = [s for s, is_default in servers if is_default]
    return defaults[0] if defaults else servers[0][0]


def location_spec(location: Directive) -> LocationSpec:
    args = location.args
    if len(args) >= 2:
        return LocationSpec(args[0], args[1])
    arg = args[0] if args else ""
    for modifier in ("=", "^~", "~*", "~", "@"):
        if arg.startswith(modifier):
            return LocationSpec(modifier, arg[len(modifier) :] if modifier != "@" else arg)
    return LocationSpec("", arg)


def find_location(
    block: Directive, uri: str, config: NginxConfig, parents: tuple[Directive, ...] = ()
) -> tuple[Directive, tuple[Directive, ...]] | None:
    """The location nginx uses for `uri` inside `block` (a server or location), with parents.

    Mirrors ``ngx_http_core_find_location``; None when no location matches.
    """
    found = _find(block, uri, config, parents)
    return None if found is None else (found[0], found[1])


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
            if spec.modifier not in ("~", "~*"):
                continue
            flags = re.IGNORECASE if spec.modifier == "~*" else 0
            try:
                regex = _pcre(spec.pattern, flags)
            except re.error as exc:
                raise InputError(
                    f"cannot evaluate the regex of location {spec} ({exc})",
                    where=loc.where,
                    fix="pass the exact server with --server-name/--listen or simplify the regex",
                ) from None
            if regex.search(uri):
                nested = _find(loc, uri, config, (*parents, loc))
                if nested is not None:
                    return nested[0], nested[1], True
                return loc, parents, True
    return found


def _sockets(config: NginxConfig) -> dict[Socket, list[tuple[Directive, bool]]]:
    table: dict[Socket, list[tuple[Directive, bool]]] = {}
    for server in config.servers():
        for listen in server_listens(server, config):
            entries = table.setdefault(listen.socket, [])
            if not entries or entries[-1][0] is not server:  # servers come in order: O(1)
                entries.append((server, listen.default))
            elif listen.default:
                entries[-1] = (server, True)
    return table


def candidate_sockets(
    table: dict[Socket, list[tuple[Directive, bool]]], listen: str | None
) -> list[Socket]:
    """The sockets a request to `listen` (``PORT``, ``ADDR:PORT``, ``unix:PATH``) arrives on."""
    if listen is None:
        return list(table)
    wanted = parse_socket(listen)
    if wanted.addr.startswith("unix:"):
        return [s for s in table if s.addr == wanted.addr]
    same_port = [s for s in table if s.port == wanted.port and not s.addr.startswith("unix:")]
    if wanted.wildcard:
        return same_port
    explicit = [s for s in same_port if s.addr == wanted.addr]
    return explicit or [s for s in same_port if s.wildcard]


def match(
    config: NginxConfig, path: str, *, host: str | None = None, listen: str | None = None
) -> Match:
    """The server and location nginx would use for `path` (query string ignored).

    Raises `InputError` when nothing matches or when different servers could answer.
    """
    uri = urlsplit(path).path or "/"
    if not uri.startswith("/"):
        raise InputError(f"--path must start with '/': {path}", fix="e.g. --path /callback")
    table = _sockets(config)
    if not table:
        raise InputError(
            "the config has no server block", where=str(config.main), fix="pass the right --config"
        )
    sockets = candidate_sockets(table, listen)
    if not sockets:
        known = ", ".join(sorted({str(s) for s in table}))
        raise InputError(
            f"no server listens on {listen}",
            where=str(config.main),
            fix=f"pass one of the configured sockets with --listen: {known}",
        )
    chosen: dict[int, tuple[Directive, Directive, tuple[Directive, ...], list[Socket]]] = {}
    considered: list[Directive] = []
    for socket in sockets:
        server = choose_server(table[socket], host, config)
        considered.append(server)
        found = find_location(server, uri, config)
        if found is None:
            continue
        location, parents = found
        entry = chosen.setdefault(id(location), (server, location, parents, []))
        entry[3].append(socket)
    if not chosen:
        where = ", ".join(dict.fromkeys(s.where for s in considered))
        raise InputError(
            f"no location matches {uri} in the servers that would answer it ({where})",
            where=str(config.main),
            fix=f"add `location = {uri} {{ ... }}` to the callback server or fix --path",
        )
    if len(chosen) > 1:
        listing = "; ".join(
            f"{'/'.join(str(s) for s in socks)} -> server {srv.where}, location "
            f"{location_spec(loc)} {loc.where}"
            for srv, loc, _, socks in chosen.values()
        )
        raise InputError(
            f"ambiguous: different locations answer {uri} on different sockets: {listing}",
            fix="choose one with --listen ADDR:PORT (and --server-name NAME)",
        )
    server, location, parents, socks = next(iter(chosen.values()))
    return Match(server, location, parents, tuple(socks))
