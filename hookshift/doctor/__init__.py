"""hookshift doctor: findings about an nginx config that ``nginx -t`` does not report.

Use from Python (what ``hookshift doctor`` calls)::

    from hookshift import doctor
    report = doctor.check(Path("/etc/nginx/sites-enabled/hooks"))  # or None: nginx -V's
    report.config        # the main config diagnosed (the one including a site file)
    report.findings      # Finding(code, severity, where, message, fix), most severe first
    report.failed(doctor.Severity.WARNING)   # any finding at least that severe?
    report.info          # lines for the user (which main config was chosen, and why)

A config that cannot be read or parsed, or that serves no HTTP (no ``server`` inside ``http {}``,
as `mirror plan` refuses it), raises `hookshift.errors.InputError` (exit code 2).
`diagnose(config)` checks an already loaded `NginxConfig`; `diagnose_file(path)` loads one
main config and checks it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hookshift.doctor.checks import CHECKS, diagnose
from hookshift.doctor.findings import Finding, Severity
from hookshift.errors import InputError
from hookshift.nginx.config import NginxConfig, check_serves_http, load
from hookshift.nginx.discover import locate_main_config
from hookshift.nginx.source import load_source
from hookshift.nginx.syntax import check_statement_ends

__all__ = [
    "CHECKS",
    "Finding",
    "Report",
    "Severity",
    "check",
    "diagnose",
    "diagnose_file",
    "load_config",
]


def load_config(path: str | os.PathLike[str]) -> NginxConfig:
    """The config at `path` with its includes, as `mirror plan` reads it.

    hookshift's lexer reads every file first: it follows nginx's own tokenizer, so a config
    nginx cannot parse (a missing ``;``) stops here with file:line, where crossplane would
    accept it. crossplane's tree is then preferred (it keeps comments); where it cannot parse
    what nginx accepts (``*_by_lua_block`` bodies) the lexer's tree is used. A config with no
    ``server`` inside ``http {}`` is refused (`check_serves_http`): finding nothing wrong in it
    would read as a clean bill.

    The lexer's tree is let go before crossplane reads (and read again in the rare case its
    tree is the one used), so a big config is never in memory as two trees and a payload.
    """
    if not os.path.isfile(path):
        return load(path)  # crossplane's loader names a missing main config
    _check_with_lexer(path)
    try:
        return load(path)
    except InputError:
        return load_source(path).config


def _check_with_lexer(path: str | os.PathLike[str]) -> None:
    """What `load_config` refuses from hookshift's lexer: a file nginx cannot parse, a ``;``
    missing between two lines, a config that serves no HTTP."""
    source = load_source(path)
    for file, text in source.texts.items():
        check_statement_ends(text, str(file))
    check_serves_http(source.config)


def diagnose_file(path: str | os.PathLike[str]) -> tuple[Finding, ...]:
    """Load the config at `path` (with its includes) and diagnose it."""
    return diagnose(load_config(path))


@dataclass(frozen=True)
class Report:
    """What doctor found in the main config `config`, and the lines to tell the user first."""

    config: Path
    findings: tuple[Finding, ...]
    info: tuple[str, ...] = ()

    def failed(self, threshold: Severity) -> bool:
        """Whether a finding is at least as severe as `threshold` (the command's exit 1)."""
        return any(f.severity >= threshold for f in self.findings)


def check(config: str | os.PathLike[str] | None = None, *, nginx_bin: str = "nginx") -> Report:
    """Diagnose `config` with its includes: a main config as it is, a site file in the main
    config that includes it, None the config `nginx_bin` was built with (``nginx -V``)."""
    chosen = locate_main_config(None if config is None else Path(config), nginx_bin)
    loaded = load_config(chosen.path)
    return Report(Path(loaded.main), diagnose(loaded), (chosen.note,) if chosen.note else ())
