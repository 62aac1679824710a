"""``hookshift mirror plan|apply|remove``: copy (or forward) the callback path to API Gateway.

A thin layer over `hookshift.mirror.api`: options -> `MirrorRequest` -> the API -> printed.
The options are declared once, in `OPTIONS`; ``hookshift cutover init`` records the same ones
(`option_list`), so both commands take the same names, types and choices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from hookshift.console import ConfigPath, NonEmptyPath, apply_options, diag, emit_json, stdout_guard
from hookshift.errors import InputError
from hookshift.mirror import api
from hookshift.mirror.apply import default_backup_dir
from hookshift.mirror.plan import (
    DEFAULT_PARITY_LOG,
    DEFAULT_RELAY_SOCKET,
    DEFAULT_RESOLVERS,
    DEFAULT_TRUSTED_CA,
    PARITY_LOG_NAME,
)

EXAMPLES = """
\b
Examples:
  hookshift mirror plan --config /etc/nginx/nginx.conf --path /callback \\
      --stage-url https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod \\
      --parity-log /var/log/nginx/hookshift-parity.log
  hookshift mirror apply ... (same options) --reload
  hookshift mirror plan ... --stage-dns reload (nginx < 1.27.3: the stage's name in an
      upstream; nginx then needs DNS for it to start)
  hookshift mirror refresh --config /etc/nginx/nginx.conf  (nginx < 1.27.3: move the relay
      to the stage's new address; `mirror refresh-units` runs it every minute)
  hookshift mirror plan ... --mode forward     (cut-over stage 4: send, not copy)
  hookshift mirror remove --config /etc/nginx/nginx.conf --reload
"""


_Decorated = TypeVar("_Decorated", bound=Callable[..., Any])

# nginx's -p: an empty value would be taken as the current directory
PREFIX_TYPE = NonEmptyPath(
    "pass the directory nginx is started with (its -p), or leave --nginx-prefix out"
)


# Every option a mirror takes: parameter name -> (click's declarations, click's settings).
OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "config": (
        ("--config", "config"),
        {
            "default": None,
            "type": ConfigPath(),
            "help": "nginx's main config, or a site file it includes (sites-enabled/NAME); "
            "includes are followed. Default: the config nginx was built with (nginx -V).",
        },
    ),
    "path": (
        ("--path", "path"),
        {"required": True, "help": "The callback path, e.g. /callback."},
    ),
    "stage_url": (
        ("--stage-url",),
        {
            "required": True,
            "help": "https://ID.execute-api.REGION.amazonaws.com/STAGE or a custom domain.",
        },
    ),
    "server_name": (
        ("--server-name",),
        {"default": None, "help": "Host the vendor calls (server_name)."},
    ),
    "listen": (
        ("--listen",),
        {"default": None, "help": "Socket the vendor reaches: PORT, ADDR:PORT or unix:PATH."},
    ),
    "resolvers": (
        ("--resolver", "resolvers"),
        {
            "multiple": True,
            "metavar": "ADDR[:PORT]",
            "help": "DNS resolver for the stage host (repeatable). "
            f"Default: {' '.join(DEFAULT_RESOLVERS)}.",
        },
    ),
    "parity_log": (
        ("--parity-log",),
        {
            "type": click.Path(path_type=Path),
            "default": None,
            "help": "Where nginx logs each callback for `hookshift verify parity`. Default: "
            f"{PARITY_LOG_NAME} beside the access log nginx writes for the callback's location "
            "(a relative one under --nginx-prefix), else beside nginx's compiled-in one "
            f"({DEFAULT_PARITY_LOG} on Debian).",
        },
    ),
    "no_parity_log": (
        ("--no-parity-log",),
        {
            "is_flag": True,
            "help": "Write no parity log (then `hookshift verify parity` has nothing to compare).",
        },
    ),
    "request_id_header": (
        ("--request-id-header",),
        {
            "default": "X-Request-Id",
            "show_default": True,
            "help": "Header carrying nginx's $request_id to the stage.",
        },
    ),
    "request_id_to_app": (
        ("--request-id-to-app",),
        {"is_flag": True, "help": "Also send the request-id header to the app."},
    ),
    "stage_path": (
        ("--stage-path",),
        {"default": None, "help": "Fixed resource path on the stage instead of STAGE$request_uri."},
    ),
    "trusted_ca": (
        ("--trusted-ca",),
        {
            "type": click.Path(path_type=Path),
            "default": None,
            "help": "CA bundle to verify the stage's certificate (default: the system's, "
            f"{DEFAULT_TRUSTED_CA} on Debian).",
        },
    ),
    "timeout": (
        ("--timeout",),
        {
            "type": float,
            "default": None,
            "help": "Proxy timeout in seconds (default 2 for mirror, 10 for forward).",
        },
    ),
    "mode": (
        ("--mode",),
        {
            "type": click.Choice(["mirror", "forward"]),
            "default": "mirror",
            "show_default": True,
            "help": "mirror: copy to the stage; forward: send instead.",
        },
    ),
    "relay_socket": (
        ("--relay-socket",),
        {
            "default": DEFAULT_RELAY_SOCKET,
            "show_default": True,
            "help": "Unix socket of the local relay that answers the copy at once and sends it "
            "on. In a directory named hookshift*, nginx creates that directory for its own user "
            "only; elsewhere any local user could reach the relay.",
        },
    ),
    "mirror_error_log": (
        ("--mirror-error-log",),
        {
            "type": click.Path(path_type=Path),
            "default": None,
            "help": "error_log (level warn) of the relay, so an outage's per-copy errors stay "
            "out of your error log. Default: hookshift-mirror.error.log beside --parity-log, "
            "else where the parity log goes by default (see --parity-log).",
        },
    ),
    "stage_dns": (
        ("--stage-dns",),
        {
            "type": click.Choice(["runtime", "reload"]),
            "default": None,
            "help": "nginx before 1.27.3 (copies go through a local relay): runtime (default) = "
            "the relay keeps connections to the address --resolver gives for the stage when "
            "planning (written into the config) and re-resolves the name, a new TLS connection "
            "per copy, when that address fails; reload = the stage's name in an upstream, "
            "resolved (system resolver) only at start and reload, so nginx cannot start while "
            "it does not resolve. Either way `hookshift mirror refresh` keeps the address "
            "current.",
        },
    ),
    "keep_headers": (
        ("--keep-header", "keep_headers"),
        {
            "multiple": True,
            "metavar": "NAME",
            "help": "Send this credential header with the copy (repeatable). By default the copy "
            "goes without Authorization, Cookie and Proxy-Authorization.",
        },
    ),
    "no_dns_check": (
        ("--no-dns-check",),
        {"is_flag": True, "help": "Do not query the resolvers."},
    ),
    "nginx_bin": (
        ("--nginx-bin",),
        {
            "default": "nginx",
            "show_default": True,
            "help": "nginx binary (its version decides how copies reach the stage; nginx -V says "
            "where its config and logs are).",
        },
    ),
    "nginx_version": (
        ("--nginx-version",),
        {
            "default": None,
            "metavar": "X.Y.Z",
            "help": "Plan for this nginx version instead of asking the binary.",
        },
    ),
    "nginx_prefix": (
        ("--nginx-prefix",),
        {
            "type": PREFIX_TYPE,
            "default": None,
            "help": "nginx's -p PREFIX: relative paths in the config, and nginx -V's, resolve "
            "there (apply runs nginx -t with it).",
        },
    ),
    "backup_dir": (
        ("--backup-dir",),
        {
            "type": click.Path(path_type=Path),
            "default": None,
            "help": f"Where backups go (default {default_backup_dir()}).",
        },
    ),
}
_PLAN_OPTIONS = tuple(n for n in OPTIONS if n != "backup_dir")
_UNSET_DEFAULTS = ("default", "required", "show_default")


def option_list(
    *names: str, recorded: bool = False, help: Mapping[str, str] | None = None
) -> list[Callable[[_Decorated], _Decorated]]:
    """click's option decorators for the named mirror options (parameter names of `OPTIONS`).

    `recorded`: for a command that records the choices for a later mirror (``cutover init``):
    nothing is required and nothing has a default, so an option not given stays None (or
    ``()``) and the mirror decides it when it runs, as ``hookshift mirror`` would. `help`
    replaces an option's help where the recording command gives it a wider meaning.
    """
    decorators = []
    for name in names:
        decls, attrs = OPTIONS[name]
        if recorded:
            attrs = {k: v for k, v in attrs.items() if k not in _UNSET_DEFAULTS}
        if help and name in help:
            attrs = {**attrs, "help": help[name]}
        decorators.append(click.option(*decls, **attrs))
    return decorators


def mirror_options(*names: str) -> Callable[[_Decorated], _Decorated]:
    """A decorator adding the named mirror options, in the order given."""
    decorators = option_list(*names)

    def decorate(fn: _Decorated) -> _Decorated:
        return apply_options(fn, decorators)

    return decorate


_plan_options = mirror_options(*_PLAN_OPTIONS)
_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["diff", "json"]),
    default="diff",
    show_default=True,
    help="diff: the unified diff on stdout (what was chosen and why on stderr); json: the plan "
    "(apply: and what was written) as one JSON object on stdout.",
)


def request_from(kwargs: Mapping[str, Any]) -> api.MirrorRequest:
    """The `MirrorRequest` the plan/apply options describe."""
    parity_log: Path | api.NoLog | None = kwargs["parity_log"]
    if kwargs["no_parity_log"]:
        if parity_log is not None:
            raise InputError(
                "--parity-log and --no-parity-log contradict each other", fix="pass one of them"
            )
        parity_log = api.NO_LOG
    return api.MirrorRequest(
        config=kwargs["config"],
        path=kwargs["path"],
        stage_url=kwargs["stage_url"],
        server_name=kwargs["server_name"],
        listen=kwargs["listen"],
        resolvers=tuple(kwargs["resolvers"]),
        parity_log=parity_log,
        request_id_header=kwargs["request_id_header"],
        request_id_to_app=kwargs["request_id_to_app"],
        stage_path=kwargs["stage_path"],
        trusted_ca=kwargs["trusted_ca"],
        timeout=kwargs["timeout"],
        mode=kwargs["mode"],
        relay_socket=kwargs["relay_socket"],
        mirror_error_log=kwargs["mirror_error_log"],
        stage_dns=kwargs["stage_dns"],
        keep_headers=tuple(kwargs["keep_headers"]),
        nginx_bin=kwargs["nginx_bin"],
        nginx_version=kwargs["nginx_version"],
        nginx_prefix=kwargs["nginx_prefix"],
        dns_check=not kwargs["no_dns_check"],
    )


def _show(lines: tuple[api.Line, ...]) -> None:
    for line in lines:
        diag(line.level, line.text)


def _warn(notes: tuple[str, ...]) -> None:
    for note in notes:
        diag("warning", note)


@click.group(epilog=EXAMPLES)
def mirror() -> None:
    """Copy (or forward) the callback path to API Gateway by editing nginx byte-preservingly.

    Every inserted line ends with `# hookshift`; `remove` restores each file byte for byte.
    """


@mirror.command(epilog=EXAMPLES)
@_plan_options
@_format_option
def plan(fmt: str, **kwargs: Any) -> None:
    """Show what apply would change (a unified diff, or --format json); change nothing."""
    result = api.plan(request_from(kwargs))
    _show(result.lines)
    if fmt == "json":
        with stdout_guard():
            emit_json(result.to_json())
        return
    diag("info", result.summary)
    if result.already_applied:
        diag("ok", "already applied: no change")
        return
    with stdout_guard():
        click.echo(result.diff(), nl=False)


@mirror.command(epilog=EXAMPLES)
@_plan_options
@_format_option
@mirror_options("backup_dir")
@click.option("--reload", is_flag=True, help="nginx -s reload after a successful nginx -t.")
def apply(fmt: str, backup_dir: Path | None, reload: bool, **kwargs: Any) -> None:
    """Apply the plan: lock, nginx -t, backup, atomic writes, nginx -t, optional reload."""
    request = request_from(kwargs)
    api.check_prefix(request.nginx_prefix)  # the recovery below may already write
    _warn(api.recover(request.config, nginx_bin=request.nginx_bin))
    planned = api.plan(request)
    if planned.already_applied:
        _show(planned.lines)

    def ready() -> None:
        # once every check has passed: a refusal is its one line, and an unwritable output
        # stops the apply before anything changed
        _show(planned.lines)
        if fmt != "json":
            with stdout_guard("; nothing changed"):
                click.echo(planned.diff(), nl=False)

    outcome = api.write(
        planned,
        nginx_bin=request.nginx_bin,
        backup_dir=backup_dir,
        reload=reload,
        prefix=request.nginx_prefix,
        ready=ready,
    )
    _warn(outcome.notes)
    if fmt == "json":
        with stdout_guard(" (the config was changed)" if outcome.changed else ""):
            emit_json(outcome.to_json())
        return
    if outcome.no_change:
        diag("ok", "already applied: no change" + ("; nginx reloaded" if outcome.reloaded else ""))
        return
    diag(
        "ok",
        f"applied to {len(outcome.changed)} file(s); backup in {outcome.backup_dir}"
        + ("; nginx reloaded" if outcome.reloaded else ""),
    )


_NGINX_BIN_HELP = "nginx binary (for nginx -t and the reload)."


@mirror.command(epilog=EXAMPLES)
@mirror_options("config")
@click.option("--nginx-bin", default="nginx", show_default=True, help=_NGINX_BIN_HELP)
@mirror_options("backup_dir")
@click.option("--reload", is_flag=True, help="nginx -s reload after a successful nginx -t.")
@click.option(
    "--nginx-prefix",
    type=PREFIX_TYPE,
    default=None,
    help="Run nginx with -p PREFIX.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: what was done, on stderr; json: the files changed, the backup and the lines "
    "left in place as one JSON object on stdout.",
)
def remove(
    config: Path | None,
    nginx_bin: str,
    backup_dir: Path | None,
    reload: bool,
    nginx_prefix: Path | None,
    fmt: str,
) -> None:
    """Remove the lines hookshift added from every file of the config (byte-identical
    originals); lines that do not match what apply wrote are named and left in place."""
    outcome = api.remove(
        config, nginx_bin=nginx_bin, backup_dir=backup_dir, reload=reload, prefix=nginx_prefix
    )
    _show(outcome.lines)
    if fmt == "json":
        with stdout_guard(" (the config was changed)" if outcome.changed else ""):
            emit_json(outcome.to_json())
        return
    if outcome.no_change:
        diag(
            "ok",
            "no hookshift lines found: no change"
            + ("; nginx reloaded" if outcome.reloaded else ""),
        )
    else:
        diag(
            "ok",
            f"removed from {len(outcome.changed)} file(s); backup in {outcome.backup_dir}"
            + ("; nginx reloaded" if outcome.reloaded else ""),
        )


# --- mirror refresh, mirror refresh-units: the stage's addresses on nginx before 1.27.3 ---

_min_interval_option = click.option(
    "--min-interval",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds: reload nginx for the stage at most this often.",
)


@mirror.command("refresh")
@click.option(
    "--config",
    type=ConfigPath(),
    default=None,
    help="The main nginx config `mirror apply` changed (default: nginx's compiled-in one).",
)
@click.option("--nginx-bin", default="nginx", show_default=True, help=_NGINX_BIN_HELP)
@_min_interval_option
@click.option(
    "--nginx-prefix",
    type=PREFIX_TYPE,
    default=None,
    help="Run nginx with -p PREFIX.",
)
def refresh_command(
    config: Path | None, nginx_bin: str, min_interval: float, nginx_prefix: Path | None
) -> None:
    """Keep the relay on the stage's current address (nginx before 1.27.3).

    By default (--stage-dns runtime) the relay keeps connections to the stage's address as it
    resolved when planning: when the relay's resolvers no longer give that address, this
    rewrites it in the config (backup, nginx -t, reload, put back on failure). With
    --stage-dns reload nginx resolves the stage's name with the system resolver only at start
    and on reload: when the answer differs from the one nginx got at its last reload by this
    command (or none is recorded), this runs nginx -t and nginx -s reload. Either at most once
    per --min-interval. Exit 0 when nothing was needed or it was done, 1 when the name does
    not resolve or nginx refuses, 2 for a config without hookshift's mirror.

    \b
    Examples:
      hookshift mirror refresh --config /etc/nginx/nginx.conf
      hookshift mirror refresh --config /etc/nginx/nginx.conf --min-interval 60
      hookshift mirror refresh-units --config /etc/nginx/nginx.conf \\
          --out-dir /etc/systemd/system   (a systemd timer runs it every minute)
    """
    from hookshift.mirror.refresh import refresh

    api.check_prefix(nginx_prefix)  # a typo, said before nginx -V is asked for the config
    main, located = api.main_config(config, nginx_bin)
    _show(located)
    done = refresh(main, nginx_bin=nginx_bin, prefix=nginx_prefix, min_interval=min_interval)
    diag("ok", done.describe())


@mirror.command("refresh-units")
@click.option(
    "--config",
    type=ConfigPath(),
    required=True,
    help="The main nginx config `mirror apply` changed (absolute).",
)
@click.option(
    "--nginx-bin",
    default="/usr/sbin/nginx",
    show_default=True,
    help="Absolute path of the nginx that serves the config: the service runs refresh with it "
    "(nginx -V here says where its logs and pid file are).",
)
@click.option(
    "--nginx-prefix",
    type=PREFIX_TYPE,
    default=None,
    help="nginx's -p PREFIX, when it is started with one: the service runs refresh with it.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="hookshift's state dir for the service: the one `mirror apply` and `remove` use, so "
    "that a line refresh rewrites stays hookshift's to remove. Default: this hookshift's "
    "($HOOKSHIFT_STATE_DIR, else ~/.local/state/hookshift).",
)
@click.option("--interval", default="1min", show_default=True, help="How often to check.")
@_min_interval_option
@click.option(
    "--hookshift-bin",
    type=click.Path(path_type=Path),
    default=None,
    help="Absolute path of hookshift (default: the one running).",
)
@click.option(
    "--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
    show_default=True,
    help="Where the service and timer files are written (/etc/systemd/system to install them).",
)  # fmt: skip
def refresh_units_command(
    config: Path,
    nginx_bin: str,
    nginx_prefix: Path | None,
    state_dir: Path | None,
    interval: str,
    min_interval: float,
    hookshift_bin: Path | None,
    out_dir: Path,
) -> None:
    """Write a systemd timer that runs `hookshift mirror refresh` (nginx before 1.27.3).

    The service runs as root in a sandbox (/usr, /etc and home directories read-only, a private
    /tmp). What refresh and nginx -t write there is opened to it (found here in the config and
    `nginx -V`), and a path it needs in /tmp is refused. Nothing is written for a config that
    re-resolves the stage by itself (nginx >= 1.27.3, or no address of the stage written).

    \b
    Example:
      hookshift mirror refresh-units --config /etc/nginx/nginx.conf --out-dir /etc/systemd/system
      systemctl daemon-reload; systemctl enable --now hookshift-stage-refresh.timer
    """
    from hookshift.mirror.refresh import (
        TIMER_UNIT,
        Refresh,
        RefreshUnits,
        needs_refresh,
        nginx_paths,
        render_refresh_units,
    )
    from hookshift.systemd import write_units

    api.check_prefix(nginx_prefix)
    main, located = api.main_config(config, nginx_bin)
    _show(located)
    # a config without a mirror is refused, as refresh refuses it: its timer would fail
    if not needs_refresh(main):
        diag("ok", f"{Refresh('not-needed', None).describe()}; no units written")
        return
    units = render_refresh_units(
        RefreshUnits(
            hookshift_bin=hookshift_bin,
            config=main,
            nginx_bin=nginx_bin,
            state_dir=state_dir,
            interval=interval,
            min_interval=min_interval,
            nginx_prefix=nginx_prefix,
            nginx=nginx_paths(main, nginx_bin, nginx_prefix),
        )
    )
    for path in write_units(units, out_dir):
        diag("ok", f"wrote {path}")
    click.echo(f"then, as root: systemctl daemon-reload; systemctl enable --now {TIMER_UNIT}")
