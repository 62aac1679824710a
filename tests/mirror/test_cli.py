"""The `hookshift mirror` commands: data on stdout, one-line errors with exit 2, nothing written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hookshift.rehearsal.dns import DnsServer
from tests.mirror.helpers import STAGE_URL, copy_case, snapshot

pytestmark = pytest.mark.e2e  # every test here starts a process

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookshift", "mirror", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def _common(config: Path, ca_file: Path) -> list[str]:
    return [
        "--config",
        str(config),
        "--path",
        "/kakao/result",
        "--stage-url",
        STAGE_URL,
        "--trusted-ca",
        str(ca_file),
        "--relay-socket",
        str(config.parent / "r.sock"),
        "--mirror-error-log",
        str(config.parent / "logs" / "mirror.error.log"),
        "--parity-log",
        str(config.parent / "logs" / "parity.log"),
        "--no-dns-check",
        # STAGE_URL's host resolves nowhere: nginx -t passes only with run-time DNS
        "--stage-dns",
        "runtime",
    ]


def _without(args: list[str], *flags: str) -> list[str]:
    """`args` without each of `flags` and its value."""
    out = list(args)
    for flag in flags:
        at = out.index(flag)
        del out[at : at + 2]
    return out


def test_plan_prints_a_diff_and_changes_nothing(tmp_path: Path, ca_file: Path) -> None:
    config = copy_case("crlf", tmp_path)
    before = snapshot(config.parent)
    proc = _run("plan", *_common(config, ca_file))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"--- a{config}")
    assert "+\t\t\tmirror /__hookshift_mirror;  # hookshift" in proc.stdout
    assert "location = /kakao/result" in proc.stderr
    assert snapshot(config.parent) == before


def test_plan_json_is_machine_readable(tmp_path: Path, ca_file: Path) -> None:
    config = copy_case("crlf", tmp_path)
    proc = _run("plan", *_common(config, ca_file), "--format", "json", "--nginx-version", "1.27.3")
    data = json.loads(proc.stdout)
    assert data["mode"] == "mirror" and data["layout"] == "upstream-resolve"
    assert data["location"]["where"] == f"{config}:19"


def test_apply_then_remove_through_the_cli(tmp_path: Path, ca_file: Path, nginx_bin: str) -> None:
    config = copy_case("crlf", tmp_path)
    before = snapshot(config.parent)
    writer = ["--nginx-bin", nginx_bin, "--backup-dir", str(tmp_path / "bk")]
    writer += ["--nginx-prefix", str(config.parent)]
    applied = _run("apply", *_common(config, ca_file), *writer)
    assert applied.returncode == 0, applied.stderr
    assert "applied to 1 file(s)" in applied.stderr
    again = _run("apply", *_common(config, ca_file), *writer)
    assert again.returncode == 0 and "already applied" in again.stderr
    removed = _run("remove", "--config", str(config), *writer)
    assert removed.returncode == 0, removed.stderr
    assert snapshot(config.parent) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"--stage-url": "http://abc123.execute-api.ap-northeast-2.amazonaws.com/prod"},
            "must be https",
        ),
        ({"--path": "/nothing/here"}, "no location matches /nothing/here"),
        ({"--config": "/nonexistent/nginx.conf"}, "cannot read nginx config file"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, ca_file: Path, nginx_bin: str, change: dict[str, str], message: str
) -> None:
    config = copy_case("crlf", tmp_path)
    before = snapshot(config.parent)
    args = _common(config, ca_file)
    for flag, value in change.items():
        args[args.index(flag) + 1] = value
    proc = _run("apply", *args, "--nginx-bin", nginx_bin, "--backup-dir", str(tmp_path / "bk"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("hookshift: error:")
    assert snapshot(config.parent) == before


def test_an_apply_refused_after_planning_is_one_line_with_no_diff(
    tmp_path: Path, ca_file: Path, nginx_bin: str
) -> None:
    config = copy_case("crlf", tmp_path)
    text = config.read_bytes().replace(b"http {", b"http {\n    no_such_directive on;", 1)
    config.write_bytes(text)
    before = snapshot(config.parent)
    writer = ["--nginx-bin", nginx_bin, "--backup-dir", str(tmp_path / "bk")]
    proc = _run("apply", *_common(config, ca_file), *writer, "--nginx-prefix", str(config.parent))
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nginx -t fails on the original config" in lines[0], lines
    assert snapshot(config.parent) == before


def test_a_missing_include_is_named_with_file_and_line(tmp_path: Path, ca_file: Path) -> None:
    config = copy_case("location_include", tmp_path)
    (config.parent / "servers.conf").unlink()
    proc = _run(
        "plan",
        "--config",
        str(config),
        "--path",
        "/vendor/cb",
        "--stage-url",
        STAGE_URL,
        "--no-dns-check",
    )
    assert proc.returncode == 2
    assert f"{config}:3: include names a file that does not exist" in proc.stderr


def test_a_malformed_config_is_named_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text("events {}\nhttp {\n  server {\n    listen 80\n  }\n}\n")
    proc = _run(
        "plan", "--config", str(config), "--path", "/", "--stage-url", STAGE_URL, "--no-dns-check"
    )
    assert proc.returncode == 2
    assert f"{config}:4:" in proc.stderr


def test_help_shows_examples() -> None:
    proc = _run("plan", "--help")
    assert proc.returncode == 0
    assert "--stage-url" in proc.stdout and "Examples:" in proc.stdout


def test_a_resolver_that_does_not_answer_is_named_in_the_plan(
    tmp_path: Path, ca_file: Path
) -> None:
    config = copy_case("crlf", tmp_path)
    args = [a for a in _common(config, ca_file) if a != "--no-dns-check"]
    with DnsServer(blackhole=True) as dead:
        proc = _run("plan", *args, "--resolver", dead.address, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (warning,) = [w for w in json.loads(proc.stdout)["warnings"] if w.startswith("resolver")]
    assert warning.startswith(f"resolver {dead.address} did not answer")
    assert f"warning: resolver {dead.address}" in proc.stderr


def test_apply_and_remove_work_where_crossplane_cannot_parse_lua(
    tmp_path: Path, ca_file: Path, nginx_bin: str
) -> None:
    config = copy_case("lua", tmp_path)
    before = snapshot(config.parent)
    writer = ["--nginx-bin", nginx_bin, "--backup-dir", str(tmp_path / "bk")]
    writer += ["--nginx-prefix", str(config.parent)]
    args = _common(config, ca_file)
    args[args.index("--path") + 1] = "/lua/callback"
    applied = _run("apply", *args, *writer)
    assert applied.returncode == 0, applied.stderr
    assert "crossplane cannot parse the config" in applied.stderr
    removed = _run("remove", "--config", str(config), *writer)
    assert removed.returncode == 0, removed.stderr
    assert snapshot(config.parent) == before


def test_plan_json_says_stage_dns_and_where_the_relay_logs(tmp_path: Path, ca_file: Path) -> None:
    config = copy_case("crlf", tmp_path)
    args = [*_common(config, ca_file), "--format", "json", "--nginx-version", "1.22.1"]
    proc = _run("plan", *args, "--stage-dns", "reload")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["layout"] == "two-hop" and data["stage_dns"] == "reload"
    assert data["keepalive_to_stage"] is True
    error_log = str(config.parent / "logs" / "mirror.error.log")
    assert data["mirror_error_log"] == error_log
    assert f"+\t\terror_log {error_log} warn;  # hookshift" in data["files"][0]["diff"]
    assert "mirror refresh" in proc.stderr, "the trade-off is said where the user plans"


def test_without_a_parity_log_the_relay_logs_beside_the_callback_s_access_log(
    tmp_path: Path, ca_file: Path, nginx_bin: str
) -> None:
    """crlf's `access_log logs/access.log` is under nginx's -p; without an access_log, nginx
    writes its compiled-in one."""
    config = copy_case("crlf", tmp_path)
    args = _without(_common(config, ca_file), "--mirror-error-log", "--parity-log")
    args += ["--format", "json", "--nginx-bin", nginx_bin]
    proc = _run("plan", *args, "--nginx-prefix", str(config.parent))
    assert proc.returncode == 0, proc.stderr
    expected = config.parent / "logs" / "hookshift-mirror.error.log"
    assert json.loads(proc.stdout)["mirror_error_log"] == str(expected)
    config.write_bytes(config.read_bytes().replace(b"\taccess_log logs/access.log main;\r\n", b""))
    proc = _run("plan", *args, "--nginx-prefix", str(config.parent))
    assert proc.returncode == 0, proc.stderr
    expected = _compiled_access_log(nginx_bin).parent / "hookshift-mirror.error.log"
    assert json.loads(proc.stdout)["mirror_error_log"] == str(expected)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--path", "/kakao/result\n", "--path must not contain a newline"),
        ("--path", "/kakao/result;", "--path must not contain ';'"),
        ("--path", "/kakao/{result}", "--path must not contain '{'"),
        ("--path", "/kakao/ result", "--path must not contain a space"),
        ("--path", "/kakao/$result", "--path must not contain '$'"),
        ("--path", "/kakao/result#x", "--path must not contain '#'"),
        ("--path", '/kakao/"result"', "--path must not contain '\"'"),
        ("--path", "/kakao\\result", "--path must not contain '\\'"),
        ("--stage-url", STAGE_URL + ";return 200", "--stage-url must not contain ';'"),
        ("--stage-url", STAGE_URL + "$http_x", "--stage-url must not contain '$'"),
        ("--stage-url", STAGE_URL + "\n", "--stage-url must not contain a newline"),
        ("--stage-url", STAGE_URL + "/{x}", "--stage-url must not contain '{'"),
        ("--stage-url", STAGE_URL + " x", "--stage-url must not contain a space"),
        ("--stage-url", STAGE_URL + "'", "--stage-url must not contain '''"),
        (
            "--stage-url",
            STAGE_URL.replace("https://", "https://user:secret@"),
            "must not contain a user name or password",
        ),
        ("--stage-url", STAGE_URL + "/kakao/result", "already ends with the callback path"),
    ],
)
def test_unsafe_path_or_stage_url_is_refused_in_one_line(
    tmp_path: Path, ca_file: Path, nginx_bin: str, flag: str, value: str, message: str
) -> None:
    config = copy_case("crlf", tmp_path)
    before = snapshot(config.parent)
    args = _common(config, ca_file)
    args[args.index(flag) + 1] = value
    proc = _run("apply", *args, "--nginx-bin", nginx_bin, "--backup-dir", str(tmp_path / "bk"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(config.parent) == before
    assert not (tmp_path / "bk").exists()


@pytest.mark.parametrize(
    ("definition", "name"),
    [
        ("map $request_uri $hookshift_callback { default 1; }", "$hookshift_callback"),
        ("geo $hookshift_callback { default 1; }", "$hookshift_callback"),
        ("log_format hookshift_parity '$request';", "log_format hookshift_parity"),
        ("upstream hookshift_stage { server 127.0.0.1:9; }", "upstream hookshift_stage"),
    ],
)
def test_a_user_definition_named_like_hookshift_s_is_refused_with_file_and_line(
    tmp_path: Path, ca_file: Path, definition: str, name: str
) -> None:
    config = copy_case("crlf", tmp_path)
    text = config.read_bytes().replace(b"http {\r\n", f"http {{\r\n\t{definition}\r\n".encode())
    config.write_bytes(text)
    before = snapshot(config.parent)
    proc = _run("plan", *_common(config, ca_file))
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert f"{config}:10:" in line and name in line and "fix: rename it" in line
    assert snapshot(config.parent) == before


def test_a_failed_reload_quotes_nginx_s_error_line_not_its_notice(
    tmp_path: Path, ca_file: Path, nginx_bin: str
) -> None:
    """No nginx runs with this config, so `nginx -s reload` finds no process in the pid file."""
    config = copy_case("crlf", tmp_path)
    before = snapshot(config.parent)
    writer = ["--nginx-bin", nginx_bin, "--backup-dir", str(tmp_path / "bk")]
    writer += ["--nginx-prefix", str(config.parent), "--reload"]
    proc = _run("apply", *_common(config, ca_file), *writer)
    assert proc.returncode == 1, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if "reload failed" in x]
    assert "[error]" in line and "nginx.pid" in line, line
    assert "signal process started" not in line
    assert not re.search(r"\d{4}/\d\d/\d\d \d\d:\d\d", line), line  # nginx's time stamp
    assert "fix: no nginx is running with this config" in line and "--reload" in line
    assert snapshot(config.parent) == before


def _compiled(nginx_bin: str, option: str) -> Path:
    said = subprocess.run([nginx_bin, "-V"], capture_output=True, text=True).stderr
    value = next(w for w in said.split() if w.startswith(f"--{option}="))
    return Path(value.split("=", 1)[1])


def _compiled_access_log(nginx_bin: str) -> Path:
    return _compiled(nginx_bin, "http-log-path")


def _compiled_prefix(nginx_bin: str) -> Path:
    return _compiled(nginx_bin, "prefix")


def test_the_parity_log_is_written_by_default_beside_nginx_s_access_log(
    tmp_path: Path, ca_file: Path, nginx_bin: str
) -> None:
    config = copy_case("crlf", tmp_path)
    args = [*_without(_common(config, ca_file), "--parity-log"), "--nginx-bin", nginx_bin]
    proc = _run("plan", *args, "--nginx-prefix", str(config.parent))
    assert proc.returncode == 0, proc.stderr
    parity = config.parent / "logs" / "hookshift-parity.log"  # crlf's logs/access.log under -p
    assert f"+\t\t\taccess_log {parity} hookshift_parity" in proc.stdout
    said = f"info: the parity log goes to {parity}, beside the access log nginx writes for the"
    assert said in proc.stderr
    compiled_prefix = _compiled_prefix(nginx_bin)
    proc = _run("plan", *args)
    parity = compiled_prefix / "logs" / "hookshift-parity.log"  # as nginx resolves it without -p
    assert f"+\t\t\taccess_log {parity} hookshift_parity" in proc.stdout
    config.write_bytes(config.read_bytes().replace(b"\taccess_log logs/access.log main;\r\n", b""))
    proc = _run("plan", *args, "--nginx-prefix", str(config.parent))
    assert proc.returncode == 0, proc.stderr
    parity = _compiled_access_log(nginx_bin).parent / "hookshift-parity.log"
    assert f"+\t\t\taccess_log {parity} hookshift_parity" in proc.stdout


def test_no_parity_log_opts_out_and_says_what_it_costs(tmp_path: Path, ca_file: Path) -> None:
    config = copy_case("crlf", tmp_path)
    args = _without(_common(config, ca_file), "--parity-log")
    proc = _run("plan", *args, "--no-parity-log")
    assert proc.returncode == 0, proc.stderr
    assert "hookshift_parity" not in proc.stdout
    assert "info: no parity log: `hookshift verify parity` needs one" in proc.stderr


def test_access_log_off_in_the_callback_location_is_refused_with_file_and_line(
    tmp_path: Path, ca_file: Path
) -> None:
    config = copy_case("crlf", tmp_path)
    text = config.read_bytes().replace(
        b"proxy_pass http://127.0.0.1:9000;", b"access_log off; proxy_pass http://127.0.0.1:9000;"
    )
    config.write_bytes(text)
    before = snapshot(config.parent)
    proc = _run("plan", *_common(config, ca_file))
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert f"{config}:20: location = /kakao/result has `access_log off;`" in line
    assert "--no-parity-log" in line
    assert snapshot(config.parent) == before
    assert (
        _run(
            "plan", *_without(_common(config, ca_file), "--parity-log"), "--no-parity-log"
        ).returncode
        == 0
    )


def _debian_site(tmp_path: Path) -> Path:
    copy_case("debian", tmp_path)
    return tmp_path / "debian" / "sites-enabled" / "hooks.example.com"


def test_a_site_file_leads_to_the_main_config_that_includes_it(
    tmp_path: Path, ca_file: Path
) -> None:
    site = _debian_site(tmp_path)
    main = tmp_path / "debian" / "nginx.conf"
    args = _common(site, ca_file)
    args[args.index("--path") + 1] = "/bizppurio/callback"
    proc = _run("plan", *args, "--server-name", "hooks.example.com", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert f"info: {site} is a site file; working on the main config {main}" in proc.stderr
    data = json.loads(proc.stdout)
    assert data["config"] == str(main)
    assert {f["path"] for f in data["files"]} == {
        str(main),
        str(site),
    }


def test_a_site_file_no_main_config_includes_is_refused_naming_the_main_config(
    tmp_path: Path, ca_file: Path
) -> None:
    site = tmp_path / "hooks"
    site.write_bytes(_debian_site(tmp_path).read_bytes())
    proc = _run("plan", *_common(site, ca_file), "--server-name", "hooks.example.com")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert f"{site} is a site file" in line and "included by no main config" in line
    assert "(fix: pass the main config that includes it with --config (e.g. /" in line
    assert line.endswith("), or include it there)")


def test_plan_finds_debian_s_nginx_when_sbin_is_not_on_path(
    tmp_path: Path, ca_file: Path, nginx_bin: str
) -> None:
    """A user's PATH often lacks /usr/sbin; `plan --config` still needs no --nginx-bin."""
    if nginx_bin != "/usr/sbin/nginx":
        pytest.skip("needs Debian's nginx at /usr/sbin/nginx")
    config = copy_case("crlf", tmp_path)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "hookshift", "mirror", "plan", *_common(config, ca_file)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "relay on a unix socket (nginx before 1.27.3)" in proc.stderr
