"""``hookshift doctor``: what in an nginx config will fail at run time that ``nginx -t`` accepts."""

from __future__ import annotations

from pathlib import Path

import click

from hookshift.console import ConfigPath, diag, emit_json
from hookshift.doctor import check
from hookshift.doctor.findings import Severity
from hookshift.doctor.render import as_json, as_text

_SEVERITIES = [s.label for s in reversed(Severity)]


@click.command("doctor")
@click.option(
    "--config",
    "config_path",
    default=None,
    type=ConfigPath(),
    help="nginx's main config, or a site file it includes (sites-enabled/NAME); its includes "
    "are followed. Default: the config nginx was built with (nginx -V).",
)
@click.option(
    "--nginx-bin",
    default="nginx",
    show_default=True,
    help="The nginx binary to ask where its config is (nginx -V), when --config is not a "
    "main config.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for machines.",
)
@click.option(
    "--fail-on",
    type=click.Choice(_SEVERITIES),
    default="error",
    show_default=True,
    help="Exit 1 when a finding is at least this severe.",
)
def doctor(config_path: Path | None, nginx_bin: str, output_format: str, fail_on: str) -> None:
    """Find what in an nginx config fails at run time although `nginx -t` accepts it.

    Checks proxy_pass DNS (`no resolver defined`), TLS to https upstreams (SNI,
    verification), mirrors (targets, timeouts, circuit breaker, requests that end before the
    mirror runs, copies sent without their body or refused by a relay, duplicates) and the
    inheritance traps of access_log and proxy_set_header.

    Exit status: 0 nothing at or above --fail-on, 1 findings at or above it, 2 the config
    cannot be read or parsed.

    \b
    Examples:
      hookshift doctor
      hookshift doctor --config /etc/nginx/sites-enabled/hooks
      hookshift doctor --config /etc/nginx/nginx.conf --fail-on warning
      hookshift doctor --config /etc/nginx/nginx.conf --format json | jq '.findings[]'
    """
    threshold = Severity.parse(fail_on)
    report = check(config_path, nginx_bin=nginx_bin)
    for line in report.info:
        diag("info", line)
    if output_format == "json":
        emit_json(as_json(str(report.config), report.findings, threshold))
    else:
        click.echo(as_text(str(report.config), report.findings, threshold))
    if report.failed(threshold):
        raise click.exceptions.Exit(1)
