"""The cut-over's settings: chosen at ``init``, kept in the journal header, overridable per run.

WHY in the journal: a cut-over lasts days; the command that advances it on Thursday must use the
same config, path, URLs and queue as the one that started it on Monday without anyone retyping
them, and the journal must say what they were.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from hookshift.cutover.stages import Thresholds
from hookshift.errors import InputError
from hookshift.mirror.render import StageDns


@dataclass(frozen=True)
class Settings:
    config: str | None = None  # the main nginx config
    path: str | None = None  # the callback location's path, e.g. /callback
    stage_url: str | None = None  # https://ID.execute-api.REGION.amazonaws.com/STAGE
    domain_url: str | None = None  # https://hooks.example.com[/BASEPATH]
    domain_target: str | None = None  # d-XXXX.execute-api.REGION.amazonaws.com (alias check)
    queue: str | None = None  # sqs:URL | archive:DIR | jsonl:FILE
    endpoint_url: str | None = None  # SQS endpoint (moto in the rehearsal)
    region: str | None = None
    parity_log: str | None = None  # the parity log nginx writes (mirror apply --parity-log)
    nginx_log: str | None = None  # where nginx's traffic for the path is counted (default: parity)
    nginx_bin: str | None = None
    nginx_prefix: str | None = None  # nginx's -p: where the config's relative paths resolve
    resolvers: tuple[str, ...] = ()  # for nginx's resolver and the probe's DNS
    ca_file: str | None = None  # a private CA (rehearsal): probe + nginx verification
    server_name: str | None = None
    listen: str | None = None
    backup_dir: str | None = None
    relay_socket: str | None = None  # the mirror engine's local relay (nginx < 1.27.3)
    stage_dns: StageDns | None = None  # mirror --stage-dns (None: its default for the version)
    mirror_error_log: str | None = None  # mirror --mirror-error-log (None: its default)
    archive: str | None = None  # where the mirror-period messages are drained
    watch_state: str | None = None  # `verify watch --state-dir`: parity gates read it when fresh
    min_window: float = 3600.0
    min_events: int = 100
    quiet_period: float = 86400.0
    probe_timeout: float = 10.0
    execution_log: str | None = None  # cloudwatch:GROUP or a file, for the probes' diagnosis
    parity_grace: float | None = None  # verify parity --grace (None: its default)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["resolvers"] = list(self.resolvers)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Settings:
        """The settings a journal header holds; unknown names are ignored (a newer hookshift's).

        Raises `InputError` naming the first setting of the wrong type, so a hand-edited or
        foreign header is reported as such instead of failing later in the middle of a run.
        """
        problem = settings_problem(data)
        if problem is not None:
            raise InputError(problem)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        if "resolvers" in values:
            values["resolvers"] = tuple(values["resolvers"])
        return cls(**values)

    def override(self, **changes: Any) -> Settings:
        """These settings with every given (not None, not empty) option replacing its value."""
        given = {k: v for k, v in changes.items() if v is not None and v != ()}
        scalars = {k: str(v) if isinstance(v, Path) else v for k, v in given.items()}
        problem = settings_problem(
            {k: v for k, v in scalars.items() if isinstance(v, int | float | str)}, options=True
        )
        if problem is not None:  # refused before a journal or a gate could use it
            raise InputError(problem, fix="correct the option (see --help)")
        if "resolvers" in given:
            given["resolvers"] = tuple(given["resolvers"])
        return replace(self, **given)

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.min_window, self.min_events, self.quiet_period)

    def callback_url(self, base: str | None) -> str | None:
        """The vendor-facing URL: the mirror appends ``$request_uri``, so base + path."""
        if base is None:
            return None
        return base.rstrip("/") + (self.path or "")

    def need(self, name: str, why: str) -> Any:
        value = getattr(self, name)
        if value in (None, ()):
            raise InputError(
                f"--{name.replace('_', '-')} is needed {why}",
                fix=f"pass --{name.replace('_', '-')} (or set it at `hookshift cutover init`)",
            )
        return value


def settings_problem(data: Any, *, options: bool = False) -> str | None:
    """What is wrong with ``data`` as the journal's settings, or None when nothing is.

    Each known setting must be null or of its type: text, a number (finite, zero or more) for
    the thresholds, a list of text for the resolvers. `options`: the values come from the
    command line, and are named as its options.
    """
    if not isinstance(data, Mapping):
        return f"settings are {json.dumps(data)}, expected an object"
    for f in fields(Settings):
        value = data.get(f.name)
        if value is None:
            continue
        kind = str(f.type).split(" |")[0]
        if kind.startswith("tuple"):
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            expected = "a list of text"
        elif kind in ("float", "int"):
            ok = (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value >= 0
            )
            expected = "a number, zero or more"
            if kind == "int" and not isinstance(value, int):
                ok, expected = False, "a whole number, zero or more"
        else:
            ok = isinstance(value, str) and value != ""
            expected = "text"
        if not ok:
            name = f"--{f.name.replace('_', '-')}" if options else f"setting {f.name!r}"
            return f"{name} is {json.dumps(value)}, expected {expected}"
    return None
