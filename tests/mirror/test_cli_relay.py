"""`hookshift mirror plan` options of the relay: credentials kept on request, the socket's
directory named in a warning when other users could reach it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mirror.helpers import copy_case
from tests.mirror.test_cli import _common, _run

pytestmark = pytest.mark.e2e  # every test here starts a process


def test_keep_header_sends_that_credential_with_the_copy(tmp_path: Path, ca_file: Path) -> None:
    config = copy_case("crlf", tmp_path)
    default = _run("plan", *_common(config, ca_file), "--nginx-version", "1.22.1")
    assert default.returncode == 0, default.stderr
    for name in ("Authorization", "Cookie", "Proxy-Authorization"):
        assert f'proxy_set_header {name} "";' in default.stdout, name
    kept = _run(
        "plan",
        *_common(config, ca_file),
        "--nginx-version",
        "1.22.1",
        "--keep-header",
        "authorization",
    )
    assert kept.returncode == 0, kept.stderr
    assert 'proxy_set_header Authorization "";' not in kept.stdout
    assert 'proxy_set_header Cookie "";' in kept.stdout


def test_a_relay_socket_outside_a_hookshift_directory_is_warned_about(
    tmp_path: Path, ca_file: Path
) -> None:
    config = copy_case("crlf", tmp_path)
    proc = _run("plan", *_common(config, ca_file), "--nginx-version", "1.22.1")
    assert proc.returncode == 0, proc.stderr
    assert "other local users may reach" in proc.stderr
    private = _run(
        "plan",
        *_common(config, ca_file),
        "--nginx-version",
        "1.22.1",
        "--relay-socket",
        str(tmp_path / "hookshift" / "relay.sock"),
    )
    assert "other local users may reach" not in private.stderr
    assert f"client_body_temp_path {tmp_path}/hookshift;" in private.stdout
