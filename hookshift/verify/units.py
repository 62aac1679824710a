"""systemd units for the mirror period: ``pull --follow`` and ``watch``, rendered with the
user's paths (templates/systemd/) and sandboxed: a dedicated user, a read-only system, no new
privileges, and write access only to the archive, the state and the metrics directories.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hookshift.errors import InputError
from hookshift.systemd import command_line, require_absolute, systemd_quote
from hookshift.verify.pull import check_queue_url

PULL_UNIT = "hookshift-pull.service"
WATCH_UNIT = "hookshift-watch.service"


@dataclass(frozen=True)
class UnitSpec:
    hookshift_bin: Path
    user: str
    queue_url: str
    archive: Path
    state: Path
    app_source: str
    group: str | None = None
    region: str | None = None
    window: str = "7d"
    profile: str | None = None
    key: str | None = None
    metrics_file: Path | None = None
    alert_cmd: str | None = None
    log_group: str = "adm"
    env_file: Path = Path("/etc/hookshift/aws.env")

    def check(self) -> None:
        named = {
            "--hookshift-bin": self.hookshift_bin,
            "--archive": self.archive,
            "--state": self.state,
            "--env-file": self.env_file,
        }
        if self.metrics_file is not None:
            named["--metrics-file"] = self.metrics_file
        require_absolute(named)
        if self.user == "root":
            raise InputError(
                "the services would run as root, outside the sandbox they are written for",
                where="--user",
                fix="a dedicated system user such as hookshift (useradd --system hookshift)",
            )
        check_queue_url(self.queue_url, region=self.region)
        if not re.fullmatch(r"[a-z_][a-z0-9_-]*\$?", self.user):
            raise InputError(
                f"{self.user!r} is not a user name",
                where="--user",
                fix="a system user such as hookshift (useradd --system hookshift)",
            )


def pull_argv(spec: UnitSpec) -> list[str]:
    argv = [str(spec.hookshift_bin), "verify", "pull", "--queue-url", spec.queue_url]
    argv += ["--archive", str(spec.archive), "--delete", "--follow", "--window", spec.window]
    if spec.region:
        argv += ["--region", spec.region]
    return argv


def watch_argv(spec: UnitSpec) -> list[str]:
    argv = [str(spec.hookshift_bin), "verify", "watch", "--app", spec.app_source]
    argv += ["--queue", f"archive:{spec.archive}", "--state", str(spec.state)]
    if spec.profile:
        argv += ["--profile", spec.profile]
    if spec.key:
        argv += ["--key", spec.key]
    if spec.metrics_file is not None:
        argv += ["--metrics-file", str(spec.metrics_file)]
    if spec.alert_cmd:
        argv += ["--alert-cmd", spec.alert_cmd]
    return argv


def render_units(spec: UnitSpec) -> dict[str, str]:
    """File name -> text of both units."""
    from hookshift.templates import render

    spec.check()
    common = {"user": spec.user, "group": spec.group or spec.user}
    watch_paths = [spec.state]
    if spec.metrics_file is not None:
        watch_paths.append(spec.metrics_file.parent)
    return {
        PULL_UNIT: render(
            f"systemd/{PULL_UNIT}.j2",
            **common,
            env_file=systemd_quote(str(spec.env_file)),
            exec_start=command_line(pull_argv(spec)),
            write_paths=command_line([str(spec.archive)]),
        ),
        WATCH_UNIT: render(
            f"systemd/{WATCH_UNIT}.j2",
            **common,
            pull_unit=PULL_UNIT,
            log_group=spec.log_group,
            exec_start=command_line(watch_argv(spec)),
            write_paths=command_line(str(p) for p in watch_paths),
        ),
    }
