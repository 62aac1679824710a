"""What ``nginx -t`` itself refuses that can be seen without running it.

Doctor looks for what fails at run time although nginx loads the config; "no findings" must not
be said of a config nginx does not load at all.
"""

from __future__ import annotations

from collections.abc import Iterator

from hookshift.doctor.findings import Finding, Severity
from hookshift.doctor.model import Index
from hookshift.nginx.locations import duplicate_locations, location_spec


def duplicate_location(index: Index) -> Iterator[Finding]:
    for server in index.servers:
        for first, again in duplicate_locations(server.directive, index.config):
            yield Finding(
                code="duplicate-location",
                severity=Severity.ERROR,
                where=again.where,
                message=(
                    f"location {location_spec(again)} repeats the one at {first.where}: "
                    "nginx -t fails (`duplicate location`), so nginx neither starts nor "
                    "reloads with this config"
                ),
                fix="merge the two blocks into one, or delete one",
            )
