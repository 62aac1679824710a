"""What doctor reports: one frozen `Finding` per problem; its severity decides the exit code.

A finding names the place (``file:line`` of the directive to change), what happens at run time
(not just which rule fired: the reader decides whether to fix it from that sentence) and the fix.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hookshift.errors import InputError


class Severity(enum.IntEnum):
    """Ordered so that ``finding.severity >= fail_on`` decides the exit code."""

    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise InputError(
                f"unknown severity {text!r}", fix="use error, warning or info"
            ) from None


@dataclass(frozen=True, order=True)
class Finding:
    """One problem in the config.

    `code` is stable (scripts and tests key on it); `where` is ``file:line``; `message` says what
    happens at run time; `fix` says what to change.
    """

    code: str
    severity: Severity
    where: str
    message: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "severity": self.severity.label,
            "where": self.where,
            "message": self.message,
            "fix": self.fix,
        }


def sort_key(finding: Finding) -> tuple[int, str, int, str]:
    """Most severe first, then by file and line (numerically), then by code."""
    file, _, line = finding.where.rpartition(":")
    number = int(line) if line.isdigit() else 0
    return (-int(finding.severity), file if line.isdigit() else finding.where, number, finding.code)
