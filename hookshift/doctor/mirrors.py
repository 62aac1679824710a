"""Which requests are mirrored where: each location's ``mirror`` lines followed to their target.

``mirror`` is inherited like an array (a location with its own ``mirror`` drops the inherited
ones) and only main requests are mirrored, so a mirror *target* is the location that serves the
mirror URI in the same server, found with nginx's location rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hookshift.doctor.model import Index, Location, Server, proxy_target_of
from hookshift.nginx.config import Directive


@dataclass(frozen=True)
class MirrorUse:
    """One location whose requests are copied to `uri` by the ``mirror`` line `directive`."""

    server: Server
    source: Location
    directive: Directive
    uri: str
    target: Location | None  # None when no location serves `uri` (or it has variables)
    inherited: bool  # the line is in an enclosing block (server, http, outer location)


def mirror_uses(index: Index) -> tuple[MirrorUse, ...]:
    """Every (mirroring location, mirror line) pair of the config, computed once per index."""
    return index.memo("mirror_uses", lambda: tuple(_mirror_uses(index)))


def _mirror_uses(index: Index) -> Iterator[MirrorUse]:
    for server in index.servers:
        for loc in server.all_locations():
            own = index.own(loc.directive, "mirror")
            for d in index.effective(loc.chain, "mirror"):
                if not d.args or d.args[0] == "off":
                    continue
                uri = d.args[0]
                target = None if "$" in uri else server.match(uri.split("?", 1)[0])
                yield MirrorUse(server, loc, d, uri, target, inherited=d not in own)


def is_internal(index: Index, location: Location) -> bool:
    return bool(index.own(location.directive, "internal"))


def mirror_targets(index: Index) -> dict[Location, list[MirrorUse]]:
    """Every location that receives mirror copies, with the uses that send them there."""
    targets: dict[Location, list[MirrorUse]] = {}
    for use in mirror_uses(index):
        if use.target is not None:
            targets.setdefault(use.target, []).append(use)
    return targets


_WILDCARD = {"*", "0.0.0.0", "[::]", ""}
_LOOPBACK = {"127.0.0.1", "localhost", "[::1]"}


def _address(text: str, default_port: int = 80) -> tuple[str, int | str]:
    """``unix:/p`` -> ("unix", "/p"); ``127.0.0.1:81`` -> ("127.0.0.1", 81); ``81`` -> ("", 81)."""
    if text.startswith("unix:"):
        return "unix", text[5:]
    if text.isdigit():
        return "", int(text)
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and (not host.startswith("[") or host.endswith("]")):
        return host.lower(), int(port)
    return text.lower(), default_port


def _is_local(host: str) -> bool:
    """A peer address that is this host whatever its interfaces: loopback (or the wildcard,
    which the kernel connects to this host too)."""
    return host in _LOOPBACK or host in _WILDCARD or host.startswith("127.")


def _listen_keys(peer: tuple[str, int | str]) -> list[tuple[str, int | str]]:
    """The ``listen`` addresses that receive what is sent to `peer`: the same address; a
    wildcard one only for a peer known to be this host (``listen 443`` does not make every
    remote host on port 443, the stage itself, a server of this config); any loopback name
    for a loopback one."""
    host, port = peer
    keys = [peer]
    if host == "unix":
        return keys
    if _is_local(host):
        keys += [(w, port) for w in _WILDCARD]
    if host in _LOOPBACK:
        keys += [(name, port) for name in _LOOPBACK]
    return keys


def _listening(index: Index) -> dict[tuple[str, int | str], list[int]]:
    """Each ``listen`` address of the config with the servers (by position) on it, built once:
    asking every server for every mirror location is quadratic over a big config."""

    def build() -> dict[tuple[str, int | str], list[int]]:
        found: dict[tuple[str, int | str], list[int]] = {}
        for i, server in enumerate(index.servers):
            for d in index.own(server.directive, "listen"):
                if d.args:
                    found.setdefault(_address(d.args[0]), []).append(i)
        return found

    return index.memo("listening", build)


def _peers(index: Index, location: Location) -> list[tuple[str, int | str]]:
    """The addresses `location` proxies to (an upstream's servers, or the one in the URL)."""
    for line in index.own(location.directive, "proxy_pass"):
        if line.args and (rest := line.args[0].split("://", 1)[-1]).startswith("unix:"):
            return [("unix", rest[5:].split(":", 1)[0])]
    found = proxy_target_of(index, location)
    if found is None:
        return []
    proxy = found[1]
    upstream = index.upstream_for(proxy)
    if upstream is not None:
        return [_address(d.args[0]) for d in upstream.children("server") if d.args]
    if proxy.host is not None:
        return [(proxy.host, proxy.port or (443 if proxy.scheme == "https" else 80))]
    return []


def local_servers(index: Index, location: Location) -> list[Server]:
    """The servers of this config that `location` proxies to (a local relay, say)."""
    listening = _listening(index)
    hits = {
        i
        for peer in _peers(index, location)
        for key in _listen_keys(peer)
        for i in listening.get(key, ())
    }
    return [index.servers[i] for i in sorted(hits)]


def proxies_off_host(index: Index, location: Location) -> bool:
    """True when `location` proxies to some address that is not on this host."""
    return any(
        host != "unix" and host not in _LOOPBACK and not host.startswith("127.")
        for host, _ in _peers(index, location)
    )


def answers_first(index: Index, target: Location) -> bool:
    """The mirror target hands the copy to a local server that mirrors it on: that relay
    answers before the stage does, so the callback does not wait for the stage."""
    return any(
        index.own(loc.directive, "mirror")
        for server in local_servers(index, target)
        for loc in server.all_locations()
    )


def mirror_path_locations(index: Index) -> set[Location]:
    """Mirror targets plus every location of a local server block they proxy to (the relays of
    hookshift's layout): the locations that handle copies, not the callbacks."""
    path = set(mirror_targets(index))
    todo = list(path)
    while todo:
        for server in local_servers(index, todo.pop()):
            for loc in server.all_locations():
                if loc not in path:
                    path.add(loc)
                    todo.append(loc)
    return path


def unix_only(index: Index, server: Server) -> bool:
    """The server listens on unix sockets only: local processes reach it (a relay of copies),
    no vendor does."""
    listens = [d.args[0] for d in index.own(server.directive, "listen") if d.args]
    return bool(listens) and all(a.startswith("unix:") for a in listens)
