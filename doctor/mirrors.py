"""Which requests are mirrored where: each location's ``mirror`` lines followed to their target.

``mirror`` is inherited like an array (a location with its own ``mirror`` drops the inherited
ones) and only main requests are mirrored, so a mirror *target* is the location that serves the
mirror URI in the same server, found with nginx's location rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from doctor.model import Index, Location, Server
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


def mirror_uses(index: Index) -> Iterator[MirrorUse]:
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
