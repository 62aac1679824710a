"""systemd units for the mirror period: ``pull --follow`` and ``watch``, rendered with the
user's paths (templates/systemd/) and sandboxed: a dedicated user, a read-only system, no new
privileges, and write access only to the archive, the state and the metrics directories.

The sandbox hides home directories (``ProtectHome=yes``: /home, /root, /run/user) and gives each
service a private /tmp and /var/tmp. A path the services need there is refused before anything
is written, rather than opened up: a service that cannot exec its binary or write its archive
fails only when systemd starts it, and opening a home directory to it (``ReadWritePaths=
/home/ops``, or ``ProtectHome=read-only``) would hand the whole of it to the service. A path in
/tmp would be worse: the archive would live in the service's private /tmp, which is emptied at
every stop, after pull deleted its messages from the queue. The services' files belong under
/var/lib, /var/log and /opt, as any system service's do.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from hookshift.errors import InputError
from hookshift.systemd import (
    INSTALL_HOOKSHIFT,
    SYSTEM_HOOKSHIFT,
    command_line,
    hidden,
    hidden_program,
    path_list,
    require_absolute,
    running_hookshift,
    unit_path,
)
from hookshift.verify.pull import check_queue_url
from hookshift.verify.sources import parse_source

PULL_UNIT = "hookshift-pull.service"
WATCH_UNIT = "hookshift-watch.service"


INSTALL_OUTSIDE_HOME = (
    "install hookshift with the system's Python outside home directories: "
    f"{INSTALL_HOOKSHIFT}, then --hookshift-bin {SYSTEM_HOOKSHIFT}"
)
# where each path the services use belongs, for the fix of a path the sandbox hides
_SYSTEM_PLACES = {
    "--archive": "--archive /var/lib/hookshift/archive",
    "--state": "--state /var/lib/hookshift/watch",
    "--metrics-file": "--metrics-file /var/lib/node_exporter/textfile/hookshift.prom",
}


def check_state_apart(archive: Path, state: Path, named: str | None = None) -> None:
    """Refuse a watch's `state` directory that is the archive `pull` fills, lies inside it or
    holds it: the archive is pull's alone (its segments, its index and its follow state, pruned
    by its retention), and the watch writes only its own directory. `named`: how the user
    named the archive (default ``--archive DIR``, as units takes it)."""
    named = named or f"--archive {archive}"
    real_archive, real_state = _real(archive), _real(state)
    if real_state == real_archive or real_archive in real_state.parents:
        what = "is the archive" if real_state == real_archive else "is inside the archive"
        raise InputError(
            f"{what} ({named}): the watch's files would sit among the segments pull writes "
            "and prunes, and pull and the watch would both write one directory",
            where=f"--state {state}",
            fix="give the watch a directory of its own, e.g. " + _SYSTEM_PLACES["--state"],
        )
    if real_state in real_archive.parents:
        raise InputError(
            f"is inside the watch's state directory (--state {state}): the watch could write "
            "the archive, which is pull's alone",
            where=named,
            fix="give each a directory of its own, e.g. "
            f"{_SYSTEM_PLACES['--archive']} and {_SYSTEM_PLACES['--state']}",
        )


@dataclass(frozen=True)
class UnitSpec:
    hookshift_bin: Path | None  # None: the hookshift running (systemd.running_hookshift)
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

    @property
    def executable(self) -> Path:
        """The hookshift both units run."""
        return self.hookshift_bin or running_hookshift()

    def check(self) -> None:
        named = {
            "--hookshift-bin": self.executable,
            "--archive": self.archive,
            "--state": self.state,
            "--env-file": self.env_file,
        }
        if self.metrics_file is not None:
            named["--metrics-file"] = self.metrics_file
        require_absolute(named)
        # the watch runs from /: a relative parity log would be looked for under it
        app = parse_source(self.app_source, "app")
        require_absolute({f"--app {self.app_source}": Path(app.target)})
        self.check_apart()
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
        self.check_sandbox()

    def check_apart(self) -> None:
        """The archive is pull's alone: its segments, its index and its follow state, pruned
        by its retention. The watch's --state is a directory of its own (not the archive, not
        inside it, nor holding it: each service may write only its own), and the parity log
        the watch reads is not in the archive (where pull's segments are)."""
        check_state_apart(self.archive, self.state)
        archive = _real(self.archive)
        kind, _, target = self.app_source.partition(":")
        fixed = _fixed_part(target)
        if fixed == archive or archive in fixed.parents:
            raise InputError(
                f"is inside the archive (--archive {self.archive}), which holds pull's "
                "segments of queue messages, not the parity log",
                where=f"--app {self.app_source}",
                fix="give the parity log nginx writes, e.g. "
                f"--app '{kind}:/var/log/nginx/hookshift-parity.log*'",
            )

    def missing_here(self) -> str | None:
        """A warning line when the hookshift the units run is not on this machine. Not a
        refusal: the units may be written here for a host where it will be installed (where
        they would fail only when systemd starts them)."""
        program = self.executable
        if program.exists():
            return None
        return (
            f"{self._named_bin()}: does not exist on this machine; the units are written all "
            f"the same, for a host where it is installed (install it: {INSTALL_HOOKSHIFT})"
        )

    def _named_bin(self) -> str:
        """The hookshift the units run, as the user named it (or did not)."""
        if self.hookshift_bin is not None:
            return f"--hookshift-bin {self.hookshift_bin}"
        return f"hookshift {self.executable} (the one running: no --hookshift-bin given)"

    def check_sandbox(self) -> None:
        """Refuse a path the services' sandbox hides from them (module docstring): the
        hookshift they run (with its Python), the paths they write, the parity log the watch
        reads and the alert command it runs. The --env-file is read by systemd itself, before
        the sandbox is set up, so it may be anywhere."""
        program = self.executable
        found = hidden_program(program)
        if found is not None:
            raise InputError(
                f"the services cannot run it: {found.reason('them')}",
                where=self._named_bin(),
                fix=INSTALL_OUTSIDE_HOME,
            )
        written = {"--archive": self.archive, "--state": self.state}
        if self.metrics_file is not None:
            written["--metrics-file"] = self.metrics_file
        for option, path in written.items():
            found = hidden(path)
            if found is not None:
                raise InputError(
                    f"hidden from the services: {found.reason('them')}",
                    where=f"{option} {path}",
                    fix="give it a place of its own outside home directories and /tmp, e.g. "
                    + _SYSTEM_PLACES[option],
                )
        kind, _, target = self.app_source.partition(":")
        found = hidden(Path(target)) if target.startswith("/") else None
        if found is not None:
            raise InputError(
                f"the watch cannot read it: {found.reason('it')}",
                where=f"--app {self.app_source}",
                fix="keep the parity log where nginx keeps its logs, e.g. "
                f"--app '{kind}:/var/log/nginx/hookshift-parity.log*'",
            )
        self._check_alert_program()

    def _check_alert_program(self) -> None:
        """The alert command's program, when it is named by its path (a shell runs the
        command line, so only its first word can be known here)."""
        try:
            words = shlex.split(self.alert_cmd or "")
        except ValueError:
            return  # the shell will say what is wrong with it
        if not words or not words[0].startswith("/"):
            return
        found = hidden_program(Path(words[0]))
        if found is not None:
            raise InputError(
                f"the watch cannot run {words[0]}: {found.reason('it')}",
                where=f"--alert-cmd {self.alert_cmd}",
                fix="install the command outside home directories and /tmp, e.g. in /usr/local/bin",
            )


def _real(path: Path) -> Path:
    """`path` with its links followed as far as it exists on this machine (the units may be
    written for another host: the rest is taken as written)."""
    return Path(os.path.realpath(path))


def _fixed_part(pattern: str) -> Path:
    """The part of a source's path before its first glob character (the path itself when it
    has none), links followed."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    return _real(Path(*parts[:fixed]) if fixed else Path("/"))


def pull_argv(spec: UnitSpec) -> list[str]:
    argv = [str(spec.executable), "verify", "pull", "--queue-url", spec.queue_url]
    argv += ["--archive", str(spec.archive), "--delete", "--follow", "--window", spec.window]
    if spec.region:
        argv += ["--region", spec.region]
    return argv


def watch_argv(spec: UnitSpec) -> list[str]:
    argv = [str(spec.executable), "verify", "watch", "--app", spec.app_source]
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
            env_file=unit_path(str(spec.env_file)),
            exec_start=command_line(pull_argv(spec)),
            write_paths=path_list([str(spec.archive)]),
        ),
        WATCH_UNIT: render(
            f"systemd/{WATCH_UNIT}.j2",
            **common,
            pull_unit=PULL_UNIT,
            log_group=spec.log_group,
            exec_start=command_line(watch_argv(spec)),
            write_paths=path_list(str(p) for p in watch_paths),
        ),
    }
