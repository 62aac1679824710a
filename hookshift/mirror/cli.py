"""``hookshift mirror plan|apply|remove``: copy (or forward) the callback path to API Gateway."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hookshift.console import diag, emit_json, stdout_guard
from hookshift.errors import InputError
from hookshift.mirror.apply import apply_plan, default_backup_dir, pending_change, recover
from hookshift.mirror.dnscheck import dns_warnings
from hookshift.mirror.plan import (
    DEFAULT_MIRROR_ERROR_LOG,
    DEFAULT_PARITY_LOG,
    DEFAULT_RELAY_SOCKET,
    DEFAULT_RESOLVERS,
    DEFAULT_TRUSTED_CA,
    MIRROR_ERROR_LOG_NAME,
    PARITY_LOG_NAME,
    MirrorOptions,
    MirrorPlan,
    describe_layout,
    make_plan,
    system_ca_bundle,
)
from hookshift.mirror.remove import remove_marked
from hookshift.nginx import binary
from hookshift.nginx.discover import compiled_path, locate_main_config

EXAMPLES = """
\b
Examples:
  hookshift mirror plan --config /etc/nginx/nginx.conf --path /callback \\
      --stage-url https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod \\
      --parity-log /var/log/nginx/hookshift-parity.log
  hookshift mirror apply ... (same options) --reload
  hookshift mirror refresh --config /etc/nginx/nginx.conf  (nginx < 1.27.3: reload nginx
      when the stage's addresses changed; `mirror refresh-units` runs it every minute)
  hookshift mirror plan ... --stage-dns runtime (nginx < 1.27.3: re-resolve with
      --resolver, no reload needed, a new TLS connection per copy)
  hookshift mirror plan ... --mode forward     (cut-over stage 4: send, not copy)
  hookshift mirror remove --config /etc/nginx/nginx.conf --reload
"""


def _plan_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        _config_option,
        click.option("--path", "path", required=True, help="The callback path, e.g. /callback."),
        click.option(
            "--stage-url",
            required=True,
            help="https://ID.execute-api.REGION.amazonaws.com/STAGE or a custom domain.",
        ),
        click.option("--server-name", default=None, help="Host the vendor calls (server_name)."),
        click.option(
            "--listen",
            default=None,
            help="Socket the vendor reaches: PORT, ADDR:PORT or unix:PATH.",
        ),
        click.option(
            "--resolver",
            "resolvers",
            multiple=True,
            metavar="ADDR[:PORT]",
            help="DNS resolver for the stage host (repeatable). "
            f"Default: {' '.join(DEFAULT_RESOLVERS)}.",
        ),
        click.option(
            "--parity-log",
            type=click.Path(path_type=Path),
            default=None,
            help="Where nginx logs each callback for `hookshift verify parity`. Default: "
            f"{PARITY_LOG_NAME} beside nginx's own access log ({DEFAULT_PARITY_LOG} on Debian).",
        ),
        click.option(
            "--no-parity-log",
            is_flag=True,
            help="Write no parity log (then `hookshift verify parity` has nothing to compare).",
        ),
        click.option(
            "--request-id-header",
            default="X-Request-Id",
            show_default=True,
            help="Header carrying nginx's $request_id to the stage.",
        ),
        click.option(
            "--request-id-to-app", is_flag=True, help="Also send the request-id header to the app."
        ),
        click.option(
            "--stage-path",
            default=None,
            help="Fixed resource path on the stage instead of STAGE$request_uri.",
        ),
        click.option(
            "--trusted-ca",
            type=click.Path(path_type=Path),
            default=system_ca_bundle,
            help=f"CA bundle to verify the stage's certificate (default: the system's, "
            f"{DEFAULT_TRUSTED_CA} on Debian).",
        ),
        click.option(
            "--timeout",
            type=float,
            default=None,
            help="Proxy timeout in seconds (default 2 for mirror, 10 for forward).",
        ),
        click.option(
            "--mode",
            type=click.Choice(["mirror", "forward"]),
            default="mirror",
            show_default=True,
            help="mirror: copy to the stage; forward: send instead.",
        ),
        click.option(
            "--relay-socket",
            default=DEFAULT_RELAY_SOCKET,
            show_default=True,
            help="Unix socket of the local relay that answers the copy at once and sends it on. "
            "In a directory named hookshift*, nginx creates that directory for its own user "
            "only; elsewhere any local user could reach the relay.",
        ),
        click.option(
            "--mirror-error-log",
            type=click.Path(path_type=Path),
            default=None,
            help="error_log (level warn) of the relay, so an outage's per-copy errors stay out "
            "of your error log. Default: hookshift-mirror.error.log beside --parity-log, else "
            f"beside nginx's compiled-in access log ({DEFAULT_MIRROR_ERROR_LOG} on Debian).",
        ),
        click.option(
            "--stage-dns",
            type=click.Choice(["runtime", "reload"]),
            default=None,
            help="nginx before 1.27.3 (copies go through a local relay): reload (default) = "
            "keep-alive to the stage, whose addresses nginx resolves (system resolver) only at "
            "start/reload: keep them current with `hookshift mirror refresh`; runtime = the "
            "relay re-resolves the stage with --resolver, a new TLS connection per copy.",
        ),
        click.option(
            "--keep-header",
            "keep_headers",
            multiple=True,
            metavar="NAME",
            help="Send this credential header with the copy (repeatable). By default the copy "
            "goes without Authorization, Cookie and Proxy-Authorization.",
        ),
        click.option("--no-dns-check", is_flag=True, help="Do not query the resolvers."),
        click.option(
            "--nginx-bin",
            default="nginx",
            show_default=True,
            help="nginx binary (its version decides how copies reach the stage; nginx -V says "
            "where its config and logs are).",
        ),
        click.option(
            "--nginx-version",
            default=None,
            metavar="X.Y.Z",
            help="Plan for this nginx version instead of asking the binary.",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["diff", "json"]),
            default="diff",
            show_default=True,
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


_config_option = click.option(
    "--config",
    "config",
    default=None,
    type=click.Path(path_type=Path),
    help="nginx's main config, or a site file it includes (sites-enabled/NAME); "
    "includes are followed. Default: the config nginx was built with (nginx -V).",
)


@dataclasses.dataclass(frozen=True)
class _NginxFacts:
    """What the nginx binary says about itself (empty when there is no binary to ask)."""

    version: tuple[int, int, int]
    defaults: dict[str, str]

    @property
    def access_log(self) -> Path | None:
        return compiled_path(self.defaults, "http-log-path")


def _compiled_defaults(nginx_bin: str) -> dict[str, str]:
    found = binary.find_binary(nginx_bin)
    return binary.compiled_defaults(found) if found is not None else {}


def _nginx_facts(nginx_bin: str, version: str | None) -> _NginxFacts:
    if version is not None:
        return _NginxFacts(binary.parse_version("/" + version), _compiled_defaults(nginx_bin))
    found = binary.find_binary(nginx_bin)
    if found is None:
        raise InputError(
            f"nginx binary not found: {nginx_bin}",
            fix="pass --nginx-bin PATH, or --nginx-version X.Y.Z to plan offline",
        )
    return _NginxFacts(binary.nginx_version(found), binary.compiled_defaults(found))


def main_config(config: Path | None, nginx_bin: str) -> Path:
    """The main config to work on (``--config``, the one including a site file, or nginx's
    compiled-in one), saying so on stderr when it is not the file the user passed."""
    chosen = locate_main_config(config, nginx_bin)
    if chosen.note:
        diag("info", chosen.note)
    return chosen.path


def _parity_log(kwargs: dict[str, Any], access_log: Path | None) -> Path | None:
    """The option; else beside nginx's own access log, where its operators look for logs."""
    if kwargs["no_parity_log"]:
        if kwargs["parity_log"] is not None:
            raise InputError(
                "--parity-log and --no-parity-log contradict each other", fix="pass one of them"
            )
        diag("info", "no parity log: `hookshift verify parity` needs one to compare against")
        return None
    if kwargs["parity_log"] is not None:
        return kwargs["parity_log"]  # type: ignore[no-any-return]
    return (access_log.parent if access_log else DEFAULT_PARITY_LOG.parent) / PARITY_LOG_NAME


def _mirror_error_log(
    kwargs: dict[str, Any], parity_log: Path | None, access_log: Path | None
) -> Path | None:
    """The option; else None (beside the parity log); else beside nginx's compiled access log
    (a custom build's logs directory rather than Debian's /var/log/nginx)."""
    if kwargs["mirror_error_log"] is not None or parity_log is not None:
        return kwargs["mirror_error_log"]  # type: ignore[no-any-return]
    if access_log:
        return access_log.parent / MIRROR_ERROR_LOG_NAME
    return None


def _build(kwargs: dict[str, Any]) -> MirrorPlan:
    facts = _nginx_facts(kwargs["nginx_bin"], kwargs["nginx_version"])
    config = main_config(kwargs["config"], kwargs["nginx_bin"])
    parity_log = _parity_log(kwargs, facts.access_log)
    options = MirrorOptions(
        config=config,
        path=kwargs["path"],
        stage_url=kwargs["stage_url"],
        server_name=kwargs["server_name"],
        listen=kwargs["listen"],
        resolvers=tuple(kwargs["resolvers"]) or DEFAULT_RESOLVERS,
        parity_log=parity_log,
        request_id_header=kwargs["request_id_header"],
        request_id_to_app=kwargs["request_id_to_app"],
        stage_path=kwargs["stage_path"],
        trusted_ca=kwargs["trusted_ca"],
        timeout=kwargs["timeout"],
        mode=kwargs["mode"],
        relay_socket=kwargs["relay_socket"],
        default_access_log=None if facts.access_log is None else str(facts.access_log),
        mirror_error_log=_mirror_error_log(kwargs, parity_log, facts.access_log),
        stage_dns=kwargs["stage_dns"],
        keep_headers=tuple(kwargs["keep_headers"]),
    )
    plan = make_plan(options, facts.version)
    if not kwargs["no_dns_check"]:
        dns = dns_warnings(options.resolvers, plan.stage.host)
        plan = dataclasses.replace(plan, warnings=(*plan.warnings, *dns))
    for line in plan.info:
        diag("info", line)
    for warning in plan.warnings:
        diag("warning", warning)
    return plan


def _notes(notes: tuple[str, ...]) -> None:
    for note in notes:
        diag("warning", note)


@click.group(epilog=EXAMPLES)
def mirror() -> None:
    """Copy (or forward) the callback path to API Gateway by editing nginx byte-preservingly.

    Every inserted line ends with `# hookshift`; `remove` restores each file byte for byte.
    """


@mirror.command(epilog=EXAMPLES)
@_plan_options
def plan(**kwargs: Any) -> None:
    """Show what apply would change (a unified diff, or --format json); change nothing."""
    pending = pending_change(kwargs["config"])
    if pending:
        diag("warning", f"{pending}: the next apply or remove puts them back first")
    result = _build(kwargs)
    if kwargs["fmt"] == "json":
        with stdout_guard():
            emit_json(result.to_json())
        return
    diag(
        "info",
        f"{result.mode} via {result.location.description} at {result.location.where} "
        f"({result.server.description}); {describe_layout(result.layout)}",
    )
    if result.already_applied:
        diag("ok", "already applied: no change")
        return
    with stdout_guard():
        click.echo(result.diff(), nl=False)


@mirror.command(epilog=EXAMPLES)
@_plan_options
@click.option(
    "--backup-dir",
    type=click.Path(path_type=Path),
    default=None,
    help=f"Where backups go (default {default_backup_dir()}).",
)
@click.option("--reload", is_flag=True, help="nginx -s reload after a successful nginx -t.")
@click.option(
    "--nginx-prefix",
    type=click.Path(path_type=Path),
    default=None,
    help="Run nginx with -p PREFIX (relative paths in the config resolve there).",
)
def apply(**kwargs: Any) -> None:
    """Apply the plan: lock, nginx -t, backup, atomic writes, nginx -t, optional reload."""
    _notes(recover(kwargs["config"]))
    result = _build(kwargs)
    if kwargs["fmt"] != "json" and not result.already_applied:
        with stdout_guard("; nothing changed"):  # the diff first: unwritable output changes nothing
            click.echo(result.diff(), nl=False)
    outcome = apply_plan(
        result,
        nginx_bin=kwargs["nginx_bin"],
        backup_dir=kwargs["backup_dir"],
        reload=kwargs["reload"],
        prefix=kwargs["nginx_prefix"],
    )
    _notes(outcome.notes)
    if kwargs["fmt"] == "json":
        data = result.to_json()
        data["applied"] = {
            "changed": [str(p) for p in outcome.changed],
            "backup_dir": str(outcome.backup_dir) if outcome.backup_dir else None,
            "reloaded": outcome.reloaded,
        }
        with stdout_guard(" (the config was changed)" if outcome.changed else ""):
            emit_json(data)
        return
    if outcome.no_change:
        diag("ok", "already applied: no change")
        return
    diag(
        "ok",
        f"applied to {len(outcome.changed)} file(s); backup in {outcome.backup_dir}"
        + ("; nginx reloaded" if outcome.reloaded else ""),
    )


@mirror.command(epilog=EXAMPLES)
@_config_option
@click.option("--nginx-bin", default="nginx", show_default=True)
@click.option("--backup-dir", type=click.Path(path_type=Path), default=None)
@click.option("--reload", is_flag=True, help="nginx -s reload after a successful nginx -t.")
@click.option(
    "--nginx-prefix",
    type=click.Path(path_type=Path),
    default=None,
    help="Run nginx with -p PREFIX.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
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
    outcome = remove_marked(
        main_config(config, nginx_bin),
        nginx_bin=nginx_bin,
        backup_dir=backup_dir,
        reload=reload,
        prefix=nginx_prefix,
    )
    _notes(outcome.notes)
    if fmt == "json":
        with stdout_guard(" (the config was changed)" if outcome.changed else ""):
            emit_json(
                {
                    "changed": [str(p) for p in outcome.changed],
                    "backup_dir": str(outcome.backup_dir) if outcome.backup_dir else None,
                    "reloaded": outcome.reloaded,
                    "warnings": list(outcome.notes),
                }
            )
        return
    if outcome.no_change:
        diag("ok", "no hookshift lines found: no change")
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
    type=click.Path(path_type=Path),
    default=None,
    help="The main nginx config `mirror apply` changed (default: nginx's compiled-in one).",
)
@click.option("--nginx-bin", default="nginx", show_default=True)
@_min_interval_option
@click.option(
    "--nginx-prefix",
    type=click.Path(path_type=Path),
    default=None,
    help="Run nginx with -p PREFIX.",
)
def refresh_command(
    config: Path | None, nginx_bin: str, min_interval: float, nginx_prefix: Path | None
) -> None:
    """Reload nginx when the stage's addresses changed (nginx before 1.27.3).

    There nginx resolves the stage's name with the system resolver only at start and on
    reload. This resolves it now and, when the answer differs from the one nginx got at its
    last reload by this command (or none is recorded), runs nginx -t and nginx -s reload.
    Exit 0 when nginx is current or was reloaded, 1 when the name does not resolve or nginx
    refuses, 2 for a config without hookshift's mirror.
    """
    from hookshift.mirror.refresh import refresh
    from hookshift.nginx.discover import locate_main_config

    chosen = locate_main_config(config, nginx_bin)
    if chosen.note:
        diag("info", chosen.note)
    done = refresh(chosen.path, nginx_bin=nginx_bin, prefix=nginx_prefix, min_interval=min_interval)
    diag("ok", done.describe())


@mirror.command("refresh-units")
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    required=True,
    help="The main nginx config `mirror apply` changed (absolute).",
)
@click.option("--nginx-bin", default="/usr/sbin/nginx", show_default=True)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path("/var/lib/hookshift"),
    show_default=True,
    help="Where the service keeps the addresses nginx was last reloaded with.",
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
)  # fmt: skip
def refresh_units_command(
    config: Path,
    nginx_bin: str,
    state_dir: Path,
    interval: str,
    min_interval: float,
    hookshift_bin: Path | None,
    out_dir: Path,
) -> None:
    """Write a systemd timer that runs `hookshift mirror refresh` (nginx before 1.27.3).

    \b
    Example:
      hookshift mirror refresh-units --config /etc/nginx/nginx.conf --out-dir /etc/systemd/system
      systemctl daemon-reload; systemctl enable --now hookshift-stage-refresh.timer
    """
    import shutil
    import sys

    from hookshift.durable import write_atomic
    from hookshift.mirror.refresh import TIMER_UNIT, RefreshUnits, render_refresh_units

    found = shutil.which("hookshift")
    running = Path(found).resolve() if found else Path(sys.executable).with_name("hookshift")
    units = render_refresh_units(
        RefreshUnits(
            hookshift_bin=hookshift_bin or running,
            config=config,
            nginx_bin=nginx_bin,
            state_dir=state_dir,
            interval=interval,
            min_interval=min_interval,
        )
    )
    for name, text in units.items():
        write_atomic(out_dir / name, text)
        diag("ok", f"wrote {out_dir / name}")
    click.echo(f"then, as root: systemctl daemon-reload; systemctl enable --now {TIMER_UNIT}")
