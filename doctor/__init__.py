"""hookshift doctor: findings about an nginx config that ``nginx -t`` does not report.

Public API::

    from doctor import diagnose, diagnose_file, Finding, Severity
    findings = diagnose_file("/etc/nginx/nginx.conf")   # InputError if it does not load
"""

from __future__ import annotations

import os

from doctor.checks import CHECKS, diagnose
from doctor.findings import Finding, Severity
from nginx.config import load

__all__ = ["CHECKS", "Finding", "Severity", "diagnose", "diagnose_file"]


def diagnose_file(path: str | os.PathLike[str]) -> tuple[Finding, ...]:
    """Load the config at `path` (with its includes) and diagnose it."""
    return diagnose(load(path))
