"""The mirror as Python calls: one request type, plan/apply/remove/recover, typed results.

``hookshift mirror`` and every other part (the cut-over, the rehearsal) go through these
functions, so what a stage writes is what the command writes. They print nothing: the lines
a person should read (info, warnings) come back in the result, in the order they arose, and
the command prints them. Every error is a `hookshift.errors.HookshiftError` (bad input:
`InputError`, exit code 2, nothing written).

The request says what the user chose; ``None`` means "the default", which this module works
out from the nginx binary (its version, where its config and logs are) the way the command
does. `plan.plan_from` stays pure: it gets every value already decided, and the config is
read once (`plan.read_plan_source`) however many plans are made of it.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, get_args

from hookshift.errors import InputError
from hookshift.logfile import rotation_warning
from hookshift.mirror.apply import (
    Edit,
    apply_plan,
    default_backup_dir,
    missing_directories,
    pending_change,
    write_edits,
)
from hookshift.mirror.apply import recover as recover_config
from hookshift.mirror.dnscheck import host_resolver, look_up_stage
from hookshift.mirror.plan import (
    BESIDE_ACCESS_LOG,
    DEFAULT_RELAY_SOCKET,
    DEFAULT_RESOLVERS,
    Beside,
    MirrorOptions,
    MirrorPlan,
    default_resolvers_info,
    describe_layout,
    plan_from,
    read_plan_source,
    system_ca_bundle,
)
from hookshift.mirror.remove import remove_marked
from hookshift.mirror.render import Mode, StageDns
from hookshift.nginx import binary
from hookshift.nginx.discover import BUILT_IN_PATHS, compiled_path, locate_main_config
from hookshift.nginx.source import read_text


class NoLog(enum.Enum):
    """The value of `MirrorRequest.parity_log` that asks for no parity log at all."""

    NO_LOG = "no log"


NO_LOG: Final = NoLog.NO_LOG
NO_PARITY_LOG_NOTE = "no parity log: `hookshift verify parity` needs one to compare against"


@dataclass(frozen=True, kw_only=True)
class MirrorRequest:
    """What the user chooses for a mirror (or forward), as ``hookshift mirror plan`` takes it.

    ``None`` (and an empty tuple) leave the choice to hookshift: `config` is nginx's compiled-in
    main config (a site file leads to the main config that includes it); `resolvers` are
    `plan.DEFAULT_RESOLVERS`; `parity_log` goes beside the access log nginx writes for the
    callback (`NO_LOG`: none); `trusted_ca` is the system's CA bundle; `timeout` depends on
    `mode`; `mirror_error_log` goes beside a `parity_log` given, else beside that access log;
    `stage_dns` is the default for the nginx version;
    `nginx_version` is asked of `nginx_bin`; `nginx_prefix` is nginx's ``-p``, under which
    relative paths resolve (nginx -V's too). `dns_check` queries each resolver for the stage
    host (a real DNS query) and adds a warning for each that does not answer; on nginx before
    1.27.3 with run-time DNS the address it gives is written for the relay to keep connections
    to (without `dns_check`, every copy goes by the name).
    """

    path: str
    stage_url: str
    config: Path | None = None
    server_name: str | None = None
    listen: str | None = None
    resolvers: tuple[str, ...] = ()
    parity_log: Path | NoLog | None = None
    request_id_header: str = "X-Request-Id"
    request_id_to_app: bool = False
    stage_path: str | None = None
    trusted_ca: Path | None = None
    timeout: float | None = None
    mode: Mode = "mirror"
    relay_socket: str = DEFAULT_RELAY_SOCKET
    mirror_error_log: Path | None = None
    stage_dns: StageDns | None = None
    keep_headers: tuple[str, ...] = ()
    nginx_bin: str = "nginx"
    nginx_version: str | None = None
    nginx_prefix: Path | None = None  # nginx's -p: where relative paths resolve
    dns_check: bool = True

    def __post_init__(self) -> None:
        # a path given as a str (as `open` takes one) is a Path from here on
        for name in ("config", "trusted_ca", "mirror_error_log", "nginx_prefix"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Path(value))
        if isinstance(self.parity_log, str) and self.parity_log != NO_LOG:
            object.__setattr__(self, "parity_log", Path(self.parity_log))


@dataclass(frozen=True)
class Line:
    """One line for the user: ``info`` or ``warning`` and its text."""

    level: str
    text: str


def _lines(level: str, texts: tuple[str, ...] | list[str]) -> tuple[Line, ...]:
    return tuple(Line(level, text) for text in texts)


@dataclass(frozen=True)
class PlanResult:
    """A plan and what to tell the user about it; nothing was written."""

    plan: MirrorPlan
    lines: tuple[Line, ...]

    @property
    def config(self) -> Path:
        """The main config the plan is for (the one the user named, or the one including it)."""
        return self.plan.options.config

    @property
    def already_applied(self) -> bool:
        return self.plan.already_applied

    @property
    def info(self) -> tuple[str, ...]:
        return tuple(line.text for line in self.lines if line.level == "info")

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(line.text for line in self.lines if line.level == "warning")

    @property
    def summary(self) -> str:
        """Which location is changed, in which server, and how the copies travel."""
        p = self.plan
        return (
            f"{p.mode} via {p.location.description} at {p.location.where} "
            f"({p.server.description}); {describe_layout(p.layout)}"
        )

    def diff(self) -> str:
        """The unified diff of every file the plan changes (empty when already applied)."""
        return self.plan.diff()

    def to_json(self) -> dict[str, Any]:
        return self.plan.to_json()


@dataclass(frozen=True, kw_only=True)
class _Written:
    """What a write did: which files changed, where their backups are, whether nginx reloaded."""

    changed: tuple[Path, ...]
    backup_dir: Path | None
    reloaded: bool
    notes: tuple[str, ...] = ()  # warnings: lines left in place, a killed run's change undone

    @property
    def no_change(self) -> bool:
        return not self.changed

    def _written_json(self) -> dict[str, Any]:
        return {
            "changed": [str(p) for p in self.changed],
            "backup_dir": str(self.backup_dir) if self.backup_dir else None,
            "reloaded": self.reloaded,
        }


@dataclass(frozen=True, kw_only=True)
class ApplyResult(_Written):
    """A plan written (nothing, when it was already applied)."""

    planned: PlanResult
    recovered: tuple[str, ...] = ()  # what undoing a killed earlier run did, before planning

    @property
    def lines(self) -> tuple[Line, ...]:
        """Every line for the user, in order: recovery, the plan's, the write's."""
        return (
            *_lines("warning", self.recovered),
            *self.planned.lines,
            *_lines("warning", self.notes),
        )

    def to_json(self) -> dict[str, Any]:
        return {**self.planned.to_json(), "applied": self._written_json()}


@dataclass(frozen=True, kw_only=True)
class RemoveResult(_Written):
    """hookshift's lines taken out of every file of `config`."""

    config: Path
    located: tuple[Line, ...] = ()  # which main config was chosen, when not the one named

    @property
    def lines(self) -> tuple[Line, ...]:
        return (*self.located, *_lines("warning", self.notes))

    def to_json(self) -> dict[str, Any]:
        return {**self._written_json(), "warnings": list(self.notes)}


@dataclass(frozen=True)
class NginxFacts:
    """What the nginx binary says about itself (no defaults when there is no binary to ask),
    and its prefix when it runs with ``-p``."""

    version: tuple[int, int, int]
    defaults: Mapping[str, str] | None  # None: no binary to ask
    run_prefix: Path | None = None  # nginx's -p

    @property
    def access_log(self) -> Path | None:
        return compiled_path(self.defaults, "http-log-path")

    @property
    def prefix(self) -> Path | None:
        """Where nginx resolves a relative log path: ``-p``, else the compiled ``--prefix``;
        None when neither is known."""
        if self.run_prefix is not None:
            return self.run_prefix
        if self.defaults is None:
            return None
        return Path(self.defaults.get("prefix") or BUILT_IN_PATHS["prefix"])


PREFIX_FIX = (
    "pass the directory nginx is started with (its -p), or leave --nginx-prefix out when nginx "
    "runs without -p"
)


def check_prefix(prefix: str | os.PathLike[str] | None) -> None:
    """Refuse an nginx ``-p`` prefix that is not a directory, before nginx is run or anything
    is written.

    nginx does not check it: ``nginx -t -p TYPO/`` passes on a config whose paths are all
    absolute, so a typo would show only at a reload that finds no pid file there, or as logs
    written in the wrong place. Every call of this API that takes a prefix refuses it first,
    and so does the cut-over before its journal records one.
    """
    if prefix is None:
        return
    path = Path(prefix)
    if not path.is_dir():
        problem = "not a directory" if path.exists() else "no such directory"
        raise InputError(f"--nginx-prefix {os.fspath(prefix)}: {problem}", fix=PREFIX_FIX)


def nginx_facts(
    nginx_bin: str, version: str | None = None, prefix: Path | None = None
) -> NginxFacts:
    """The binary's version (or `version`, to plan offline) and its compiled-in paths (under
    `prefix` when nginx runs with ``-p``)."""
    check_prefix(prefix)
    found = binary.find_binary(nginx_bin)
    defaults = binary.compiled_defaults(found) if found is not None else None
    if defaults is not None and prefix is not None:
        defaults = {**defaults, "prefix": str(prefix)}
    if version is not None:
        number = binary.version_number(version)
        if number is None:
            raise InputError(
                f"--nginx-version must be X.Y.Z, not {version!r}",
                fix="e.g. --nginx-version 1.22.1 (`nginx -v` prints it)",
            )
        return NginxFacts(number, defaults, prefix)
    if found is None:
        raise InputError(
            f"nginx binary not found: {nginx_bin}",
            fix="pass --nginx-bin PATH, or --nginx-version X.Y.Z to plan offline",
        )
    return NginxFacts(binary.nginx_version(found), defaults, prefix)


def main_config(config: Path | None, nginx_bin: str = "nginx") -> tuple[Path, tuple[Line, ...]]:
    """The main config to work on, and a line saying why when it is not `config` itself."""
    chosen = locate_main_config(config, nginx_bin)
    return chosen.path, _lines("info", [chosen.note] if chosen.note else [])


def _parity_log(chosen: Path | NoLog | None) -> Path | Beside | None:
    """The choice; else beside the access log nginx writes for the callback, which the plan
    finds in the config."""
    if isinstance(chosen, NoLog):
        return None
    return BESIDE_ACCESS_LOG if chosen is None else chosen


def _check_choice(name: str, value: object, allowed: object) -> None:
    choices = get_args(allowed)
    if value not in choices:
        raise InputError(f"{name} {value!r} is not one of: {', '.join(choices)}")


def options_for(request: MirrorRequest, config: Path, facts: NginxFacts) -> MirrorOptions:
    """The plan's options: the request with every default decided."""
    _check_choice("mode", request.mode, Mode)
    if request.stage_dns is not None:
        _check_choice("stage_dns", request.stage_dns, StageDns)
    chosen: dict[str, Any] = {}
    if request.stage_dns is not None:
        chosen["stage_dns"] = request.stage_dns
    return MirrorOptions(
        config=config,
        path=request.path,
        stage_url=request.stage_url,
        server_name=request.server_name,
        listen=request.listen,
        resolvers=request.resolvers or DEFAULT_RESOLVERS,
        parity_log=_parity_log(request.parity_log),
        request_id_header=request.request_id_header,
        request_id_to_app=request.request_id_to_app,
        stage_path=request.stage_path,
        # a path on the command line is the user's, from where they are: nginx would read a
        # relative one from its own config directory
        trusted_ca=Path(request.trusted_ca).absolute()
        if request.trusted_ca
        else system_ca_bundle(),
        timeout=request.timeout,
        mode=request.mode,
        relay_socket=request.relay_socket,
        default_access_log=None if facts.access_log is None else str(facts.access_log),
        nginx_prefix=facts.prefix,
        mirror_error_log=request.mirror_error_log,
        keep_headers=request.keep_headers,
        **chosen,
    )


def plan(request: MirrorRequest) -> PlanResult:
    """What apply would change (the diff) and why, without writing anything.

    A change that a killed earlier run left unfinished is named in a warning: the next apply
    or remove puts those files back first; so is each directory the result needs that does
    not exist here (apply refuses it, in the same words). Without `MirrorRequest.resolvers`
    an info line says what asking the public `DEFAULT_RESOLVERS` trades, and suggests this
    host's resolver (/etc/resolv.conf).
    """
    facts = nginx_facts(request.nginx_bin, request.nginx_version, request.nginx_prefix)
    config, lines = main_config(request.config, request.nginx_bin)
    pending = pending_change(config)
    if pending:
        warning = Line("warning", f"{pending}: the next apply or remove puts them back first")
        lines = (warning, *lines)
    if request.parity_log is NO_LOG:
        lines = (*lines, Line("info", NO_PARITY_LOG_NOTE))
    options = options_for(request, config, facts)
    read = read_plan_source(config)
    result = plan_from(read, options, facts.version)
    if request.dns_check:
        found = look_up_stage(options.resolvers, result.stage.host)
        if result.keeps_stage_addresses and not result.stage_addresses and found.addresses:
            options = dataclasses.replace(options, stage_addresses=found.addresses)
            result = plan_from(read, options, facts.version)
        result = dataclasses.replace(result, warnings=(*result.warnings, *found.warnings))
    if not request.resolvers and result.asks_resolvers:
        told = default_resolvers_info(result, host_resolver())
        result = dataclasses.replace(result, info=(*result.info, told))
    # what apply would refuse on this machine (the plan may be for another one)
    missing = tuple(problem.line() for problem in missing_directories(result, request.nginx_prefix))
    if missing:
        result = dataclasses.replace(result, warnings=(*result.warnings, *missing))
    rotation = (
        rotation_warning(result.parity_log, worker=read.stripped.config.worker_user())
        if result.parity_log is not None
        else None
    )
    if rotation is not None:
        result = dataclasses.replace(result, warnings=(*result.warnings, rotation))
    return PlanResult(
        result, (*lines, *_lines("info", result.info), *_lines("warning", result.warnings))
    )


def recover(config: Path | None = None, *, nginx_bin: str = "nginx") -> tuple[str, ...]:
    """Undo a change of the main config that a killed run left unfinished (a no-op when there
    is none); what was done, as warnings for the user."""
    path, _ = main_config(config, nginx_bin)
    return recover_config(path)


def write(
    planned: PlanResult,
    *,
    nginx_bin: str = "nginx",
    backup_dir: Path | None = None,
    reload: bool = False,
    prefix: Path | None = None,
    ready: Callable[[], None] | None = None,
) -> ApplyResult:
    """Write a plan made by `plan` (lock, ``nginx -t``, backup, atomic writes, ``nginx -t``,
    optional reload; everything put back on failure). A plan already applied writes nothing.

    `ready` runs once every check has passed, just before the first byte is backed up or
    written: where a caller shows what is about to change.
    """
    check_prefix(prefix)
    outcome = apply_plan(
        planned.plan,
        nginx_bin=nginx_bin,
        backup_dir=backup_dir,
        reload=reload,
        prefix=prefix,
        ready=ready,
    )
    return ApplyResult(
        planned=planned,
        changed=outcome.changed,
        backup_dir=outcome.backup_dir,
        reloaded=outcome.reloaded,
        notes=outcome.notes,
    )


def apply(
    request: MirrorRequest,
    *,
    backup_dir: Path | None = None,
    reload: bool = False,
    prefix: Path | None = None,
) -> ApplyResult:
    """Undo a killed earlier run's unfinished change, plan, and write the plan.

    `backup_dir` defaults to hookshift's state directory; `prefix` is nginx's ``-p`` (relative
    paths in the config resolve there); `reload` runs ``nginx -s reload`` after ``nginx -t``
    passes and checks that the running nginx took the new config.
    """
    check_prefix(request.nginx_prefix)  # before the recovery, which may already write
    check_prefix(prefix)
    recovered = recover(request.config, nginx_bin=request.nginx_bin)
    done = write(
        plan(request),
        nginx_bin=request.nginx_bin,
        backup_dir=backup_dir,
        reload=reload,
        prefix=prefix,
    )
    return dataclasses.replace(done, recovered=recovered)


def remove(
    config: Path | None = None,
    *,
    nginx_bin: str = "nginx",
    backup_dir: Path | None = None,
    reload: bool = False,
    prefix: Path | None = None,
) -> RemoveResult:
    """Take hookshift's lines out of every file of the config: each file byte-identical to what
    it was before apply. Lines that do not match what apply wrote stay, each named in a note."""
    check_prefix(prefix)
    path, located = main_config(config, nginx_bin)
    outcome = remove_marked(
        path, nginx_bin=nginx_bin, backup_dir=backup_dir, reload=reload, prefix=prefix
    )
    return RemoveResult(
        config=path,
        located=located,
        changed=outcome.changed,
        backup_dir=outcome.backup_dir,
        reloaded=outcome.reloaded,
        notes=outcome.notes,
    )


def write_back(
    config: Path,
    texts: Mapping[Path, str],
    *,
    nginx_bin: str = "nginx",
    backup_dir: Path | None = None,
    reload: bool = False,
    prefix: Path | None = None,
) -> tuple[Path, ...]:
    """Put each file of `config` named in `texts` back to that text (bytes recorded earlier,
    e.g. a stage of a cut-over) through the same safe pipeline as apply, in the order given;
    the files written.

    The files they replace need not pass ``nginx -t``: undoing a change killed half-way is
    what this is for. The result must pass it, or everything is put back as it was.
    """
    check_prefix(prefix)
    edits = [Edit(path, read_text(path), text) for path, text in texts.items()]
    done = write_edits(
        edits,
        config=config,
        nginx_bin=nginx_bin,
        backup_dir=backup_dir or default_backup_dir(),
        reload=reload,
        require_valid_original=False,
        prefix=prefix,
    )
    return done.changed
