"""hookshift doctor: findings about an nginx config that ``nginx -t`` does not report.

Public API::

    from hookshift.doctor import diagnose, diagnose_file, Finding, Severity
    findings = diagnose_file("/etc/nginx/nginx.conf")   # InputError if it does not load
"""

from __future__ import annotations

import os

from hookshift.doctor.checks import CHECKS, diagnose
from hookshift.doctor.findings import Finding, Severity
from hookshift.errors import InputError
from hookshift.nginx.config import NginxConfig, load
from hookshift.nginx.source import load_source
from hookshift.nginx.syntax import check_statement_ends

__all__ = ["CHECKS", "Finding", "Severity", "diagnose", "diagnose_file", "load_config"]


def load_config(path: str | os.PathLike[str]) -> NginxConfig:
    """The config at `path` with its includes, as `mirror plan` reads it.

    hookshift's lexer reads every file first: it follows nginx's own tokenizer, so a config
    nginx cannot parse (a missing ``;``) stops here with file:line, where crossplane would
    accept it. crossplane's tree is then preferred (it keeps comments); where it cannot parse
    what nginx accepts (``*_by_lua_block`` bodies) the lexer's tree is used.
    """
    if not os.path.isfile(path):
        return load(path)  # crossplane's loader names a missing main config
    source = load_source(path)
    for file, text in source.texts.items():
        check_statement_ends(text, str(file))
    try:
        return load(path)
    except InputError:
        return source.config


def diagnose_file(path: str | os.PathLike[str]) -> tuple[Finding, ...]:
    """Load the config at `path` (with its includes) and diagnose it."""
    return diagnose(load_config(path))
