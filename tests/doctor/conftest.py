"""Helpers for doctor's tests: write a small but complete nginx config and diagnose it."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from hookshift.doctor import Finding, diagnose_file

MAIN_TEMPLATE = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
{http}
}}
"""

Diagnose = Callable[..., tuple[Finding, ...]]


def write_config(tmp_path: Path, http: str, files: dict[str, str] | None = None) -> Path:
    """A main config whose http block holds `http` (dedented); `files` are written beside it."""
    for name, text in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    main = tmp_path / "nginx.conf"
    body = textwrap.indent(textwrap.dedent(http).strip("\n"), "    ")
    main.write_text(MAIN_TEMPLATE.format(tmp=tmp_path, http=body))
    return main


def write_site(tmp_path: Path) -> tuple[Path, Path]:
    """A site file ``sites-enabled/hooks`` (a public resolver on its line 3) and the main
    config that includes it: (site, main)."""
    main = write_config(
        tmp_path,
        "include sites-enabled/*;",
        files={"sites-enabled/hooks": "server {\n    listen 8081;\n    resolver 1.1.1.1;\n}\n"},
    )
    return tmp_path / "sites-enabled" / "hooks", main


@pytest.fixture
def diagnose_http(tmp_path: Path) -> Diagnose:
    """diagnose_http(http_text, files={...}) -> findings for a config with that http block."""

    def run(http: str, files: dict[str, str] | None = None) -> tuple[Finding, ...]:
        return diagnose_file(write_config(tmp_path, http, files))

    return run


def codes(findings: tuple[Finding, ...]) -> set[str]:
    return {f.code for f in findings}


def only(findings: tuple[Finding, ...], code: str) -> Finding:
    matching = [f for f in findings if f.code == code]
    assert len(matching) == 1, f"expected one {code}, got {matching}"
    return matching[0]


def line_of(path: Path, needle: str) -> str:
    """``path:N`` of the first line containing `needle` (what a finding's `where` must say)."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return f"{path}:{number}"
    raise AssertionError(f"{needle!r} not in {path}")


def nginx_t(nginx_bin: str, config: Path) -> subprocess.CompletedProcess[str]:
    """The real `nginx -t` on `config` (prefix = its directory; nothing leaves the tmp dir)."""
    return subprocess.run(
        [nginx_bin, "-t", "-p", f"{config.parent}/", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
