"""hookshift doctor: findings about an nginx config that ``nginx -t`` does not report.

Public API::

    from doctor import diagnose, diagnose_file, Finding, Severity
    findings = diagnose_file("/etc/nginx/nginx.conf")   # InputError if it does not load
"""

from __future__ import annotations

import os

from doctor.checks import CHECKS, diagnose
from doctor.findings import Finding, Severity
from hookshift.errors import InputError
from nginx.config import NginxConfig, load
from nginx.source import load_source

__all__ = ["CHECKS", "Finding", "Severity", "diagnose", "diagnose_file", "load_config"]


def load_config(path: str | os.PathLike[str]) -> NginxConfig:
    """The config at `path` with its includes, as `mirror plan` reads it.

    crossplane first (the loader every part uses); when it cannot parse a config that nginx
    accepts (``*_by_lua_block`` bodies), hookshift's own lexer (`nginx.source`), as `mirror plan`
    does. When both fail, crossplane's error (file:line) is the one reported.
    """
    try:
        return load(path)
    except InputError as crossplane_error:
        try:
            return load_source(path).config
        except InputError:
            raise crossplane_error from None


def diagnose_file(path: str | os.PathLike[str]) -> tuple[Finding, ...]:
    """Load the config at `path` (with its includes) and diagnose it."""
    return diagnose(load_config(path))
