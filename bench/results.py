"""Write one benchmark's section of ``bench/RESULTS.md`` without touching the others."""

from __future__ import annotations

import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nWritten by `make bench`; each section by its own benchmark.\n"


def machine_line() -> str:
    """What the figures were measured on, so a reader can weigh them."""
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    python = platform.python_version()
    return f"_Measured {when} on {platform.machine()}, {cores} cores, Python {python}._"


def write_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    block = f"<!-- {name}:start -->\n{markdown.rstrip()}\n<!-- {name}:end -->"
    pattern = re.compile(
        rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S
    )
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    path.write_text(text, encoding="utf-8")
