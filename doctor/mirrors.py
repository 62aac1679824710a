"""Which requests are mirrored where: each location's ``mirror`` lines followed to their target.

``mirror`` is inherited like an array (a location with its own ``mirror`` drops the inherited
ones) and only main requests are mirrored, so a mirror *target* is the location that serves the
mirror URI in the same server, found with nginx's location rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from doctor.model import Index, Location, Server, proxy_target_of
from nginx.config import Directive


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


def _listens_on(listen: tuple[str, int | str], peer: tuple[str, int | str]) -> bool:
    (lhost, lport), (phost, pport) = listen, peer
    if lhost == "unix" or phost == "unix":
        return lhost == phost and lport == pport
    if lport != pport:
        return False
    return lhost in _WILDCARD or lhost == phost or (lhost in _LOOPBACK and phost in _LOOPBACK)


def mirror_path_locations(index: Index) -> set[Location]:
    """Mirror targets plus every location of a local server block they proxy to (the relay of
    hookshift's two-hop layout): the locations that handle copies, not the callbacks."""
    targets = set(mirror_targets(index))
    peers: list[tuple[str, int | str]] = []
    for target in targets:
        found = proxy_target_of(index, target)
        if found is None:
            continue
        line, proxy = found
        upstream = index.upstream_for(proxy)
        if upstream is not None:
            peers += [_address(d.args[0]) for d in upstream.children("server") if d.args]
        elif (rest := line.args[0].split("://", 1)[-1]).startswith("unix:"):
            peers.append(("unix", rest[5:].split(":", 1)[0]))
        elif proxy.host is not None:
            default = 443 if proxy.scheme == "https" else 80
            peers.append((proxy.host, proxy.port or default))
    path = set(targets)
    for server in index.servers:
        listens = [_address(d.args[0]) for d in index.own(server.directive, "listen") if d.args]
        if any(_listens_on(listen, peer) for listen in listens for peer in peers):
            path.update(server.all_locations())
    return path
