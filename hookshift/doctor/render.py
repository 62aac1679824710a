"""Doctor's output: text for people (grouped by severity, colour on a TTY only) and JSON."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from hookshift.doctor.findings import Finding, Severity

_COLOURS = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_TITLES = {Severity.ERROR: "errors", Severity.WARNING: "warnings", Severity.INFO: "info"}


WIDTH = 100


def _wrap(text: str, first: str, rest: str) -> list[str]:
    """Wrap at `WIDTH` without splitting a word (paths and file:line stay whole)."""
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def counts(findings: Sequence[Finding]) -> dict[str, int]:
    return {s.label: sum(1 for f in findings if f.severity is s) for s in reversed(Severity)}


def summary_line(findings: Sequence[Finding]) -> str:
    c = counts(findings)
    if not findings:
        return "no findings"
    plural = {"error": "errors", "warning": "warnings", "info": "info"}
    return ", ".join(f"{n} {label if n == 1 else plural[label]}" for label, n in c.items() if n)


def as_text(config: str, findings: Sequence[Finding], fail_on: Severity) -> str:
    """Readable report; ANSI styles are added here and stripped by click.echo off a TTY."""
    base = str(Path(config).parent).rstrip("/") + "/"

    def short(text: str) -> str:  # file paths relative to the config's directory
        return text.replace(base, "")

    lines = [click.style(f"hookshift doctor: {config}", bold=True)]
    if findings:
        lines.append(f"(paths relative to {base})")
    for severity in reversed(Severity):
        group = [f for f in findings if f.severity is severity]
        if not group:
            continue
        lines.append("")
        title = f"{_TITLES[severity]} ({len(group)})"
        lines.append(click.style(title, fg=_COLOURS[severity], bold=True))
        for f in group:
            code = click.style(f"[{f.code}]", fg=_COLOURS[severity])
            lines.append(f"  {short(f.where)}  {code}")
            lines.extend(_wrap(short(f.message), "    ", "    "))
            fix = _wrap("fix: " + short(f.fix), "    ", "         ")
            fix[0] = fix[0].replace("fix:", click.style("fix:", bold=True), 1)
            lines.extend(fix)
    failing = sum(1 for f in findings if f.severity >= fail_on)
    lines.append("")
    verdict = (
        f"fails: {failing} at or above {fail_on.label}"
        if failing
        else f"passes --fail-on {fail_on.label}"
    )
    lines.append(f"{summary_line(findings)}; {verdict}")
    return "\n".join(lines)


def as_json(config: str, findings: Sequence[Finding], fail_on: Severity) -> dict[str, Any]:
    return {
        "config": config,
        "fail_on": fail_on.label,
        "counts": counts(findings),
        "failed": any(f.severity >= fail_on for f in findings),
        "findings": [f.as_dict() for f in findings],
    }
