"""`hookshift doctor` as a user runs it: exit codes, text and JSON output, bad input."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.doctor.conftest import line_of, nginx_t, write_config, write_site
from tests.doctor.samples import protected_mirror, seed_mirror

pytestmark = pytest.mark.e2e  # every test here starts a process


def doctor(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookshift", "doctor", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_clean_config_exits_0(tmp_path: Path) -> None:
    result = doctor("--config", write_config(tmp_path, protected_mirror()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no findings" in result.stdout


def test_seed_config_exits_1_with_errors_grouped_first(tmp_path: Path) -> None:
    result = doctor("--config", write_config(tmp_path, seed_mirror()))
    assert result.returncode == 1
    out = result.stdout
    assert out.index("errors (") < out.index("warnings (") < out.index("info (")
    assert "[mirror-wrong-host]" in out and "fix:" in out
    assert "\x1b[" not in out  # no colour when stdout is not a terminal


def test_fail_on_sets_the_threshold(tmp_path: Path) -> None:
    # only info findings (public resolver): passes by default, fails on info
    text = protected_mirror().replace("resolver 10.0.0.2", "resolver 1.1.1.1")
    config = write_config(tmp_path, text)
    assert doctor("--config", config).returncode == 0
    assert doctor("--config", config, "--fail-on", "warning").returncode == 0
    assert doctor("--config", config, "--fail-on", "info").returncode == 1


def test_fail_on_warning_fails_on_a_warning(tmp_path: Path) -> None:
    config = write_config(tmp_path, protected_mirror().replace("internal;", "", 1))
    assert doctor("--config", config).returncode == 0
    assert doctor("--config", config, "--fail-on", "warning").returncode == 1


def test_json_output_shape(tmp_path: Path) -> None:
    config = write_config(tmp_path, seed_mirror())
    result = doctor("--config", config, "--format", "json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert set(data) == {"config", "fail_on", "counts", "failed", "findings"}
    assert data["config"] == str(config) and data["fail_on"] == "error" and data["failed"] is True
    assert set(data["counts"]) == {"error", "warning", "info"}
    assert data["counts"]["error"] == sum(1 for f in data["findings"] if f["severity"] == "error")
    for finding in data["findings"]:
        assert set(finding) == {"code", "severity", "where", "message", "fix"}
        assert finding["severity"] in {"error", "warning", "info"}
        file, line = finding["where"].rsplit(":", 1)
        assert Path(file).is_file() and line.isdigit()
    severities = [f["severity"] for f in data["findings"]]
    order = {"error": 0, "warning": 1, "info": 2}
    assert severities == sorted(severities, key=order.__getitem__)


def test_clean_json_has_no_findings(tmp_path: Path) -> None:
    result = doctor("--config", write_config(tmp_path, protected_mirror()), "--format", "json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["findings"] == []


def test_findings_name_the_included_file_and_line(tmp_path: Path) -> None:
    included = {
        "sites/callback.conf": """\
            server {
                listen 8081;

                # the callback receiver
                location /callback {
                    proxy_pass https://abc.execute-api.ap-northeast-2.amazonaws.com/dev$request_uri;
                }
            }
            """
    }
    config = write_config(tmp_path, "include sites/*.conf;", included)
    data = json.loads(doctor("--config", config, "--format", "json").stdout)
    wheres = {f["code"]: f["where"] for f in data["findings"]}
    expected = line_of(tmp_path / "sites/callback.conf", "proxy_pass https://")
    assert wheres["proxy-pass-no-resolver"] == expected


def test_a_missing_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = doctor("--config", tmp_path / "nope.conf")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.conf" in lines[0] and "not found" in lines[0]


def test_a_malformed_config_is_one_line_with_file_line_and_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, "server { listen 8081;\n location / { return 204;\n}")
    result = doctor("--config", config)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{config}:" in lines[0]


def test_a_missing_include_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, "include sites/absent.conf;")
    result = doctor("--config", config)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "absent.conf" in result.stderr


def test_a_config_crossplane_cannot_parse_is_read_with_hookshifts_lexer(tmp_path: Path) -> None:
    """*_by_lua_block bodies (raw Lua) defeat crossplane; nginx with the Lua module takes them,
    and so does `mirror plan`, so doctor reads them the same way."""
    lua = """
    server {
        listen 8081;
        location /cb {
            access_by_lua_block { local t = { s = "}" } }
            proxy_pass https://abc.execute-api.ap-northeast-2.amazonaws.com/dev$request_uri;
        }
    }
    """
    config = write_config(tmp_path, lua)
    data = json.loads(doctor("--config", config, "--format", "json").stdout)
    wheres = {f["code"]: f["where"] for f in data["findings"]}
    assert wheres["proxy-pass-no-resolver"] == line_of(config, "proxy_pass https://")


def _on_a_terminal(config: Path, env: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Run doctor with its stdout on a pseudo-terminal: (exit code, what it wrote there)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hookshift", "doctor", "--config", str(config)],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    os.close(follower)
    chunks = []
    try:
        while True:  # read while it writes: a full terminal buffer would block the child
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal and all is read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        returncode = proc.wait(timeout=60)
    return returncode, b"".join(chunks)


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path: Path) -> None:
    config = write_config(tmp_path, seed_mirror())
    code, shown = _on_a_terminal(config)
    assert code == 1
    assert b"\x1b[31m" in shown  # errors in red on a TTY
    code, shown = _on_a_terminal(config, {"NO_COLOR": "1"})
    assert code == 1 and b"errors" in shown and b"\x1b[" not in shown


def test_a_directory_instead_of_a_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = doctor("--config", tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path) in lines[0]


MISSING_SEMICOLON = [
    pytest.param(
        "server {\n    listen 8081;\n    location / {\n        proxy_pass http://127.0.0.1:9\n"
        "    }\n}",
        4,
        "statement without ';'",
        id="before a closing brace",
    ),
    pytest.param(
        "server {\n    listen 8081\n    server_name hooks.example.com;\n}",
        2,
        "`listen` runs on into line",
        id="before the next directive",
    ),
]


@pytest.mark.parametrize(("http", "line", "message"), MISSING_SEMICOLON)
def test_a_missing_semicolon_is_one_line_with_file_line_and_exit_2(
    tmp_path: Path, nginx_bin: str, http: str, line: int, message: str
) -> None:
    config = write_config(tmp_path, http)
    assert nginx_t(nginx_bin, config).returncode != 0, "nginx itself refuses this config"
    result = doctor("--config", config)
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    (error,) = result.stderr.strip().splitlines()
    at = int(line_of(config, http.splitlines()[line - 1].strip()).rsplit(":", 1)[1])
    assert f"{config}:{at}: " in error and message in error, error


def test_a_site_file_is_diagnosed_in_the_main_config_that_includes_it(tmp_path: Path) -> None:
    site, config = write_site(tmp_path)
    result = doctor("--config", site, "--fail-on", "info")
    assert result.returncode == 1, result.stderr
    assert f"info: {site} is a site file; working on the main config {config}" in result.stderr
    assert "[resolver-public]" in result.stdout and "hooks:3" in result.stdout


def test_without_config_doctor_reads_the_config_nginx_was_built_with(nginx_bin: str) -> None:
    result = doctor("--nginx-bin", nginx_bin, "--format", "json")
    conf = next(
        w.split("=", 1)[1]
        for w in subprocess.run([nginx_bin, "-V"], capture_output=True, text=True).stderr.split()
        if w.startswith("--conf-path=")
    )
    assert f"info: using nginx's main config {conf} (from nginx -V)" in result.stderr
    if result.returncode != 2:
        assert json.loads(result.stdout)["config"] == conf
