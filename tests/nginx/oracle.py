"""The real nginx as the oracle for routing: a generated config whose every answer names its
own line (``return 200 "L?"`` becomes ``L<line>``), served on a free loopback port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from tests.nginx.test_matching_vs_nginx import _serving


def numbered(lines: list[str]) -> str:
    """The config text, each ``L?`` replaced by ``L`` and its line number."""
    return "\n".join(line.replace("L?", f"L{n}") for n, line in enumerate(lines, 1)) + "\n"


def serve(
    nginx_bin: str, prefix: Path, port: int, http_lines: list[str]
) -> Iterator[tuple[Path, int]]:
    """Run nginx on `http_lines` (the http block's content) in `prefix` while the caller
    yields (config path, port); stop it by pid."""
    lines = [
        # workers that cannot read the root answer a file test with 403, not 404
        "user root;" if os.geteuid() == 0 else "",
        f"pid {prefix}/nginx.pid;",
        f"error_log {prefix}/error.log;",
        "events {}",
        "http {",
        "access_log off;",
        *http_lines,
        "}",
    ]
    config = prefix / "nginx.conf"
    config.write_text(numbered(lines))
    yield from _serving(nginx_bin, config, port)
