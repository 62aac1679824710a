"""Keep the stage's addresses current where nginx resolves them only at start and on reload.

On nginx before 1.27.3 the relay keeps its connections (and TLS sessions) to the stage only
through an ``upstream`` naming the stage's host, and nginx resolves that name with the system
resolver when it starts, at ``nginx -t`` and on each reload, never in between (``--stage-dns
reload``, the operator's choice there). API Gateway's addresses change, so something must
reload nginx when they do, without reloading it for nothing: a reload starts new workers and
closes idle keep-alive connections, the vendors' included.

`refresh` resolves the stage's host now, the way nginx does (``getaddrinfo``, every address
family), and compares the answer with what nginx resolved at its last reload by `refresh`,
recorded in hookshift's state dir beside the config's other state. When they differ (or
nothing is recorded yet) it runs ``nginx -t`` and ``nginx -s reload`` and records the new
answer; at most once per `min_interval`, because a name whose answers rotate would otherwise
reload nginx on every run. A reload or restart by other means resolves afresh too, which can
only make nginx's addresses newer than the record: the next difference reloads once more.

The stage is read from the config itself: hookshift's ``upstream hookshift_stage`` whose
primary server is a name (not a unix socket, not ``resolve``).

The default on those versions (``--stage-dns runtime``) keeps connections to the stage's
address as it resolved when planning, written into the config (so nginx starts whatever DNS
answers), and goes by the name, re-resolved at run time, when that address fails. There
`refresh` asks the relay's own resolvers (as nginx would) and, when the written address is no
longer among their answers, rewrites it (the same safe write as ``mirror apply``: backup,
``nginx -t``, reload, everything put back on failure), at most once per `min_interval`. An
address still answered is kept, so a name whose answers rotate does not rewrite the config
every run. A config that re-resolves by itself (no address written, or nginx 1.27.3+ with
``resolve``) needs nothing: `refresh` says so and changes nothing.

`render_refresh_units` writes the systemd service and timer that run `refresh` every minute,
as root in a sandbox. Everything `refresh` does must still work there: read the config tree,
replace a file beside itself, keep its record and backups in the state dir `mirror apply` and
`remove` use, and run ``nginx -t`` (which opens every log and the pid file for writing) and
``nginx -s reload``. `RefreshUnits` opens exactly those paths and refuses, when the units are
written, a path the sandbox would hide.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hookshift.durable import make_private_dirs, write_atomic
from hookshift.errors import InputError, OperationError
from hookshift.mirror.api import check_prefix
from hookshift.mirror.apply import Edit, default_backup_dir, write_edits
from hookshift.mirror.dnscheck import look_up_stage
from hookshift.mirror.plan import UPSTREAM, WrittenStage, relay_resolvers, written_stage
from hookshift.mirror.state import ConfigState, FileRecord, record_for, state_root
from hookshift.nginx import binary
from hookshift.nginx.config import Directive, NginxConfig, load
from hookshift.nginx.discover import BUILT_IN_PATHS
from hookshift.nginx.source import read_text
from hookshift.nginx.splice import MARK, has_marks
from hookshift.nginx.values import address_port, log_file, parse_socket
from hookshift.systemd import (
    INSTALL_HOOKSHIFT,
    SANDBOX_HIDES,
    SYSTEM_HOOKSHIFT,
    Hidden,
    command_line,
    hidden,
    hidden_program,
    path_list,
    require_absolute,
    running_hookshift,
    systemd_quote,
)

DEFAULT_MIN_INTERVAL = 300.0
RECORD_NAME = "stage-dns.json"

Action = Literal["current", "reloaded", "rewritten", "deferred", "not-needed"]
Resolve = Callable[[str, int], tuple[str, ...]]
LookUp = Callable[[tuple[str, ...], str], tuple[str, ...]]  # resolvers, host -> addresses


@dataclass(frozen=True)
class StageName:
    """The stage's host and port as the breaker's upstream names them, and where."""

    host: str
    port: int
    where: str


@dataclass(frozen=True)
class Refresh:
    """What `refresh` found and did."""

    action: Action
    stage: StageName | None
    addresses: tuple[str, ...] = ()
    previous: tuple[str, ...] | None = None  # recorded at the last reload; None: no record
    wait: float = 0.0  # deferred: seconds until a reload is allowed
    kept: str | None = None  # the address the relay keeps connections to (run-time DNS)

    def describe(self) -> str:
        """One line for the user."""
        if self.stage is None:
            return (
                "nothing to refresh: nginx re-resolves the stage by itself with this config "
                "(run-time DNS or `resolve` in the upstream)"
            )
        now = ", ".join(self.addresses)
        name = self.stage.host
        if self.kept is not None:
            return self._describe_kept(name, now)
        if self.action == "current":
            return f"{name} still resolves to {now}, as at nginx's last reload: nothing to do"
        was = "not recorded yet" if self.previous is None else ", ".join(self.previous) or "-"
        if self.action == "deferred":
            return (
                f"{name} now resolves to {now} (was {was}); nginx was reloaded for it less than "
                f"the minimum interval ago: the next run after {self.wait:.0f} s reloads it"
            )
        return f"nginx reloaded: {name} now resolves to {now} (was {was})"

    def _describe_kept(self, name: str, now: str) -> str:
        was = ", ".join(self.previous or ())
        if self.action == "current":
            return (
                f"{name} resolves to {now}: the relay's kept connections go to {self.kept}, "
                "one of them; nothing to do"
            )
        if self.action == "deferred":
            return (
                f"{name} now resolves to {now}, no longer to {was}; the config was rewritten "
                f"for it less than the minimum interval ago: the next run after {self.wait:.0f} "
                "s rewrites it (copies go by the name meanwhile)"
            )
        return (
            f"nginx reloaded: the relay's kept connections now go to {self.kept} ({name} "
            f"resolves to {now}, no longer to {was})"
        )


def system_addresses(host: str, port: int) -> tuple[str, ...]:
    """The addresses the system resolver gives for `host`, as nginx asks for an upstream's
    server (``getaddrinfo``, any family, TCP), sorted."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OperationError(
            f"the system resolver cannot resolve the stage {host} ({exc}); nginx keeps the "
            "addresses it has, nothing was changed"
        ) from None
    return tuple(sorted({str(info[4][0]) for info in found}))


def require_mirror(config: Path, parsed: NginxConfig | None = None) -> Directive:
    """hookshift's breaker upstream in the main config `config`, which every mirror of
    hookshift's has. `InputError` when there is none: `refresh` has nothing to keep current
    there, and the timer `refresh-units` would write for it would fail every run."""
    parsed = parsed or load(config)
    breaker = parsed.upstream(UPSTREAM)
    if breaker is None:
        raise InputError(
            f"no mirror of hookshift's in this config (no `upstream {UPSTREAM}`)",
            where=str(config),
            fix="pass the main nginx config that `hookshift mirror apply` changed",
        )
    return breaker


def stage_name(config: Path, parsed: NginxConfig | None = None) -> StageName | None:
    """The stage nginx resolves only at start and reload: the named primary server of
    hookshift's breaker upstream. None when the config re-resolves by itself; an error when it
    has no mirror of hookshift's (`require_mirror`)."""
    parsed = parsed or load(config)
    breaker = require_mirror(config, parsed)
    for server in parsed.effective_children(breaker, "server"):
        if not server.args or server.args[0].startswith("unix:") or "resolve" in server.args:
            continue
        sock = parse_socket(server.args[0])
        return StageName(sock.addr.strip("[]"), int(sock.port), server.where)
    return None


def needs_refresh(config: Path, parsed: NginxConfig | None = None) -> bool:
    """Whether `refresh` has anything to keep current in `config`: a stage address written
    into the relay's keep-alive upstream, or a stage name nginx resolves only at start and
    reload. A config that re-resolves by itself (``resolve``, run-time DNS alone) needs no
    timer. An error when it has no mirror of hookshift's (`require_mirror`)."""
    parsed = parsed or load(config)
    require_mirror(config, parsed)
    return written_stage(parsed) is not None or stage_name(config, parsed) is not None


def _record_path(config: Path) -> Path:
    return ConfigState.of(config).directory / RECORD_NAME


def _read_record(path: Path, stage: StageName) -> tuple[tuple[str, ...] | None, float]:
    """The addresses recorded for `stage` and when nginx was reloaded for them."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, 0.0
    except (OSError, ValueError) as exc:
        raise InputError(
            f"hookshift's record of the stage's addresses cannot be read ({exc})",
            where=str(path),
            fix="move it away: the next refresh reloads nginx once and writes it again",
        ) from None
    if not isinstance(data, dict) or [data.get("host"), data.get("port")] != [
        stage.host,
        stage.port,
    ]:
        return None, 0.0  # another stage: nothing known about this one
    addresses = data.get("addresses")
    at = data.get("reloaded_at")
    if not isinstance(addresses, list) or not isinstance(at, int | float):
        return None, 0.0
    return tuple(str(a) for a in addresses), float(at)


def resolver_addresses(resolvers: tuple[str, ...], host: str) -> tuple[str, ...]:
    """The addresses the relay's resolvers give for `host` now, as nginx asks them."""
    found = look_up_stage(resolvers, host)
    if not found.addresses:
        raise OperationError(
            f"no resolver of the relay ({', '.join(resolvers)}) resolves the stage {host}; "
            "the relay keeps the address it has, nothing was changed"
        )
    return found.addresses


def refresh(
    config: Path,
    *,
    nginx_bin: str = "nginx",
    prefix: Path | None = None,
    min_interval: float = DEFAULT_MIN_INTERVAL,
    resolve: Resolve = system_addresses,
    look_up: LookUp = resolver_addresses,
    clock: Callable[[], float] = time.time,
    backup_dir: Path | None = None,
) -> Refresh:
    """Reload nginx when the stage's addresses changed since its last reload by `refresh`
    (``--stage-dns reload``), or rewrite the address the relay keeps connections to when its
    name no longer resolves to it (run-time DNS with a written address).

    Raises `InputError` for a config without hookshift's mirror, `OperationError` when the
    name does not resolve, ``nginx -t`` fails or the reload fails (nothing recorded then).
    """
    check_prefix(prefix)
    parsed = load(config)
    written = written_stage(parsed)
    if written is not None:
        return _refresh_written(
            config,
            parsed,
            written,
            nginx_bin=nginx_bin,
            prefix=prefix,
            min_interval=min_interval,
            look_up=look_up,
            clock=clock,
            backup_dir=backup_dir,
        )
    stage = stage_name(config, parsed)
    if stage is None:
        return Refresh("not-needed", None)
    addresses = resolve(stage.host, stage.port)
    record = _record_path(config)
    previous, reloaded_at = _read_record(record, stage)
    if previous == addresses:
        return Refresh("current", stage, addresses, previous)
    since = clock() - reloaded_at
    if previous is not None and since < min_interval:
        return Refresh("deferred", stage, addresses, previous, wait=min_interval - since)
    with ConfigState.of(config).locked():
        checked = binary.test_config(config, nginx_bin=nginx_bin, prefix=prefix)
        if not checked.ok:
            raise OperationError(
                f"nginx -t failed, nginx was not reloaded: {checked.error or checked.output}"
            )
        done = binary.reload(config, nginx_bin=nginx_bin, prefix=prefix)
        if not done.ok:
            raise OperationError(f"nginx -s reload failed: {done.error or done.output}")
    _write_record(record, stage, addresses, clock())
    return Refresh("reloaded", stage, addresses, previous)


def _write_record(path: Path, stage: StageName, addresses: tuple[str, ...], at: float) -> None:
    data = {"host": stage.host, "port": stage.port, "addresses": list(addresses), "reloaded_at": at}
    make_private_dirs(path.parent)
    write_atomic(path, json.dumps(data, indent=2) + "\n", default_mode=0o600)


def _refresh_written(
    config: Path,
    parsed: NginxConfig,
    written: WrittenStage,
    *,
    nginx_bin: str,
    prefix: Path | None,
    min_interval: float,
    look_up: LookUp,
    clock: Callable[[], float],
    backup_dir: Path | None,
) -> Refresh:
    """Rewrite the relay's kept address when the stage's name no longer resolves to it."""
    server = written.servers[0]
    stage = StageName(written.host, written.port, server.where)
    addresses = look_up(relay_resolvers(parsed), written.host)
    kept = written.addresses[0]
    if kept in addresses:
        return Refresh("current", stage, addresses, written.addresses, kept=kept)
    record = _record_path(config)
    _, rewritten_at = _read_record(record, stage)
    since = clock() - rewritten_at
    if rewritten_at and since < min_interval:
        return Refresh(
            "deferred", stage, addresses, written.addresses, min_interval - since, kept=kept
        )
    new = addresses[0]
    rewrite_marked_line(
        config,
        server.file,
        server.line,
        server.args[0],
        address_port(new, written.port),
        nginx_bin=nginx_bin,
        prefix=prefix,
        backup_dir=backup_dir,
    )
    _write_record(record, stage, addresses, clock())
    return Refresh("rewritten", stage, addresses, written.addresses, kept=new)


def rewrite_marked_line(
    config: Path,
    path: Path,
    line: int,
    old: str,
    new: str,
    *,
    nginx_bin: str = "nginx",
    prefix: Path | None = None,
    backup_dir: Path | None = None,
    reload: bool = True,
) -> None:
    """Replace `old` by `new` in one of hookshift's lines (`path`, 1-based `line`), and in the
    record of the lines apply wrote, so that ``mirror remove`` still takes it out: the same safe
    write as apply (backup, ``nginx -t``, reload, everything put back on failure)."""
    old_text = read_text(path)
    lines = old_text.split("\n")  # nginx's lines: LF only (str.splitlines splits on more)
    old_line = lines[line - 1] if 0 < line <= len(lines) else ""
    if not old_line.rstrip("\r").endswith(MARK) or old not in old_line:
        raise OperationError(f"{path}:{line} is not the line of hookshift's it should be")
    new_line = old_line.replace(old, new, 1)
    lines[line - 1] = new_line
    recorded = record_for(ConfigState.of(config).load().records, path)
    records: dict[str, FileRecord | None] = {}
    if recorded is not None:
        bare_old, bare_new = old_line.rstrip("\r\n"), new_line.rstrip("\r\n")
        swapped = tuple(bare_new if kept == bare_old else kept for kept in recorded.lines)
        records[str(path)] = FileRecord(swapped, recorded.splits)
    write_edits(
        [Edit(path, old_text, "\n".join(lines))],
        config=config,
        nginx_bin=nginx_bin,
        backup_dir=backup_dir or default_backup_dir(),
        reload=reload,
        prefix=prefix,
        records=records,
        op="refresh",
    )


SERVICE_UNIT = "hookshift-stage-refresh.service"
TIMER_UNIT = "hookshift-stage-refresh.timer"

# What the service's sandbox (templates/systemd/hookshift-stage-refresh.service.j2) does to the
# paths `refresh` uses. PrivateTmp=yes gives it a /tmp and /var/tmp of its own: nothing of the
# host's is there, and what it writes there is gone at its stop. ProtectHome=read-only and
# ProtectSystem=full leave the other paths readable, and writable only where ReadWritePaths
# opens them.
_PRIVATE = {top: rule for top, rule in SANDBOX_HIDES.items() if rule == "PrivateTmp=yes"}
_READ_ONLY = {
    **{
        top: "ProtectHome=read-only"
        for top, rule in SANDBOX_HIDES.items()
        if rule == "ProtectHome=yes"
    },
    **dict.fromkeys(map(Path, ("/usr", "/boot", "/efi", "/etc")), "ProtectSystem=full"),
}
NGINX_PID_PATH = "logs/nginx.pid"  # nginx's built-in --pid-path, under its prefix
_OUTSIDE_TMP = (
    f"install it outside /tmp and /var/tmp, e.g. {INSTALL_HOOKSHIFT}, then --hookshift-bin "
    f"{SYSTEM_HOOKSHIFT}"
)


@dataclass(frozen=True)
class NginxPaths:
    """What `refresh` makes nginx read and write besides hookshift's own state, which the
    service's sandbox must leave it (`nginx_paths` finds them)."""

    files: tuple[Path, ...]  # the config and every file it includes: nginx -t reads them all
    edited: tuple[Path, ...]  # those refresh (or its recovery of a killed write) may replace
    logs: tuple[Path, ...]  # the log files nginx -t opens for writing
    pid: Path  # nginx -t opens it for writing too; nginx -s reload reads it to find nginx


def nginx_paths(
    config: Path,
    nginx_bin: str = "nginx",
    prefix: Path | None = None,
    defaults: Mapping[str, str] | None = None,
) -> NginxPaths:
    """The `NginxPaths` of the main config `config` for the nginx at `nginx_bin` started with
    `prefix` (its ``-p``), resolved as nginx resolves them: a relative path under the prefix,
    else under the compiled-in one. `defaults` are ``nginx -V``'s paths (asked of `nginx_bin`
    when None).

    The edited files are those holding an ``http`` block (where the stage's address is
    written) and those holding hookshift's lines. The logs are every ``access_log`` and
    ``error_log`` file plus nginx's compiled-in ones, which it opens where the config names
    none; a path with a variable is opened per request, not by ``nginx -t``.
    """
    check_prefix(prefix)
    if defaults is None:
        found = binary.find_binary(nginx_bin)
        if found is None:
            raise InputError(
                f"nginx binary not found: {nginx_bin}",
                where="--nginx-bin",
                fix="pass the path of the nginx that serves the config, e.g. /usr/sbin/nginx",
            )
        defaults = binary.compiled_defaults(found)
    chosen = {**defaults, "prefix": str(prefix)} if prefix is not None else dict(defaults)
    root = Path(chosen.get("prefix") or BUILT_IN_PATHS["prefix"])
    parsed = load(config)
    logs = [
        log_file(chosen.get(key) or BUILT_IN_PATHS[key], root)
        for key in ("error-log-path", "http-log-path")
    ]
    pid = chosen.get("pid-path") or NGINX_PID_PATH
    for d, parents in parsed.walk():
        if d.name in ("access_log", "error_log") and d.args and "$" not in d.args[0]:
            logs.append(log_file(d.args[0], root))
        elif d.name == "pid" and d.args and not parents:
            pid = d.args[0]
    edited = {d.file for d in parsed.http_blocks()}
    edited.update(path for path in parsed.files if has_marks(read_text(path)))
    return NginxPaths(
        files=tuple(parsed.files),
        edited=tuple(sorted(edited)),
        logs=tuple(dict.fromkeys(log for log in logs if log is not None)),
        pid=Path(pid) if Path(pid).is_absolute() else root / pid,
    )


@dataclass(frozen=True)
class RefreshUnits:
    """The systemd service and timer that run `refresh` for one config.

    `hookshift_bin` None: the hookshift running (`hookshift.systemd.running_hookshift`).
    `state_dir` None: this hookshift's state dir (`state.state_root`), where `mirror apply`
    and `remove` run from here keep the record of the lines they wrote: refresh must update
    that record when it rewrites the stage's address, or `remove` would not take the rewritten
    line out. `nginx`: what `nginx_paths` found; None leaves only the config's own directory
    writable and checks only the config's own path.
    """

    hookshift_bin: Path | None
    config: Path
    nginx_bin: str = "/usr/sbin/nginx"
    state_dir: Path | None = None
    interval: str = "1min"
    min_interval: float = DEFAULT_MIN_INTERVAL
    nginx_prefix: Path | None = None
    nginx: NginxPaths | None = None

    @property
    def executable(self) -> Path:
        return self.hookshift_bin or running_hookshift()

    @property
    def state(self) -> Path:
        return self.state_dir or state_root()

    def argv(self) -> list[str]:
        prefix = ["--nginx-prefix", str(self.nginx_prefix)] if self.nginx_prefix else []
        return [
            str(self.executable),
            "mirror",
            "refresh",
            "--config",
            str(self.config),
            "--nginx-bin",
            self.nginx_bin,
            *prefix,
            "--min-interval",
            f"{self.min_interval:g}",
        ]

    def write_paths(self) -> list[str]:
        """The service's ReadWritePaths: the directory of each file refresh may replace (it
        writes a temp file beside it and renames it), the state dir (its record, the intent of
        a write, the backups) and each directory where nginx -t opens a log or the pid file
        (it does, to create it) that the sandbox would leave read-only. ``-``: ignored while it
        does not exist (the state dir before the first apply; a directory nginx itself would
        fail on)."""
        edited = self.nginx.edited if self.nginx is not None else (self.config,)
        dirs = list(dict.fromkeys(Path(os.path.realpath(path)).parent for path in edited))
        optional = [self.state]
        written = (*self.nginx.logs, self.nginx.pid) if self.nginx is not None else ()
        for path in written:
            where = Path(os.path.realpath(path)).parent
            if (
                not any(where.is_relative_to(d) for d in [*dirs, *optional])
                and hidden(path, hides=_PRIVATE) is None  # nginx -t writes a private copy
                and hidden(where, hides=_READ_ONLY) is not None
            ):
                optional.append(where)
        return [*map(str, dirs), *(f"-{path}" for path in optional)]

    def check(self) -> None:
        """Refuse, before anything is written, what the unit could not do in its sandbox or
        would do against the wrong record (see `_check_sandbox` and `_check_record`)."""
        named = {"--config": self.config, "--state-dir": self.state}
        if self.hookshift_bin is not None:
            named = {"--hookshift-bin": self.hookshift_bin, **named}
        if self.nginx_prefix is not None:
            named["--nginx-prefix"] = self.nginx_prefix
        require_absolute(named)
        if not re.fullmatch(r"[1-9][0-9]*(s|min|h)", self.interval):
            raise InputError(
                f"{self.interval!r} is not a time span systemd reads here",
                where="--interval",
                fix="a number with s, min or h, e.g. 1min",
            )
        check_prefix(self.nginx_prefix)
        self._check_sandbox()
        self._check_record()

    def _check_sandbox(self) -> None:
        """Refuse a path the service needs that its private /tmp hides: the hookshift it runs
        (with its Python), nginx, every file of the config, nginx's prefix and pid file (the
        reload finds nginx through it), and the state dir (emptied at every stop: the record of
        nginx's last reload would be lost, and nginx reloaded every run). Home directories and
        the system stay readable, and what refresh writes there is opened by `write_paths`."""
        program = self.executable
        _refuse(
            hidden_program(program, hides=_PRIVATE),
            "the service cannot run it",
            f"--hookshift-bin {program}"
            if self.hookshift_bin is not None
            else f"hookshift {program} (the one running: no --hookshift-bin given)",
            _OUTSIDE_TMP,
        )
        if self.nginx_bin.startswith("/"):
            _refuse(
                hidden_program(Path(self.nginx_bin), hides=_PRIVATE),
                "the service cannot run it",
                f"--nginx-bin {self.nginx_bin}",
                "pass the nginx that serves the config, e.g. /usr/sbin/nginx",
            )
        for path in self.nginx.files if self.nginx is not None else (self.config,):
            named = f"--config {self.config}"
            _refuse(
                hidden(path, hides=_PRIVATE),
                "the service cannot read it",
                named if path == self.config else f"{path} (included by {named})",
                "keep nginx's config where nginx keeps it, e.g. /etc/nginx",
            )
        if self.nginx_prefix is not None:
            _refuse(
                hidden(self.nginx_prefix, hides=_PRIVATE),
                "the service cannot reach nginx's files there",
                f"--nginx-prefix {self.nginx_prefix}",
                "run nginx with its files outside /tmp and /var/tmp",
            )
        if self.nginx is not None:
            _refuse(
                hidden(self.nginx.pid, hides=_PRIVATE),
                "the service cannot find nginx to reload it",
                f"{self.nginx.pid} (nginx's pid file)",
                "keep nginx's pid file outside /tmp and /var/tmp, e.g. `pid /run/nginx.pid;`",
            )
        _refuse(
            hidden(self.state, hides=_PRIVATE),
            "the service cannot keep its state there",
            self._state_option,
            "keep hookshift's state outside /tmp and /var/tmp: pass --state-dir "
            "/var/lib/hookshift, and run `mirror apply` and `remove` with "
            "HOOKSHIFT_STATE_DIR=/var/lib/hookshift",
        )

    @property
    def _state_option(self) -> str:
        if self.state_dir is not None:
            return f"--state-dir {self.state_dir}"
        return f"hookshift's state dir {self.state} (no --state-dir given)"

    def _check_record(self) -> None:
        """Refuse a state dir other than the one holding the record of the lines `mirror apply`
        wrote into the config from here: when refresh rewrites the stage's address it updates
        the record it finds, and `mirror remove`, reading the other one, would refuse the
        rewritten line as not hookshift's."""
        here = ConfigState.of(self.config)
        chosen = ConfigState.of(self.config, self.state)
        if here.directory.resolve() == chosen.directory.resolve():
            return
        if here.file.exists() and not chosen.file.exists():
            raise InputError(
                f"the lines `mirror apply` wrote into {self.config} are recorded in "
                f"{here.directory}, not under this state dir: after the service rewrote the "
                "stage's address there, `mirror remove` would refuse that line",
                where=self._state_option,
                fix="leave --state-dir out, or move that directory into "
                f"{chosen.directory.parent} and run `mirror apply` and `remove` with "
                f"HOOKSHIFT_STATE_DIR={self.state}",
            )


def _refuse(found: Hidden | None, what: str, where: str, fix: str) -> None:
    """One refusal of a path the service's sandbox hides (`found`; None: nothing to refuse)."""
    if found is not None:
        raise InputError(f"{what}: {found.reason('the service')}", where=where, fix=fix)


def render_refresh_units(spec: RefreshUnits) -> dict[str, str]:
    """File name -> text of the service and its timer, after `RefreshUnits.check`."""
    from hookshift.templates import render

    spec.check()
    return {
        SERVICE_UNIT: render(
            f"systemd/{SERVICE_UNIT}.j2",
            exec_start=command_line(spec.argv()),
            state_dir=systemd_quote(str(spec.state)),
            write_paths=[path_list([path]) for path in spec.write_paths()],
        ),
        TIMER_UNIT: render(
            f"systemd/{TIMER_UNIT}.j2", service=SERVICE_UNIT, interval=spec.interval
        ),
    }
