"""The shipped code says why, not history: no issue numbers or measurement notes in it.

Figures live in bench/RESULTS.md and docs/ (docs/parity-engine.md for the parity engine).
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "hookshift"
HISTORY = re.compile(r"\bissue #?\d+|\bmeasured\b|\breq/s\b|\bthe seed\b|\bseed's\b", re.I)


def test_no_issue_numbers_or_measurements_in_the_package() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*"))
        if path.suffix in (".py", ".j2", ".vtl", ".json")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if HISTORY.search(line)
    ]
    assert found == []
